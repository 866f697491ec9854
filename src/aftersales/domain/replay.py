"""What-if replay (issue 15): run an order's recorded history through the domain again, under a given policy.

The history of an order is its facts (items, prices, the category terms stamped at purchase), the inputs of people —
every shipment, delivery, case opening (refused ones too, E1–E9), action on a case and settlement, with its instant —
and the clock. :func:`replay` rebuilds the order as it was paid and applies those inputs in their recorded order;
between two inputs, and up to ``until``, every automatic action that falls due fires at its due instant (M1–M7, P1,
P2), as the worker does. The result is the events, refunds and deadlines the domain produces.

Replayed under the policy version the order was paid under, the events must be exactly those stored (the identity:
the domain is deterministic). Replayed under a draft policy, :func:`compare` classifies what would change, per case,
with the rule ids involved. What a replay cannot see: people's own reactions to a different policy — an input the
draft makes impossible is *skipped* (with the rule that refuses it), never replaced by what the person would have done
instead.

Pure: no database, no clock but the one given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from typing import Any

from . import cases as dcases
from .addresses import ReturnAddress
from .cases import AUTO_RULES, Action, Auto
from .catalog import Category
from .errors import DomainError, StateConflict
from .events import Actor, Event
from .groups import Group
from .messages import N_
from .opening import open_case
from .orders import Order, OrderItem, OrderStatus, RefundStatus, new_order
from .policy import Policy

#: Kinds of the differences :func:`compare` reports.
ELIGIBILITY = "eligibility_changed"
DEADLINES = "deadlines_changed"
AUTOMATIC = "automatic_actions_changed"
OUTCOME = "outcome_changed"
REFUND = "refund_amount_changed"
KINDS = (ELIGIBILITY, DEADLINES, AUTOMATIC, OUTCOME, REFUND)

_AUTO_KINDS = frozenset(a.value for a in Auto)
_PERSON_ACTIONS = frozenset(a.value for a in Action)
#: Recorded events that are results of the domain (it produces them again), not inputs.
_RESULTS = frozenset({"order_paid", "refund_issued", "closed", *_AUTO_KINDS})
_HANDLER_FIXED = 5  # case, order, actor, now, policy


class Unreplayable(Exception):
    """The history holds an input the replay does not know how to apply (the order is reported, not replayed)."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One stored event, as the store read it back (data as stored JSON)."""

    kind: str
    actor: str
    at: datetime
    rules: tuple[str, ...]
    case_id: str | None = None
    from_status: str | None = None
    to_status: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RefusedOpening:
    """A case opening eligibility refused (E1–E9), as recorded by the service."""

    id: int
    actor: str
    case_type: str
    reason: str
    items: dict[str, int] | None
    refund_fen: int | None
    buyer_consent: bool
    rule: str
    at: datetime
    #: How many of the order's events were stored before the refusal: its place among the inputs.
    events_before: int

    @property
    def case_id(self) -> str:
        return f"refused-{self.id}"


@dataclass(slots=True)
class History:
    """Everything the replay of one order needs: its stored aggregate (facts), its events, its refused openings, the
    categories (for an order recorded before terms were stamped), its group, and the clock (``until``)."""

    order: Order
    events: list[Recorded]
    until: datetime
    refused: list[RefusedOpening] = field(default_factory=list)
    categories: Mapping[str, Category] = field(default_factory=dict)
    group: Group | None = None


@dataclass(frozen=True, slots=True)
class Input:
    """One recorded input of a person (or of the payment side), in the order it happened."""

    at: datetime
    kind: str  # ship | deliver | group_formed | group_failed | open | act | complaint_refund | settle
    actor: Actor
    case_id: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    refused_rule: str | None = None  # a recorded refused opening: the rule that refused it


@dataclass(frozen=True, slots=True)
class Skipped:
    """An input the replayed case refused (a draft closed the case earlier, …): the rule of the refusal."""

    input: Input
    rule: str


@dataclass(frozen=True, slots=True)
class Opening:
    allowed: bool
    rule: str
    at: datetime


@dataclass(slots=True)
class Run:
    """What a replay produced."""

    order: Order
    events: list[Event]
    skipped: list[Skipped]
    openings: dict[str, Opening]
    #: Every deadline the cases had on the way: (case id, action, due instant, rule).
    deadlines: set[tuple[str, str, datetime, str]]


