"""Stateful property test of the pure domain (RULEBOOK §0–§3).

A Hypothesis ``RuleBasedStateMachine`` runs a small marketplace: plain and group orders (groups that may or may
not complete automatically), one to three lines of different categories (a statutory exclusion, a shop exclusion
the buyer may have confirmed, a warranty category, a longer after-sales window, an unconfigured category),
insured or not, with or without a shipping fee. A simulated clock moves by minutes to 20 days, or to just
before / at / just after the next deadline. The steps: shipping and delivering, expiring / completing / joining
groups, opening every case type for every reason as the buyer or (E7, with or without consent) the merchant,
every case action by every actor with good and bad parameters, a worker that fires every due timer in due order,
stale / premature / repeated timers that must be no-ops, and settling refunds (sometimes twice).

Every refusal (``DomainError``) must leave the whole marketplace unchanged. After every step:

- E10: refunded ≤ paid for every order, every item line and the shipping fee; every refund is positive;
- E9: at most one open case per order;
- a closed case never changes again;
- E8: buyer cancellations ≤ ``max_buyer_cancellations``; no case is opened by the buyer once that many were cancelled;
- every automatic action fires at most once: (case, stage, action, due_at) is never fired twice;
- T2: every event has an actor, at least one known rule id, and an aware instant that is not in the future;
- F1: refund keys are unique; G4: an order is refunded for a failed group at most once;
- S1: a case that waits for someone has a next deadline; a case waiting for its money has a pending refund;
- M6: a delivered return is refunded within the law's 7 days (the deadline set never exceeds it);
- E2/G4: a cancelled order is refunded in full, an order refunded in full is never shipped; C1: a cancelled case
  moved no money or goods; F1: a case closed as refunded was paid; M3: return shipping reimbursed only when the
  merchant pays it, up to the cap; G1–G4: groups and their member orders agree.

Run longer with ``AFTERSALES_STATEFUL=long`` (or ``soak``), or set ``AFTERSALES_STATEFUL_EXAMPLES`` /
``AFTERSALES_STATEFUL_STEPS`` directly, e.g. ``AFTERSALES_STATEFUL=long .venv/bin/pytest tests/unit/test_state_machine.py``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from aftersales.domain.cases import TRANSITIONS, Action, Auto, Case, CaseStatus, act, fire, taken_as
from aftersales.domain.catalog import CaseType, Category, Reason, StatutoryExclusion
from aftersales.domain.eligibility import evaluate
from aftersales.domain.errors import DomainError
from aftersales.domain.events import Actor, Event
from aftersales.domain.groups import Group, GroupStatus, open_group
from aftersales.domain.opening import open_case
from aftersales.domain.orders import Order, OrderItem, OrderStatus, Refund, RefundKind, RefundStatus, new_order
from aftersales.domain.policy import LAW_REFUND_BOUND_HOURS, Policy, validate

# --- how long to explore ------------------------------------------------------------------------------------
_PROFILES = {"ci": (250, 60), "long": (2_000, 80), "soak": (20_000, 120)}
_PROFILE = os.environ.get("AFTERSALES_STATEFUL", "ci")
if _PROFILE not in _PROFILES:
    raise ValueError(f"AFTERSALES_STATEFUL must be one of {', '.join(_PROFILES)}, not {_PROFILE!r}")
MAX_EXAMPLES = int(os.environ.get("AFTERSALES_STATEFUL_EXAMPLES", _PROFILES[_PROFILE][0]))
STEPS = int(os.environ.get("AFTERSALES_STATEFUL_STEPS", _PROFILES[_PROFILE][1]))

# --- the marketplace -----------------------------------------------------------------------------------------
START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai
MAX_ORDERS = 5
MERCHANT = "m1"

CATEGORIES: dict[str, Category] = {
    "general": Category("general", "General goods"),
    "electrical": Category("electrical", "Household electrical goods", warranty_days=365),
    "furniture": Category("furniture", "Furniture", after_sales_days=30),
    "fresh": Category("fresh", "Fresh food", statutory_exclusion=StatutoryExclusion.PERISHABLE),
    "underwear": Category("underwear", "Underwear", no_reason_return=False),
}
#: Category codes an item may carry; "misc" is configured nowhere (default terms).
CATEGORY_CODES = (*CATEGORIES, "misc")

POLICIES: tuple[Policy, ...] = (
    Policy(),
    # A zone with daylight saving time, a warranty for everything, a single cancellation, a shorter M1 wait.
    validate({"timezone": "Europe/Madrid", "warranty_days": 30, "max_buyer_cancellations": 1,
              "merchant_response_hours": 24, "merchant_reminder_hours": [6]}),
    # Longer windows and tighter merchant limits.
    validate({"no_reason_days": 10, "after_sales_days": 20, "merchant_confirm_hours": 24, "buyer_return_days": 3,
              "return_auto_refund_days": 5, "merchant_ship_hours": 12, "buyer_confirm_days": 2}),
)

#: Every rule id of RULEBOOK.md; an event must cite only these (T2).
RULE_IDS = frozenset(
    [f"T{n}" for n in range(3)] + [f"G{n}" for n in range(1, 6)] + [f"E{n}" for n in range(1, 11)]
    + [f"M{n}" for n in range(1, 9)] + ["C1", "F1", "P1", "P2", "K1", "K2", "D1", "D2", "D3"]
    + [f"S{n}" for n in range(1, 7)]
)

# --- strategies ---------------------------------------------------------------------------------------------
IDX = st.integers(min_value=0, max_value=63)
ACTORS = st.sampled_from(list(Actor))
#: Mostly the right actor for the step, sometimes any other.
SHIPPERS = st.sampled_from([Actor.MERCHANT] * 6 + [Actor.PLATFORM, Actor.BUYER, Actor.SYSTEM])
DELIVERERS = st.sampled_from([Actor.SYSTEM] * 3 + [Actor.MERCHANT] * 2 + [Actor.PLATFORM, Actor.BUYER])
OPENERS = st.sampled_from([Actor.BUYER] * 6 + [Actor.MERCHANT] * 2 + [Actor.PLATFORM])
#: True about one time in five: take any order / case / refund instead of one where the step makes sense.
ANY = st.integers(0, 4).map(lambda n: n == 0)
MINUTE = timedelta(minutes=1)
DELTAS = st.one_of(
    st.integers(1, 59).map(lambda n: timedelta(minutes=n)),
    st.integers(1, 72).map(lambda n: timedelta(hours=n)),
    st.integers(1, 20).map(lambda n: timedelta(days=n)),
)
LINES = st.lists(
    st.tuples(
        st.sampled_from(CATEGORY_CODES),
        st.integers(1, 3),  # quantity
        st.sampled_from([1, 99, 1990, 5000, 12345, 299900]),  # unit price
        st.booleans(),  # the buyer confirmed the shop's exclusion at purchase
    ),
    min_size=1,
    max_size=3,
)
#: How a refund amount is chosen: relative to what is left (resolved in the step), or plainly wrong.
AMOUNTS = st.sampled_from(["none"] * 3 + ["exact"] * 3 + ["half"] * 2 + ["one", "over", "zero", "negative", "huge", "bool"])
GOOD_TEXT = "Not as shown in the photos"
TEXTS = st.sampled_from([GOOD_TEXT] * 6 + [None, "", "   ", "x" * 2001])
CARRIERS = st.sampled_from(["SF Express"] * 8 + [None, "", "x" * 101])
TRACKING = st.sampled_from(["SF1234567"] * 8 + [None, ""])
FEES = st.sampled_from([None, 0, 800, 800, 2000, 2001, -1, True])
#: When a delivery happened: minutes before now (negative: in the future), or a naive timestamp.
WHEN = st.sampled_from([None, None, 0, 1, 90, 60 * 24 * 3, -5, "naive"])
PAYERS = st.sampled_from([None] * 5 + ["buyer", "merchant", "insurer", "nobody"])
REASONS_OR_JUNK = st.sampled_from([None] * 4 + [*Reason, "bogus"])
OUTCOMES = st.sampled_from(["refund"] * 3 + ["reject"] * 2 + ["bogus", None])
PARAMS = st.fixed_dictionaries({
    "payer": PAYERS, "text": TEXTS, "amount": AMOUNTS, "carrier": CARRIERS, "tracking": TRACKING, "fee": FEES,
    "when": WHEN, "reason": REASONS_OR_JUNK, "outcome": OUTCOMES, "junk": st.integers(0, 24).map(lambda n: n == 0),
})
#: Parameters a careful client sends: valid in form (the rules may still refuse them), now and then one that is not.
SENSIBLE = st.fixed_dictionaries({
    "payer": st.sampled_from([None] * 4 + ["merchant", "buyer"]), "text": st.just(GOOD_TEXT),
    "amount": st.sampled_from(["none", "exact", "exact", "half", "one"]), "carrier": st.just("SF Express"),
    "tracking": st.just("SF1234567"), "fee": st.sampled_from([None, 0, 800, 2000]), "when": st.sampled_from([None, 0, 60]),
    "reason": st.sampled_from([None] * 4 + list(Reason)), "outcome": st.sampled_from(["refund", "refund", "reject"]),
    "junk": st.just(False),
})
PARAMS_MOSTLY_SENSIBLE = st.one_of(SENSIBLE, SENSIBLE, SENSIBLE, PARAMS)
#: Parameters for an action that takes none.
QUIET = {"payer": None, "text": None, "amount": "none", "carrier": None, "tracking": None, "fee": None, "when": None,
         "reason": None, "outcome": None, "junk": False}

#: Moves driving a case: which table action (or refund), its parameters, and sometimes: nobody acts, time passes.
MOVES = st.lists(st.tuples(IDX, PARAMS_MOSTLY_SENSIBLE, st.integers(0, 5).map(lambda n: n == 0)), min_size=1, max_size=8)
OPEN_ELIGIBLE: dict[str, st.SearchStrategy[Any]] = {
    "i": IDX, "anything": ANY, "actor": OPENERS, "k": IDX, "r": IDX, "consent": st.integers(0, 5).map(bool),
    "lines": st.one_of(st.none(), st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3)), min_size=1, max_size=3)),
    "amount": st.sampled_from(["none", "none", "exact", "half", "half", "one", "over"]),
}

T = TypeVar("T")


def _has_open_case(self: Marketplace) -> bool:
    return any(o.open_case() is not None for o in self.orders)


def _can_open(self: Marketplace) -> bool:
    return any(map(self._openable, self.orders))


def _aware(at: datetime) -> bool:
    return at.tzinfo is not None and at.utcoffset() is not None


class Marketplace(RuleBasedStateMachine):
    """Orders, groups and cases of one merchant; the clock only moves forward."""

    def __init__(self) -> None:
        super().__init__()
        self.policy = Policy()
        self.now = START
        self.orders: list[Order] = []
        self.groups: list[Group] = []
        self.seq = 0
        #: (order, case) -> a copy of the case taken when it was first seen closed.
        self.closed: dict[tuple[str, str], Case] = {}
        #: (order, case, stage, action, due_at) of every automatic action that fired.
        self.fired: set[tuple[str, str, int, str, datetime]] = set()
        self.fired_by_case: dict[tuple[str, str], list[tuple[Auto, int, datetime]]] = {}

    # --- helpers ------------------------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}{self.seq}"

    def world(self) -> tuple[list[Order], list[Group]]:
        return copy.deepcopy((self.orders, self.groups))

    def attempt(self, label: str, call: Callable[[], T]) -> tuple[bool, T | None]:
        """Run a domain call; a refusal must change nothing at all (orders, their cases and refunds, groups)."""
        before = self.world()
        try:
            result = call()
        except DomainError as exc:
            after = (self.orders, self.groups)
            assert after == before, f"{label} was refused ({exc}) but changed the marketplace"
            note(f"refused {label}: {exc}")
            return False, None
        note(f"done {label}")
        return True, result

    def pick(self, items: list[T], i: int) -> T:
        return items[i % len(items)]

    def pick_where(self, items: list[T], i: int, anything: bool, good: Callable[[T], bool]) -> T:
        """Mostly an item where the step makes sense; with ``anything`` (or when there is none), any item."""
        fitting = [x for x in items if good(x)]
        return self.pick(fitting if fitting and not anything else items, i)

    def members(self, group: Group) -> list[Order]:
        return [o for o in self.orders if o.group_id == group.id]

    def group_of(self, order: Order) -> Group | None:
        return next((g for g in self.groups if g.id == order.group_id), None)

    def _order(self, lines: list[tuple[str, int, int, bool]], shipping: int, insured: bool, group_id: str | None) -> Order:
        oid = self._id("o")
        items = [OrderItem(f"{oid}-s{n}", f"Item {n} of {oid}", cat, qty, price, confirmed)
                 for n, (cat, qty, price, confirmed) in enumerate(lines)]
        return new_order(id=oid, merchant_id=MERCHANT, buyer_id=f"b-{oid}", paid_at=self.now, shipping_fee_fen=shipping,
                         items=items, return_shipping_insured=insured, group_id=group_id)

    def _amount(self, mode: str, most: int) -> object:
        return {"none": None, "exact": most, "half": most // 2, "one": 1, "over": most + 1, "zero": 0, "negative": -100,
                "huge": 10**16, "bool": True}[mode]

    def due_timers(self) -> list[tuple[datetime, int, Any]]:
        """What a worker would find due now: group expiries and case timers, in due order."""
        due: list[tuple[datetime, int, Any]] = []
        for g in self.groups:
            if g.status is GroupStatus.PENDING and g.expires_at <= self.now:
                due.append((g.expires_at, 0, g))
        for o in self.orders:
            for c in o.cases:
                for t in c.timers():
                    if t.due_at <= self.now:
                        due.append((t.due_at, 1, (o, c, t)))
        due.sort(key=lambda d: (d[0], d[1]))
        return due

    def next_due(self) -> datetime | None:
        """The next instant something changes: a timer, a group expiry, or the end of an eligibility window."""
        dues = [g.expires_at for g in self.groups if g.status is GroupStatus.PENDING]
        dues += [t.due_at for o in self.orders for c in o.cases for t in c.timers()]
        for o in self.orders:
            if o.status is OrderStatus.DELIVERED:
                for option in evaluate(o, actor=Actor.BUYER, now=self.now, policy=self.policy, categories=CATEGORIES).options:
                    dues += [option.deadline] if option.deadline else []
                    dues += option.reason_deadlines.values()
        later = [d for d in dues if d > self.now]
        return min(later, default=None)

    # --- setup and time -----------------------------------------------------------------------------------
    @initialize(policy=st.sampled_from(POLICIES))
    def choose_policy(self, policy: Policy) -> None:
        self.policy = policy

    @rule(delta=DELTAS)
    def advance(self, delta: timedelta) -> None:
        self.now += delta

    @precondition(lambda self: self.next_due() is not None)
    @rule(offset=st.sampled_from([-1, 0, 0, 1]))
    def advance_to_next_deadline(self, offset: int) -> None:
        """Land just before, exactly on, or just after the next deadline (boundaries are where bugs hide)."""
        nxt = self.next_due()
        assert nxt is not None
        self.now = max(self.now, nxt + offset * timedelta(seconds=1))

    # --- orders and groups --------------------------------------------------------------------------------
    @precondition(lambda self: len(self.orders) < MAX_ORDERS)
    @rule(kind=st.sampled_from(["plain", "shipped", "delivered", "delivered", "delivered", "group", "join"]), lines=LINES,
          shipping=st.sampled_from([0, 800, 800, 1]), insured=st.booleans(), size=st.integers(2, 3), auto_complete=st.booleans(),
          g=IDX, anything=ANY)
    def place_order(self, kind: str, lines: list[tuple[str, int, int, bool]], shipping: int, insured: bool, size: int,
                    auto_complete: bool, g: int, anything: bool) -> None:
        """A paid order: plain (maybe shipped and delivered at once), opening a new group (G1), or joining one (G1/G3)."""
        if kind == "join" and self.groups:
            group = self.pick_where(self.groups, g, anything,
                                    lambda x: x.status is GroupStatus.PENDING and self.now < x.expires_at)
            order = self._order(lines, shipping, insured, group.id)
            members = self.members(group)
            ok, _ = self.attempt(f"join {order.id} to {group.id}", lambda: group.join(order, self.now, members))
            if ok:
                self.orders.append(order)
                assert group.status is GroupStatus.PENDING or len(group.member_ids) >= group.size
        elif kind in ("group", "join"):
            gid = self._id("g")
            order = self._order(lines, shipping, insured, gid)
            self.groups.append(open_group(id=gid, merchant_id=MERCHANT, size=size, auto_complete=auto_complete, first=order,
                                          policy=self.policy))
            self.orders.append(order)
        else:
            order = self._order(lines, shipping, insured, None)
            if kind != "plain":
                order.ship(Actor.MERCHANT, "SF Express", f"SF-{order.id}", self.now)
            if kind == "delivered":
                order.deliver(Actor.SYSTEM, self.now, self.now)
            self.orders.append(order)

    @precondition(lambda self: any(g.status is GroupStatus.PENDING for g in self.groups))
    @rule(g=IDX, anything=ANY, complete=st.booleans(), actor=SHIPPERS)
    def group_step(self, g: int, anything: bool, complete: bool, actor: Actor) -> None:
        """G5: the merchant (or an agent) completes a group early; or G4: the group expires (only once it is due)."""
        if complete:
            group = self.pick_where(self.groups, g, anything, lambda x: x.status is GroupStatus.PENDING and x.auto_complete)
            ok, _ = self.attempt(f"complete {group.id} as {actor}", lambda: group.complete(self.members(group), actor, self.now))
            if ok:
                assert actor in (Actor.MERCHANT, Actor.PLATFORM) and group.auto_complete and self.now < group.expires_at
            return
        group = self.pick_where(self.groups, g, anything, lambda x: x.status is GroupStatus.PENDING and self.now >= x.expires_at)
        ok, refunds = self.attempt(f"expire {group.id}", lambda: group.expire(self.members(group), self.now))
        if ok:
            self._check_expired(group, refunds or [])

    def _check_expired(self, group: Group, refunds: list[Any]) -> None:
        """G4: formed at the expiry instant, or failed with every member cancelled and refunded in full."""
        assert self.now >= group.expires_at
        if group.auto_complete:
            assert group.status is GroupStatus.FORMED and not refunds
            assert all(o.status is not OrderStatus.GROUP_PENDING for o in self.members(group))
        else:
            assert group.status is GroupStatus.FAILED
            for o in self.members(group):
                assert o.status is OrderStatus.CANCELLED
                assert o.remaining_fen == 0, f"G4: {o.id} not refunded in full"

    @precondition(lambda self: bool(self.orders))
    @rule(i=IDX, anything=ANY, shipper=SHIPPERS, carrier=CARRIERS, tracking=TRACKING, deliverer=DELIVERERS,
          minutes_ago=st.sampled_from([0, 0, 0, 1, 60, 60 * 30, -5]))
    def ship_or_deliver(self, i: int, anything: bool, shipper: Actor, carrier: str | None, tracking: str | None,
                        deliverer: Actor, minutes_ago: int) -> None:
        """The merchant ships an order awaiting shipment (never a pending group's, G2); the carrier delivers a shipped one."""
        order = self.pick_where(self.orders, i, anything, lambda o: o.status in (OrderStatus.AWAITING_SHIPMENT, OrderStatus.SHIPPED))
        before = order.status
        if before is OrderStatus.SHIPPED or (anything and minutes_ago == 1):
            at = self.now - minutes_ago * MINUTE
            ok, _ = self.attempt(f"deliver {order.id} at {at} as {deliverer}", lambda: order.deliver(deliverer, at, self.now))
            if ok:
                assert before is OrderStatus.SHIPPED and order.delivered_at == at
            return
        ok, _ = self.attempt(f"ship {order.id} as {shipper}", lambda: order.ship(shipper, carrier or "", tracking or "", self.now))
        if ok:
            assert before is OrderStatus.AWAITING_SHIPMENT, f"G2/E3: shipped an order that was {before}"

    # --- cases --------------------------------------------------------------------------------------------
    def _openable(self, order: Order) -> bool:
        return order.status not in (OrderStatus.GROUP_PENDING, OrderStatus.CANCELLED) and order.open_case() is None

    def _open_eligible(self, i: int, anything: bool, actor: Actor, k: int, r: int, consent: bool,
                      lines: list[tuple[int, int]] | None, amount: str, order: Order | None = None) -> None:
        """Open a case of a type eligibility offers, for one of its reasons (the common, mostly valid path)."""
        order = order or self.pick_where(self.orders, i, anything, self._openable)
        who = Actor.MERCHANT if actor is Actor.MERCHANT else Actor.BUYER
        options = [o for o in evaluate(order, actor=who, now=self.now, policy=self.policy, categories=CATEGORIES,
                                       group=self.group_of(order)).options if o.allowed]
        if not options:
            return self.open_any(i, anything, actor, "refund_only", "quality_problem", consent, None, amount, None)
        option = self.pick(options, k)
        items = None
        if lines and option.skus and order.status is OrderStatus.DELIVERED:
            items = {self.pick(list(option.skus), n): q for n, q in lines}
        refund = self._amount(amount, option.max_refund_fen) if option.type in (CaseType.REFUND_ONLY, CaseType.RETURN_REFUND) else None
        return self.open_any(i, anything, actor, option.type, self.pick(list(option.reasons), r), consent,
                             None, amount, None, items=items, order=order, refund=(refund,))

    open_eligible = precondition(_can_open)(rule(**OPEN_ELIGIBLE)(_open_eligible))
    open_eligible_2 = precondition(_can_open)(rule(**OPEN_ELIGIBLE)(_open_eligible))

    @precondition(lambda self: bool(self.orders))
    @rule(i=IDX, anything=ANY, actor=OPENERS, case_type=st.sampled_from([*CaseType, "bogus"]),
          reason=st.sampled_from([*Reason, "bogus"]), consent=st.booleans(),
          lines=st.one_of(st.none(), st.none(), st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4)), max_size=3)),
          amount=AMOUNTS, description=st.sampled_from([None, "It broke", "x" * 2001]))
    def open_any(self, i: int, anything: bool, actor: Actor, case_type: str, reason: str, consent: bool,
                 lines: list[tuple[int, int]] | None, amount: str, description: str | None,
                 items: dict[str, int] | None = None, order: Order | None = None, refund: tuple[object] | None = None) -> None:
        """Open anything on any order: most of these are refused, and a refusal must change nothing."""
        order = order or self.pick_where(self.orders, i, anything, self._openable)
        if lines is not None:
            # index 3 names a sku the order does not have; quantity 0 or above the line's is invalid.
            items = {(order.items[n % len(order.items)].sku if n < 3 else "nope"): q for n, q in lines}
        cancellations, status = order.buyer_cancellations, order.status
        case_id = self._id("c")
        ok, case = self.attempt(
            f"open {case_type}/{reason} on {order.id} as {actor}",
            lambda: open_case(order, case_id=case_id, actor=actor, case_type=case_type, reason=reason, now=self.now,
                              policy=self.policy, categories=CATEGORIES, group=self.group_of(order), items=items,
                              refund_fen=refund[0] if refund else self._amount(amount, order.remaining_fen), description=description,
                              buyer_consent=consent),
        )
        if not ok:
            return
        assert case is not None and case.opened_by is actor
        if actor is Actor.BUYER:
            assert cancellations < self.policy.max_buyer_cancellations, (
                f"E8: the buyer opened {case.id} on {order.id} after {cancellations} cancellations")
        else:
            assert actor is Actor.MERCHANT and consent, "E7: only the merchant, with the buyer's consent, opens for the buyer"
        # (A merchant-opened refund of the whole order before delivery is refunded at once, E7: then it is cancelled.)
        assert status not in (OrderStatus.GROUP_PENDING, OrderStatus.CANCELLED), f"E1/E10: opened on a {status} order"
        if actor is Actor.MERCHANT:
            assert case.status is not CaseStatus.AWAITING_MERCHANT, "E7: a merchant-opened case starts approved"

    def _case(self, i: int, j: int, anything: bool = False) -> tuple[Order, Case] | None:
        with_cases = [o for o in self.orders if o.cases]
        if not with_cases:
            return None
        order = self.pick_where(with_cases, i, anything, lambda o: o.open_case() is not None)
        case = (None if anything else order.open_case()) or self.pick(order.cases, j)
        return order, case

    def _params(self, action: Action, case: Case, order: Order, p: dict[str, Any]) -> dict[str, Any]:
        when = p["when"]
        at = None if when is None else (self.now.replace(tzinfo=None) if when == "naive" else self.now - when * MINUTE)
        amount = self._amount(p["amount"], case.max_refund_fen(order))
        params: dict[str, Any] = {
            Action.APPROVE: {"return_shipping_payer": p["payer"]},
            Action.REJECT: {"reason": p["text"]},
            Action.OFFER_PARTIAL_REFUND: {"refund_fen": amount},
            Action.SHIP_RETURN: {"carrier": p["carrier"], "tracking_no": p["tracking"], "shipping_fee_fen": p["fee"]},
            Action.MARK_RETURN_DELIVERED: {"at": at},
            Action.REJECT_RETURN: {"reason": p["text"]},
            Action.SHIP_REPLACEMENT: {"carrier": p["carrier"], "tracking_no": p["tracking"]},
            Action.MARK_REPLACEMENT_DELIVERED: {"at": at},
            Action.RESUBMIT: {"reason": p["reason"], "refund_fen": None if p["amount"] in ("exact", "none") else amount,
                              "description": p["text"]},
            Action.ESCALATE: {"reason": p["text"]},
            Action.RULE: {"outcome": p["outcome"], "refund_fen": None if p["amount"] == "exact" else amount,
                          "rationale": p["text"]},
        }.get(action, {})
        if p["junk"]:
            params["bogus"] = 1
        return params

    def _act_by_table(self, i: int, moves: list[tuple[int, dict[str, Any], bool]]) -> None:
        """Drive one case: actions the transition table offers in its status, each by one of its actors (guards may
        still refuse); the payment side confirming its refunds; or nobody acting until its deadline passes."""
        order = self.pick([o for o in self.orders if o.open_case() is not None], i)
        case = order.open_case()
        assert case is not None
        for k, p, wait in moves:
            if case.is_closed:
                return
            if wait:  # nobody acts: the case's deadline passes and the worker runs
                if case.deadline is not None:
                    self.now = max(self.now, case.deadline.due_at)
                    self.run_worker()
                continue
            if case.status is CaseStatus.REFUND_PENDING:
                pending = [r for r in case.refunds(order) if r.status is RefundStatus.PENDING]
                if not pending:
                    return
                self._settle(order, self.pick(pending, k), twice=False)
                continue
            table = [(action, actor) for action, (actors, _) in TRANSITIONS[case.status].items() for actor in sorted(actors)
                     for _ in range(1 if action in (Action.CANCEL, Action.ESCALATE) else 3)]  # favour moves that go on
            if not table:
                return
            action, actor = self.pick(table, k)
            self.act_any(i, 0, False, action, actor, p, found=(order, case))

    @precondition(_has_open_case)
    @rule(i=IDX, rounds=st.lists(st.tuples(IDX, IDX, st.integers(0, 3).map(lambda n: n == 0)), min_size=1, max_size=3))
    def cancel_and_reopen(self, i: int, rounds: list[tuple[int, int, bool]]) -> None:
        """C1/E8: the buyer withdraws the open case and asks again (or, E7, the shop opens one with consent), a few times."""
        order = self.pick([o for o in self.orders if o.open_case() is not None], i)
        for k, r, merchant in rounds:
            case = order.open_case()
            if case is None:
                return
            self.act_any(0, 0, False, Action.CANCEL, Actor.BUYER, QUIET, found=(order, case))
            self._open_eligible(i, False, Actor.MERCHANT if merchant else Actor.BUYER, k, r, True, None, "none", order=order)

    # The steps that move cases along are the heart of the test: they get four rules' share of the steps.
    act_by_table = precondition(_has_open_case)(rule(i=IDX, moves=MOVES)(_act_by_table))
    act_by_table_2 = precondition(_has_open_case)(rule(i=IDX, moves=MOVES)(_act_by_table))
    act_by_table_3 = precondition(_has_open_case)(rule(i=IDX, moves=MOVES)(_act_by_table))
    act_by_table_4 = precondition(_has_open_case)(rule(i=IDX, moves=MOVES)(_act_by_table))

    @precondition(lambda self: any(o.cases for o in self.orders))
    @rule(i=IDX, j=IDX, anything=ANY, action=st.sampled_from(list(Action)), actor=ACTORS, p=PARAMS)
    def act_any(self, i: int, j: int, anything: bool, action: Action, actor: Actor, p: dict[str, Any],
                found: tuple[Order, Case] | None = None) -> None:
        """Any action by any actor on any case (open or closed), with good or bad parameters."""
        found = found or self._case(i, j, anything)
        assert found is not None
        order, case = found
        params = self._params(action, case, order, p)
        status, version, shipped, mark = case.status, order.version, order.status, len(order.pending_events)
        taken = taken_as(action, case, order, self.policy)  # M2: accept_offer answering a refusal is accept_rejection
        ok, _ = self.attempt(f"{action} on {case.id} ({status}) as {actor} with {params}",
                             lambda: act(order, case.id, action, actor, self.now, self.policy, **params))
        if not ok:
            return
        assert status is not CaseStatus.CLOSED, f"{action} changed closed case {case.id}"
        assert order.version > version
        # T2: the action's own event comes first, before the effects it caused (a refund issued, ...).
        event = order.pending_events[mark]
        assert (event.kind, event.case_id, event.actor, event.at) == (str(taken), case.id, actor, self.now), f"T2: {event}"
        assert (event.from_status, event.to_status) == (str(status), str(case.status))
        if action is Action.REJECT:
            assert not (case.type is CaseType.REFUND_ONLY and shipped is OrderStatus.AWAITING_SHIPMENT), (
                "M2: refused a refund of an unshipped order")
            assert not (case.type is CaseType.RETURN_REFUND and case.reason is Reason.NO_REASON and case.opened_by is Actor.BUYER), (
                "M2: refused a no-reason return")
        if action is Action.CANCEL:
            left = self.policy.max_buyer_cancellations - order.buyer_cancellations
            assert event.data.get("cancellations_left") == left, f"E8: the cancellation must say how many remain ({left})"

    # --- the worker and its timers ------------------------------------------------------------------------
    @precondition(lambda self: bool(self.due_timers()))
    @rule()
    def run_worker(self) -> None:
        """Like the deadline worker: everything due now, earliest first (a firing may make more due)."""
        for _ in range(500):
            due = self.due_timers()
            if not due:
                return
            _, _, what = due[0]
            if isinstance(what, Group):
                refunds = what.expire(self.members(what), self.now)
                self._check_expired(what, refunds)
                continue
            order, case, timer = what
            version, mark, cancellations = order.version, len(order.pending_events), order.buyer_cancellations
            fired = fire(order, case.id, timer.action, timer.stage, self.now, self.policy, timer.due_at)
            assert fired, f"a due timer did not fire: {case.id} {timer}"
            assert order.version > version
            assert order.buyer_cancellations == cancellations, "E8/M5: only the buyer's own cancellations count"
            event = order.pending_events[mark]
            assert (event.kind, event.case_id, event.actor, event.at) == (str(timer.action), case.id, Actor.SYSTEM, timer.due_at), (
                f"T2: {event}")
            self._record_fire(order, case, timer.action, timer.stage, timer.due_at)
        raise AssertionError("the worker never ran out of due timers")

    def _record_fire(self, order: Order, case: Case, action: Auto, stage: int, due_at: datetime) -> None:
        key = (order.id, case.id, stage, str(action), due_at)
        assert key not in self.fired, f"automatic action fired twice: {key}"
        self.fired.add(key)
        self.fired_by_case.setdefault((order.id, case.id), []).append((action, stage, due_at))

    @precondition(lambda self: any(o.cases for o in self.orders))
    @rule(i=IDX, j=IDX, kind=st.sampled_from(["again", "stale", "early", "other"]), action=st.sampled_from(list(Auto)),
          k=IDX)
    def fire_noop(self, i: int, j: int, kind: str, action: Auto, k: int) -> None:
        """Timers that already fired, belong to an older stage, or are not due yet: nothing happens."""
        found = self._case(i, j)
        assert found is not None
        order, case = found
        due_at: datetime | None = None
        if kind == "again":
            history = self.fired_by_case.get((order.id, case.id))
            if not history:
                return
            action, stage, due_at = self.pick(history, k)
        elif kind == "stale":
            stage = case.stage - 1 - k % 3
        elif kind == "early":
            future = [t for t in case.timers() if t.due_at > self.now]
            if not future:
                return
            timer = self.pick(future, k)
            action, stage, due_at = timer.action, timer.stage, timer.due_at
        else:  # an action that is not among the case's timers at all
            if any(t.action is action for t in case.timers()):
                return
            stage = case.stage
        before = self.world()
        assert fire(order, case.id, action, stage, self.now, self.policy, due_at) is False, (
            f"{kind} timer {action}@{stage} fired on {case.id}")
        assert (self.orders, self.groups) == before, f"a {kind} timer changed the marketplace"

    # --- money --------------------------------------------------------------------------------------------
    @precondition(lambda self: any(o.refunds for o in self.orders))
    @rule(i=IDX, j=IDX, anything=ANY, twice=st.integers(0, 3).map(lambda n: n == 0))
    def settle(self, i: int, j: int, anything: bool, twice: bool) -> None:
        """The payment side confirms a refund (F1); a repeated confirmation changes nothing."""
        pending = lambda r: r.status is RefundStatus.PENDING  # noqa: E731
        order = self.pick_where([o for o in self.orders if o.refunds], i, anything, lambda o: any(map(pending, o.refunds)))
        self._settle(order, self.pick_where(order.refunds, j, anything, pending), twice)

    def _settle(self, order: Order, refund: Refund, twice: bool) -> None:
        was = refund.status
        before = self.world()
        settled = order.settle_refund(refund.key, self.now)
        assert settled is (was is RefundStatus.PENDING)
        assert refund.status is RefundStatus.SETTLED
        if refund.case_id is not None and all(r.status is RefundStatus.SETTLED for r in order.case(refund.case_id).refunds(order)):
            assert order.case(refund.case_id).status is not CaseStatus.REFUND_PENDING, "F1: all its refunds settled, still pending"
        if not settled:
            assert (self.orders, self.groups) == before, "F1: a repeated settlement changed something"
        if twice:
            before = self.world()
            assert order.settle_refund(refund.key, self.now) is False, "F1: settled twice"
            assert (self.orders, self.groups) == before

    # --- invariants ---------------------------------------------------------------------------------------
    @invariant()
    def money_never_exceeds_what_was_paid(self) -> None:
        for o in self.orders:
            assert 0 <= o.refunded_fen <= o.paid_fen, f"E10: {o.id} refunded {o.refunded_fen} of {o.paid_fen}"
            assert 0 <= o.refunded_shipping_fen <= o.shipping_fee_fen, f"E10: {o.id} shipping over-refunded"
            for item in o.items:
                assert 0 <= o.refunded_goods(item.sku) <= item.total_fen, f"E10: {o.id} line {item.sku} over-refunded"
            for r in o.refunds:
                assert r.amount_fen > 0 and min(r.goods.values(), default=0) >= 0 and r.shipping_fen >= 0, f"T1: {r}"
                assert set(r.goods) <= {i.sku for i in o.items}, f"E10: refund {r.key} for an item not on the order"
            assert sum(1 for r in o.refunds if r.kind is RefundKind.GROUP_FAILURE) <= 1, f"G4: {o.id} refunded twice"

    @invariant()
    def refund_keys_are_unique(self) -> None:
        keys = [r.key for o in self.orders for r in o.refunds]
        assert len(keys) == len(set(keys)), f"F1: duplicate refund keys {keys}"

    @invariant()
    def one_open_case_per_order(self) -> None:
        for o in self.orders:
            open_cases = [c.id for c in o.cases if not c.is_closed]
            assert len(open_cases) <= 1, f"E9: {o.id} has open cases {open_cases}"

    @invariant()
    def closed_cases_never_change(self) -> None:
        for o in self.orders:
            for c in o.cases:
                if not c.is_closed:
                    continue
                key = (o.id, c.id)
                if key not in self.closed:
                    assert c.close_reason is not None and c.closed_at is not None and not c.timers()
                    self.closed[key] = copy.deepcopy(c)
                else:
                    assert c == self.closed[key], f"closed case {c.id} changed"

    @invariant()
    def cancellations_within_limit(self) -> None:
        for o in self.orders:
            assert 0 <= o.buyer_cancellations <= self.policy.max_buyer_cancellations, f"E8: {o.id}"

    @invariant()
    def events_are_attributed(self) -> None:
        events: list[Event] = [e for o in self.orders for e in o.pending_events]
        events += [e for g in self.groups for e in g.pending_events]
        for e in events:
            assert isinstance(e.actor, Actor), f"T2: {e.kind} has no actor"
            assert e.rules and set(e.rules) <= RULE_IDS, f"T2: {e.kind} cites {e.rules}"
            assert _aware(e.at), f"T0: {e.kind} at a naive instant"
            assert START <= e.at <= self.now, f"T0: {e.kind} at {e.at}, now is {self.now}"

    @invariant()
    def cases_can_move_on(self) -> None:
        for o in self.orders:
            for c in o.cases:
                if c.status is CaseStatus.REFUND_PENDING:
                    assert any(r.status is RefundStatus.PENDING for r in c.refunds(o)), f"F1: {c.id} waits for no refund"
                elif c.status not in (CaseStatus.CLOSED, CaseStatus.PLATFORM_REVIEW):
                    assert c.deadline is not None, f"S1: {c.id} is {c.status} without a deadline"
                if c.status is CaseStatus.AWAITING_MERCHANT_RECEIPT and c.deadline is not None:
                    assert c.return_delivered_at is not None
                    assert c.deadline.due_at - c.return_delivered_at <= timedelta(hours=LAW_REFUND_BOUND_HOURS), "M6: law bound"

    @invariant()
    def outcomes_match_the_money(self) -> None:
        for o in self.orders:
            if o.status is OrderStatus.CANCELLED:
                assert o.remaining_fen == 0, f"E2/G4: cancelled order {o.id} keeps {o.remaining_fen}"
            elif o.status in (OrderStatus.AWAITING_SHIPMENT, OrderStatus.SHIPPED):
                assert o.remaining_fen > 0, f"E2/E3: {o.id} refunded in full but still {o.status} (it must not ship)"
            for c in o.cases:
                refunds = c.refunds(o)
                reimbursed = sum(r.return_shipping_fen for r in refunds)
                if reimbursed:
                    assert c.return_shipping_payer is not None and c.return_shipping_payer.value == "merchant", f"M3: {c.id}"
                    assert reimbursed <= min(c.return_shipping_fee_fen, self.policy.return_shipping_cap_fen), f"M3: {c.id}"
                if c.close_reason is not None and c.close_reason.value == "cancelled":
                    assert not refunds and c.return_shipped_at is None and c.replacement_shipped_at is None, (
                        f"C1: {c.id} was cancelled after money or goods moved")
                if c.close_reason is not None and c.close_reason.value == "refunded":
                    assert refunds and all(r.status is RefundStatus.SETTLED for r in refunds), f"F1: {c.id} closed unpaid"

    @invariant()
    def groups_are_consistent(self) -> None:
        for g in self.groups:
            members = self.members(g)
            assert {o.id for o in members} == set(g.member_ids), f"G1: {g.id} members"
            if g.status is GroupStatus.PENDING:
                assert all(o.status is OrderStatus.GROUP_PENDING for o in members), f"G2: {g.id}"
                assert all(not o.cases for o in members), f"E1: a case on pending group {g.id}"
            else:
                assert all(o.status is not OrderStatus.GROUP_PENDING for o in members), f"G3/G4: {g.id}"


Marketplace.TestCase.settings = settings(
    max_examples=MAX_EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
    print_blob=True,
)
TestMarketplace = Marketplace.TestCase
