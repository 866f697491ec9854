"""The case search index (S1): ``search_terms`` (merchant, term, order), filled for every existing order.

Each order's terms — its id, buyer, SKUs, titles and their words, tracking numbers, its cases' ids and return and
replacement tracking numbers, lower-cased — are computed by :func:`aftersales.store.search.state_terms`, the same
definition the unit of work and the import write with. The term column compares by code point ("C" collation on
PostgreSQL) so that a prefix search is a range scan of the primary key.

Revision ID: 20261206_0022
Revises: 20261206_0019
Create Date: 2026-12-06 20:20:00
"""
from typing import Any

import sqlalchemy as sa
from alembic import op

from aftersales.store.search import state_terms

revision = '20261206_0022'
down_revision = '20261206_0019'
branch_labels = None
depends_on = None

_PAGE = 1000


def upgrade() -> None:
    bind = op.get_bind()
    term_type = sa.String(length=64, collation='C') if bind.dialect.name == 'postgresql' else sa.String(length=64)
    op.create_table(
        'search_terms',
        sa.Column('merchant_id', sa.String(length=64), nullable=False),
        sa.Column('term', term_type, nullable=False),
        sa.Column('order_id', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('merchant_id', 'term', 'order_id', name=op.f('pk_search_terms')),
    )
    orders = sa.table('orders', sa.column('id', sa.String), sa.column('merchant_id', sa.String), sa.column('state', sa.JSON))
    cases = sa.table('cases', sa.column('order_id', sa.String), sa.column('state', sa.JSON))
    terms = sa.table('search_terms', sa.column('merchant_id'), sa.column('term'), sa.column('order_id'))
    after = ''
    while True:
        page = bind.execute(sa.select(orders.c.id, orders.c.merchant_id, orders.c.state).where(orders.c.id > after)
                            .order_by(orders.c.id).limit(_PAGE)).all()
        if not page:
            break
        after = page[-1].id
        of_page: dict[str, list[dict[str, Any]]] = {r.id: [] for r in page}
        for r in bind.execute(sa.select(cases.c.order_id, cases.c.state).where(cases.c.order_id.in_(list(of_page)))):
            of_page[r.order_id].append(r.state)
        rows = [{'merchant_id': r.merchant_id, 'term': term, 'order_id': r.id}
                for r in page for term in sorted(state_terms(r.id, r.state, of_page[r.id]))]
        if rows:
            bind.execute(terms.insert(), rows)


def downgrade() -> None:
    op.drop_table('search_terms')
