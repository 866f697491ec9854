"""Workbench accounts: staff users with argon2id passwords, browser sessions, and buyers' signed links.

* A wrong username, a wrong password and a throttled attempt get the same answer, after the same work (the
  password is always hashed, against a dummy hash for an unknown name): the answer never says which part was
  wrong, nor whether the name exists.
* Failures are counted per (client address, username) and per client address (:data:`THROTTLES`), atomically on
  both databases (the buckets are locked while counted). Past a bucket's free failures, each failure delays the
  next attempt: 1 s, 2 s, 4 s … up to 15 minutes. A delay, not a lock-out: attempts during it are refused unweighed
  and uncounted (they neither extend it nor try the password), and the right password after it works. Keyed by
  address as well as name, one address cannot keep another out of an account.
* A session is a random token in an HttpOnly, SameSite=Lax cookie; the database keeps only its sha256, with the
  session's CSRF token, which every form must send back.
* Buyers reach their portal through a link signed with the server's secret (HMAC-SHA256), valid for a few days;
  the operator's app creates it (``POST /v1/buyer-links``) or an operator prints one (``aftersales users link``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from aftersales.domain.messages import N_
from aftersales.store import repositories as repo
from aftersales.store import users as store

from .context import Context, Principal, UnitOfWork, read, run
from .errors import Conflict, Invalid, NotFound, Unauthorized

#: The spelling of a username (the API's ``UserIn.username`` checks the same).
USERNAME = re.compile(r"[A-Za-z0-9_.@-]{3,64}")
ROLES = ("merchant_agent", "merchant_admin", "platform_agent")
SESSION_TTL = timedelta(hours=12)
BUYER_LINK_TTL = timedelta(days=7)
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password anybody has")
GENERIC_LOGIN_ERROR = N_("Wrong username or password.")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Throttle:
    """Growing delays for one kind of bucket: ``free`` failures, then ``base``, twice that, … up to ``cap``. A
    bucket without a failure for ``quiet`` starts counting again."""

    name: str
    free: int
    base: timedelta = timedelta(seconds=1)
    cap: timedelta = timedelta(minutes=15)
    quiet: timedelta = timedelta(hours=1)

    def delay(self, failures: int) -> timedelta | None:
        if failures <= self.free:
            return None
        return min(self.base * (1 << min(failures - self.free - 1, 30)), self.cap)

    def bucket(self, address: str, username: str) -> str:
        return f"pair:{address} {username}" if self.name == "pair" else f"addr:{address}"


#: Per (address, username): the third failure in a row delays the next try by 1 s. Per address, over every username
#: (guessing many accounts from one place): after 10 failures.
THROTTLES = (Throttle("pair", free=2), Throttle("address", free=10))


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


#: The length of a password a person chooses (the API's request models take their bounds from it).
PASSWORD_LENGTH = (10, 200)


def _new_hash(password: str) -> str:
    """The argon2id hash of a password a person chose, once its length is allowed (create, change)."""
    if len(password) < PASSWORD_LENGTH[0]:
        raise Invalid("a password needs at least 10 characters")
    if len(password) > PASSWORD_LENGTH[1]:
        raise Invalid("a password has at most 200 characters")
    return _hasher.hash(password)


def create_user(ctx: Context, who: Principal | None, *, username: str, password: str, role: str,
                merchant_id: str | None = None, display_name: str | None = None) -> dict[str, Any]:
    """Create a staff user (the CLI passes ``who=None``; through the API only the platform may)."""
    if who is not None:
        who.require("platform")
    if not USERNAME.fullmatch(username):
        raise Invalid(N_("A username has 3 to 64 letters, digits or _ . @ -."))
    if role not in ROLES:
        raise Invalid("role must be one of {roles}", roles=", ".join(ROLES))
    if (role == "platform_agent") != (merchant_id is None):
        raise Invalid("merchant roles need a merchant_id; a platform agent has none")
    password_hash = _new_hash(password)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        if merchant_id is not None and repo.merchant(uow.conn, merchant_id) is None:
            raise NotFound("merchant", merchant_id)
        if store.username_taken(uow.conn, username):
            raise Conflict("the username {username} is taken", username=repr(username))
        uid = f"u_{secrets.token_hex(8)}"
        values = {"id": uid, "username": username, "display_name": display_name or username, "role": role,
                  "merchant_id": merchant_id, "password_hash": password_hash, "failed_logins": 0,
                  "locked_until": None, "created_at": uow.now, "disabled_at": None}
        store.insert_user(uow.conn, values)
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()
                if k not in ("password_hash", "failed_logins", "locked_until", "disabled_at")}

    return run(ctx, cmd)


def _user_view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "username": row.username, "display_name": row.display_name, "role": row.role,
            "merchant_id": row.merchant_id, "created_at": row.created_at.isoformat(),
            "disabled_at": row.disabled_at.isoformat() if row.disabled_at else None}


def list_users(ctx: Context, who: Principal, *, cursor: str | None, limit: int,
               merchant_id: str | None = None) -> dict[str, Any]:
    """Staff users by username (never their password hashes), with whether each is disabled: the platform's list of
    everyone (or of one shop's, ``merchant_id``); a merchant's of its own shop's staff (who its cases can be given
    to, S1), where naming another shop gives an empty page."""
    who.require("platform", "merchant")
    if who.role == "merchant":
        if merchant_id is not None and merchant_id != who.subject_id:
            return {"items": [], "next_cursor": None}
        merchant_id = who.subject_id

    def q(uow: UnitOfWork) -> dict[str, Any]:
        rows = store.users_page(uow.conn, after=cursor, limit=limit, merchant_id=merchant_id)
        page = rows[:limit]
        return {"items": [_user_view(r) for r in page],
                "next_cursor": page[-1].username if len(rows) > limit else None}

    return read(ctx, q)


def _staff_user(uow: UnitOfWork, user_id: str) -> Any:
    row = store.user_by_id(uow.conn, user_id)
    if row is None:
        raise NotFound("user", user_id)
    return row


def set_disabled(ctx: Context, who: Principal, user_id: str, *, disabled: bool,
                 acting_user_id: str | None = None) -> dict[str, Any]:
    """Disable a staff user (they cannot sign in, and every session of theirs is ended now) or enable them again.
    Nobody disables their own account (nobody would be left to enable it)."""
    who.require("platform")
    if disabled and acting_user_id is not None and acting_user_id == user_id:
        raise Invalid(N_("You cannot disable your own account."))

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = _staff_user(uow, user_id)
        if disabled:
            if row.disabled_at is None:
                store.set_disabled(uow.conn, user_id, uow.now)
            store.delete_user_sessions(uow.conn, user_id)
        else:
            store.set_disabled(uow.conn, user_id, None)
        return _user_view(_staff_user(uow, user_id))

    return run(ctx, cmd)


def new_password() -> str:
    """A random password for a staff user (20 characters, ~120 bits), to be shown once."""
    return secrets.token_urlsafe(15)


def reset_password(ctx: Context, who: Principal, user_id: str) -> dict[str, Any]:
    """A new random password for a staff user, returned once (only its argon2id hash is kept); their sessions are
    ended, so that whoever held the old password is signed out too. The platform resets anyone's; a merchant its own
    shop's staff (another shop's user, or a platform agent, is not found: 404, as any other tenant's resource)."""
    who.require("platform", "merchant")
    password = new_password()
    password_hash = _hasher.hash(password)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = _staff_user(uow, user_id)
        if who.role == "merchant" and row.merchant_id != who.subject_id:
            raise NotFound("user", user_id)
        store.set_password_hash(uow.conn, user_id, password_hash)
        store.delete_user_sessions(uow.conn, user_id)
        return {**_user_view(row), "password": password}

    return run(ctx, cmd)


