"""The shops' return-address books (M1, M5) and the address an approved return goes to.

A shop (its own staff, or the platform for any shop) keeps addresses; one active address is the default. Whoever
approves a return — the merchant choosing an address (``return_address_id``, :func:`chosen`), the system on the
shop's behalf when the M1 deadline passes, the buyer accepting an exchange — the case and the approval's event keep a
copy of the address (:func:`aftersales.domain.cases.ship_return_to`), given by the approval step of
:mod:`aftersales.service.cases` (``address_approved_returns``), the one place that decides where a return goes.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Connection

from aftersales.domain import addresses as daddr
from aftersales.domain.addresses import ReturnAddress
from aftersales.store import repositories as repo
from aftersales.store import return_addresses as store

from . import views
from .context import Context, Principal, UnitOfWork, read, run
from .errors import Conflict, Invalid, NotFound, require_version

#: How many active addresses a shop may keep (a book, not a data store).
MAX_ACTIVE = 50


def new_address_id() -> str:
    return f"ra_{secrets.token_hex(10)}"


def view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "merchant_id": row.merchant_id, "label": row.label, "contact_name": row.contact_name,
            "phone": row.phone, "address": row.address, "text": "\n".join(snapshot(row).lines()),
            "is_default": row.is_default, "archived": row.archived_at is not None,
            "created_at": views.iso(row.created_at), "updated_at": views.iso(row.updated_at),
            "archived_at": views.iso(row.archived_at), "version": row.version}


def snapshot(row: Any) -> ReturnAddress:
    """M5: the copy of the address a case keeps."""
    return ReturnAddress(row.id, row.label, row.contact_name, row.phone, row.address)


def _shop(who: Principal, merchant_id: str) -> None:
    """The shop's own staff, or the platform; anyone else is told the shop does not exist (T2)."""
    who.require("merchant", "platform")
    if who.role == "merchant" and who.subject_id != merchant_id:
        raise NotFound("merchant", merchant_id)


def _lock(uow: UnitOfWork, merchant_id: str) -> None:
    if not store.lock_book(uow.conn, merchant_id):
        raise NotFound("merchant", merchant_id)


def _found(uow: UnitOfWork, merchant_id: str, address_id: str) -> Any:
    """An address of the shop's book, archived or not; another shop's, or an unknown id: not found."""
    row = store.row(uow.conn, merchant_id, address_id)
    if row is None:
        raise NotFound("return address", address_id)
    return row


def _active(uow: UnitOfWork, merchant_id: str, address_id: str) -> Any:
    row = _found(uow, merchant_id, address_id)
    if row.archived_at is not None:
        exc = Conflict("this return address is archived; add a new one instead")
        exc.rule = "M5"
        raise exc
    return row


def list_addresses(ctx: Context, who: Principal, merchant_id: str, *, archived: bool = False) -> dict[str, Any]:
    """The shop's addresses, the default first (archived ones too when asked)."""
    _shop(who, merchant_id)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        if repo.merchant(uow.conn, merchant_id) is None:
            raise NotFound("merchant", merchant_id)
        return {"items": [view(r) for r in store.rows(uow.conn, merchant_id, archived=archived)], "next_cursor": None}

    return read(ctx, q)


def get_address(ctx: Context, who: Principal, merchant_id: str, address_id: str) -> dict[str, Any]:
    """One address of the shop's book, archived or not (another shop's, or an unknown id: not found)."""
    _shop(who, merchant_id)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        return view(_found(uow, merchant_id, address_id))

    return read(ctx, q)


def add_in(uow: UnitOfWork, merchant_id: str, values: dict[str, str], *, make_default: bool) -> Any:
    """Add an address to the shop's book (locked by the caller); the shop's first address is its default."""
    if len(store.rows(uow.conn, merchant_id)) >= MAX_ACTIVE:
        exc = Conflict("a shop keeps at most {limit} return addresses; archive one first", limit=MAX_ACTIVE)
        exc.rule = "M5"
        raise exc
    first = store.default(uow.conn, merchant_id) is None
    if make_default or first:
        store.clear_default(uow.conn, merchant_id, uow.now)
    address_id = new_address_id()
    store.add(uow.conn, {"id": address_id, "merchant_id": merchant_id, "label": values.get("label", ""),
                         "contact_name": values.get("contact_name", ""), "phone": values.get("phone", ""),
                         "address": values["address"], "is_default": make_default or first, "version": 1,
                         "created_at": uow.now, "updated_at": uow.now, "archived_at": None})
    return store.row(uow.conn, merchant_id, address_id)


