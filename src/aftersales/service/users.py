"""Workbench accounts: staff users with argon2id passwords, browser sessions, and buyers' signed links.

* A wrong username and a wrong password get the same answer, after the same work (a dummy hash is verified for an
  unknown name), and every consecutive failure of a username makes the next try wait longer (1 s, 2 s, 4 s … up to
  5 minutes) — the answer never says which part was wrong.
* A session is a random token in an HttpOnly, SameSite=Lax cookie; the database keeps only its sha256, with the
  session's CSRF token, which every form must send back.
* Buyers reach their portal through a link signed with the server's secret (HMAC-SHA256), valid for a few days;
  the operator's app creates it (``POST /v1/buyer-links``) or an operator prints one (``aftersales users link``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, insert, select, update

from aftersales.store import tables as t

from .context import Context, Principal, UnitOfWork, read, run
from .errors import Conflict, Invalid, NotFound, Unauthorized

ROLES = ("merchant_agent", "merchant_admin", "platform_agent")
SESSION_TTL = timedelta(hours=12)
BUYER_LINK_TTL = timedelta(days=7)
MAX_DELAY = timedelta(minutes=5)
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password anybody has")
GENERIC_LOGIN_ERROR = "Wrong username or password."


@dataclass(frozen=True, slots=True)
class WebUser:
    """Who is signed in to the workbench, and the API principal they act as."""

    id: str | None
    name: str
    role: str  # merchant_agent | merchant_admin | platform_agent | buyer
    principal: Principal
    csrf_token: str

    @property
    def side(self) -> str:
        """``merchant``, ``platform`` or ``buyer``: which part of the workbench is theirs."""
        return self.principal.role


def principal_of(role: str, merchant_id: str | None) -> Principal:
    if role == "platform_agent":
        return Principal("platform")
    return Principal("merchant", merchant_id)


def create_user(ctx: Context, who: Principal | None, *, username: str, password: str, role: str,
                merchant_id: str | None = None, display_name: str | None = None) -> dict[str, Any]:
    """Create a staff user (the CLI passes ``who=None``; through the API only the platform may)."""
    if who is not None:
        who.require("platform")
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    if (role == "platform_agent") != (merchant_id is None):
        raise Invalid("merchant roles need a merchant_id; a platform agent has none")
    if len(password) < 10:
        raise Invalid("a password needs at least 10 characters")
    password_hash = _hasher.hash(password)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        if merchant_id is not None and uow.conn.execute(select(t.merchants.c.id).where(t.merchants.c.id == merchant_id)).first() is None:
            raise NotFound("merchant", merchant_id)
        if uow.conn.execute(select(t.users.c.id).where(t.users.c.username == username)).first() is not None:
            raise Conflict(f"the username {username!r} is taken")
        uid = f"u_{secrets.token_hex(8)}"
        values = {"id": uid, "username": username, "display_name": display_name or username, "role": role,
                  "merchant_id": merchant_id, "password_hash": password_hash, "failed_logins": 0,
                  "locked_until": None, "created_at": uow.now}
        uow.conn.execute(insert(t.users).values(values))
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()
                if k not in ("password_hash", "failed_logins", "locked_until")}

    return run(ctx, cmd)


def exists(ctx: Context, username: str) -> bool:
    return read(ctx, lambda uow: uow.conn.execute(select(t.users.c.id).where(t.users.c.username == username)).first()) is not None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_session(uow: UnitOfWork, *, user_id: str | None, buyer_id: str | None) -> str:
    token = secrets.token_urlsafe(32)
    uow.conn.execute(insert(t.web_sessions).values(
        token_hash=_token_hash(token), user_id=user_id, buyer_id=buyer_id, csrf_token=secrets.token_urlsafe(24),
        created_at=uow.now, expires_at=uow.now + SESSION_TTL))
    return token


def login(ctx: Context, username: str, password: str) -> str:
    """Check a username and password; returns a new session token. Refusals are all :data:`GENERIC_LOGIN_ERROR`."""

    def cmd(uow: UnitOfWork) -> tuple[str | None, str | None]:
        row = uow.conn.execute(select(t.users).where(t.users.c.username == username)).first()
        if row is None:
            _verify(_DUMMY_HASH, password)  # the same work as for a real user: timing says nothing
            return None, None
        if row.locked_until is not None and row.locked_until > uow.now:
            wait = int((row.locked_until - uow.now).total_seconds()) + 1
            return None, f"Too many failed attempts: try again in {wait} s."
        if not _verify(row.password_hash, password):
            failures = row.failed_logins + 1
            delay = min(timedelta(seconds=2 ** (failures - 1)), MAX_DELAY) if failures >= 3 else None
            uow.conn.execute(update(t.users).where(t.users.c.id == row.id).values(
                failed_logins=failures, locked_until=uow.now + delay if delay else None))
            return None, None
        if _hasher.check_needs_rehash(row.password_hash):
            uow.conn.execute(update(t.users).where(t.users.c.id == row.id).values(password_hash=_hasher.hash(password)))
        uow.conn.execute(update(t.users).where(t.users.c.id == row.id).values(failed_logins=0, locked_until=None))
        return _new_session(uow, user_id=row.id, buyer_id=None), None

    token, throttled = run(ctx, cmd)
    if token is None:
        raise Unauthorized(throttled or GENERIC_LOGIN_ERROR)
    return token


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def session(ctx: Context, token: str | None) -> WebUser | None:
    """The signed-in user of a session cookie, or None (unknown, expired, or a user since removed)."""
    if not token or len(token) > 100:
        return None

    def q(uow: UnitOfWork) -> WebUser | None:
        s = uow.conn.execute(select(t.web_sessions).where(t.web_sessions.c.token_hash == _token_hash(token))).first()
        if s is None or s.expires_at <= uow.now:
            return None
        if s.buyer_id is not None:
            return WebUser(None, s.buyer_id, "buyer", Principal("buyer", s.buyer_id), s.csrf_token)
        u = uow.conn.execute(select(t.users).where(t.users.c.id == s.user_id)).first()
        if u is None:
            return None
        return WebUser(u.id, u.display_name, u.role, principal_of(u.role, u.merchant_id), s.csrf_token)

    return read(ctx, q)


def logout(ctx: Context, token: str | None) -> None:
    if not token:
        return
    run(ctx, lambda uow: uow.conn.execute(delete(t.web_sessions).where(t.web_sessions.c.token_hash == _token_hash(token))))


# --- buyers' signed links -------------------------------------------------------------------------------------
def _sign(secret: str, payload: str) -> str:
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def buyer_link_token(secret: str, buyer_id: str, now: datetime, ttl: timedelta = BUYER_LINK_TTL) -> str:
    """A token naming ``buyer_id`` until ``now + ttl``, signed with the server's secret."""
    payload = f"{buyer_id}|{int((now + ttl).timestamp())}"
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=") + "." + _sign(secret, payload)


def buyer_login(ctx: Context, secret: str, token: str) -> str:
    """Exchange a valid buyer link for a session token; a forged, altered or expired link is refused."""
    try:
        body, mac = token.split(".", 1)
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        buyer_id, expires = payload.rsplit("|", 1)
        expires_at = int(expires)
    except (ValueError, UnicodeDecodeError):
        raise Unauthorized("This link is not valid.") from None
    if not hmac.compare_digest(mac, _sign(secret, payload)) or not buyer_id:
        raise Unauthorized("This link is not valid.")

    def cmd(uow: UnitOfWork) -> str:
        if uow.now.timestamp() > expires_at:
            raise Unauthorized("This link has expired; ask for a new one.")
        return _new_session(uow, user_id=None, buyer_id=buyer_id)

    return run(ctx, cmd)


def create_buyer_link(ctx: Context, who: Principal, secret: str, buyer_id: str) -> dict[str, Any]:
    """API: the platform (the operator's app) asks for a portal link for a buyer."""
    who.require("platform")
    now = ctx.now()
    token = buyer_link_token(secret, buyer_id, now)
    return {"buyer_id": buyer_id, "path": f"/app/buyer/enter?token={token}",
            "expires_at": (now + BUYER_LINK_TTL).isoformat()}
