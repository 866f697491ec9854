"""Category terms published like the policy (E4–E6, T0, D3; issue 15): a policy draft may carry category terms.

``policy_drafts.categories`` holds the drafted terms per category code; ``parameters``/``version_id`` become optional
(a draft that changes only category terms leaves the policy as it is). ``category_versions.draft_id`` names the draft a
scheduled version came from (None: an immediate ``PUT /v1/categories/{code}``); such a version may lie in the future
until its ``effective_at``, and is removed if the draft is withdrawn before then (a version in force never changes).
``replay_jobs.workers``: how many processes replay the job's orders (1 for the jobs queued before).

Revision ID: 20261206_0025
Revises: 20261206_0024
Create Date: 2026-12-06 23:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261206_0025'
down_revision = '20261206_0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('replay_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('workers', sa.Integer(), nullable=False, server_default='1'))
    with op.batch_alter_table('policy_drafts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('categories', sa.JSON(), nullable=True))
        batch_op.alter_column('parameters', existing_type=sa.JSON(), nullable=True)
        batch_op.alter_column('version_id', existing_type=sa.String(length=32), nullable=True)
    with op.batch_alter_table('category_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('draft_id', sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f('ix_category_versions_draft_id'), ['draft_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('replay_jobs', schema=None) as batch_op:
        batch_op.drop_column('workers')
    with op.batch_alter_table('category_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_category_versions_draft_id'))
        batch_op.drop_column('draft_id')
    op.execute("DELETE FROM replay_jobs WHERE draft_id IN (SELECT id FROM policy_drafts WHERE version_id IS NULL)")
    op.execute("DELETE FROM policy_events WHERE draft_id IN (SELECT id FROM policy_drafts WHERE version_id IS NULL)")
    op.execute("DELETE FROM policy_drafts WHERE version_id IS NULL")
    with op.batch_alter_table('policy_drafts', schema=None) as batch_op:
        batch_op.alter_column('version_id', existing_type=sa.String(length=32), nullable=False)
        batch_op.alter_column('parameters', existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column('categories')
