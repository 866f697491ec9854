"""S1: the shop's staff member handling a case (the queue's claim / assign), and the index of the queue's views
"Mine" and "Unassigned" (the shop, then the assignee, then the deadline).

Revision ID: 20261206_0020
Revises: 20261206_0021
Create Date: 2026-12-06 20:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261206_0020'
down_revision = '20261206_0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee_id", sa.String(length=64), nullable=True))
    op.create_index("ix_cases_merchant_assignee_due", "cases", ["merchant_id", "assignee_id", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_cases_merchant_assignee_due", table_name="cases")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("assignee_id")
