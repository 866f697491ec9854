"""DESIGN "Guards", as a property: in every reachable state, ``allowed_actions`` is exactly what succeeds.

Two Hypothesis ``RuleBasedStateMachine``s drive random reachable states of the pure domain:

- a case (every type a delivered, shipped or unpaid-for-shipment order allows, every reason eligibility offers, opened
  by the buyer or by the shop with consent) through listed actions by any actor, timers that fall due, refunds that
  settle, the order shipping or being delivered meanwhile, and new cases once one closes (E8 counts);
- a complaint (K2) through listed verbs as time passes across its limits.

After every step, for every actor and every action: a listed action, with valid parameters, succeeds (tried on a
copy); an action not listed is refused with a typed error — ``StateConflict`` (409), ``RuleViolation`` (422) or
``NotPermitted`` (403) — carrying a RULEBOOK id, and changes nothing.

Lengths follow ``AFTERSALES_STATEFUL`` (ci, long, soak) like ``test_state_machine.py``.
"""

from __future__ import annotations

import copy
import os
from datetime import datetime, timedelta
from typing import Any

from factories import DAY_3, PAID, SHIPPED, categories, delivered_order, paid_order, shipped_order
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from aftersales.domain import complaints as dc
from aftersales.domain.cases import RETURN_TYPES, Action, Case, act, fire, taken_as
from aftersales.domain.eligibility import evaluate
from aftersales.domain.errors import DomainError, NotPermitted, RuleViolation, StateConflict
from aftersales.domain.events import Actor
from aftersales.domain.opening import open_case
from aftersales.domain.orders import Order, OrderAction, OrderStatus, RefundStatus
from aftersales.domain.policy import Policy, validate

_PROFILES = {"ci": (80, 20), "long": (1_000, 50), "soak": (10_000, 80)}
_PROFILE = os.environ.get("AFTERSALES_STATEFUL", "ci")
if _PROFILE not in _PROFILES:
    raise ValueError(f"AFTERSALES_STATEFUL must be one of {', '.join(_PROFILES)}, not {_PROFILE!r}")
MAX_EXAMPLES = int(os.environ.get("AFTERSALES_STATEFUL_EXAMPLES", _PROFILES[_PROFILE][0]))
STEPS = int(os.environ.get("AFTERSALES_STATEFUL_STEPS", _PROFILES[_PROFILE][1]))

PEOPLE = (Actor.BUYER, Actor.MERCHANT, Actor.PLATFORM, Actor.SYSTEM)
TYPED = (StateConflict, RuleViolation, NotPermitted)
CATS = categories()
POLICIES = (Policy(), validate({"max_buyer_cancellations": 1, "return_shipping_cap_fen": 500}))
IDX = st.integers(0, 63)
DELTAS = st.sampled_from([timedelta(minutes=5), timedelta(hours=3), timedelta(hours=30), timedelta(days=4)])
TEXT = "As the photos show"


