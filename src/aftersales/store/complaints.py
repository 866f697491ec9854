"""The complaints repository (K1, K2): rows ⇄ the :class:`~aftersales.domain.complaints.Complaint` aggregate, its
events and its K2 timers, and the queries the complaint service and the deposit (D1) ask.

A complaint is stored as columns (no JSON state); its events go to ``complaint_events``; the limit of each stage is
a ``timers`` row (subject ``complaint``, stage = the complaint's stage) written when that stage starts — rows of an
older stage stay behind and are dropped as stale by the deadline worker.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from aftersales.domain import complaints as dc
from aftersales.domain.events import Actor

from . import tables as t
from .repositories import ConcurrentUpdate
from .timers import arm_timers


def from_row(row: Any) -> dc.Complaint:
    """The aggregate of a ``complaints`` row."""
    return dc.Complaint(
        id=row.id, buyer_id=row.buyer_id, merchant_id=row.merchant_id, order_id=row.order_id, case_id=row.case_id,
        channel=dc.Channel(row.channel), category=dc.Category(row.category), description=row.description,
        filed_by=Actor(row.filed_by.split(":", 1)[0]), created_at=row.created_at, status=dc.ComplaintStatus(row.status),
        stage=row.stage, version=row.version, due_at=row.due_at, accepted_at=row.accepted_at,
        answered_at=row.answered_at, closed_at=row.closed_at, response=row.response,
        outcome=dc.Outcome(row.outcome) if row.outcome else None, rationale=row.rationale,
        remedies=[dc.Remedy(dc.RemedyType(r["type"]), int(r["amount_fen"])) for r in row.remedies],
        flags=[dc.Flag(f["rule"], f["kind"], datetime.fromisoformat(f["at"])) for f in row.flags])


def _values(c: dc.Complaint) -> dict[str, Any]:
    return {"status": c.status.value, "outcome": c.outcome.value if c.outcome else None, "rationale": c.rationale,
            "response": c.response, "remedies": [{"type": r.type.value, "amount_fen": r.amount_fen} for r in c.remedies],
            "flags": [{"rule": f.rule, "kind": f.kind, "at": f.at.isoformat()} for f in c.flags],
            "flagged": c.flagged, "stage": c.stage, "due_at": c.due_at, "accepted_at": c.accepted_at,
            "answered_at": c.answered_at, "closed_at": c.closed_at, "version": c.version}


def save(conn: Connection, c: dc.Complaint, *, seen: int | None, stage_seen: int | None, filed_by: str = "") -> None:
    """Write the complaint (optimistically: the version loaded, ``seen``, must still be there; None inserts it), its
    pending events, and the timer of a stage that started since ``stage_seen``."""
    if seen is None:
        conn.execute(insert(t.complaints).values(
            id=c.id, merchant_id=c.merchant_id, buyer_id=c.buyer_id, order_id=c.order_id, case_id=c.case_id,
            channel=c.channel.value, category=c.category.value, description=c.description, filed_by=filed_by,
            created_at=c.created_at, **_values(c)))
    else:
        res = conn.execute(update(t.complaints).where(t.complaints.c.id == c.id, t.complaints.c.version == seen)
                           .values(**_values(c)))
        if res.rowcount != 1:
            raise ConcurrentUpdate(c.id)
    if c.pending_events:
        conn.execute(insert(t.complaint_events), [
            {"complaint_id": c.id, "kind": e.kind, "actor": e.actor.value, "at": e.at, "rules": list(e.rules),
             "data": e.data} for e in c.pending_events])
        c.pending_events.clear()
    if c.stage != stage_seen:  # a new stage: its limit (older rows stay behind and are dropped as stale)
        arm_timers(conn, [{"subject": "complaint", "subject_id": c.id, "order_id": None, "action": x.action,
                           "stage": x.stage, "rule": x.rule, "due_at": x.due_at} for x in c.timers()])


def get(conn: Connection, complaint_id: str, *, lock: bool) -> Row[Any] | None:
    """The ``complaints`` row, locked for update on PostgreSQL when ``lock`` (SQLite serialises writers)."""
    stmt = select(t.complaints).where(t.complaints.c.id == complaint_id)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return conn.execute(stmt).first()


def count_in(conn: Connection, merchant_id: str, statuses: Collection[str]) -> int:
    """How many complaints about the merchant are in one of ``statuses``."""
    c = t.complaints.c
    return int(conn.execute(select(func.count()).select_from(t.complaints)
                            .where(c.merchant_id == merchant_id, c.status.in_(statuses))).scalar_one())


def rows(conn: Connection, *, buyer_id: str | None = None, merchant_id: str | None = None,
         statuses: Collection[str] | None = None, status: str | None = None, order_id: str | None = None,
         flagged: bool | None = None, nobody: bool = False, after: str | None = None, limit: int) -> list[Row[Any]]:
    """Complaints in filing (id) order after the id ``after``, at most ``limit``, filtered by each given value
    (``statuses``: any of them; ``nobody``: none at all)."""
    c = t.complaints.c
    where: list[Any] = []
    if nobody:
        where.append(c.id.is_(None))
    if buyer_id is not None:
        where.append(c.buyer_id == buyer_id)
    if merchant_id is not None:
        where.append(c.merchant_id == merchant_id)
    if statuses is not None:
        where.append(c.status.in_(statuses))
    if status:
        where.append(c.status == status)
    if order_id:
        where.append(c.order_id == order_id)
    if flagged is not None:
        where.append(c.flagged == flagged)
    if after is not None:
        where.append(c.id > after)
    return list(conn.execute(select(t.complaints).where(*where).order_by(c.id).limit(limit)).all())


def event_rows(conn: Connection, complaint_id: str, *, after: int | None, limit: int) -> list[Row[Any]]:
    """The complaint's events in order, after the event id ``after``, at most ``limit``."""
    e = t.complaint_events.c
    stmt = select(t.complaint_events).where(e.complaint_id == complaint_id)
    if after is not None:
        stmt = stmt.where(e.id > after)
    return list(conn.execute(stmt.order_by(e.id).limit(limit)).all())
