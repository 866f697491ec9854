"""D1 deposits: withdrawal requests with their hold; timers.subject widened for complaints and withdrawals.

Revision ID: 20261122_0004
Revises: 20261122_0003
Create Date: 2026-11-22 06:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261122_0004'
down_revision = '20261122_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.alter_column('subject', existing_type=sa.String(length=8), type_=sa.String(length=16), existing_nullable=False)
    op.create_table('withdrawals',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('merchant_id', sa.String(length=64), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('requested_by', sa.String(length=80), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_withdrawals_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_withdrawals'))
    )
    with op.batch_alter_table('withdrawals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_withdrawals_merchant_id'), ['merchant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('withdrawals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_withdrawals_merchant_id'))
    op.drop_table('withdrawals')
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.alter_column('subject', existing_type=sa.String(length=16), type_=sa.String(length=8), existing_nullable=False)
