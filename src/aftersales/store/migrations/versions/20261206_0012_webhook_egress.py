"""Webhooks (SEC1, SEC2): subscriptions keep when and why they were disabled; a one-row-per-event outbox the worker
fans out; the delivery log keeps coarse error classes instead of the socket's messages.

Revision ID: 20261206_0012
Revises: 20261130_0008
Create Date: 2026-12-06 03:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261206_0012'
down_revision = '20261206_0010'
branch_labels = None
depends_on = None

# The socket's message said "connection refused" from "server disconnected" from "timed out": a port scanner's
# read-out. Rows written before this revision keep only the class.
_COARSE = """CASE
    WHEN {col} IS NULL THEN NULL
    WHEN {col} LIKE 'HTTP 4%' THEN 'http_4xx'
    WHEN {col} LIKE 'HTTP 5%' THEN 'http_5xx'
    WHEN {col} LIKE 'HTTP %' THEN 'http_other'
    WHEN {col} LIKE '%Timeout%' THEN 'timeout'
    WHEN {col} LIKE '%SSL%' OR {col} LIKE '%CERTIFICATE%' THEN 'tls_error'
    ELSE 'connection_error' END"""


def upgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("disabled_reason", sa.String(length=40), nullable=True))

    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("merchant_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=48), nullable=False),
        sa.Column("ordering_key", sa.String(length=80), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_outbox")),
    )
    op.execute(f"UPDATE webhook_attempts SET error = {_COARSE.format(col='error')} WHERE error IS NOT NULL")  # noqa: S608 - constants
    op.execute(f"UPDATE webhook_deliveries SET last_error = {_COARSE.format(col='last_error')} WHERE last_error IS NOT NULL")  # noqa: S608 - constants


def downgrade() -> None:
    op.drop_table("webhook_outbox")
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("disabled_reason")
        batch_op.drop_column("disabled_at")