@dataclass(frozen=True, slots=True)
class Difference:
    """One way a case differs between two runs, with the rule ids involved."""

    kind: str
    case_id: str
    rules: tuple[str, ...]
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Where a replay did not reproduce the stored history (identity)."""

    index: int
    expected: str
    got: str


# --- reading the history --------------------------------------------------------------------------------
@cache
def _parameter_names(action: Action) -> tuple[str, ...]:
    return tuple(dcases.signature(dcases._HANDLERS[action]).parameters)[_HANDLER_FIXED:]


def _params(action: Action, data: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a person gave an action: the event's data keys that are parameters of its handler."""
    out = {k: data[k] for k in _parameter_names(action) if k in data}
    for k in ("at",):  # instants are stored as text
        if isinstance(out.get(k), str):
            out[k] = datetime.fromisoformat(out[k])
    return out


def inputs(history: History) -> list[Input]:
    """The inputs of ``history`` in the order they happened (a refused opening after the events stored before it)."""
    stored = history.order
    described = {c.id: c.description for c in stored.cases}
    out: list[Input] = []
    refused = sorted(history.refused, key=lambda r: (r.events_before, r.id))
    for index, e in enumerate(history.events):
        while refused and refused[0].events_before <= index:
            out.append(_refused_input(refused.pop(0)))
        actor = Actor(e.actor)
        if e.kind in _RESULTS:
            continue
        if e.kind == "order_shipped":
            out.append(Input(e.at, "ship", actor, params={"carrier": e.data["carrier"], "tracking_no": e.data["tracking_no"]}))
        elif e.kind == "order_delivered":
            out.append(Input(e.at, "deliver", actor, params={"delivered_at": datetime.fromisoformat(e.data["delivered_at"])}))
        elif e.kind == "group_formed":
            out.append(Input(e.at, "group_formed", actor, params={"rules": e.rules}))
        elif e.kind == "order_cancelled" and e.rules == ("G4",):
            out.append(Input(e.at, "group_failed", actor))
        elif e.kind == "opened":
            out.append(Input(e.at, "open", actor, e.case_id, {
                "case_type": e.data["type"], "reason": e.data["reason"], "items": dict(e.data["items"]),
                "refund_fen": e.data.get("refund_fen") if e.data.get("type") in ("refund_only", "return_refund") else None,
                "buyer_consent": bool(e.data.get("opened_on_behalf")), "description": described.get(e.case_id or "", ""),
            }))
        elif e.kind == "complaint_refund":
            out.append(Input(e.at, "complaint_refund", actor, e.case_id,
                             {"amount_fen": e.data["refund_fen"], "complaint_id": e.data["complaint_id"]}))
        elif e.kind == "refund_settled":
            out.append(Input(e.at, "settle", actor, e.case_id, {"key": e.data["key"]}))
        elif e.kind in _PERSON_ACTIONS and actor is not Actor.SYSTEM:
            action = Action(e.kind)
            out.append(Input(e.at, "act", actor, e.case_id, {"action": action, **_params(action, e.data)}))
        else:
            raise Unreplayable(f"order {stored.id}: no replay for a recorded {e.kind!r} by {e.actor}")
    out += [_refused_input(r) for r in refused]
    return out


def _refused_input(r: RefusedOpening) -> Input:
    return Input(r.at, "open", Actor(r.actor), r.case_id, {
        "case_type": r.case_type, "reason": r.reason, "items": r.items, "refund_fen": r.refund_fen,
        "buyer_consent": r.buyer_consent, "description": ""}, refused_rule=r.rule)


def _settlements(history: History) -> dict[str, datetime | None]:
    """Per refund key of the history: when the payment side confirmed it (None: not yet)."""
    return {r.key: r.settled_at if r.status is RefundStatus.SETTLED else None for r in history.order.refunds}


def fresh_order(stored: Order, terms: Mapping[str, Category] | None = None) -> Order:
    """The order as it was paid: the same facts, nothing shipped, refunded or opened yet. ``terms``: category terms
    of a draft, in place of those the order was stamped with for the categories it names (E4–E6)."""
    stamped = dict(stored.terms)
    if terms:
        stamped |= {code: replace(cat, name=stamped[code].name) for code, cat in terms.items() if code in stamped}
    return new_order(
        id=stored.id, merchant_id=stored.merchant_id, buyer_id=stored.buyer_id, paid_at=stored.paid_at,
        shipping_fee_fen=stored.shipping_fee_fen,
        items=[OrderItem(i.sku, i.title, i.category, i.quantity, i.unit_price_fen, i.exclusion_confirmed) for i in stored.items],
        return_shipping_insured=stored.return_shipping_insured, group_id=stored.group_id, terms=stamped,
        policy_version=stored.policy_version,
    )