def create_address(ctx: Context, who: Principal, merchant_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Add an address; ``is_default`` makes it the default (the shop's first address always is)."""
    _shop(who, merchant_id)
    values = daddr.clean_fields(data)
    make_default = data.get("is_default") is True

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        _lock(uow, merchant_id)
        return view(add_in(uow, merchant_id, values, make_default=make_default))

    return run(ctx, cmd)


def update_address(ctx: Context, who: Principal, merchant_id: str, address_id: str, data: dict[str, Any], *,
                   if_match: int | None) -> dict[str, Any]:
    """Change an address's fields (only those sent). Cases approved to it keep the copy they have (M5)."""
    _shop(who, merchant_id)
    values = daddr.clean_fields(data, partial=True)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        _lock(uow, merchant_id)
        row = _active(uow, merchant_id, address_id)
        require_version("return address", row.version, if_match)
        if values:
            store.change(uow.conn, address_id, {**values, "version": row.version + 1, "updated_at": uow.now})
        return view(store.row(uow.conn, merchant_id, address_id))

    return run(ctx, cmd)


def set_default(ctx: Context, who: Principal, merchant_id: str, address_id: str, *,
                if_match: int | None) -> dict[str, Any]:
    """M1: make this active address the shop's default (the one before stops being it)."""
    _shop(who, merchant_id)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        _lock(uow, merchant_id)
        row = _active(uow, merchant_id, address_id)
        require_version("return address", row.version, if_match)
        if not row.is_default:
            store.clear_default(uow.conn, merchant_id, uow.now)
            store.change(uow.conn, address_id, {"is_default": True, "version": row.version + 1, "updated_at": uow.now})
        return view(store.row(uow.conn, merchant_id, address_id))

    return run(ctx, cmd)


def archive_address(ctx: Context, who: Principal, merchant_id: str, address_id: str, *,
                    if_match: int | None) -> dict[str, Any]:
    """Archive an address: it is no longer offered. The default cannot be archived while the shop has another
    address to make the default (M1 needs one); the last address can, and then the shop has none."""
    _shop(who, merchant_id)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        _lock(uow, merchant_id)
        row = _active(uow, merchant_id, address_id)
        require_version("return address", row.version, if_match)
        if row.is_default and len(store.rows(uow.conn, merchant_id)) > 1:
            exc = Conflict("this is the shop's default return address: make another address the default first")
            exc.rule = "M1"
            raise exc
        store.change(uow.conn, address_id, {"is_default": False, "archived_at": uow.now, "version": row.version + 1,
                                            "updated_at": uow.now})
        return view(store.row(uow.conn, merchant_id, address_id))

    return run(ctx, cmd)


def default_text(conn: Connection, merchant_id: str) -> str | None:
    """The shop's default address as text (API.md ``return_address`` of a merchant), or None."""
    row = store.default(conn, merchant_id)
    return "\n".join(snapshot(row).lines()) if row is not None else None


# --- the address an approved return goes to ------------------------------------------------------------------
def chosen(uow: UnitOfWork, merchant_id: str, address_id: object) -> ReturnAddress:
    """M5: the address the merchant chose for a return; it must be one of the shop's active addresses."""
    if not isinstance(address_id, str) or not address_id:
        raise Invalid("return_address_id must be the id of one of the shop's return addresses")
    row = store.row(uow.conn, merchant_id, address_id)
    if row is None or row.archived_at is not None:
        exc = Invalid("return_address_id is not an active return address of this shop")
        exc.rule = "M5"
        raise exc
    return snapshot(row)
