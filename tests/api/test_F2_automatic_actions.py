"""RULEBOOK F2 (automatic actions never block one another) with E10 (amounts taken when the action fires).

An action that fails is reported by ``POST /v1/clock/advance`` in ``failed`` while every other one applies (200);
it is kept with its tries and retried with a growing wait, then parked for the platform
(``GET /v1/automatic-actions/stuck``), which may send it back (``POST /v1/automatic-actions/{id}/retry``).
Automatic refunds take what is left to refund when they fire: less when money was refunded beside the case (K2 now pays through it) paid part
meanwhile, nothing — and the case closes, citing E10 — when it paid everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from helpers import (
    act,
    advance_to,
    assert_closed,
    assert_money_invariant,
    days,
    delivered_order,
    event,
    events,
    get_case,
    get_group,
    get_order,
    group_order,
    hours,
    open_case,
    problem,
    try_act,
)
from sqlalchemy import select

from aftersales.domain import cases as dcases
from aftersales.domain.errors import RuleViolation
from aftersales.domain.events import Actor
from aftersales.domain.money import split_proportionally
from aftersales.domain.orders import Payer, RefundKind
from aftersales.service.context import UnitOfWork, run
from aftersales.service.payments import settle_new_refunds
from aftersales.store import tables as t
from aftersales.store.timers import BACKOFF, MAX_ATTEMPTS


# --- a failing action, injected ------------------------------------------------------------------------------
class Breaker:
    """Makes the M1 automatic approval of the cases of chosen orders fail (as a typed E10 refusal, or as an
    unexpected error), the way an action fails that cannot apply; every other case is untouched."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.orders: dict[str, Exception] = {}
        original = dcases._AUTO_HANDLERS[dcases.Auto.AUTO_APPROVE]

        def approve(case: Any, order: Any, timer: Any, policy: Any) -> Any:
            if order.id in self.orders:
                raise self.orders[order.id]
            return original(case, order, timer, policy)

        monkeypatch.setitem(dcases._AUTO_HANDLERS, dcases.Auto.AUTO_APPROVE, approve)


@pytest.fixture
def breaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Breaker]:
    yield Breaker(monkeypatch)


def _timer(api: Any, case_id: str, action: str) -> Any:
    with api.client.app.state.ctx.engine.connect() as conn:
        return conn.execute(select(t.timers).where(t.timers.c.subject_id == case_id, t.timers.c.action == action)).one()


def _stuck(api: Any, who: str = "platform") -> Any:
    return api.get("/v1/automatic-actions/stuck", who=who)


# --- F2 ------------------------------------------------------------------------------------------------------
def test_F2_one_failing_action_does_not_stop_other_cases(api: Any, breaker: Breaker) -> None:
    # Shop mA: a refund whose automatic approval (M1, 48 h) will fail.
    delivered_order(api, "bad")
    bad = open_case(api, "bad", "refund_only", "quality_problem")
    breaker.orders["bad"] = RuleViolation("E10", "Everything paid for this order has already been refunded.")
    # Shop mB: a refund approved automatically (M1) …
    delivered_order(api, "m1", merchant="mB", buyer="bY")
    m1 = open_case(api, "m1", "refund_only", "quality_problem", who="buyer_y")
    # … a return the buyer never ships (M5) …
    delivered_order(api, "m5", merchant="mB", buyer="bY")
    m5 = open_case(api, "m5", "return_refund", "quality_problem", who="buyer_y")
    act(api, m5["id"], "approve", who="merchant_b")
    # … and a group that never forms (G4, 24 h).
    group_order(api, "g1", "G1", size=3, merchant="mB", buyer="bY")

    out = api.advance(days(9))

    assert out["fired"] >= 4
    assert [(f["case_id"], f["action"], f["rule"]) for f in out["failed"]] == [(bad["id"], "auto_approve", "M1")]
    failure = out["failed"][0]
    assert failure["error"].startswith("E10: Everything paid")
    assert (failure["attempts"], failure["parked"]) == (1, False)
    assert get_case(api, m1["id"])["status"] == "closed" and get_order(api, "m1")["refunded_fen"] == 10000
    assert_closed(get_case(api, m5["id"]), "buyer_overdue")
    assert get_group(api, "G1")["status"] == "failed" and get_order(api, "g1")["status"] == "cancelled"
    # The failed case is untouched, its reminders (applied before it in the same aggregate) were not lost.
    still = get_case(api, bad["id"])
    assert still["status"] == "awaiting_merchant" and get_order(api, "bad")["refunded_fen"] == 0
    assert [e["kind"] for e in events(api, bad["id"])].count("remind_merchant") == 2
    row = _timer(api, bad["id"], "auto_approve")
    assert row.attempts == 1 and row.last_error == failure["error"] and row.stuck_at is None
    assert row.next_try_at == api.now() + BACKOFF[0]


