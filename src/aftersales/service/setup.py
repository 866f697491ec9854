"""Set-up resources: merchants, categories, API keys (platform only)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from aftersales.domain.addresses import clean_fields
from aftersales.domain.catalog import StatutoryExclusion
from aftersales.domain.ids import require_id
from aftersales.store import credentials
from aftersales.store import repositories as repo
from aftersales.store import setup as store
from aftersales.store import terms as terms_store

from . import return_addresses
from .context import Context, Principal, UnitOfWork, read, run
from .errors import Conflict, Invalid, NotFound, Unauthorized
from .publishing import window_problem

ROLES = ("platform", "merchant", "buyer")


def hash_key(key: str) -> str:
    """API keys are long random secrets, so a plain SHA-256 is the right hash (fast lookup, no brute force)."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_merchant(ctx: Context, who: Principal, *, id: str, name: str, return_address: str | None) -> dict[str, Any]:
    who.require("platform")
    require_id(id, "id")  # T2: the documented alphabet, so that a merchant's money is matched by equality only

    # M1: the shop's return address becomes the default address of its return-address book.
    address = clean_fields({"address": return_address}) if return_address and return_address.strip() else None

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        if repo.merchant(uow.conn, id) is not None:
            raise Conflict("merchant {merchant} already exists", merchant=repr(id))
        store.add_merchant(uow.conn, id=id, name=name, return_address=return_address, created_at=uow.now)
        if address is not None:
            return_addresses.add_in(uow, id, address, make_default=True)
        return {"id": id, "name": name, "return_address": return_addresses.default_text(uow.conn, id), "closed": False,
                "created_at": uow.now.isoformat()}

    return run(ctx, cmd)


def get_merchant(ctx: Context, who: Principal, merchant_id: str) -> dict[str, Any]:
    if who.role == "buyer" or (who.role == "merchant" and who.subject_id != merchant_id):
        raise NotFound("merchant", merchant_id)
    row, address = read(ctx, lambda uow: (repo.merchant(uow.conn, merchant_id),
                                          return_addresses.default_text(uow.conn, merchant_id)))
    if row is None:
        raise NotFound("merchant", merchant_id)
    # M1: ``return_address`` is the shop's default return address (its address book: /return-addresses).
    return {"id": row.id, "name": row.name, "return_address": address, "closed": row.closed,
            "created_at": row.created_at.isoformat()}


def put_category(ctx: Context, who: Principal, *, code: str, name: str, no_reason_return: bool,
                 statutory_exclusion: str | None, after_sales_days: int | None, warranty_days: int | None) -> tuple[dict[str, Any], bool]:
    """Create or replace a category (E4–E6 terms). Returns the category and whether it was created."""
    who.require("platform")
    if statutory_exclusion is not None:
        StatutoryExclusion(statutory_exclusion)
    if window_problem(after_sales_days, ctx.policy.no_reason_days):
        raise Invalid("after_sales_days must not end before the {days}-day no-reason window (E4/E5)", days=ctx.policy.no_reason_days)
    values = {"name": name, "no_reason_return": no_reason_return, "statutory_exclusion": statutory_exclusion,
              "after_sales_days": after_sales_days, "warranty_days": warranty_days}

    def cmd(uow: UnitOfWork) -> tuple[bool, int]:
        created = store.put_category(uow.conn, code, values)
        # E4–E6: a change of terms is a new version, effective now; orders already paid keep the version they had.
        return created, terms_store.add_category_version(uow.conn, code, values, uow.now)

    created, version = run(ctx, cmd)
    return {"code": code, **values, "version": version}, created


def list_categories(ctx: Context) -> list[dict[str, Any]]:
    """Every category with the terms in force now (a version scheduled from a policy draft counts from its instant)."""
    def q(uow: UnitOfWork) -> dict[str, Any]:
        known = repo.categories(uow.conn)
        book = terms_store.terms_book(uow.conn, names={code: c.name for code, c in known.items()})
        return {code: book.at(code, uow.now) if code in book.versions else c for code, c in known.items()}

    cats = read(ctx, q)
    return [{"code": c.code, "name": c.name, "no_reason_return": c.no_reason_return,
             "statutory_exclusion": c.statutory_exclusion.value if c.statutory_exclusion else None,
             "after_sales_days": c.after_sales_days, "warranty_days": c.warranty_days} for c in cats.values()]


def create_api_key(ctx: Context, who: Principal | None, *, role: str, subject_id: str | None, label: str | None = None) -> dict[str, Any]:
    """Create a key; the secret is returned once and only its hash is stored. ``who=None`` is the CLI."""
    if who is not None:
        who.require("platform")
    if role not in ROLES:
        raise Invalid("role must be one of {roles}", roles=", ".join(ROLES))
    if role == "platform" and subject_id:
        raise Invalid("a platform key has no subject_id")
    if role != "platform" and not subject_id:
        raise Invalid("a {role} key needs a subject_id", role=role)
    if subject_id is not None:
        require_id(subject_id, "subject_id")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        if role == "merchant" and repo.merchant(uow.conn, subject_id or "") is None:
            raise NotFound("merchant", subject_id or "")
        return issue_key(uow, role=role, subject_id=subject_id, label=label)

    return run(ctx, cmd)


def issue_key(uow: UnitOfWork, *, role: str, subject_id: str | None, label: str | None) -> dict[str, Any]:
    """Store a new key's hash; the answer carries the secret, once (creation and rotation)."""
    secret = f"as_{role[0]}_{secrets.token_urlsafe(32)}"
    key_id = secrets.token_hex(8)
    credentials.insert_key(uow.conn, id=key_id, key_hash=hash_key(secret), role=role, subject_id=subject_id, label=label,
                           created_at=uow.now)
    return {"id": key_id, "key": secret, "role": role, "subject_id": subject_id, "label": label,
            "created_at": uow.now.isoformat()}


def authenticate(ctx: Context, key: str | None, bootstrap_key: str | None) -> Principal:
    """The principal of an API key (API.md: Bearer keys, stored hashed; the bootstrap platform key)."""
    if not key:
        raise Unauthorized("missing API key: send Authorization: Bearer <key>")
    if bootstrap_key and hmac.compare_digest(key.encode(), bootstrap_key.encode()):
        return Principal("platform")
    row = store.api_key(ctx.engine, hash_key(key))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("unknown or revoked API key")
    return Principal(row.role, row.subject_id)
