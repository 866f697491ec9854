"""What-if replay in the domain alone (T0, M1, E4): no database — a history built by the domain, replayed by it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aftersales.domain import cases as dcases
from aftersales.domain import replay as dreplay
from aftersales.domain.catalog import CaseType, Reason
from aftersales.domain.events import Actor
from aftersales.domain.opening import open_case
from aftersales.domain.orders import Order, OrderItem, RefundStatus, new_order
from aftersales.domain.policy import Policy, override
from aftersales.store.codec import encode

PAID = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)
POLICY = Policy()


def _settle(order: Order, at: datetime) -> None:
    for r in order.refunds:
        if r.status is RefundStatus.PENDING:
            order.settle_refund(r.key, at)


def _history(merchant_answers_after: timedelta) -> dreplay.History:
    """Delivered, a refund asked for a quality problem, the merchant refuses after ``merchant_answers_after`` (or the
    M1 automatic approval fires first), the buyer stays silent (M2)."""
    order = new_order(id="o1", merchant_id="mA", buyer_id="bX", paid_at=PAID, shipping_fee_fen=0,
                      items=[OrderItem("s1", "Shirt", "apparel", 1, 10000)])
    order.ship(Actor.MERCHANT, "SF", "SF1", PAID + H)
    order.deliver(Actor.MERCHANT, PAID + 2 * H, PAID + 2 * H)
    opened = PAID + 3 * H
    open_case(order, case_id="c1", actor=Actor.BUYER, case_type=CaseType.REFUND_ONLY, reason=Reason.QUALITY_PROBLEM,
              now=opened, policy=POLICY, categories={}, refund_fen=4000)
    dcases.act(order, "c1", dcases.Action.REJECT, Actor.MERCHANT, opened + merchant_answers_after, POLICY, reason="No.")
    until = opened + timedelta(days=30)
    case = order.case("c1")
    while (d := case.deadline) is not None and d.due_at <= until:  # M2: the buyer's silence closes it
        dcases.fire(order, "c1", d.action, d.stage, until, POLICY, due_at=d.due_at)
        _settle(order, d.due_at)
    events = [dreplay.Recorded(e.kind, str(e.actor), e.at, e.rules, e.case_id, e.from_status, e.to_status, encode(e.data))
              for e in order.pending_events]
    return dreplay.History(order, events, until)


def test_T0_replay_under_the_same_policy_reproduces_every_event() -> None:
    history = _history(30 * H)
    run = dreplay.replay(history, POLICY)
    assert dreplay.check_identity(history, run, encode) == []
    assert [e.kind for e in run.events][-2:] == ["reject", "close_unanswered"]


def test_T0_identity_reports_a_stored_history_that_differs() -> None:
    history = _history(30 * H)
    history.events[-1] = dreplay.Recorded(**{**{f: getattr(history.events[-1], f) for f in dreplay.Recorded.__slots__},
                                             "rules": ("M5",)})
    mismatches = dreplay.check_identity(history, dreplay.replay(history, POLICY), encode)
    assert len(mismatches) == 1 and "[M5]" in mismatches[0].expected and "[M2]" in mismatches[0].got


def test_M1_a_shorter_answer_time_approves_before_the_merchant_refuses() -> None:
    history = _history(30 * H)
    draft = override(POLICY, {"merchant_response_hours": 24})
    a, b = dreplay.replay(history, POLICY), dreplay.replay(history, draft)
    kinds = {d.kind: d for d in dreplay.compare(a, b)}
    assert set(kinds) == {dreplay.DEADLINES, dreplay.AUTOMATIC, dreplay.OUTCOME, dreplay.REFUND}
    assert "M1" in kinds[dreplay.AUTOMATIC].rules and "auto_approve" in kinds[dreplay.AUTOMATIC].after
    assert (kinds[dreplay.REFUND].before, kinds[dreplay.REFUND].after) == ("0 fen", "4000 fen")
    # Refunded and closed by then: the refusal is skipped, with the rule of the closed case (C1).
    assert [(s.input.params["action"], s.rule) for s in b.skipped] == [(dcases.Action.REJECT, "C1")]


def test_M1_a_merchant_who_answered_in_time_under_both_changes_only_the_deadlines() -> None:
    history = _history(10 * H)
    draft = override(POLICY, {"merchant_response_hours": 24})
    differences = dreplay.compare(dreplay.replay(history, POLICY), dreplay.replay(history, draft))
    assert [(d.kind, d.rules) for d in differences] == [(dreplay.DEADLINES, ("M1",))]
