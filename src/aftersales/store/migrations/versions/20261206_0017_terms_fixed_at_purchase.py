"""Terms fixed at purchase (E4–E6, T0): versions of category terms and of the platform policy; orders stamped.

``category_versions`` keeps every version of a category's terms (never updated); ``policy_versions`` the parameters
of every platform policy version, by id. Each order's JSON state gains ``terms`` (its categories' terms with their
version) and ``policy_version``: eligibility, deadlines and automatic actions read those from now on.

Existing orders were judged by the terms and the policy in force until now, so they are stamped with them: each
category gets its version 1 (its current terms, effective at this migration), a category an order names but nobody
configured gets the default terms (version None), and the policy in force is the one the service loads
(``AFTERSALES_POLICY_FILE``, else the shipped default).

Revision ID: 20261206_0017
Revises: 20261206_0012
Create Date: 2026-12-06 09:00:00
"""
import os
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from aftersales.domain.policy import load, version_id

revision = '20261206_0017'
down_revision = '20261206_0011'
branch_labels = None
depends_on = None

_PAGE = 1000


def upgrade() -> None:
    op.create_table(
        'category_versions',
        sa.Column('code', sa.String(length=64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('no_reason_return', sa.Boolean(), nullable=False),
        sa.Column('statutory_exclusion', sa.String(length=32), nullable=True),
        sa.Column('after_sales_days', sa.Integer(), nullable=True),
        sa.Column('warranty_days', sa.Integer(), nullable=True),
        sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('code', 'version', name=op.f('pk_category_versions')),
    )
    op.create_table(
        'policy_versions',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('parameters', sa.JSON(), nullable=False),
        sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_versions')),
    )
    bind = op.get_bind()
    now = datetime.now(UTC)
    at = now.replace(tzinfo=None) if bind.dialect.name == 'sqlite' else now  # UtcDateTime's storage on SQLite

    versions = sa.table('category_versions', *(sa.column(c) for c in (
        'code', 'version', 'no_reason_return', 'statutory_exclusion', 'after_sales_days', 'warranty_days', 'effective_at')))
    terms: dict[str, dict[str, Any]] = {}
    rows = bind.execute(sa.text('SELECT code, name, no_reason_return, statutory_exclusion, after_sales_days, warranty_days '
                                'FROM categories ORDER BY code')).all()
    for r in rows:
        terms[r.code] = {'code': r.code, 'name': r.name, 'no_reason_return': bool(r.no_reason_return),
                         'statutory_exclusion': r.statutory_exclusion, 'after_sales_days': r.after_sales_days,
                         'warranty_days': r.warranty_days, 'version': 1}
    if rows:
        bind.execute(versions.insert(), [{'code': r.code, 'version': 1, 'no_reason_return': bool(r.no_reason_return),
                                          'statutory_exclusion': r.statutory_exclusion,
                                          'after_sales_days': r.after_sales_days, 'warranty_days': r.warranty_days,
                                          'effective_at': at} for r in rows])

    policy = load(os.environ.get('AFTERSALES_POLICY_FILE') or None)
    vid = version_id(policy)
    policies = sa.table('policy_versions', sa.column('id'), sa.column('parameters', sa.JSON), sa.column('effective_at'))
    bind.execute(policies.insert().values(id=vid, parameters=policy.as_dict(), effective_at=at))

    orders = sa.table('orders', sa.column('id', sa.String), sa.column('state', sa.JSON))
    after = ''
    while True:
        page = bind.execute(sa.select(orders.c.id, orders.c.state).where(orders.c.id > after)
                            .order_by(orders.c.id).limit(_PAGE)).all()
        if not page:
            break
        after = page[-1].id
        updates = []
        for oid, state in page:
            if 'terms' in state and 'policy_version' in state:
                continue
            codes = sorted({item['category'] for item in state.get('items', [])})
            state = {**state,
                     'terms': {c: terms.get(c) or {'code': c, 'name': c, 'no_reason_return': True, 'statutory_exclusion': None,
                                                   'after_sales_days': None, 'warranty_days': None, 'version': None}
                               for c in codes},
                     'policy_version': vid}
            updates.append({'b_id': oid, 'v_state': state})
        if updates:
            bind.execute(orders.update().where(orders.c.id == sa.bindparam('b_id')).values(state=sa.bindparam('v_state')),
                         updates)


def downgrade() -> None:
    # The orders' ``terms``/``policy_version`` keys stay in their state: the code before this revision ignores them.
    op.drop_table('policy_versions')
    op.drop_table('category_versions')
