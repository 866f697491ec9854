"""The change mark also moves with webhook subscriptions: the flush answers "does anybody want these events?" from a
per-process copy of the active subscriptions while the mark is the copy's (issue 13).

Migration 0027's ``terms`` mark names the rarely changed rows a process may keep a copy of; every statement that
changes ``webhook_subscriptions`` (created, disabled, enabled, deleted — by the API, the CLI or psql) now sets it
too, by the same statement trigger, in the same transaction (PostgreSQL). A subscription change then also makes the
next unit of work read the category terms again: both are rare. SQLite keeps no copy: nothing to do.

Revision ID: 20261207_0028
Revises: 20261207_0027
Create Date: 2026-12-07 13:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261207_0028'
down_revision = '20261207_0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(
            "CREATE TRIGGER webhook_subscriptions_change_mark AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            "ON webhook_subscriptions FOR EACH STATEMENT EXECUTE FUNCTION change_marks_terms()"))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("DROP TRIGGER webhook_subscriptions_change_mark ON webhook_subscriptions"))
