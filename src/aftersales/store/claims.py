"""The Idempotency-Key claim of a request, as its unit of work sees it (API.md; the claims themselves are taken by
the API middleware)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, or_, update

from . import tables as t


def mark_applied(conn: Connection, principal: str, key: str, claimed_at: datetime) -> bool:
    """Mark the claim as applied (``status_code`` 0) in the committing transaction — only while it is still this
    request's (claimed at ``claimed_at``, not answered). False when a retry took it over."""
    c = t.idempotency.c
    marked = conn.execute(
        update(t.idempotency)
        .where(c.principal == principal, c.key == key, c.created_at == claimed_at,
               or_(c.status_code.is_(None), c.status_code == 0))
        .values(status_code=0))
    return marked.rowcount == 1
