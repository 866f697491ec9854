"""Publishing a policy change (T0, D3, issue 15): drafts of a new policy version, scheduled to take effect at an
instant (a version in force never changes) or withdrawn, and the append-only record of who did each and why.

Revision ID: 20261206_0018
Revises: 20261206_0022
Create Date: 2026-12-06 20:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261206_0018'
down_revision = '20261206_0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'policy_drafts',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('parameters', sa.JSON(), nullable=False),
        sa.Column('version_id', sa.String(length=32), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=80), nullable=False),
        sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('file_version', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_drafts')),
    )
    op.create_index('ix_policy_drafts_status_effective_at', 'policy_drafts', ['status', 'effective_at'], unique=False)
    op.create_table(
        'policy_events',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('draft_id', sa.String(length=40), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('actor', sa.String(length=16), nullable=False),
        sa.Column('actor_id', sa.String(length=80), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['draft_id'], ['policy_drafts.id'], name=op.f('fk_policy_events_draft_id_policy_drafts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_events')),
    )
    op.create_index(op.f('ix_policy_events_draft_id'), 'policy_events', ['draft_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_policy_events_draft_id'), table_name='policy_events')
    op.drop_table('policy_events')
    op.drop_index('ix_policy_drafts_status_effective_at', table_name='policy_drafts')
    op.drop_table('policy_drafts')
