"""Idempotency-Key records (API.md): the claim of a key by a principal, its recorded answer, and the purge.

A row is one (principal, key): the request it was first used for (method, path, body hash), and its answer —
``status_code`` NULL while the first request runs, 0 once a commit applied it but no answer was recorded, else the
HTTP status with ``response`` (the body as sent, except secrets: see ``api/middleware.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import tables as t

c = t.idempotency.c
#: Records are kept this long, then the worker purges them (API.md: keys live at least 24 h).
KEEP = timedelta(hours=24)


def _own(principal: str, key: str, claimed_at: datetime) -> tuple[Any, ...]:
    """The claim of one request (a retry that took an abandoned claim over has another ``created_at``)."""
    return c.principal == principal, c.key == key, c.created_at == claimed_at


# The statements of every request under a key, built once (SQLAlchemy then finds their compiled form without
# rebuilding the statement and its cache key each time).
_CLAIM = insert(t.idempotency)
_MINE = (c.principal == bindparam("b_principal"), c.key == bindparam("b_key"), c.created_at == bindparam("b_created_at"))
_ANSWER: dict[str, Any] = {"status_code": bindparam("v_status_code"), "content_type": bindparam("v_content_type"),
           "response": bindparam("v_response")}
_APPLIED_AGAIN = update(t.idempotency).where(*_MINE).values(_ANSWER)
_APPLIED = update(t.idempotency).where(*_MINE, or_(c.status_code.is_(None), c.status_code == 0)).values(_ANSWER)


def claim(conn: Connection, *, principal: str, key: str, path: str, body_hash: str, now: datetime,
          expired_before: datetime, abandoned_before: datetime) -> Row[Any] | None:
    """Claim ``key`` for this request: None when it is ours now, else the row of whoever holds it.

    The common case, a new key, is one INSERT. A key past its life (``expired_before``), or a claim abandoned by
    a server that died mid-request (no answer, no commit, older than ``abandoned_before``) is taken over; a claim
    whose request was applied (status 0 or an answer) is never taken again before it expires."""
    row = {"principal": principal, "key": key, "method": "POST", "path": path, "body_hash": body_hash, "created_at": now}
    try:
        with conn.begin():
            conn.execute(_CLAIM, row)
        return None
    except IntegrityError:
        pass
    try:
        with conn.begin():
            freed = conn.execute(delete(t.idempotency).where(
                c.principal == principal, c.key == key,
                (c.created_at < expired_before) | (c.status_code.is_(None) & (c.created_at < abandoned_before))))
            if freed.rowcount:
                conn.execute(_CLAIM, row)
                return None
    except IntegrityError:
        pass
    with conn.begin():
        return conn.execute(select(t.idempotency).where(c.principal == principal, c.key == key)).first()


def mark_applied(conn: Connection, principal: str, key: str, claimed_at: datetime, *,
                 answer: tuple[int, str, str] | None, answered: bool) -> bool:
    """In the transaction of a commit: the claim is applied, with its answer (status, content type, stored body)
    when the command's result gave one. ``answered``: an earlier commit of this request recorded an answer (which
    this one replaces). False when the claim is no longer this request's (a retry took it over)."""
    params: dict[str, Any] = {"b_principal": principal, "b_key": key, "b_created_at": claimed_at,
                              "v_status_code": 0 if answer is None else answer[0],
                              "v_content_type": None if answer is None else answer[1],
                              "v_response": None if answer is None else answer[2]}
    return conn.execute(_APPLIED_AGAIN if answered else _APPLIED, params).rowcount == 1


def record(conn: Connection, principal: str, key: str, claimed_at: datetime, *, status: int, content_type: str,
           response: str) -> None:
    """The answer of a request, written before it is sent (answers no commit recorded: refusals, reads)."""
    conn.execute(update(t.idempotency).where(*_own(principal, key, claimed_at))
                 .values(status_code=status, response=response, content_type=content_type))


def release(conn: Connection, principal: str, key: str, claimed_at: datetime) -> None:
    """A 5xx is not a result: the claim goes, unless its request was applied, so that the client may retry."""
    conn.execute(delete(t.idempotency).where(*_own(principal, key, claimed_at), c.status_code.is_(None)))


def purge(conn: Connection, now: datetime, keep: timedelta = KEEP) -> int:
    """Remove the records older than ``keep`` (API.md: keys live at least 24 h). Returns how many went."""
    return int(conn.execute(delete(t.idempotency).where(c.created_at < now - keep)).rowcount or 0)
