"""Staff users can be disabled: ``users.disabled_at`` (the platform console's user management).

A disabled user cannot sign in, and the sessions they had stop working (the session lookup reads the column);
enabling them again clears it. Existing users stay enabled (NULL).

Revision ID: 20261206_0021
Revises: 20261206_0018
Create Date: 2026-12-06 20:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261206_0021'
down_revision = '20261206_0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('disabled_at')
