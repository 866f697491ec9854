"""Credentials and logins: idempotency records purged by age, no secret kept in them, login throttling buckets.

* ``ix_idempotency_keys_created_at``: the worker deletes records older than 24 h (API.md: keys live at least 24 h).
* Records written before this revision kept whole answers, secrets included (API keys, webhook secrets, portal
  links): their answers are dropped and they are marked applied (status 0), so that a retry is told to read the
  resource (409 ``idempotency-applied``) instead of being given the secret again — or being applied twice.
* ``login_throttle``: failed workbench logins counted per (client address, username) and per client address.

Revision ID: 20261206_0011
Revises: 20261130_0008
Create Date: 2026-12-06 09:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261206_0011'
down_revision = '20261206_0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_idempotency_keys_created_at', 'idempotency_keys', ['created_at'])
    op.execute("UPDATE idempotency_keys SET status_code = 0, response = NULL, content_type = NULL "
               "WHERE path IN ('/v1/api-keys', '/v1/webhooks', '/v1/buyer-links') "
               "AND status_code >= 200 AND status_code < 300")
    op.create_table('login_throttle',
    sa.Column('bucket', sa.String(length=200), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('bucket', name=op.f('pk_login_throttle'))
    )


def downgrade() -> None:
    op.drop_table('login_throttle')
    op.drop_index('ix_idempotency_keys_created_at', table_name='idempotency_keys')
