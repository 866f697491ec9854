"""The conversation on a case or a complaint (S5: handling notes stay with the case; D3: part of the record).

Public messages are seen by both parties and the platform. An internal note is seen only by the side that wrote
it: the merchant's staff notes by that merchant, the platform's notes by the platform. A buyer has no staff, so a
buyer's message is always public.
"""

from __future__ import annotations

from typing import Any

from aftersales.store import messages as store

from . import subjects
from .context import Context, Principal, UnitOfWork, read, run
from .errors import Invalid


def view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "author": row.author, "author_id": row.author_id, "internal": row.internal,
            "body": row.body, "at": row.at.isoformat()}


def visible_to(who: Principal) -> Any:
    """The condition for the messages ``who`` may read (on a subject they can already see)."""
    return store.visible_to(who.role)


def post(ctx: Context, who: Principal, kind: str, subject_id: str, *, body: str, internal: bool) -> dict[str, Any]:
    """Add a message (or, for merchant staff and the platform, an internal note) to a case or complaint."""
    who.require("platform", "merchant", "buyer")
    if internal and who.role == "buyer":
        raise Invalid("internal notes are for merchant staff and the platform; a buyer's message is seen by both sides")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        subject = subjects.load(uow, who, kind, subject_id)
        actor, actor_id = subjects.party(who)
        return view(store.add(uow.conn, {"subject": subject.kind, "subject_id": subject.id, "author": actor,
                                         "author_id": actor_id, "internal": internal, "body": body, "at": uow.now}))

    return run(ctx, cmd)


def rows(uow: UnitOfWork, kind: str, subject_id: str, *, where: Any = None, after: int | None = None,
         limit: int | None = None) -> list[Any]:
    return store.rows(uow.conn, kind, subject_id, where=where, after=after, limit=limit)


def list_messages(ctx: Context, who: Principal, kind: str, subject_id: str, *, cursor: str | None, limit: int) -> dict[str, Any]:
    """The messages ``who`` may read, oldest first."""
    who.require("platform", "merchant", "buyer")
    start = subjects.after(cursor, numeric=True)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        subject = subjects.load(uow, who, kind, subject_id)
        return subjects.page(rows(uow, subject.kind, subject.id, where=visible_to(who), after=start, limit=limit), limit, view)

    return read(ctx, q)
