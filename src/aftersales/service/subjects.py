"""What evidence, messages and dispute paths hang on: a case or a complaint, seen through its parties (T2, D3)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from .context import Principal, UnitOfWork
from .errors import NotFound

SubjectKind = Literal["case", "complaint"]


@dataclass(frozen=True, slots=True)
class Subject:
    """A case or complaint the caller may see; ``merchant_id``/``buyer_id`` are its parties (None: none on that side)."""

    kind: str
    id: str
    order_id: str | None
    merchant_id: str | None
    buyer_id: str | None
    loaded: Any = None  # (order, case) for a case, the complaint otherwise


def load(uow: UnitOfWork, who: Principal, kind: str, subject_id: str, *, lock: bool = False) -> Subject:
    """The subject if ``who`` is one of its parties or the platform; otherwise 404, exactly like an unknown id."""
    if kind == "case":
        from .cases import _load_case

        order, case = _load_case(uow, who, subject_id, lock=lock)
        return Subject("case", case.id, order.id, order.merchant_id, order.buyer_id, (order, case))
    if kind == "complaint":
        from . import complaints  # written alongside (K2); imported late so this module does not depend on it

        row = complaints.load_visible(uow, who, subject_id, lock=lock)
        return Subject("complaint", row.id, row.order_id, row.merchant_id, row.buyer_id, row)
    raise NotFound(kind, subject_id)


def party(who: Principal) -> tuple[str, str | None]:
    """(actor, id) as recorded on what a caller writes."""
    return who.role, who.subject_id


def new_id(prefix: str) -> str:
    """Time-ordered, unguessable ids (cursor pagination follows creation order)."""
    return f"{prefix}_{time.time_ns() // 1000:014x}{secrets.token_hex(4)}"


def page(rows: list[Any], limit: int, view: Any) -> dict[str, Any]:
    from .cases import encode_cursor

    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return {"items": [view(r) for r in rows[:limit]], "next_cursor": nxt}


def after(cursor: str | None, *, numeric: bool = False) -> Any:
    from .cases import decode_cursor, decode_id_cursor

    return decode_id_cursor(cursor) if numeric else decode_cursor(cursor)
