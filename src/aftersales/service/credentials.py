"""Credentials with a life cycle: API keys and staff sessions listed (never their secrets), revoked, rotated.

Who may: the platform, every key and session; a merchant, its own merchant keys (list, revoke, rotate: a rotation
replaces one of its keys by one new key, so it never holds more than it was given); nobody else. ``who=None`` is
the CLI (an operator with the database). A revoked API key is refused by every server process within
``API_KEY_CACHE_SECONDS`` (5 s: the per-process key cache); a revoked session at the next request. The bootstrap
platform key (``AFTERSALES_BOOTSTRAP_PLATFORM_KEY``) is no row: it is not listed and is revoked by unsetting it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aftersales.store import credentials as store
from aftersales.store import users as user_store

from .context import Context, Principal, UnitOfWork, read, run
from .errors import Conflict, Forbidden, Invalid, NotFound
from .setup import ROLES, issue_key

MAX_PAGE = 200


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def key_view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "role": row.role, "subject_id": row.subject_id, "label": row.label,
            "created_at": row.created_at.isoformat(), "revoked_at": _iso(row.revoked_at), "revoked": row.revoked_at is not None}


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid("limit must be between 1 and {limit}", limit=MAX_PAGE)
    return limit


def _scope(who: Principal | None) -> tuple[str | None, str | None]:
    """The keys ``who`` may manage: all (platform, CLI) or a merchant's own."""
    if who is None or who.role == "platform":
        return None, None
    if who.role == "merchant":
        return "merchant", who.subject_id
    raise Forbidden("this operation is for platform or merchant keys")


def list_api_keys(ctx: Context, who: Principal | None, *, role: str | None = None, subject_id: str | None = None,
                  include_revoked: bool = True, cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
    """The keys ``who`` may manage, by id: id, role, subject, label, created, revoked — never the key or its hash."""
    own_role, own_subject = _scope(who)
    if role is not None and role not in ROLES:
        raise Invalid("role must be one of {roles}", roles=", ".join(ROLES))
    if own_role is not None:
        if role not in (None, own_role) or subject_id not in (None, own_subject):
            return {"items": [], "next_cursor": None}
        role, subject_id = own_role, own_subject
    n = _limit(limit)
    rows = read(ctx, lambda uow: store.keys(uow.conn, role=role, subject_id=subject_id, include_revoked=include_revoked,
                                            after=cursor, limit=n + 1))
    return {"items": [key_view(r) for r in rows[:n]], "next_cursor": rows[n - 1].id if len(rows) > n else None}


def _own_key(uow: UnitOfWork, who: Principal | None, key_id: str) -> Any:
    row = store.key_by_id(uow.conn, key_id, lock=True)
    own_role, own_subject = _scope(who)
    if row is None or (own_role is not None and (row.role, row.subject_id) != (own_role, own_subject)):
        raise NotFound("api key", key_id)  # another tenant's key is as unknown as a key that does not exist (T2)
    return row


def revoke_api_key(ctx: Context, who: Principal | None, key_id: str) -> dict[str, Any]:
    """Revoke a key (again: nothing changes, the answer is the same). Refused everywhere within the key cache's TTL."""
    _scope(who)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = _own_key(uow, who, key_id)
        store.revoke(uow.conn, key_id, uow.now)
        return key_view(store.key_by_id(uow.conn, key_id) or row)

    return run(ctx, cmd)


def rotate_api_key(ctx: Context, who: Principal | None, key_id: str) -> dict[str, Any]:
    """Replace a key: a new key of the same role, subject and label (its secret shown once), and the old one
    revoked, in one transaction. A revoked key cannot be rotated (409): it was already replaced or withdrawn."""
    _scope(who)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = _own_key(uow, who, key_id)
        if row.revoked_at is not None or not store.revoke(uow.conn, key_id, uow.now):
            raise Conflict("api key {key} is revoked: create a new key instead", key=repr(key_id))
        return {**issue_key(uow, role=row.role, subject_id=row.subject_id, label=row.label), "replaces": key_id}

    return run(ctx, cmd)


# --- staff sessions (the workbench) ---------------------------------------------------------------------------
def session_view(row: Any) -> dict[str, Any]:
    return {"id": row.token_hash, "user_id": row.user_id, "username": row.username, "role": row.role,
            "merchant_id": row.merchant_id, "created_at": row.created_at.isoformat(), "expires_at": row.expires_at.isoformat()}


def list_sessions(ctx: Context, who: Principal | None, *, user_id: str | None = None, cursor: str | None = None,
                  limit: int = 50) -> dict[str, Any]:
    """Signed-in staff (platform only): each session's id (the sha256 the database keeps of its cookie, which signs
    nobody in), user, created and expiry instants."""
    if who is not None:
        who.require("platform")
    n = _limit(limit)
    rows = read(ctx, lambda uow: user_store.staff_sessions(uow.conn, uow.now, after=cursor, limit=n + 1, user_id=user_id))
    return {"items": [session_view(r) for r in rows[:n]], "next_cursor": rows[n - 1].token_hash if len(rows) > n else None}


def revoke_session(ctx: Context, who: Principal | None, session_id: str) -> None:
    """Sign a staff session out (platform only); its next request goes to the login page."""
    if who is not None:
        who.require("platform")

    def cmd(uow: UnitOfWork) -> None:
        row = user_store.session_by_hash(uow.conn, session_id)
        if row is None or row.user_id is None:
            raise NotFound("session", session_id)
        user_store.delete_session(uow.conn, session_id)

    run(ctx, cmd)
