"""D3 dispute paths (ECL art. 60): each path taken to resolve a dispute on a case or complaint, with dates and outcome.

Recorded by the platform or a party; dates are checked against the clock (nothing starts or ends in the future,
nothing ends before it started) and an outcome is recorded once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aftersales.domain import disputes as ddisputes
from aftersales.store import disputes as store

from . import subjects
from .context import Context, Principal, UnitOfWork, read, run
from .errors import Conflict, NotFound, require_version


def view(row: Any) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {"id": row.id, "path": row.path, "started_at": iso(row.started_at), "body": row.body, "note": row.note,
            "recorded_by": {"actor": row.recorded_by, "id": row.recorded_by_id}, "recorded_at": iso(row.recorded_at),
            "ended_at": iso(row.ended_at), "outcome": row.outcome,
            "outcome_by": {"actor": row.outcome_by, "id": row.outcome_by_id} if row.outcome_by else None,
            "outcome_recorded_at": iso(row.outcome_recorded_at), "version": row.version}


def _one(uow: UnitOfWork, path_id: str) -> Any:
    return store.one(uow.conn, path_id)


def start(ctx: Context, who: Principal, kind: str, subject_id: str, *, path: str, started_at: datetime,
          body: str | None, note: str | None) -> dict[str, Any]:
    """Record that a dispute path was taken (D3)."""
    who.require("platform", "merchant", "buyer")
    kind_of_path = ddisputes.DisputePath(path)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        subject = subjects.load(uow, who, kind, subject_id)
        ddisputes.check_start(started_at, uow.now)
        actor, actor_id = subjects.party(who)
        new = subjects.new_id("dp")
        store.add(uow.conn, {"id": new, "subject": subject.kind, "subject_id": subject.id, "path": kind_of_path.value,
                             "started_at": started_at, "body": body, "note": note, "recorded_by": actor,
                             "recorded_by_id": actor_id, "recorded_at": uow.now, "version": 1})
        return view(_one(uow, new))

    return run(ctx, cmd)


def finish(ctx: Context, who: Principal, kind: str, subject_id: str, path_id: str, *, ended_at: datetime,
           outcome: str, if_match: int | None) -> dict[str, Any]:
    """Record the end and outcome of a dispute path, once (D3)."""
    who.require("platform", "merchant", "buyer")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        subject = subjects.load(uow, who, kind, subject_id)
        row = _one(uow, path_id)
        if row is None or row.subject != subject.kind or row.subject_id != subject.id:
            raise NotFound("dispute path", path_id)
        require_version("dispute path", row.version, if_match)
        ddisputes.check_end(row.started_at, ended_at, uow.now, has_outcome=row.outcome is not None)
        actor, actor_id = subjects.party(who)
        if not store.finish(uow.conn, path_id, row.version, {
                "ended_at": ended_at, "outcome": outcome, "outcome_by": actor, "outcome_by_id": actor_id,
                "outcome_recorded_at": uow.now}):
            raise Conflict("the dispute path changed meanwhile: reload it and try again")
        return view(_one(uow, path_id))

    return run(ctx, cmd)


def rows(uow: UnitOfWork, kind: str, subject_id: str) -> list[Any]:
    return store.rows(uow.conn, kind, subject_id)


def list_paths(ctx: Context, who: Principal, kind: str, subject_id: str) -> dict[str, Any]:
    """Every dispute path of a case or complaint, in the order they were recorded."""
    who.require("platform", "merchant", "buyer")

    def q(uow: UnitOfWork) -> dict[str, Any]:
        subject = subjects.load(uow, who, kind, subject_id)
        return {"items": [view(r) for r in rows(uow, subject.kind, subject.id)], "next_cursor": None}

    return read(ctx, q)
