"""Refused case openings (E1–E9), recorded for the what-if replay (issue 15).

Revision ID: 20261206_0019
Revises: 20261206_0017
Create Date: 2026-12-06 20:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261206_0019'
down_revision = '20261206_0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'refused_openings',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('order_id', sa.String(length=64), nullable=False),
        sa.Column('merchant_id', sa.String(length=64), nullable=False),
        sa.Column('actor', sa.String(length=16), nullable=False),
        sa.Column('case_type', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('items', sa.JSON(), nullable=True),
        sa.Column('refund_fen', sa.BigInteger(), nullable=True),
        sa.Column('buyer_consent', sa.Boolean(), nullable=False),
        sa.Column('rule', sa.String(length=8), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('events_before', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_refused_openings_order_id', 'refused_openings', ['order_id'])
    op.create_index('ix_refused_openings_at', 'refused_openings', ['at'])


def downgrade() -> None:
    op.drop_index('ix_refused_openings_at', table_name='refused_openings')
    op.drop_index('ix_refused_openings_order_id', table_name='refused_openings')
    op.drop_table('refused_openings')
