"""The workbench's accounts in the database: staff users, browser sessions and the login throttle's buckets."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from . import tables as t

u = t.users.c
s = t.web_sessions.c
b = t.login_throttle.c


# --- users ----------------------------------------------------------------------------------------------------
def username_taken(conn: Connection, username: str) -> bool:
    return conn.execute(select(u.id).where(u.username == username)).first() is not None


def insert_user(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(t.users).values(values))


def user_by_username(conn: Connection, username: str) -> Row[Any] | None:
    return conn.execute(select(t.users).where(u.username == username)).first()


def user_by_id(conn: Connection, user_id: str) -> Row[Any] | None:
    return conn.execute(select(t.users).where(u.id == user_id)).first()


def set_password_hash(conn: Connection, user_id: str, password_hash: str) -> None:
    conn.execute(update(t.users).where(u.id == user_id).values(password_hash=password_hash))


def users_page(conn: Connection, *, after: str | None, limit: int, merchant_id: str | None = None) -> list[Any]:
    """Up to ``limit + 1`` staff users by username, after ``after`` (without their password hashes); with
    ``merchant_id``, that shop's only."""
    q = (select(u.id, u.username, u.display_name, u.role, u.merchant_id, u.created_at, u.disabled_at)
         .order_by(u.username).limit(limit + 1))
    if after is not None:
        q = q.where(u.username > after)
    if merchant_id is not None:
        q = q.where(u.merchant_id == merchant_id)
    return list(conn.execute(q).all())


def set_disabled(conn: Connection, user_id: str, disabled_at: datetime | None) -> None:
    conn.execute(update(t.users).where(u.id == user_id).values(disabled_at=disabled_at))


# --- sessions -------------------------------------------------------------------------------------------------
def insert_session(conn: Connection, *, token_hash: str, user_id: str | None, buyer_id: str | None, csrf_token: str,
                   created_at: datetime, expires_at: datetime) -> None:
    conn.execute(insert(t.web_sessions).values(token_hash=token_hash, user_id=user_id, buyer_id=buyer_id,
                                               csrf_token=csrf_token, created_at=created_at, expires_at=expires_at))


def session_by_hash(conn: Connection, token_hash: str) -> Row[Any] | None:
    return conn.execute(select(t.web_sessions).where(s.token_hash == token_hash)).first()


def delete_session(conn: Connection, token_hash: str) -> int:
    return int(conn.execute(delete(t.web_sessions).where(s.token_hash == token_hash)).rowcount or 0)


def delete_user_sessions(conn: Connection, user_id: str) -> int:
    """Sign a staff user out everywhere."""
    return int(conn.execute(delete(t.web_sessions).where(s.user_id == user_id)).rowcount or 0)


def staff_sessions(conn: Connection, now: datetime, *, after: str | None, limit: int,
                   user_id: str | None = None) -> list[Any]:
    """Unexpired staff sessions (not buyers'), with their user, by id (the token's sha256)."""
    q = (select(s.token_hash, s.user_id, s.created_at, s.expires_at, u.username, u.role, u.merchant_id)
         .join(t.users, u.id == s.user_id).where(s.expires_at > now).order_by(s.token_hash).limit(limit))
    if after is not None:
        q = q.where(s.token_hash > after)
    if user_id is not None:
        q = q.where(s.user_id == user_id)
    return list(conn.execute(q).all())


# --- the login throttle ---------------------------------------------------------------------------------------
def lock_buckets(conn: Connection, buckets: Iterable[str]) -> dict[str, Row[Any]]:
    """The throttle buckets ``buckets``, created if new, locked until the transaction ends (PostgreSQL: FOR UPDATE,
    in a fixed order so that two logins never wait on each other crosswise; SQLite: the writer lock is held)."""
    names = sorted(set(buckets))
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for name in names:
        conn.execute(dialect.insert(t.login_throttle).values(bucket=name, failures=0).on_conflict_do_nothing())
    rows = conn.execute(select(t.login_throttle).where(b.bucket.in_(names)).order_by(b.bucket).with_for_update()).all()
    return {row.bucket: row for row in rows}


def set_bucket(conn: Connection, bucket: str, *, failures: int, last_failure_at: datetime | None,
               next_attempt_at: datetime | None) -> None:
    conn.execute(update(t.login_throttle).where(b.bucket == bucket)
                 .values(failures=failures, last_failure_at=last_failure_at, next_attempt_at=next_attempt_at))


def bucket(conn: Connection, name: str) -> Row[Any] | None:
    return conn.execute(select(t.login_throttle).where(b.bucket == name)).first()