def test_F2_an_unexpected_error_is_recorded_by_its_class_only(api: Any, breaker: Breaker) -> None:
    delivered_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "quality_problem")
    breaker.orders["o1"] = KeyError("internal detail that must not leak")
    out = api.advance(hours(48))
    assert [(f["case_id"], f["error"]) for f in out["failed"]] == [(case["id"], "KeyError")]


def test_F2_backoff_then_parked_listed_and_retried_by_the_platform(api: Any, breaker: Breaker) -> None:
    delivered_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "quality_problem")
    breaker.orders["o1"] = RuleViolation("M1", "The shop's payment route is closed.")
    assert [f["attempts"] for f in api.advance(hours(48))["failed"]] == [1]
    # Not tried again before its wait is over …
    assert api.advance(int(BACKOFF[0].total_seconds()) - 1)["failed"] == []
    # … then tried at each wait's end, with a growing wait, until it is parked.
    for attempt in range(2, MAX_ATTEMPTS + 1):
        row = _timer(api, case["id"], "auto_approve")
        assert row.next_try_at is not None
        out = advance_to(api, row.next_try_at)
        [failure] = out["failed"]
        assert failure["attempts"] == attempt
        assert failure["parked"] is (attempt == MAX_ATTEMPTS)
        if attempt < MAX_ATTEMPTS:
            assert failure["next_try_at"] == (api.now() + BACKOFF[min(attempt, len(BACKOFF)) - 1]).isoformat()
    assert failure["next_try_at"] is None
    # Parked: no longer tried, and it delays nobody.
    assert api.advance(days(30))["failed"] == []
    assert get_case(api, case["id"])["status"] == "awaiting_merchant"

    page = _stuck(api).json()
    assert page["total"] == 1
    [item] = page["items"]
    assert (item["case_id"], item["action"], item["rule"], item["attempts"]) == (case["id"], "auto_approve", "M1", MAX_ATTEMPTS)
    assert item["error"] == "M1: The shop's payment route is closed." and item["merchant_id"] == "mA"
    assert item["case_status"] == "awaiting_merchant"
    for who in ("merchant_a", "buyer_x"):
        problem(_stuck(api, who=who), 403)
        problem(api.post(f"/v1/automatic-actions/{item['id']}/retry", who=who), 403)
    problem(api.post("/v1/automatic-actions/999999/retry"), 404)

    # The cause is fixed; the platform sends it back and the next pass applies it.
    del breaker.orders["o1"]
    r = api.post(f"/v1/automatic-actions/{item['id']}/retry")
    assert r.status_code == 200, r.text
    assert r.json() == {"id": item["id"], "parked": False, "next_try_at": None}
    problem(api.post(f"/v1/automatic-actions/{item['id']}/retry"), 404)  # no longer parked
    assert _stuck(api).json() == {"items": [], "next_cursor": None, "total": 0}
    out = api.advance(0)
    assert out["failed"] == [] and out["fired"] == 1
    assert_closed(get_case(api, case["id"]), "refunded")
    assert get_order(api, "o1")["refunded_fen"] == 10000


def test_F2_a_parked_action_of_a_case_that_moved_on_is_no_longer_listed(api: Any, breaker: Breaker) -> None:
    delivered_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "quality_problem")
    breaker.orders["o1"] = RuntimeError("boom")
    api.advance(hours(48))
    for _ in range(MAX_ATTEMPTS):
        api.advance(days(1))
    assert _stuck(api).json()["total"] == 1
    act(api, case["id"], "approve")  # the merchant acts at last: the parked action is stale
    assert _stuck(api).json()["total"] == 0