def change_password(ctx: Context, username: str, current: str, new: str, address: str = "unknown",
                    throttles: tuple[Throttle, ...] = THROTTLES) -> dict[str, Any]:
    """A staff user changes their own password, proving it with the current one: checked exactly as a login is
    (:func:`login`: the same throttles, the same single refusal for a wrong name, a wrong password, a disabled user
    or a delay). Every session of theirs ends (whoever knew the old password is signed out)."""
    new_hash = _new_hash(new)
    if new == current:
        raise Invalid(N_("The new password must differ from the current one."))

    def changed(uow: UnitOfWork, user: Any) -> dict[str, Any]:
        store.set_password_hash(uow.conn, user.id, new_hash)
        store.delete_user_sessions(uow.conn, user.id)
        return _user_view(user)

    return _signed(ctx, username, current, address, throttles, changed)


def change_own_password(ctx: Context, user_id: str, current: str, new: str, address: str = "unknown") -> dict[str, Any]:
    """The signed-in staff user's own password change (the workbench's account page): :func:`change_password` for
    the username of ``user_id``, with the same proof, throttles and single refusal."""
    user = read(ctx, lambda uow: store.user_by_id(uow.conn, user_id))
    return change_password(ctx, user.username if user is not None else "", current, new, address)


def exists(ctx: Context, username: str) -> bool:
    return read(ctx, lambda uow: store.username_taken(uow.conn, username))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_session(uow: UnitOfWork, *, user_id: str | None, buyer_id: str | None) -> str:
    token = secrets.token_urlsafe(32)
    store.insert_session(uow.conn, token_hash=_token_hash(token), user_id=user_id, buyer_id=buyer_id,
                         csrf_token=secrets.token_urlsafe(24), created_at=uow.now, expires_at=uow.now + SESSION_TTL)
    return token