# --- replaying ------------------------------------------------------------------------------------------
_MISSING = object()


class _Replayer:
    def __init__(self, history: History, policy: Policy, terms: Mapping[str, Category] | None = None) -> None:
        self.history = history
        self.policy = policy
        self.categories = {**history.categories, **terms} if terms else history.categories
        self.order = fresh_order(history.order, terms)
        self.settled: dict[str, Any] = _settlements(history)
        self.run = Run(self.order, self.order.pending_events, [], {}, set())
        #: M5: the address each approved return of a case was sent to, as recorded, in order. An address is the shop's
        #: choice, not the policy's: the replay sends a return where it was sent (one the history never saw: nowhere).
        self.addresses: dict[str, list[Mapping[str, Any] | None]] = {}
        for e in history.events:
            if e.case_id is not None and "return_address" in e.data:
                self.addresses.setdefault(e.case_id, []).append(e.data["return_address"])

    def go(self) -> Run:
        for inp in inputs(self.history):
            self.advance(inp.at)
            try:
                self.apply(inp)
            except DomainError as exc:
                self.run.skipped.append(Skipped(inp, exc.rule))
                if inp.kind == "open" and inp.case_id is not None:
                    self.run.openings[inp.case_id] = Opening(False, exc.rule, inp.at)
            self.settle(inp.at)
            self.observe()
        self.advance(self.history.until)
        return self.run

    def observe(self) -> None:
        self.address_returns()
        for case in self.order.cases:
            for d in case.timers():
                self.run.deadlines.add((case.id, str(d.action), d.due_at, d.rule))

    def address_returns(self) -> None:
        for case, approval in dcases.returns_to_address(self.order):
            recorded = self.addresses.get(case.id)
            if recorded:
                value = recorded.pop(0)
                fields = {k: value[k] for k in ("id", "label", "contact_name", "phone", "address")} if value else None
                dcases.ship_return_to(case, approval, ReturnAddress(**fields) if fields is not None else None)

    def advance(self, to: datetime) -> None:
        """Fire every automatic action due at or before ``to``, in due order (reminders first at one instant)."""
        while True:
            due = [(d.due_at, d.action is not Auto.REMIND_MERCHANT, i, case, d)
                   for i, case in enumerate(self.order.cases) for d in case.timers()
                   if d.due_at <= to and (d.stage, f"{d.action}@{d.due_at.isoformat()}") not in case.fired]
            if not due:
                return
            *_, case, d = min(due, key=lambda x: x[:3])
            if not dcases.fire(self.order, case.id, d.action, d.stage, to, self.policy, due_at=d.due_at):
                return
            self.settle(d.due_at)
            self.observe()

    def settle(self, now: datetime) -> None:
        """F1: a refund settles when the history says it did (at once for one the history never saw)."""
        for r in list(self.order.refunds):
            if r.status is RefundStatus.PENDING:
                when = self.settled.get(r.key, _MISSING)
                if when is _MISSING or (isinstance(when, datetime) and when <= now):
                    self.order.settle_refund(r.key, now)

    def apply(self, inp: Input) -> None:
        o, p = self.order, inp.params
        if inp.kind == "ship":
            o.ship(inp.actor, p["carrier"], p["tracking_no"], inp.at)
        elif inp.kind == "deliver":
            o.deliver(inp.actor, p["delivered_at"], inp.at)
        elif inp.kind == "group_formed":
            if o.status is not OrderStatus.GROUP_PENDING:
                raise StateConflict("G3", N_("Group {group_id} is {status} and takes no more members."),
                                    group_id=o.group_id, status=str(o.status))
            o.status = OrderStatus.AWAITING_SHIPMENT
            o.version += 1
            o.record("group_formed", inp.actor, inp.at, tuple(p["rules"]))
        elif inp.kind == "group_failed":
            o.cancel_for_group_failure(inp.at)
        elif inp.kind == "open":
            assert inp.case_id is not None
            case = open_case(o, case_id=inp.case_id, actor=inp.actor, case_type=p["case_type"], reason=p["reason"],
                             now=inp.at, policy=self.policy, categories=self.categories,
                             group=self.history.group, items=p["items"], refund_fen=p["refund_fen"],
                             description=p["description"], buyer_consent=p["buyer_consent"])
            opened = next(e for e in o.pending_events if e.case_id == case.id and e.kind == "opened")
            self.run.openings[inp.case_id] = Opening(True, opened.rules[0], inp.at)
        elif inp.kind == "act":
            assert inp.case_id is not None
            params = {k: v for k, v in p.items() if k != "action"}
            dcases.act(o, inp.case_id, p["action"], inp.actor, inp.at, self.policy, **params)
        elif inp.kind == "complaint_refund":
            assert inp.case_id is not None
            dcases.pay_complaint_refund(o, inp.case_id, p["amount_fen"], inp.at, complaint_id=p["complaint_id"])
        elif inp.kind == "settle":
            if any(r.key == p["key"] and r.status is RefundStatus.PENDING for r in o.refunds):
                o.settle_refund(p["key"], inp.at)
        else:  # pragma: no cover - inputs() builds only the kinds above
            raise Unreplayable(inp.kind)


