"""The exportable, tamper-evident record of a case or a complaint (D3, S5): one JSON file, hash-chained and signed.

What an export holds, in this order (each item one link of the chain, see ``aftersales.domain.record``):
the order, the case (its current view), every event of the case and every order-level event of its order, the
messages, the evidence metadata (with each file's sha256), the dispute paths, the ledger transactions of the case.

Messages: the platform's export is the complete record (D3: what a mediator, authority or court is given), so it
holds every message including both sides' internal notes; a party's export holds what that party can read
(public messages and its own side's internal notes). The header says which (``includes.internal_notes``).
"""

from __future__ import annotations

from typing import Any

from aftersales.domain import record as drecord
from aftersales.store import records as store

from . import disputes, evidence, messages, subjects, views
from .context import Context, Principal, UnitOfWork, read

CHAIN = "hash_i = sha256(hash_{i-1} || canonical_json({index, kind, item})); hash_-1 = header_hash = sha256(canonical_json(header))"
CANONICAL = "json, sorted keys, UTF-8, separators (',', ':') for hashing; the file: indent 1, separators (',', ': '), trailing newline"


def _header(who: Principal, kind: str, subject_id: str, uow: UnitOfWork, contents: list[str]) -> dict[str, Any]:
    return {
        "subject": {"kind": kind, "id": subject_id},
        "exported_at": uow.now.isoformat(),
        "exported_by": {"actor": who.role, "id": who.subject_id},
        "includes": {"contents": contents,
                     "internal_notes": "every side's" if who.role == "platform" else f"the {who.role}'s own only"},
        "chain": CHAIN, "canonical": CANONICAL,
        "signature": "HMAC-SHA256 under the server's record secret of 'aftersales-record/1:' + head",
        "rules": ["D3", "S5"],
    }


def _common(uow: UnitOfWork, who: Principal, kind: str, subject_id: str) -> list[tuple[str, Any]]:
    """Messages, evidence metadata and dispute paths: the part every record shares."""
    where = None if who.role == "platform" else messages.visible_to(who)
    items: list[tuple[str, Any]] = [("message", messages.view(r)) for r in messages.rows(uow, kind, subject_id, where=where)]
    items += [("evidence", evidence.view(r)) for r in evidence.rows(uow, kind, subject_id)]
    items += [("dispute_path", disputes.view(r)) for r in disputes.rows(uow, kind, subject_id)]
    return items


def _ledger(uow: UnitOfWork, case_id: str) -> list[tuple[str, Any]]:
    rows, entries = store.case_transactions(uow.conn, case_id)
    return [("ledger_transaction", {"id": r.id, "key": r.key, "kind": r.kind, "at": r.at.isoformat(), "order_id": r.order_id,
                                    "case_id": r.case_id, "rule": r.rule, "amount_fen": r.amount_fen, "entries": entries[r.id]})
            for r in rows]


def _file(doc: dict[str, Any], kind: str, subject_id: str, exported_at: Any) -> tuple[bytes, str]:
    return drecord.serialise(doc), f"record-{kind}-{subject_id}-{exported_at:%Y%m%dT%H%M%SZ}.json"


def case_record(ctx: Context, who: Principal, case_id: str, *, secret: str, lang: str) -> tuple[bytes, str]:
    """The record of a case for its parties and the platform: (file bytes, file name)."""
    from .cases import _case_dict

    def q(uow: UnitOfWork) -> tuple[bytes, str]:
        subject = subjects.load(uow, who, "case", case_id)
        order, case = subject.loaded
        group = uow.tracker.get_group(order.group_id) if order.group_id else None
        event_rows = store.case_events(uow.conn, case.id, order.id)
        items: list[tuple[str, Any]] = [("order", views.order_view(order, group, actor=who.actor, now=uow.now)),
                                        ("case", _case_dict(ctx, uow, who, order, case, lang))]
        items += [("event", views.event_view(r)) for r in event_rows]
        items += _common(uow, who, "case", case.id)
        items += _ledger(uow, case.id)
        contents = sorted({k for k, _ in items})
        doc = drecord.build(_header(who, "case", case.id, uow, contents), items, secret)
        return _file(doc, "case", case.id, uow.now)

    return read(ctx, q)


def complaint_record(ctx: Context, who: Principal, complaint_id: str, *, secret: str, lang: str) -> tuple[bytes, str]:
    """The record of a complaint (K2) for its parties and the platform: (file bytes, file name)."""
    from . import complaints  # written alongside (K2)

    def q(uow: UnitOfWork) -> tuple[bytes, str]:
        subject = subjects.load(uow, who, "complaint", complaint_id)
        items: list[tuple[str, Any]] = []
        if subject.order_id is not None:
            order = uow.tracker.get_order(subject.order_id)
            if order is not None:
                group = uow.tracker.get_group(order.group_id) if order.group_id else None
                items.append(("order", views.order_view(order, group, actor=who.actor, now=uow.now)))
        items.append(("complaint", complaints.row_view(subject.loaded, who, uow.now, ctx.policy)))
        items += [("event", {"id": r.id, "complaint_id": r.complaint_id, "kind": r.kind, "actor": r.actor,
                             "at": r.at.isoformat(), "rules": list(r.rules), "data": r.data})
                  for r in store.complaint_events(uow.conn, subject.id)]
        items += _common(uow, who, "complaint", complaint_id)
        contents = sorted({k for k, _ in items})
        doc = drecord.build(_header(who, "complaint", complaint_id, uow, contents), items, secret)
        return _file(doc, "complaint", complaint_id, uow.now)

    return read(ctx, q)
