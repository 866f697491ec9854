"""F2 automatic actions never block one another: a timer that cannot apply keeps its tries, its last error and
when it is tried again; after a bounded number of tries it is parked (``stuck_at``) where platform agents see it.

Revision ID: 20261206_0009
Revises: 20261130_0008
Create Date: 2026-12-06 09:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261206_0009'
down_revision = '20261130_0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_error', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('next_try_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('stuck_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_timers_stuck', ['stuck_at', 'id'], unique=False,
                              postgresql_where=sa.text('stuck_at IS NOT NULL'),
                              sqlite_where=sa.text('stuck_at IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.drop_index('ix_timers_stuck')
        batch_op.drop_column('stuck_at')
        batch_op.drop_column('next_try_at')
        batch_op.drop_column('last_error')
        batch_op.drop_column('attempts')