def replay(history: History, policy: Policy, terms: Mapping[str, Category] | None = None) -> Run:
    """Re-run ``history`` through the domain under ``policy``: the events, refunds and deadlines it produces.
    ``terms``: a draft's category terms, replacing those the order was paid under (E4–E6)."""
    return _Replayer(history, policy, terms).go()


# --- identity: a replay against the stored history ------------------------------------------------------
Encode = Callable[[Any], Any]


def _line(kind: str, actor: str, at: datetime, rules: tuple[str, ...] | list[str], case_id: str | None,
          from_status: str | None, to_status: str | None, data: Any) -> str:
    return (f"{at.isoformat()} {kind} by {actor} [{','.join(rules)}] case={case_id} {from_status}->{to_status} "
            f"{sorted(data.items())}")


def event_line(e: Event, encode: Encode) -> str:
    return _line(e.kind, str(e.actor), e.at, e.rules, e.case_id, e.from_status, e.to_status, encode(e.data))


def recorded_line(e: Recorded) -> str:
    return _line(e.kind, e.actor, e.at, e.rules, e.case_id, e.from_status, e.to_status, dict(e.data))


def check_identity(history: History, run: Run, encode: Encode) -> list[Mismatch]:
    """Every event of ``run`` against the stored one (kind, actor, instant, rules, statuses, data — amounts
    included), every refund against the stored refunds, and every refused opening refused again by the same rule.
    ``encode`` turns event data into its stored JSON form (the store's codec)."""
    out: list[Mismatch] = []
    got = [event_line(e, encode) for e in run.events]
    want = [recorded_line(e) for e in history.events]
    for i in range(max(len(got), len(want))):
        g = got[i] if i < len(got) else "(nothing)"
        w = want[i] if i < len(want) else "(nothing)"
        if g != w:
            out.append(Mismatch(i, w, g))
    if _refunds(run.order) != _refunds(history.order):
        out.append(Mismatch(-1, f"refunds {_refunds(history.order)}", f"refunds {_refunds(run.order)}"))
    for r in history.refused:
        opening = run.openings.get(r.case_id)
        if opening is None or opening.allowed or opening.rule != r.rule:
            out.append(Mismatch(-1, f"opening {r.case_id} refused by {r.rule}",
                                f"opening {r.case_id} {describe_opening(opening)}"))
    return out


def _refunds(order: Order) -> list[tuple[str, int, int, str]]:
    return sorted((r.key, r.amount_fen, r.refund_fen, str(r.status)) for r in order.refunds)


def describe_opening(o: Opening | None) -> str:
    if o is None:
        return "not attempted"
    return f"{'allowed' if o.allowed else 'refused'} ({o.rule})"


# --- comparing two runs -------------------------------------------------------------------------------------
def _case_events(run: Run, case_id: str) -> list[Event]:
    return [e for e in run.events if e.case_id == case_id]


def _automatic(run: Run, case_id: str) -> list[tuple[str, datetime, str]]:
    return [(e.kind, e.at, e.rules[0]) for e in _case_events(run, case_id) if e.kind in _AUTO_KINDS]


