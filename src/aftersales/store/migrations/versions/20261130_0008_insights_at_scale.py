"""Insights at scale (S1, S3; issue 7 B5): the case's first response as a column, and covering indexes.

``cases.first_response_at`` projects the S1 instant the insights read (it was only in the JSON state); existing rows
are filled from their state. The indexes let every insights query read a window of cases (or of one shop's cases)
by ``opened_at`` / ``closed_at`` without touching the JSON rows (PostgreSQL: index-only scans with INCLUDE), and the
orders sold in a window by ``paid_at``.

Revision ID: 20261130_0008
Revises: 20261122_0007
Create Date: 2026-11-30 06:30:00
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '20261130_0008'
down_revision = '20261122_0007'
branch_labels = None
depends_on = None

_CASE_INCLUDE = ['merchant_id', 'reason', 'type', 'closed_at', 'first_response_at']


def upgrade() -> None:
    op.add_column('cases', sa.Column('first_response_at', sa.DateTime(timezone=True), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute("UPDATE cases SET first_response_at = CAST(state ->> 'first_response_at' AS TIMESTAMPTZ) "
                   "WHERE state ->> 'first_response_at' IS NOT NULL")
    else:  # SQLite keeps instants as naive UTC text in SQLAlchemy's format: convert in Python, exactly
        cases = sa.table('cases', sa.column('id', sa.String), sa.column('first_response_at', sa.DateTime()))
        rows = bind.execute(sa.text("SELECT id, json_extract(state, '$.first_response_at') FROM cases "
                                    "WHERE json_extract(state, '$.first_response_at') IS NOT NULL")).all()
        values = [{'b_id': r[0], 'v': datetime.fromisoformat(r[1]).astimezone(UTC).replace(tzinfo=None)} for r in rows]
        if values:
            bind.execute(cases.update().where(cases.c.id == sa.bindparam('b_id'))
                         .values(first_response_at=sa.bindparam('v')), values)
    op.create_index('ix_cases_opened', 'cases', ['opened_at'], postgresql_include=_CASE_INCLUDE)
    op.create_index('ix_cases_merchant_opened', 'cases', ['merchant_id', 'opened_at'], postgresql_include=_CASE_INCLUDE)
    op.create_index('ix_cases_closed', 'cases', ['closed_at'], postgresql_include=['merchant_id'])
    op.create_index('ix_cases_merchant_closed', 'cases', ['merchant_id', 'closed_at'])
    op.create_index('ix_orders_paid', 'orders', ['paid_at'])
    op.create_index('ix_orders_merchant_paid', 'orders', ['merchant_id', 'paid_at'])


def downgrade() -> None:
    op.drop_index('ix_orders_merchant_paid', table_name='orders')
    op.drop_index('ix_orders_paid', table_name='orders')
    op.drop_index('ix_cases_merchant_closed', table_name='cases')
    op.drop_index('ix_cases_closed', table_name='cases')
    op.drop_index('ix_cases_merchant_opened', table_name='cases')
    op.drop_index('ix_cases_opened', table_name='cases')
    op.drop_column('cases', 'first_response_at')
