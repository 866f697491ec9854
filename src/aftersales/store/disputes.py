"""Rows of the dispute paths of a case or a complaint (D3)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from . import tables as t


def one(conn: Connection, path_id: str) -> Any:
    return conn.execute(select(t.dispute_paths).where(t.dispute_paths.c.id == path_id)).first()


def add(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(t.dispute_paths).values(**values))


def finish(conn: Connection, path_id: str, seen_version: int, values: dict[str, Any]) -> bool:
    """Record the end of the path if it is still at ``seen_version`` (optimistic); False if it changed meanwhile."""
    dp = t.dispute_paths.c
    done = conn.execute(update(t.dispute_paths).where(dp.id == path_id, dp.version == seen_version)
                        .values(**values, version=seen_version + 1))
    return done.rowcount == 1


def rows(conn: Connection, kind: str, subject_id: str) -> list[Any]:
    dp = t.dispute_paths
    return list(conn.execute(select(dp).where(dp.c.subject == kind, dp.c.subject_id == subject_id).order_by(dp.c.id)).all())