def _outcome(run: Run, case_id: str) -> tuple[str, str | None]:
    case = next((c for c in run.order.cases if c.id == case_id), None)
    if case is None:
        return ("not opened", None)
    return (str(case.status), str(case.close_reason) if case.close_reason else None)


def _refunded(run: Run, case_id: str) -> int:
    return sum(r.amount_fen for r in run.order.refunds if r.case_id == case_id)


def _refund_rules(run: Run, case_id: str) -> set[str]:
    return {r.rule for r in run.order.refunds if r.case_id == case_id}


def _last_rule(run: Run, case_id: str) -> str | None:
    events = _case_events(run, case_id)
    return events[-1].rules[0] if events else None


def compare(a: Run, b: Run) -> list[Difference]:
    """How each case differs from run ``a`` (the version in force) to run ``b`` (the draft), by kind, with rules."""
    out: list[Difference] = []
    case_ids = list(dict.fromkeys([*a.openings, *b.openings]))
    for cid in case_ids:
        oa, ob = a.openings.get(cid), b.openings.get(cid)
        if (oa and (oa.allowed, oa.rule)) != (ob and (ob.allowed, ob.rule)):
            rules = [o.rule for o in (oa, ob) if o is not None and not o.allowed] or [o.rule for o in (oa, ob) if o]
            out.append(Difference(ELIGIBILITY, cid, tuple(dict.fromkeys(rules)), describe_opening(oa), describe_opening(ob)))
        da = {(act, due, rule) for c, act, due, rule in a.deadlines if c == cid}
        db = {(act, due, rule) for c, act, due, rule in b.deadlines if c == cid}
        if da != db:
            rules = sorted({rule for _, _, rule in da ^ db})
            out.append(Difference(DEADLINES, cid, tuple(rules), _deadlines_text(da - db), _deadlines_text(db - da)))
        aa, ab = _automatic(a, cid), _automatic(b, cid)
        if aa != ab:
            rules = sorted({x[2] for x in set(aa) ^ set(ab)} or {AUTO_RULES[Auto(x[0])] for x in aa + ab})
            out.append(Difference(AUTOMATIC, cid, tuple(rules), _auto_text(aa), _auto_text(ab)))
        ua, ub = _outcome(a, cid), _outcome(b, cid)
        if ua != ub:
            rules = [r for r in (_last_rule(a, cid), _last_rule(b, cid)) if r]
            out.append(Difference(OUTCOME, cid, tuple(dict.fromkeys(rules)) or ("C1",), _outcome_text(ua), _outcome_text(ub)))
        fa, fb = _refunded(a, cid), _refunded(b, cid)
        if fa != fb:
            rules = sorted(_refund_rules(a, cid) ^ _refund_rules(b, cid) or _refund_rules(a, cid) | _refund_rules(b, cid))
            out.append(Difference(REFUND, cid, (*rules, "E10") if "E10" not in rules else tuple(rules), f"{fa} fen", f"{fb} fen"))
    return out


def _deadlines_text(ds: set[tuple[str, datetime, str]]) -> str:
    return "; ".join(f"{act} {due.isoformat()} ({rule})" for act, due, rule in sorted(ds, key=lambda x: (x[1], x[0]))) or "-"


def _auto_text(items: list[tuple[str, datetime, str]]) -> str:
    return "; ".join(f"{k} {at.isoformat()} ({rule})" for k, at, rule in items) or "-"


def _outcome_text(o: tuple[str, str | None]) -> str:
    return o[0] if o[1] is None else f"{o[0]} ({o[1]})"


def timeline(run: Run, case_id: str, encode: Encode) -> list[dict[str, Any]]:
    """A case's events in a run, for a report: instant, kind, actor, rules, statuses, amount; inputs it skipped."""
    out: list[dict[str, Any]] = [
        {"at": e.at.isoformat(), "kind": e.kind, "actor": str(e.actor), "rules": list(e.rules),
         "from_status": e.from_status, "to_status": e.to_status, "data": encode(e.data)}
        for e in _case_events(run, case_id)
    ]
    out += [{"at": s.input.at.isoformat(), "kind": f"skipped {s.input.params.get('action', s.input.kind)}",
             "actor": str(s.input.actor), "rules": [s.rule], "from_status": None, "to_status": None, "data": {}}
            for s in run.skipped if s.input.case_id == case_id]
    return sorted(out, key=lambda x: x["at"])
