"""What-if replay jobs of a policy draft (issue 15): ``replay_jobs``, run by the worker, with progress and report.

Revision ID: 20261206_0023
Revises: 20261206_0020
Create Date: 2026-12-06 21:05:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261206_0023'
down_revision = '20261206_0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'replay_jobs',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('draft_id', sa.String(length=40), nullable=False),
        sa.Column('start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('end', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('done', sa.Integer(), nullable=False),
        sa.Column('total', sa.Integer(), nullable=True),
        sa.Column('report', sa.JSON(), nullable=True),
        sa.Column('rows', sa.JSON(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=80), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['draft_id'], ['policy_drafts.id'], name=op.f('fk_replay_jobs_draft_id_policy_drafts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_replay_jobs')),
    )
    op.create_index('ix_replay_jobs_draft_id', 'replay_jobs', ['draft_id'])
    op.create_index('ix_replay_jobs_status_created_at', 'replay_jobs', ['status', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_replay_jobs_status_created_at', table_name='replay_jobs')
    op.drop_index('ix_replay_jobs_draft_id', table_name='replay_jobs')
    op.drop_table('replay_jobs')
