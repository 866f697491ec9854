"""Stateful property test of RULEBOOK F2 with E10, K2, P1/P2, through the service layer, on SQLite and PostgreSQL.

A Hypothesis ``RuleBasedStateMachine`` interleaves orders (delivered or not), refund and return cases, the shop's
answers, escalation and platform rulings (P1) with the platform's own advance compensation (P2), complaints
resolved with refund remedies (K2) that take money back beside an open case, automatic actions made to fail
(an order marked broken: its automatic approval and advance compensation raise) and clock moves that apply
every due deadline (``deadlines.advance_clock``). After every step:

- F2: every deadline due by now either fired (no live timer of it is left due) or waits for its retry
  (``next_try_at`` later than now) or is parked (``stuck_at``) — and every open case whose own deadline has passed
  has such a row; a clock move never raises, and what it reports failed is exactly what was made to fail;
- E10: no order's refunded exceeds what was paid;
- D2: the ledger audit (service/ledger.py ``audit``) is clean.

Length: ``AFTERSALES_STATEFUL`` = ``ci`` (default, a few seconds per database), ``long`` or ``soak``; or
``AFTERSALES_STATEFUL_EXAMPLES`` / ``AFTERSALES_STATEFUL_STEPS``.
"""

from __future__ import annotations

import itertools
import os
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import and_, func, or_, select

from aftersales.domain import cases as dcases
from aftersales.domain.errors import DomainError
from aftersales.service import cases as case_service
from aftersales.service import complaints, deadlines, orders, setup
from aftersales.service.context import PLATFORM, Context, Principal, UnitOfWork
from aftersales.service.errors import ServiceError
from aftersales.service.ledger import audit
from aftersales.store import tables as t
from aftersales.testing import ensure_merchant

_PROFILES = {"ci": (15, 30), "long": (100, 40), "soak": (1_000, 60)}
_PROFILE = os.environ.get("AFTERSALES_STATEFUL", "ci")
if _PROFILE not in _PROFILES:
    raise ValueError(f"AFTERSALES_STATEFUL must be one of {', '.join(_PROFILES)}, not {_PROFILE!r}")
MAX_EXAMPLES = int(os.environ.get("AFTERSALES_STATEFUL_EXAMPLES", _PROFILES[_PROFILE][0]))
STEPS = int(os.environ.get("AFTERSALES_STATEFUL_STEPS", _PROFILES[_PROFILE][1]))

MERCHANT = "mF2"
SHOP = Principal("merchant", MERCHANT)
#: Orders whose automatic refunds fail (the failure F2 must isolate).
BROKEN: set[str] = set()
_EXAMPLE = itertools.count()


class Broken(Exception):
    """An automatic action that cannot apply (injected)."""


def _breakable(action: dcases.Auto) -> Any:
    original = dcases._AUTO_HANDLERS[action]

    def handler(case: Any, order: Any, timer: Any, policy: Any) -> Any:
        if order.id in BROKEN:
            raise Broken(order.id)
        return original(case, order, timer, policy)

    return handler


def _refused(call: Any, *args: Any, **kw: Any) -> Any:
    """Call a service function; a typed refusal is a legitimate answer (and changes nothing)."""
    try:
        return call(*args, **kw)
    except (DomainError, ServiceError):
        return None


