"""Rows of the set-up resources: merchants, categories, API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from . import tables as t


def add_merchant(conn: Connection, *, id: str, name: str, return_address: str | None, created_at: datetime) -> None:
    conn.execute(insert(t.merchants).values(id=id, name=name, return_address=return_address, closed=False, created_at=created_at))


def put_category(conn: Connection, code: str, values: dict[str, Any]) -> bool:
    """Create or replace the category; True when it was created."""
    # Locks the row (PostgreSQL): two changes of the same category's terms number their versions one after the other.
    exists = conn.execute(select(t.categories.c.code).where(t.categories.c.code == code).with_for_update()).first() is not None
    if exists:
        conn.execute(update(t.categories).where(t.categories.c.code == code).values(**values))
    else:
        conn.execute(insert(t.categories).values(code=code, **values))
    return not exists


def api_key(engine: Engine, key_hash: str) -> Any:
    """The role, subject and revocation of the key with this hash (None if unknown), read outside any unit of work."""
    with engine.connect().execution_options(readonly=True) as conn:
        return conn.execute(select(t.api_keys.c.role, t.api_keys.c.subject_id, t.api_keys.c.revoked_at)
                            .where(t.api_keys.c.key_hash == key_hash)).first()


def merchant_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(t.merchants)).scalar_one())
