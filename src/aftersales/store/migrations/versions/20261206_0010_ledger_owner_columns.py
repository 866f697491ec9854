"""Ledger tenancy by structure (D2, T2): each entry carries its account's owner, ``owner_kind`` and ``owner_id``.

Listings of a merchant's or a buyer's transactions filtered the account text with ``LIKE 'merchant:<id>:%'``: ``_``
is a wildcard there (``m_apparel`` matched ``m-apparel``), SQLite compares LIKE case-insensitively, and an id could
hold ``:``. They now filter on these columns by equality. Existing rows are filled from the account text: the owner
kind is what comes before its first ``:``, the account kind what follows its last, the owner id what lies between
(``platform::cash`` → ``platform``, ``""``).

Revision ID: 20261206_0010
Revises: 20261130_0008
Create Date: 2026-12-06 03:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261206_0010'
down_revision = '20261206_0009'
branch_labels = None
depends_on = None


def _owner(account: str) -> tuple[str, str]:
    kind, _, rest = account.partition(':')
    return kind, rest.rpartition(':')[0]


def upgrade() -> None:
    op.add_column('ledger_entries', sa.Column('owner_kind', sa.String(length=16), nullable=True))
    op.add_column('ledger_entries', sa.Column('owner_id', sa.String(length=64), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute("UPDATE ledger_entries SET owner_kind = split_part(account, ':', 1), "
                   "owner_id = substring(account FROM '^[^:]*:(.*):[^:]*$')")
    else:  # one UPDATE per distinct account, through the account index
        entries = sa.table('ledger_entries', sa.column('account', sa.String), sa.column('owner_kind', sa.String),
                           sa.column('owner_id', sa.String))
        values = [{'b_account': a, 'v_kind': k, 'v_id': i}
                  for (a,) in bind.execute(sa.text('SELECT DISTINCT account FROM ledger_entries')).all()
                  for k, i in [_owner(a)]]
        if values:
            bind.execute(entries.update().where(entries.c.account == sa.bindparam('b_account'))
                         .values(owner_kind=sa.bindparam('v_kind'), owner_id=sa.bindparam('v_id')), values)
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.alter_column('owner_kind', existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column('owner_id', existing_type=sa.String(length=64), nullable=False)
    op.create_index('ix_ledger_entries_owner', 'ledger_entries', ['owner_kind', 'owner_id', 'transaction_id'])


def downgrade() -> None:
    op.drop_index('ix_ledger_entries_owner', table_name='ledger_entries')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_column('owner_id')
        batch_op.drop_column('owner_kind')