class Deadlines(RuleBasedStateMachine):
    ctx: Context

    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"x{next(_EXAMPLE)}"
        self.n = 0
        self.moved = False

    # --- the marketplace ---------------------------------------------------------------------------------------
    @rule(target=orders, price=st.integers(100, 20_000), shipping=st.sampled_from([0, 800]), delivered=st.booleans(),
          kind=st.sampled_from([None, "refund_only", "return_refund"]), broken=st.booleans())
    def new_order(self, price: int, shipping: int, delivered: bool, kind: str | None, broken: bool) -> str:
        """A paid order (shipped and delivered, or not), with the buyer's case opened at once or not; its automatic
        refunds made to fail (``broken``) or not."""
        self._still()
        self.n += 1
        oid, buyer = f"{self.prefix}-o{self.n}", f"{self.prefix}-b{self.n % 2}"
        orders.create_order(self.ctx, PLATFORM, {
            "id": oid, "merchant_id": MERCHANT, "buyer_id": buyer, "paid_at": self.ctx.now() - timedelta(hours=1),
            "shipping_fee_fen": shipping, "items": [{"sku": "s1", "title": "Teapot", "category": "general",
                                                     "quantity": 1, "unit_price_fen": price}]})
        if delivered:
            orders.ship_order(self.ctx, SHOP, oid, "SF", "T1")
            orders.deliver_order(self.ctx, SHOP, oid, None)
        if kind is not None:
            self.open_case(oid, kind)
        if broken:
            BROKEN.add(oid)
        return oid

    @initialize(target=orders, broken=st.booleans())
    def a_refund_waiting_for_the_shop(self, broken: bool) -> str:
        """Every run starts with a refund the shop has not answered (M1), its automatic approval failing or not."""
        return self.new_order(10_000, 800, True, "refund_only", broken)

    def _buyer(self, oid: str) -> Principal:
        with self.ctx.engine.connect() as conn:
            return Principal("buyer", conn.execute(select(t.orders.c.buyer_id).where(t.orders.c.id == oid)).scalar_one())

    @rule(oid=orders, kind=st.sampled_from(["refund_only", "return_refund"]))
    def open_case(self, oid: str, kind: str) -> None:
        self._still()
        _refused(case_service.open_case, self.ctx, self._buyer(oid),
                 {"order_id": oid, "type": kind, "reason": "quality_problem"}, lang="en")

    def _act(self, who: Principal, oid: str, action: str, **params: Any) -> None:
        """``action`` on the order's latest case, if it has one."""
        with self.ctx.engine.connect() as conn:
            cid = conn.execute(select(t.cases.c.id).where(t.cases.c.order_id == oid)
                               .order_by(t.cases.c.opened_at.desc(), t.cases.c.id.desc()).limit(1)).scalar()
        if cid is not None:
            _refused(case_service.act, self.ctx, who, cid, action, params, if_match=None, lang="en")

    @rule(oid=orders)
    def shop_refuses_and_buyer_escalates(self, oid: str) -> None:
        self._still()
        self._act(SHOP, oid, "reject", reason="Used.")
        self._act(self._buyer(oid), oid, "escalate", reason="It arrived broken.")

    @rule(oid=orders, share=st.sampled_from([None, 1, 2]))
    def platform_rules_a_refund(self, oid: str, share: int | None) -> None:
        """P1: all that is left (None), or a part of the order's price, for the shop to pay within 24 h (P2)."""
        self._still()
        amount = None if share is None else 50 * share
        self._act(PLATFORM, oid, "rule", outcome="refund", rationale="Broken.", **({"refund_fen": amount} if amount else {}))

    @rule(oid=orders)
    def platform_advances_compensation(self, oid: str) -> None:
        self._still()
        self._act(PLATFORM, oid, "advance_compensate", reason="merchant_unreachable")

    @rule(oid=orders)
    def shop_approves(self, oid: str) -> None:
        self._still()
        self._act(SHOP, oid, "approve")

    @rule(oid=orders, amount=st.sampled_from([1, 100, 5_000, 20_800]))
    def complaint_refund(self, oid: str, amount: int) -> None:
        """K2: an upheld complaint whose remedy refunds money on the order beside any open case."""
        self._still()
        filed = _refused(complaints.file, self.ctx, self._buyer(oid), {
            "channel": "in_app_chat", "category": "after_sales_not_handled", "description": "Ignored.", "order_id": oid})
        if filed is None:
            return
        cid = filed["id"]
        for who, verb, params in ((PLATFORM, "accept", {}), (SHOP, "respond", {"answer": "No."}),
                                  (PLATFORM, "resolve", {"outcome": "upheld", "rationale": "Ignored.",
                                                         "remedies": [{"type": "refund", "amount_fen": amount}]})):
            if _refused(complaints.act, self.ctx, who, cid, verb, params, if_match=None) is None:
                return

    @rule(oid=orders)
    def break_automatic_refunds(self, oid: str) -> None:
        self._still()
        BROKEN.add(oid)

    @rule(oid=orders)
    def mend_automatic_refunds(self, oid: str) -> None:
        self._still()
        BROKEN.discard(oid)

    @rule(moves=st.lists(st.sampled_from([0, 59, 3_600, 3 * 3_600, 25 * 3_600, 49 * 3_600, 8 * 86_400]),
                         min_size=1, max_size=4))
    def move_clock(self, moves: list[int]) -> None:
        """Move the clock (a few times: a failed action is retried after its wait, parked after its last try),
        checking what each move reports."""
        for seconds in moves:
            now, done = deadlines.advance_clock(self.ctx, seconds)  # F2: never raises for a failing action
            for f in done.failed:
                assert f.subject == "case" and f.order_id in BROKEN, f"F2: {f} failed though nothing was broken"
                assert f.parked or (f.next_try_at is not None and f.next_try_at > now), f
                event("F2: an action parked" if f.parked else "F2: an action failed, to retry")
            if done.failed and done.fired:
                event("F2: actions applied beside a failing one")
            self.moved = True
            self.every_due_deadline_fired_or_waits_or_is_parked()

    def _still(self) -> None:
        """Any other step: a person's action may start a deadline due right now, applied by the next clock move."""
        self.moved = False

    # --- invariants ----------------------------------------------------------------------------------------------
    @invariant()
    def every_due_deadline_fired_or_waits_or_is_parked(self) -> None:
        if not self.moved:
            return
        with UnitOfWork(self.ctx, readonly=True) as uow:
            now, c, tm = uow.now, t.cases.c, t.timers.c
            live = or_(tm.subject != "case", tm.stage == c.stage)
            claimable = and_(tm.due_at <= now, tm.stuck_at.is_(None), or_(tm.next_try_at.is_(None), tm.next_try_at <= now))
            left = uow.conn.execute(select(tm.id, tm.subject_id, tm.action).outerjoin(
                t.cases, and_(tm.subject == "case", c.id == tm.subject_id)).where(claimable, live)).all()
            assert left == [], f"F2: due deadlines neither applied nor waiting nor parked: {left}"
            waiting = select(tm.id).where(tm.subject == "case", tm.subject_id == c.id, tm.stage == c.stage,
                                          or_(tm.stuck_at.is_not(None), tm.next_try_at > now)).exists()
            overdue = uow.conn.execute(select(c.id, c.due_action).where(
                c.status != "closed", c.due_at <= now, ~waiting)).all()
            assert overdue == [], f"F2: cases past their deadline without a retry or parked action: {overdue}"

    @invariant()
    def refunded_never_exceeds_paid_and_the_ledger_balances(self) -> None:
        with UnitOfWork(self.ctx, readonly=True) as uow:
            over = uow.conn.execute(select(func.count()).select_from(t.orders)
                                    .where(t.orders.c.refunded_fen > t.orders.c.paid_fen)).scalar_one()
            assert over == 0, "E10: an order refunded more than was paid"
            assert audit(uow) == [], "D2: the ledger audit found problems"

    def teardown(self) -> None:
        BROKEN.clear()


def test_F2_stateful_deadlines_never_jam(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    for action in (dcases.Auto.AUTO_APPROVE, dcases.Auto.ADVANCE_COMPENSATION, dcases.Auto.RETURN_TIMEOUT):
        monkeypatch.setitem(dcases._AUTO_HANDLERS, action, _breakable(action))
    ensure_merchant(ctx, MERCHANT, ctx.now())
    setup.put_category(ctx, PLATFORM, code="general", name="General", no_reason_return=True, statutory_exclusion=None,
                       after_sales_days=None, warranty_days=None)  # E4: an order names only created categories
    Deadlines.ctx = ctx
    run_state_machine_as_test(Deadlines, settings=settings(
        max_examples=MAX_EXAMPLES, stateful_step_count=STEPS, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