def case_params(action: Action, case: Case, order: Order, v: int) -> dict[str, Any]:
    """Valid parameters for ``action`` (``v`` picks among the valid variants): what a careful client sends."""
    most = case.max_refund_fen(order)
    if action is Action.APPROVE:
        return {"return_shipping_payer": ["merchant", "buyer"][v % 2]} if case.type in RETURN_TYPES and v % 3 else {}
    if action in (Action.REJECT, Action.REJECT_RETURN, Action.ESCALATE):
        return {"reason": TEXT}
    if action is Action.OFFER_PARTIAL_REFUND:
        return {"refund_fen": max(1, [most, most // 2, 1][v % 3])}
    if action is Action.SHIP_RETURN:
        return {"carrier": "YTO", "tracking_no": "YT1", "shipping_fee_fen": [None, 0, 800, 2600][v % 4]}
    if action is Action.SHIP_REPLACEMENT:
        return {"carrier": "SF", "tracking_no": "SF1"}
    if action is Action.RESUBMIT:
        return [{}, {"description": TEXT}][v % 2]
    if action is Action.RULE:
        if most > 0 and v % 3:
            return {"outcome": "refund", "rationale": TEXT, **({"refund_fen": max(1, most // 2)} if v % 2 else {})}
        return {"outcome": "reject", "rationale": TEXT}
    if action is Action.ADVANCE_COMPENSATE:
        return {"reason": ["shop_closed", "merchant_unreachable"][v % 2]}
    return {}


class CaseGuards(RuleBasedStateMachine):
    """One order and its cases; the clock only moves forward."""

    def __init__(self) -> None:
        super().__init__()
        self.policy = Policy()
        self.order: Order = paid_order()
        self.now = PAID
        self.v = 0
        self.seq = 0

    @property
    def case(self) -> Case | None:
        return self.order.open_case()

    def _open(self, k: int, r: int, merchant: bool) -> None:
        actor = Actor.MERCHANT if merchant else Actor.BUYER
        options = [o for o in evaluate(self.order, actor=actor, now=self.now, policy=self.policy, categories=CATS).options
                   if o.allowed and o.reasons]
        if not options or self.order.open_case() is not None:
            return
        option = options[k % len(options)]
        self.seq += 1
        try:
            open_case(self.order, case_id=f"c{self.seq}", actor=actor, case_type=option.type,
                      reason=option.reasons[r % len(option.reasons)], now=self.now, policy=self.policy, categories=CATS,
                      buyer_consent=True)
        except DomainError as exc:  # e.g. E8: the buyer cancelled too often
            note(f"not opened: {exc}")

    @initialize(where=st.sampled_from(["paid", "shipped", "delivered", "delivered", "delivered"]),
                pol=st.sampled_from(POLICIES), insured=st.booleans(), k=IDX, r=IDX, merchant=st.booleans())
    def start(self, where: str, pol: Policy, insured: bool, k: int, r: int, merchant: bool) -> None:
        self.policy = pol
        if where == "paid":
            self.order, self.now = paid_order(insured=insured), PAID + timedelta(hours=1)
        elif where == "shipped":
            self.order, self.now = shipped_order(insured=insured), SHIPPED + timedelta(hours=1)
        else:
            self.order, self.now = delivered_order(insured=insured), DAY_3
        self._open(k, r, merchant)

    # --- moves ---------------------------------------------------------------------------------------------
    @precondition(lambda self: self.case is not None)
    @rule(k=IDX, v=IDX)
    def take_a_listed_action(self, k: int, v: int) -> None:
        case = self.case
        assert case is not None
        listed = [(a, who) for who in PEOPLE for a in case.allowed_actions(who, self.order, self.policy)]
        if not listed:
            return
        action, who = listed[k % len(listed)]
        params = case_params(action, case, self.order, v)
        note(f"{who} {action} {params} on {case.status}")
        act(self.order, case.id, action, who, self.now, self.policy, **params)
        self.v = v

    @precondition(lambda self: self.case is None)
    @rule(k=IDX, r=IDX, merchant=st.booleans(), wait=DELTAS)
    def open_another(self, k: int, r: int, merchant: bool, wait: timedelta) -> None:
        self.now += wait
        self._open(k, r, merchant)

    @rule(delta=DELTAS)
    def time_passes(self, delta: timedelta) -> None:
        self.now += delta
        self._run_timers()

    @precondition(lambda self: self.case is not None and self.case.deadline is not None)
    @rule()
    def until_the_deadline(self) -> None:
        case = self.case
        assert case is not None and case.deadline is not None
        self.now = max(self.now, case.deadline.due_at)
        self._run_timers()

    def _run_timers(self) -> None:
        for _ in range(50):
            due = sorted(((t.due_at, c.id, t) for c in self.order.cases for t in c.timers() if t.due_at <= self.now),
                         key=lambda d: (d[0], d[1]))
            if not due:
                return
            _, case_id, t = due[0]
            assert fire(self.order, case_id, t.action, t.stage, self.now, self.policy, t.due_at)

    @precondition(lambda self: any(r.status is RefundStatus.PENDING for r in self.order.refunds))
    @rule(k=IDX)
    def refund_settles(self, k: int) -> None:
        pending = [r for r in self.order.refunds if r.status is RefundStatus.PENDING]
        self.order.settle_refund(pending[k % len(pending)].key, self.now)

    @precondition(lambda self: self.order.status in (OrderStatus.AWAITING_SHIPMENT, OrderStatus.SHIPPED))
    @rule()
    def the_order_moves_on(self) -> None:
        """The shop ships meanwhile (M2: a refund asked before shipment stays unrefusable) or the carrier delivers."""
        if moves := self.order.allowed_actions(Actor.MERCHANT):
            if moves[0] is OrderAction.SHIP:
                self.order.ship(Actor.MERCHANT, "SF", "SF9", self.now)
            else:
                self.order.deliver(Actor.SYSTEM, self.now, self.now)

    # --- the property --------------------------------------------------------------------------------------
    @invariant()
    def listed_actions_succeed_and_the_others_are_refused_with_a_rule(self) -> None:
        before = copy.deepcopy(self.order)
        for case in list(self.order.cases):
            for who in PEOPLE:
                listed = set(case.allowed_actions(who, self.order, self.policy))
                for action in Action:
                    params = case_params(action, case, self.order, self.v)
                    # An alias (accept_offer answering a refusal, M2) is listed when the act it is taken as is.
                    if taken_as(action, case, self.order, self.policy) in listed:  # tried on a copy: it must succeed
                        try:
                            act(copy.deepcopy(self.order), case.id, action, who, self.now, self.policy, **params)
                        except DomainError as exc:
                            raise AssertionError(f"{action} by {who} was listed on {case.status} but refused: {exc}") from exc
                        continue
                    try:  # tried on the order itself: it must be refused, and change nothing (checked below)
                        act(self.order, case.id, action, who, self.now, self.policy, **params)
                    except TYPED as exc:
                        assert exc.rule, f"{action} by {who}: a refusal without a rule id"
                    else:
                        raise AssertionError(f"{action} by {who} on {case.status} succeeded but was not listed")
        assert self.order == before, "a refused action changed the order"


def complaint_params(verb: dc.Verb, v: int) -> dict[str, Any]:
    if verb is dc.Verb.REJECT:
        return {"reason": TEXT}
    if verb is dc.Verb.RESPOND:
        return {"answer": TEXT}
    if verb is dc.Verb.RESOLVE:
        if v % 2:
            return {"outcome": dc.Outcome.UPHELD, "rationale": TEXT, "remedies": [dc.Remedy(dc.RemedyType.PENALTY, 500)]}
        return {"outcome": dc.Outcome.NOT_UPHELD, "rationale": TEXT, "remedies": []}
    return {}


def do(c: dc.Complaint, verb: dc.Verb, who: Actor, now: datetime, policy: Policy, params: dict[str, Any]) -> None:
    getattr(c, verb.value)(who, now, policy, **params)


class ComplaintGuards(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = DAY_3
        self.policy = Policy()
        self.v = 0
        subject = dc.Subject(buyer_id="b1", order_id="o1", order_merchant_id="m1", order_buyer_id="b1")
        self.c = dc.file_complaint(id="cp1", subject=subject, channel=dc.Channel.IN_APP_CHAT,
                                   category=dc.Category.AFTER_SALES_NOT_HANDLED, description="no answer", actor=Actor.BUYER,
                                   now=self.now, policy=self.policy)

    @rule(k=IDX, v=IDX)
    def take_a_listed_verb(self, k: int, v: int) -> None:
        listed = [(verb, who) for who in PEOPLE for verb in self.c.allowed_actions(who, self.now, self.policy)]
        if listed:
            verb, who = listed[k % len(listed)]
            do(self.c, verb, who, self.now, self.policy, complaint_params(verb, v))
        self.v = v

    @rule(delta=st.sampled_from([timedelta(minutes=30), timedelta(hours=20), timedelta(hours=47, minutes=59),
                                 timedelta(hours=48)]))
    def time_passes(self, delta: timedelta) -> None:
        self.now += delta

    @invariant()
    def listed_verbs_succeed_and_the_others_are_refused_with_a_rule(self) -> None:
        for who in PEOPLE:
            listed = set(self.c.allowed_actions(who, self.now, self.policy))
            for verb in dc.Verb:
                trial = copy.deepcopy(self.c)
                if verb in listed:
                    do(trial, verb, who, self.now, self.policy, complaint_params(verb, self.v))
                    continue
                try:
                    do(trial, verb, who, self.now, self.policy, complaint_params(verb, self.v))
                except TYPED as exc:
                    assert exc.rule and trial == self.c, f"{verb} by {who}: {exc}"
                else:
                    raise AssertionError(f"{verb} by {who} on {self.c.status} succeeded but was not listed")


_SETTINGS = settings(max_examples=MAX_EXAMPLES, stateful_step_count=STEPS, deadline=None, print_blob=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
CaseGuards.TestCase.settings = _SETTINGS
ComplaintGuards.TestCase.settings = _SETTINGS
TestCaseGuards = CaseGuards.TestCase
TestComplaintGuards = ComplaintGuards.TestCase
