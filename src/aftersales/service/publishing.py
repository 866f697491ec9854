"""Publishing a policy change (T0, D3; issue 15): a draft, its difference from the version in force, scheduling it
as a version effective at an instant, withdrawing it, and the record of who did each and why.

A version takes effect by being the newest scheduled one whose ``effective_at`` has come (read at the start of every
unit of work, :meth:`Context.policy_at`): no timer is needed, and an order paid from that instant is stamped with it
(:func:`aftersales.service.terms.stamp`) while orders paid before keep theirs. A scheduled version can be withdrawn
only until it takes effect: a version in force never changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aftersales.domain import policy as dpolicy
from aftersales.domain import record as drecord
from aftersales.domain.errors import PolicyError
from aftersales.domain.policy import Policy, version_id
from aftersales.store import terms as store

from .context import Context, Principal, UnitOfWork, read, run
from .errors import Conflict, Invalid, NotFound
from .records import CANONICAL, CHAIN
from .subjects import new_id

PARAMETERS = tuple(Policy().as_dict())
#: Keys of the GET /v1/policy shape that are not parameters (a client may send the shape back as it got it).
READ_ONLY = frozenset({"version", "effective_at", "effective_from", "draft_id"})


class InvalidPolicy(Invalid):
    """422 naming every parameter that is wrong (the checks of ``aftersales policy check``)."""

    def __init__(self, problems: list[str]) -> None:
        rules = [r for r in (dpolicy.problem_rule(p) for p in problems) if r]
        self.rule = rules[0] if rules else "T0"
        self.errors = [{"field": dpolicy.problem_parameter(p) or "body", "message": p} for p in problems]
        super().__init__("invalid policy: " + "; ".join(problems))


def check_parameters(raw: dict[str, Any]) -> Policy:
    """The full set of parameters, validated like a policy file; InvalidPolicy listing every problem."""
    values = {k: v for k, v in raw.items() if k not in READ_ONLY}
    missing = [f"{k} is missing: a draft gives every parameter" for k in PARAMETERS if k not in values]
    try:
        policy = dpolicy.validate(values)
    except PolicyError as exc:
        raise InvalidPolicy(missing + exc.problems) from None
    if missing:
        raise InvalidPolicy(missing)
    return policy


def _by(who: Principal, by: str | None) -> str:
    return by or who.key


def _event(uow: UnitOfWork, who: Principal, by: str | None, draft_id: str, kind: str, reason: str,
           data: dict[str, Any]) -> None:
    store.add_policy_event(uow.conn, {"draft_id": draft_id, "kind": kind, "actor": who.role, "actor_id": _by(who, by),
                                      "at": uow.now, "reason": reason, "data": data})


def _in_force(ctx: Context, uow: UnitOfWork) -> tuple[Policy, datetime | None, str | None]:
    return ctx.policy_in_force(uow.conn, uow.now)


def _view(ctx: Context, uow: UnitOfWork, row: Any) -> dict[str, Any]:
    current, _, current_draft = _in_force(ctx, uow)
    draft = dpolicy.from_parameters(row.parameters)
    in_force = row.status == "scheduled" and row.effective_at <= uow.now and current_draft == row.id
    status = "in_force" if in_force else ("superseded" if row.status == "scheduled" and row.effective_at <= uow.now
                                          else row.status)
    return {"id": row.id, "status": status, "version": row.version_id, "reason": row.reason,
            "effective_at": row.effective_at.isoformat(), "created_at": row.created_at.isoformat(),
            "created_by": row.created_by,
            "scheduled_at": row.scheduled_at.isoformat() if row.scheduled_at else None,
            "withdrawn_at": row.withdrawn_at.isoformat() if row.withdrawn_at else None,
            "parameters": draft.as_dict(), "in_force_version": version_id(current),
            "difference": dpolicy.difference(current, draft),
            "allowed_actions": [a for a, ok in (("schedule", row.status == "draft"),
                                                ("withdraw", row.status == "draft" or (row.status == "scheduled"
                                                                                       and row.effective_at > uow.now)))
                                if ok]}


def _load(uow: UnitOfWork, draft_id: str, *, lock: bool = False) -> Any:
    row = store.policy_draft(uow.conn, draft_id, lock=lock)
    if row is None:
        raise NotFound("policy draft", draft_id)
    return row


def create_draft(ctx: Context, who: Principal, parameters: dict[str, Any], *, reason: str,
                 effective_at: datetime | None = None, by: str | None = None) -> dict[str, Any]:
    """A draft of a new policy version (nothing changes until it is scheduled) and its difference from the one in force."""
    who.require("platform")
    policy = check_parameters(parameters)
    if not reason.strip():
        raise Invalid("reason: say why the policy changes (it is kept in the record, D3)")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        did = new_id("pd")
        at = max(effective_at, uow.now) if effective_at is not None else uow.now
        store.insert_policy_draft(uow.conn, {
            "id": did, "parameters": policy.as_dict(), "version_id": version_id(policy), "reason": reason,
            "effective_at": at, "status": "draft", "created_at": uow.now, "created_by": _by(who, by)})
        current = _in_force(ctx, uow)[0]
        _event(uow, who, by, did, "policy_drafted", reason,
               {"version": version_id(policy), "effective_at": at.isoformat(), "in_force_version": version_id(current),
                "difference": dpolicy.difference(current, policy)})
        return _view(ctx, uow, _load(uow, did))

    return run(ctx, cmd)


def list_drafts(ctx: Context, who: Principal, status: str | None = None, *, by: str | None = None) -> dict[str, Any]:
    who.require("platform")
    return read(ctx, lambda uow: {"items": [_view(ctx, uow, r) for r in store.policy_drafts(uow.conn, status)]})


def get_draft(ctx: Context, who: Principal, draft_id: str) -> dict[str, Any]:
    who.require("platform")
    return read(ctx, lambda uow: _view(ctx, uow, _load(uow, draft_id)))


def schedule(ctx: Context, who: Principal, draft_id: str, *, reason: str | None = None,
             by: str | None = None) -> dict[str, Any]:
    """Make the draft a version effective at its ``effective_at`` (now if that has passed); it cannot change after."""
    who.require("platform")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = _load(uow, draft_id, lock=True)
        if row.status != "draft":
            raise Conflict("the draft is {status}: only a draft can be scheduled (T0)", status=row.status)
        at = max(row.effective_at, uow.now)
        assert ctx.file_policy is not None
        if not store.set_policy_draft_status(uow.conn, draft_id, "draft", "scheduled",
                                             {"effective_at": at, "scheduled_at": uow.now,
                                              "file_version": version_id(ctx.file_policy)}):
            raise Conflict("the draft was changed meanwhile: reload it")
        _event(uow, who, by, draft_id, "policy_scheduled", reason or row.reason,
               {"version": row.version_id, "effective_at": at.isoformat()})
        ctx.forget_schedule()
        return _view(ctx, uow, _load(uow, draft_id))

    try:
        return run(ctx, cmd)
    finally:
        ctx.forget_schedule()  # this process sees the new schedule at once; others within SCHEDULE_TTL_SECONDS


def withdraw(ctx: Context, who: Principal, draft_id: str, *, reason: str | None = None,
             by: str | None = None) -> dict[str, Any]:
    """Withdraw a draft, or a scheduled version that has not taken effect yet (a version in force never changes)."""
    who.require("platform")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = _load(uow, draft_id, lock=True)
        if row.status == "scheduled" and row.effective_at <= uow.now:
            raise Conflict("this version is in force since {since}: a version never changes once in force; publish a "
                           "new one instead (T0)", since=row.effective_at.isoformat())
        if row.status not in ("draft", "scheduled"):
            raise Conflict("the draft is {status} already", status=row.status)
        if not store.set_policy_draft_status(uow.conn, draft_id, row.status, "withdrawn", {"withdrawn_at": uow.now}):
            raise Conflict("the draft was changed meanwhile: reload it")
        _event(uow, who, by, draft_id, "policy_withdrawn", reason or row.reason,
               {"version": row.version_id, "was": row.status})
        ctx.forget_schedule()
        return _view(ctx, uow, _load(uow, draft_id))

    try:
        return run(ctx, cmd)
    finally:
        ctx.forget_schedule()


def record_items(uow: UnitOfWork) -> list[tuple[str, Any]]:
    return [("event", {"id": r.id, "draft_id": r.draft_id, "kind": r.kind, "actor": r.actor, "actor_id": r.actor_id,
                       "at": r.at.isoformat(), "reason": r.reason, "data": r.data, "rules": ["T0", "D3"]})
            for r in store.policy_events(uow.conn)]


def record(ctx: Context, who: Principal, *, secret: str) -> tuple[bytes, str]:
    """D3: every draft, schedule and withdrawal of the policy, hash-chained and signed like a case's record."""
    who.require("platform")

    def q(uow: UnitOfWork) -> tuple[bytes, str]:
        items = record_items(uow)
        header = {"subject": {"kind": "policy", "id": "platform"}, "exported_at": uow.now.isoformat(),
                  "exported_by": {"actor": who.role, "id": who.subject_id},
                  "includes": {"contents": sorted({k for k, _ in items})},
                  "chain": CHAIN, "canonical": CANONICAL,
                  "signature": "HMAC-SHA256 under the server's record secret of 'aftersales-record/1:' + head",
                  "rules": ["D3", "T0"]}
        doc = drecord.build(header, items, secret)
        return drecord.serialise(doc), f"record-policy-{uow.now:%Y%m%dT%H%M%SZ}.json"

    return read(ctx, q)