# --- F2 + E10: amounts at fire time -------------------------------------------------------------------------
def _complaint_refund(api: Any, order_id: str, amount_fen: int) -> None:
    """Money refunded on the order beside its open case, spread over goods and shipping.

    Since K2 remedies are paid through the open case (test_K2_refund_remedy_pays_through_open_case_…), no API route
    refunds beside a case any more: this writes such a refund as an order stored before that fix would carry it (the
    order's own ``issue_refund``, settled, through one unit of work), so that F2's fire-time amounts stay proven."""
    ctx = api.client.app.state.ctx

    def cmd(uow: UnitOfWork) -> None:
        order = uow.tracker.get_order(order_id, lock=True)
        skus = [i.sku for i in order.items]
        weights = [order.remaining_goods(sku) for sku in skus] + [order.remaining_shipping_fen]
        shares = split_proportionally(amount_fen, weights)
        order.issue_refund(key=f"test:{order_id}:beside", kind=RefundKind.COMPLAINT, payer=Payer.PLATFORM, rule="K2",
                           now=uow.now, actor=Actor.PLATFORM, goods=dict(zip(skus, shares[:-1], strict=True)),
                           shipping_fen=shares[-1])
        settle_new_refunds(order, ctx.gateway, uow.now)

    run(ctx, cmd)


def test_F2_E10_automatic_refund_takes_what_is_left(api: Any) -> None:
    delivered_order(api, "o1")  # 10000 + 800 shipping
    case = open_case(api, "o1", "refund_only", "quality_problem")
    assert case["refund_fen"] == 10000
    _complaint_refund(api, "o1", 3000)  # split over goods and shipping: 2778 + 222
    left = 10000 - 2778
    # A person is never silently capped (T1): the shop's own approval of the 10000 asked is refused.
    problem(try_act(api, case["id"], "approve"), 422, "E10")

    out = api.advance(hours(48))
    assert out["failed"] == []
    done = get_case(api, case["id"])
    assert_closed(done, "refunded")
    auto = event(events(api, case["id"]), "auto_approve")
    assert "E10" in auto["rules"] and "M1" in auto["rules"]
    assert (auto["data"]["requested_fen"], auto["data"]["left_fen"], auto["data"]["refunded_fen"]) == (10000, left, left)
    assert auto["data"]["reason"] == "less_left"
    order = assert_money_invariant(api, "o1")
    assert order["refunded_fen"] == 3000 + left
    assert [r["refund_fen"] for r in order["refunds"] if r.get("case_id") == case["id"]] == [left]


def test_F2_E10_automatic_refund_with_nothing_left_closes_citing_E10(api: Any) -> None:
    delivered_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "quality_problem")
    _complaint_refund(api, "o1", 10800)  # everything paid, shipping included

    out = api.advance(hours(48))
    assert out["failed"] == []
    done = get_case(api, case["id"])
    assert_closed(done, "refunded")
    auto = event(events(api, case["id"]), "auto_approve")
    assert auto["rules"] == ["M1", "E10"] and auto["to_status"] == "closed"
    assert (auto["data"]["requested_fen"], auto["data"]["left_fen"], auto["data"]["refunded_fen"]) == (10000, 0, 0)
    assert auto["data"]["reason"] == "nothing_left" and "E10" in auto["data"]["explanation"]
    order = assert_money_invariant(api, "o1")
    assert order["refunded_fen"] == 10800 and all(r.get("case_id") != case["id"] for r in order["refunds"])


def test_F2_E10_advance_compensation_pays_what_is_left(api: Any) -> None:
    """P2: a refund ruling the shop does not pay in time is advanced by the platform — what is left of it then."""
    delivered_order(api, "o1")
    case = open_case(api, "o1", "return_refund", "quality_problem")  # merchant's responsibility: shipping included
    act(api, case["id"], "reject", {"reason": "Used."})
    act(api, case["id"], "escalate", {"reason": "It arrived broken."})
    act(api, case["id"], "rule", {"outcome": "refund", "refund_fen": 6000, "rationale": "Broken on arrival."})
    _complaint_refund(api, "o1", 10800 - 1000)  # leaves 1000 of the order, some of it shipping

    out = api.advance(hours(25))
    assert out["failed"] == []
    auto = event(events(api, case["id"]), "advance_compensation")
    assert auto["rules"][:2] == ["P2", "P1"] and "E10" in auto["rules"]
    assert (auto["data"]["requested_fen"], auto["data"]["left_fen"], auto["data"]["refunded_fen"]) == (6000, 1000, 1000)
    order = assert_money_invariant(api, "o1")
    assert order["refunded_fen"] <= order["paid_fen"]
    assert advance_to(api, api.now() + timedelta(seconds=1))["failed"] == []
