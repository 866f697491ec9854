"""API keys in the database (the hash of each, never the key): listing, revocation, rotation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from . import tables as t

k = t.api_keys.c
#: What a listing shows of a key: never its hash.
COLUMNS = (k.id, k.role, k.subject_id, k.label, k.created_at, k.revoked_at)


def insert_key(conn: Connection, *, id: str, key_hash: str, role: str, subject_id: str | None, label: str | None,
               created_at: datetime) -> None:
    conn.execute(insert(t.api_keys).values(id=id, key_hash=key_hash, role=role, subject_id=subject_id, label=label,
                                           created_at=created_at))


def key_by_id(conn: Connection, key_id: str, *, lock: bool = False) -> Any:
    q = select(*COLUMNS, k.key_hash).where(k.id == key_id)
    return conn.execute(q.with_for_update() if lock else q).first()


def keys(conn: Connection, *, role: str | None, subject_id: str | None, include_revoked: bool, after: str | None,
         limit: int) -> list[Any]:
    """Keys by id (random, so in no meaningful order, but stable for paging)."""
    q = select(*COLUMNS).order_by(k.id).limit(limit)
    if role is not None:
        q = q.where(k.role == role)
    if subject_id is not None:
        q = q.where(k.subject_id == subject_id)
    if not include_revoked:
        q = q.where(k.revoked_at.is_(None))
    if after is not None:
        q = q.where(k.id > after)
    return list(conn.execute(q).all())


def revoke(conn: Connection, key_id: str, now: datetime) -> bool:
    """Revoke a key that is not revoked yet; False if it was (or is unknown)."""
    return conn.execute(update(t.api_keys).where(k.id == key_id, k.revoked_at.is_(None))
                        .values(revoked_at=now)).rowcount == 1