def login(ctx: Context, username: str, password: str, address: str = "unknown",
          throttles: tuple[Throttle, ...] = THROTTLES) -> str:
    """Check a username and password from a client ``address``; returns a new session token. Every refusal —
    unknown name, wrong password, an attempt during a delay — is :data:`GENERIC_LOGIN_ERROR`, after the same work."""

    def signed_in(uow: UnitOfWork, user: Any) -> str:
        if _hasher.check_needs_rehash(user.password_hash):
            store.set_password_hash(uow.conn, user.id, _hasher.hash(password))
        return _new_session(uow, user_id=user.id, buyer_id=None)

    return _signed(ctx, username, password, address, throttles, signed_in)


def _signed(ctx: Context, username: str, password: str, address: str, throttles: tuple[Throttle, ...],
            then: Callable[[UnitOfWork, Any], T]) -> T:
    """The one check of a staff user's password (a login, a password change): ``then(uow, user)`` in the transaction
    that counts the attempt when it is right; :data:`GENERIC_LOGIN_ERROR` otherwise, after the same work."""
    username, address = username[:64], address[:100] or "unknown"
    user = read(ctx, lambda uow: store.user_by_username(uow.conn, username))
    # Always one argon2 verification, whoever asks and whether or not they are being delayed: timing says nothing.
    right = _verify(user.password_hash if user is not None else _DUMMY_HASH, password) and user is not None
    # A disabled user gets the answer of a wrong password, after the same work (the name's status is not told).
    right = right and user is not None and user.disabled_at is None
    buckets = {th.bucket(address, username): th for th in throttles}

    def cmd(uow: UnitOfWork) -> tuple[T] | None:
        rows = store.lock_buckets(uow.conn, buckets)  # counted one at a time, on both databases
        if any(r.next_attempt_at is not None and r.next_attempt_at > uow.now for r in rows.values()):
            return None  # within a delay: refused, neither weighed nor counted
        if right and user is not None:
            for name, th in buckets.items():
                if th.name == "pair":  # the address's own count is not reset by one good account
                    store.set_bucket(uow.conn, name, failures=0, last_failure_at=None, next_attempt_at=None)
            return (then(uow, user),)
        for name, th in buckets.items():
            row = rows[name]
            quiet = row.last_failure_at is None or row.last_failure_at <= uow.now - th.quiet
            failures = 1 if quiet else row.failures + 1
            delay = th.delay(failures)
            store.set_bucket(uow.conn, name, failures=failures, last_failure_at=uow.now,
                             next_attempt_at=uow.now + delay if delay is not None else None)
        return None

    done = run(ctx, cmd)
    if done is None:
        raise Unauthorized(GENERIC_LOGIN_ERROR)
    return done[0]


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
        s = store.session_by_hash(uow.conn, _token_hash(token))
        if s is None or s.expires_at <= uow.now:
            return None
        if s.buyer_id is not None:
            return WebUser(None, s.buyer_id, "buyer", Principal("buyer", s.buyer_id), s.csrf_token)
        u = store.user_by_id(uow.conn, s.user_id)
        if u is None or u.disabled_at is not None:
            return None
        return WebUser(u.id, u.display_name, u.role, principal_of(u.role, u.merchant_id), s.csrf_token)

    return read(ctx, q)


def logout(ctx: Context, token: str | None) -> None:
    if not token:
        return
    run(ctx, lambda uow: store.delete_session(uow.conn, _token_hash(token)))


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
        raise Unauthorized(N_("This link is not valid.")) from None
    if not hmac.compare_digest(mac, _sign(secret, payload)) or not buyer_id:
        raise Unauthorized(N_("This link is not valid."))

    def cmd(uow: UnitOfWork) -> str:
        if uow.now.timestamp() > expires_at:
            raise Unauthorized(N_("This link has expired; ask for a new one."))
        return _new_session(uow, user_id=None, buyer_id=buyer_id)

    return run(ctx, cmd)


def create_buyer_link(ctx: Context, who: Principal, secret: str, buyer_id: str) -> dict[str, Any]:
    """API: the platform (the operator's app) asks for a portal link for a buyer."""
    who.require("platform")
    now = ctx.now()
    token = buyer_link_token(secret, buyer_id, now)
    return {"buyer_id": buyer_id, "path": f"/app/buyer/enter?token={token}",
            "expires_at": (now + BUYER_LINK_TTL).isoformat()}
