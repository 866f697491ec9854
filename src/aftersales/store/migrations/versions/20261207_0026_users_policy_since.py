"""The policy file's version takes effect when it first judged an order (T0; issue 15).

Migration 0017 recorded the policy file's version with the instant the migration ran as its ``effective_at`` — the
"since" shown by ``GET /v1/policy`` and the console's policy page — although every order it stamped was paid before
and judged by that version. From now on an order's ``paid_at`` moves its version's ``effective_at`` back
(``store.terms.ensure_policy_version``); this moves each stored version back to the payment of the earliest order it
judged. A version that judged nothing keeps its instant; none is ever moved forward.

Revision ID: 20261207_0026
Revises: 20261206_0025
Create Date: 2026-12-07 02:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261207_0026'
down_revision = '20261206_0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        bind.execute(sa.text(
            "UPDATE policy_versions AS p SET effective_at = o.first "
            "FROM (SELECT state->>'policy_version' AS v, min(paid_at) AS first FROM orders GROUP BY 1) AS o "
            "WHERE o.v = p.id AND o.first < p.effective_at"))
    else:  # SQLite: instants are stored as naive UTC text of one format, so they compare as text
        bind.execute(sa.text(
            "UPDATE policy_versions SET effective_at = (SELECT min(paid_at) FROM orders "
            "WHERE json_extract(orders.state, '$.policy_version') = policy_versions.id) "
            "WHERE (SELECT min(paid_at) FROM orders "
            "WHERE json_extract(orders.state, '$.policy_version') = policy_versions.id) < effective_at"))


def downgrade() -> None:
    """Nothing to undo: the earlier instant is the true one."""
