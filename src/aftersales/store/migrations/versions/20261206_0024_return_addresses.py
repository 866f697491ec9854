"""The shops' return-address books (M1, M5): ``return_addresses``, one default per shop; every merchant's
``return_address`` becomes its default address.

Revision ID: 20261206_0024
Revises: 20261206_0023
Create Date: 2026-12-06 23:00:00
"""
import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '20261206_0024'
down_revision = '20261206_0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'return_addresses',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('merchant_id', sa.String(length=64), nullable=False),
        sa.Column('label', sa.String(length=60), nullable=False),
        sa.Column('contact_name', sa.String(length=80), nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=False),
        sa.Column('address', sa.Text(), nullable=False),
        sa.Column('is_default', sa.Boolean(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_return_addresses_merchant_id_merchants')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_return_addresses')),
    )
    op.create_index('ix_return_addresses_merchant_id', 'return_addresses', ['merchant_id', 'id'])
    op.create_index('uq_return_addresses_default', 'return_addresses', ['merchant_id'], unique=True,
                    sqlite_where=sa.text('is_default'), postgresql_where=sa.text('is_default'))
    # The one address a shop had becomes its default address.
    conn = op.get_bind()
    merchants = sa.table('merchants', sa.column('id'), sa.column('return_address'), sa.column('created_at'))
    book = sa.table('return_addresses', *(sa.column(c) for c in (
        'id', 'merchant_id', 'label', 'contact_name', 'phone', 'address', 'is_default', 'version', 'created_at',
        'updated_at', 'archived_at')))
    now = datetime.now(UTC)
    if conn.dialect.name == 'sqlite':
        now = now.replace(tzinfo=None)
    rows = [{'id': f'ra_{secrets.token_hex(10)}', 'merchant_id': r.id, 'label': '', 'contact_name': '', 'phone': '',
             'address': r.return_address.strip()[:500], 'is_default': True, 'version': 1, 'created_at': now,
             'updated_at': now, 'archived_at': None}
            for r in conn.execute(sa.select(merchants.c.id, merchants.c.return_address)
                                  .where(merchants.c.return_address.is_not(None)))
            if r.return_address and r.return_address.strip()]
    if rows:
        op.bulk_insert(book, rows)


def downgrade() -> None:
    op.drop_index('uq_return_addresses_default', table_name='return_addresses')
    op.drop_index('ix_return_addresses_merchant_id', table_name='return_addresses')
    op.drop_table('return_addresses')
