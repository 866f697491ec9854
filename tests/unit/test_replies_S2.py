"""RULEBOOK S2: suggested replies for customer service — one per situation, apology + rule + deadline, 3 languages.

Every state is built with the domain API (``new_order``, ``open_group``, ``open_case``, ``act``, ``fire``); the
replies are checked for their situation, rule and ``deadline`` placeholder, and rendered in zh_CN, es and en.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from factories import (
    AFTER_SALES_END,
    DAY_3,
    DAY_10,
    DAY_20,
    DELIVERED,
    NO_REASON_END,
    PAID,
    PAID_FEN,
    SHIPPED,
    categories,
    delivered_order,
    group_with_orders,
    hours,
    item,
    new_case,
    paid_order,
    policy,
    shipped_order,
)

from aftersales import i18n
from aftersales.domain.cases import Action, Auto, Case, CaseStatus, CloseReason, act, fire
from aftersales.domain.catalog import CaseType, Reason
from aftersales.domain.eligibility import Eligibility, Option, evaluate
from aftersales.domain.events import Actor
from aftersales.domain.groups import Group
from aftersales.domain.messages import Msg
from aftersales.domain.orders import Order
from aftersales.domain.replies import Reply, Situation, Voice, suggested_replies
from aftersales.domain.timeutil import window_end

POL = policy()
CATS = categories()
B, M, P = Actor.BUYER, Actor.MERCHANT, Actor.PLATFORM
LANGS = ("zh_CN", "es", "en")
CJK = re.compile(r"[\u4e00-\u9fff]")
PLACEHOLDER = re.compile(r"\{\w+\}")

#: Every reply the tests produced (see the last test: all situations are covered and render well).
SEEN: list[Reply] = []


# --- helpers --------------------------------------------------------------------------------------------
def replies(order: Order, now: datetime, case: Case | None = None, *, actor: Actor = B, group: Group | None = None,
            eligibility: bool = True) -> list[Reply]:
    elig = evaluate(order, actor=actor, now=now, policy=POL, categories=CATS, group=group) if eligibility else None
    out = suggested_replies(order, case, elig, now, POL, group)
    SEEN.extend(out)
    return out


def the(replies_: list[Reply], situation: Situation) -> Reply:
    found = [r for r in replies_ if r.situation == situation]
    assert len(found) == 1, f"{situation} not (once) in {[r.situation for r in replies_]}"
    return found[0]


def do(order: Order, case: Case, action: Action, actor: Actor, now: datetime, **params: Any) -> Case:
    return act(order, case.id, action, actor, now, POL, **params)


def fire_due(order: Order, case: Case, action: Auto) -> None:
    timer = next(d for d in case.timers() if d.action is action)
    assert fire(order, case.id, action, timer.stage, timer.due_at, POL)


def rendered(reply: Reply) -> dict[str, str]:
    """The reply in the three languages, checked: no placeholder left, Chinese in zh_CN, translated in es."""
    out = {lang: i18n.render(reply.msg, lang) for lang in LANGS}
    for lang, text in out.items():
        assert not PLACEHOLDER.search(text), f"{lang}: unfilled placeholder in {text!r}"
    assert CJK.search(out["zh_CN"]), out["zh_CN"]
    assert out["es"] != out["en"] and out["zh_CN"] != out["en"]
    assert reply.rule in out["en"] or reply.situation == Situation.INFORMATION, out["en"]
    return out


def assert_deadline(reply: Reply, expected: datetime) -> dict[str, str]:
    """The deadline is the exact instant, in the message and on the reply, and is shown in every language."""
    assert reply.deadline == expected
    assert reply.msg.params["deadline"] == expected
    texts = rendered(reply)
    for lang, text in texts.items():
        assert i18n.format_instant(expected, lang) in text, (lang, text)
    return texts


def order_with_case(case_type: CaseType, reason: Reason, now: datetime = DAY_3, **kw: Any) -> tuple[Order, Case]:
    order = delivered_order(**kw)
    return order, new_case(order, case_type, reason, now)


# --- §1 group orders ---------------------------------------------------------------------------------------
def test_S2_pending_group_reply_gives_expiry_and_automatic_refund_G2() -> None:
    group, (order,) = group_with_orders(size=3)
    now = PAID + hours(2)
    (reply,) = replies(order, now, group=group)
    assert (reply.situation, reply.rule) == (Situation.PENDING_GROUP, "G2")
    assert group.expires_at == PAID + hours(24)
    texts = assert_deadline(reply, group.expires_at)
    assert reply.msg.params["missing"] == 2
    assert "refunded to you automatically" in texts["en"] and "Inviting friends" in texts["en"]
    assert "2026年3月2日 10:00:00 (UTC+08:00)" in texts["zh_CN"] and "自动全额退款" in texts["zh_CN"]
    assert "reembolsa automáticamente" in texts["es"]


def test_S2_pending_group_with_automatic_completion_says_it_forms_and_the_shop_can_complete_it_G2_G5() -> None:
    group, (order,) = group_with_orders(size=2, auto_complete=True)
    (reply,) = replies(order, PAID + hours(1), group=group)
    texts = assert_deadline(reply, group.expires_at)
    assert "completed automatically" in texts["en"] and "G5" in texts["en"]


def test_S2_pending_group_without_the_group_gives_the_latest_possible_expiry_G2() -> None:
    group, (order,) = group_with_orders(size=3)
    (reply,) = replies(order, PAID + hours(1), eligibility=False)
    assert (reply.situation, reply.rule) == (Situation.PENDING_GROUP, "G2")
    texts = assert_deadline(reply, order.paid_at + hours(POL.group_wait_hours))
    assert reply.deadline == group.expires_at  # the first member: the bound is exact
    assert "no later than" in texts["en"]


def test_S2_pending_group_after_its_expiry_instant_says_it_is_being_settled_G2() -> None:
    group, (order,) = group_with_orders(size=3)
    (reply,) = replies(order, group.expires_at + hours(1), group=group)
    texts = assert_deadline(reply, group.expires_at)
    assert "being cancelled" in texts["en"]


def test_S2_failed_group_reply_confirms_the_automatic_full_refund_G4() -> None:
    group, orders = group_with_orders(size=3, members=2)
    group.expire(orders, group.expires_at)
    order = orders[0]
    (reply,) = replies(order, group.expires_at + hours(1), group=group)
    assert (reply.situation, reply.rule) == (Situation.GROUP_FAILED, "G4")
    assert reply.msg.params["amount_fen"] == PAID_FEN
    assert "¥208.00" in rendered(reply)["zh_CN"]
    order.settle_refund(order.refunds[0].key, group.expires_at + hours(2))
    (settled,) = replies(order, group.expires_at + hours(3), group=group)
    assert settled.msg.text != reply.msg.text and "has been refunded" in rendered(settled)["en"]


# --- §2 what the buyer may open ------------------------------------------------------------------------------
def test_S2_refund_before_shipment_reply_E2() -> None:
    order = paid_order()
    reply = the(replies(order, PAID + hours(1)), Situation.REFUND_BEFORE_SHIPMENT)
    assert reply.rule == "E2" and reply.deadline is None
    assert reply.msg.params["max_refund_fen"] == PAID_FEN
    texts = rendered(reply)
    assert "CN¥208.00" in texts["en"] and "¥208.00" in texts["zh_CN"]
    # Without an eligibility answer the order's status alone gives the same reply.
    assert the(replies(order, PAID + hours(1), eligibility=False), Situation.REFUND_BEFORE_SHIPMENT).rule == "E2"


def test_S2_in_transit_reply_E3() -> None:
    order = shipped_order()
    reply = the(replies(order, SHIPPED + hours(1)), Situation.IN_TRANSIT)
    assert reply.rule == "E3"
    assert "intercept" in rendered(reply)["en"]
    assert the(replies(order, SHIPPED + hours(1), eligibility=False), Situation.IN_TRANSIT).rule == "E3"


def test_S2_no_reason_return_reply_gives_the_E4_deadline_and_the_E5_window() -> None:
    order = delivered_order()
    out = replies(order, DAY_3)
    no_reason = the(out, Situation.NO_REASON_RETURN)
    assert no_reason.rule == "E4"
    texts = assert_deadline(no_reason, NO_REASON_END)  # T0 worked example: open until 2026-03-09T00:00+08:00
    assert "2026年3月9日 00:00:00 (UTC+08:00)" in texts["zh_CN"]
    assert "paid by you" in texts["en"]
    problems = the(out, Situation.MERCHANT_RESPONSIBILITY)
    assert problems.rule == "E5"
    assert_deadline(problems, AFTER_SALES_END)


def test_S2_no_reason_return_reply_mentions_return_shipping_insurance_E4_M3() -> None:
    order = delivered_order(insured=True)
    reply = the(replies(order, DAY_3), Situation.NO_REASON_RETURN)
    assert "insurance" in rendered(reply)["en"]


def test_S2_statutory_exclusion_reply_explains_the_law_and_the_problem_window_E4() -> None:
    order = delivered_order(items=[item("fish", category="fresh")])
    out = replies(order, DAY_3)
    assert not [r for r in out if r.situation == Situation.NO_REASON_RETURN]
    reply = the(out, Situation.STATUTORY_EXCLUSION)
    assert reply.rule == "E4"
    texts = assert_deadline(reply, AFTER_SALES_END)
    assert isinstance(reply.msg.params["excluded"], Msg)
    assert "鲜活易腐商品" in texts["zh_CN"] and "perecederos" in texts["es"] and "Item fish" in texts["en"]


def test_S2_confirmed_shop_exclusion_reply_E4_and_an_unconfirmed_one_does_not_bind() -> None:
    mixed = [item("sku-a"), item("bra", category="underwear", exclusion_confirmed=True)]
    out = replies(delivered_order(items=mixed), DAY_3)
    reply = the(out, Situation.SHOP_EXCLUSION)
    assert reply.rule == "E4"
    assert_deadline(reply, AFTER_SALES_END)
    assert_deadline(the(out, Situation.NO_REASON_RETURN), NO_REASON_END)  # the other item still goes back
    unconfirmed = replies(delivered_order(items=[item("bra", category="underwear")]), DAY_3)
    assert not [r for r in unconfirmed if r.situation in (Situation.SHOP_EXCLUSION, Situation.STATUTORY_EXCLUSION)]
    assert the(unconfirmed, Situation.NO_REASON_RETURN).rule == "E4"


def test_S2_merchant_responsibility_reply_after_the_no_reason_window_E5() -> None:
    out = replies(delivered_order(), DAY_10)
    assert not [r for r in out if r.situation == Situation.NO_REASON_RETURN]
    reply = the(out, Situation.MERCHANT_RESPONSIBILITY)
    assert reply.rule == "E5"
    assert_deadline(reply, AFTER_SALES_END)


def test_S2_warranty_repair_reply_E6() -> None:
    order = delivered_order(items=[item("kettle", category="electrical")])
    reply = the(replies(order, DAY_20), Situation.WARRANTY_REPAIR)
    assert reply.rule == "E6"
    assert_deadline(reply, window_end(DELIVERED, 365, POL.timezone))


def test_S2_windows_over_reply_sends_the_buyer_to_the_shop_E7() -> None:
    (reply,) = replies(delivered_order(), DAY_20)
    assert (reply.situation, reply.rule) == (Situation.WINDOWS_OVER, "E7")
    assert "on your behalf" in rendered(reply)["en"]


def test_S2_after_the_windows_the_shop_offers_to_open_on_the_buyers_behalf_E7() -> None:
    (reply,) = replies(delivered_order(), DAY_20, actor=M)
    assert (reply.situation, reply.rule) == (Situation.OPEN_ON_BEHALF, "E7")
    rendered(reply)


def cancel_cases(order: Order, times: int, start: datetime = DAY_3) -> Case:
    case: Case | None = None
    for n in range(times):
        case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, start + hours(n))
        do(order, case, Action.CANCEL, B, start + hours(n) + timedelta(minutes=30))
    assert case is not None
    return case


def test_S2_cancellation_limit_reply_E8() -> None:
    order = delivered_order()
    cancel_cases(order, POL.max_buyer_cancellations)
    (reply,) = replies(order, DAY_3 + hours(5))
    assert (reply.situation, reply.rule) == (Situation.CANCELLATION_LIMIT, "E8")
    assert reply.msg.params["count"] == 3
    assert "3" in rendered(reply)["zh_CN"]


def test_S2_every_cancellation_answer_states_how_many_remain_C1_E8() -> None:
    order = delivered_order()
    case = cancel_cases(order, 1)
    closed = the(replies(order, DAY_3 + hours(1), case), Situation.CLOSED_CANCELLED)
    assert closed.rule == "C1" and closed.msg.params["left"] == 2 and closed.msg.params["max"] == 3
    assert "2" in rendered(closed)["es"]
    later = the(replies(order, DAY_3 + hours(2)), Situation.CANCELLATIONS_LEFT)
    assert later.rule == "E8" and later.msg.params["left"] == 2
    rendered(later)
    last = cancel_cases(order, 2, DAY_3 + hours(3))
    final = the(replies(order, DAY_3 + hours(6), last), Situation.CLOSED_CANCELLED)
    assert final.msg.params["left"] == 0 and "last" in rendered(final)["en"]


def test_S2_a_case_already_open_reply_E9_then_the_case_status() -> None:
    order, case = order_with_case(CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM)
    out = replies(order, DAY_3 + hours(1))
    assert [r.situation for r in out] == [Situation.CASE_OPEN, Situation.AWAITING_MERCHANT]
    assert out[0].rule == "E9" and out[0].msg.params["case_id"] == case.id
    texts = rendered(out[0])
    assert case.id in texts["zh_CN"] and "待商家处理" in texts["zh_CN"]


def test_S2_nothing_left_reply_once_everything_was_refunded_E10() -> None:
    order, case = order_with_case(CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM)
    do(order, case, Action.APPROVE, M, DAY_3 + hours(1))
    do(order, case, Action.SHIP_RETURN, B, DAY_3 + hours(2), carrier="SF", tracking_no="SF1")
    do(order, case, Action.CONFIRM_RETURN, M, DAY_3 + hours(30))
    order.settle_refund(order.refunds[0].key, DAY_3 + hours(31))
    out = replies(order, DAY_3 + hours(32), case)
    assert [r.situation for r in out] == [Situation.CLOSED_REFUNDED, Situation.NOTHING_LEFT]
    assert out[1].rule == "E10"
    rendered(out[1])


def test_S2_any_other_refusal_falls_back_to_its_own_explanation() -> None:
    explanation = Msg("The after-sales period for this request has ended.")
    elig = Eligibility(tuple(Option(t, False, "E5", explanation) for t in CaseType), 3)
    (reply,) = suggested_replies(delivered_order(), None, elig, DAY_20, POL)
    SEEN.append(reply)
    assert (reply.situation, reply.rule) == (Situation.INFORMATION, "E5")
    assert "该类售后申请的期限已结束" in rendered(reply)["zh_CN"]


# --- §3 a case ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case_type", "reason", "words"), [
    (CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, "refund is approved automatically"),
    (CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, "return address"),
    (CaseType.RESHIP, Reason.MISSING_PARTS, "send the items within 48 hours"),
])
def test_S2_awaiting_merchant_reply_gives_the_M1_deadline(case_type: CaseType, reason: Reason, words: str) -> None:
    order, case = order_with_case(case_type, reason)
    reply = the(replies(order, DAY_3 + hours(1), case), Situation.AWAITING_MERCHANT)
    assert reply.rule == "M1"
    texts = assert_deadline(reply, DAY_3 + hours(POL.merchant_response_hours))
    assert words in texts["en"]


def refused_case() -> tuple[Order, Case, datetime]:
    order, case = order_with_case(CaseType.REFUND_ONLY, Reason.NOT_AS_DESCRIBED)
    at = DAY_3 + hours(5)
    do(order, case, Action.REJECT, M, at, reason="The colour matches the photos.")
    return order, case, at


def test_S2_refusal_reply_gives_the_buyers_options_and_7_day_deadline_M2() -> None:
    order, case, at = refused_case()
    reply = the(replies(order, at + hours(1), case), Situation.REFUSAL)
    assert reply.rule == "M2"
    texts = assert_deadline(reply, window_end(at, POL.buyer_response_days, POL.timezone))
    assert "The colour matches the photos." in texts["zh_CN"]
    assert "submit it again" in texts["en"] and "step in" in texts["en"]


@pytest.mark.parametrize(("case_type", "words"), [
    (CaseType.RETURN_REFUND, "still with the shop paying the return shipping"),
    (CaseType.REFUND_ONLY, "goes back to the shop"),
])
def test_S2_exchange_offer_reply_M4(case_type: CaseType, words: str) -> None:
    order, case = order_with_case(case_type, Reason.QUALITY_PROBLEM)
    at = DAY_3 + hours(3)
    do(order, case, Action.OFFER_EXCHANGE, M, at)
    reply = the(replies(order, at, case), Situation.EXCHANGE_OFFER)
    assert reply.rule == "M4"
    texts = assert_deadline(reply, window_end(at, POL.buyer_response_days, POL.timezone))
    assert words in texts["en"]


def test_S2_partial_refund_offer_reply_M8() -> None:
    order, case = order_with_case(CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM)
    at = DAY_3 + hours(3)
    do(order, case, Action.OFFER_PARTIAL_REFUND, M, at, refund_fen=5000)
    reply = the(replies(order, at, case), Situation.PARTIAL_REFUND_OFFER)
    assert reply.rule == "M8" and reply.msg.params["refund_fen"] == 5000
    texts = assert_deadline(reply, window_end(at, POL.buyer_response_days, POL.timezone))
    assert "CN¥50.00" in texts["en"] and "¥50.00" in texts["zh_CN"]


@pytest.mark.parametrize(("reason", "insured", "words"), [
    (Reason.NO_REASON, False, "paid by you"),
    (Reason.NO_REASON, True, "insurance"),
    (Reason.QUALITY_PROBLEM, False, "up to CN¥20.00"),
])
def test_S2_awaiting_return_shipment_reply_gives_the_M5_deadline_and_who_pays_M3(
        reason: Reason, insured: bool, words: str) -> None:
    order, case = order_with_case(CaseType.RETURN_REFUND, reason, insured=insured)
    at = DAY_3 + hours(2)
    do(order, case, Action.APPROVE, M, at)
    reply = the(replies(order, at, case), Situation.AWAITING_RETURN_SHIPMENT)
    assert reply.rule == "M5"
    texts = assert_deadline(reply, window_end(at, POL.buyer_return_days, POL.timezone))
    assert words in texts["en"]


def test_S2_return_shipping_disagreement_reply_lets_the_buyer_escalate_M3() -> None:
    order, case = order_with_case(CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM)
    at = DAY_3 + hours(2)
    do(order, case, Action.APPROVE, M, at, return_shipping_payer="buyer")
    out = replies(order, at, case)
    reply = the(out, Situation.RETURN_SHIPPING_DISPUTED)
    assert reply.rule == "M3"
    assert_deadline(reply, window_end(at, POL.buyer_return_days, POL.timezone))
    assert "paid by you" in rendered(the(out, Situation.AWAITING_RETURN_SHIPMENT))["en"]


def shipped_return(case_type: CaseType = CaseType.RETURN_REFUND) -> tuple[Order, Case, datetime]:
    order, case = order_with_case(case_type, Reason.QUALITY_PROBLEM)
    do(order, case, Action.APPROVE, M, DAY_3 + hours(1))
    at = DAY_3 + hours(5)
    do(order, case, Action.SHIP_RETURN, B, at, carrier="SF Express", tracking_no="SF123")
    return order, case, at


@pytest.mark.parametrize(("case_type", "words"), [
    (CaseType.RETURN_REFUND, "refund is made automatically"),
    (CaseType.EXCHANGE, "the replacement"),
])
def test_S2_return_in_transit_reply_gives_the_automatic_deadline_M6(case_type: CaseType, words: str) -> None:
    order, case, at = shipped_return(case_type)
    reply = the(replies(order, at, case), Situation.RETURN_IN_TRANSIT)
    assert reply.rule == "M6"
    texts = assert_deadline(reply, window_end(at, POL.return_auto_refund_days, POL.timezone))
    assert words in texts["en"]


def test_S2_awaiting_receipt_reply_gives_the_48h_automatic_refund_deadline_M6() -> None:
    order, case, at = shipped_return()
    arrived = at + hours(30)
    do(order, case, Action.MARK_RETURN_DELIVERED, P, arrived)
    reply = the(replies(order, arrived, case), Situation.AWAITING_MERCHANT_RECEIPT)
    assert reply.rule == "M6"
    assert_deadline(reply, arrived + hours(POL.merchant_confirm_hours))


def test_S2_replacement_replies_give_the_shipping_and_confirmation_deadlines_M7() -> None:
    order, case = order_with_case(CaseType.RESHIP, Reason.MISSING_PARTS)
    at = DAY_3 + hours(2)
    do(order, case, Action.APPROVE, M, at)
    waiting = the(replies(order, at, case), Situation.AWAITING_REPLACEMENT_SHIPMENT)
    assert waiting.rule == "M7"
    texts = assert_deadline(waiting, at + hours(POL.merchant_ship_hours))
    assert "the missing items" in texts["en"] and "补寄的商品" in texts["zh_CN"]
    sent = at + hours(10)
    do(order, case, Action.SHIP_REPLACEMENT, M, sent, carrier="ZTO", tracking_no="ZT9")
    transit = the(replies(order, sent, case), Situation.REPLACEMENT_IN_TRANSIT)
    assert transit.rule == "M7" and case.deadline is not None
    texts = assert_deadline(transit, case.deadline.due_at)
    assert "ZTO" in texts["es"] and "ZT9" in texts["zh_CN"]
    do(order, case, Action.CONFIRM_RECEIVED, B, sent + hours(30))
    done = the(replies(order, sent + hours(31), case), Situation.CLOSED_RESHIPPED)
    assert done.rule == "M7"
    rendered(done)


def test_S2_closed_exchange_and_repair_replies_M7() -> None:
    for case_type, situation, extra in (
        (CaseType.EXCHANGE, Situation.CLOSED_EXCHANGED, {}),
        (CaseType.REPAIR, Situation.CLOSED_REPAIRED, {"items": [item("kettle", category="electrical")]}),
    ):
        order = delivered_order(**extra)
        opened = DAY_20 if case_type is CaseType.REPAIR else DAY_3
        case = new_case(order, case_type, Reason.QUALITY_PROBLEM, opened)
        do(order, case, Action.APPROVE, M, opened + hours(1))
        do(order, case, Action.SHIP_RETURN, B, opened + hours(2), carrier="SF", tracking_no="SF1")
        do(order, case, Action.CONFIRM_RETURN, M, opened + hours(20))
        do(order, case, Action.SHIP_REPLACEMENT, M, opened + hours(30), carrier="SF", tracking_no="SF2")
        do(order, case, Action.CONFIRM_RECEIVED, B, opened + hours(60))
        reply = the(replies(order, opened + hours(61), case), situation)
        assert reply.rule == "M7"
        rendered(reply)


def test_S2_platform_review_replies_P1_and_advance_compensation_P2() -> None:
    order, case, at = refused_case()
    escalated = at + hours(1)
    do(order, case, Action.ESCALATE, B, escalated, reason="The colour is clearly different.")
    review = the(replies(order, escalated, case), Situation.PLATFORM_REVIEW)
    assert review.rule == "P1"
    assert_deadline(review, escalated + hours(POL.platform_accept_hours))
    fire_due(order, case, Auto.FLAG_PLATFORM_OVERDUE)
    overdue = the(replies(order, escalated + hours(25), case), Situation.PLATFORM_OVERDUE)
    assert overdue.rule == "P1" and overdue.deadline is None
    assert "24" in rendered(overdue)["zh_CN"]
    ruled = escalated + hours(26)
    do(order, case, Action.RULE, P, ruled, outcome="refund", refund_fen=3000, rationale="Photos support the buyer.")
    pay = the(replies(order, ruled, case), Situation.RULING_TO_PAY)
    assert pay.rule == "P1" and pay.msg.params["refund_fen"] == 3000
    texts = assert_deadline(pay, ruled + hours(POL.merchant_pay_hours))
    assert "P2" in texts["en"] and "¥30.00" in texts["zh_CN"]


def test_S2_refund_pending_then_closed_refunded_replies_F1() -> None:
    order, case = order_with_case(CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM)
    at = DAY_3 + hours(2)
    do(order, case, Action.APPROVE, M, at)
    pending = the(replies(order, at, case), Situation.REFUND_PENDING)
    assert pending.rule == "F1" and pending.deadline is None
    assert pending.msg.params["amount_fen"] == case.refund_fen
    rendered(pending)
    order.settle_refund(order.refunds[0].key, at + hours(1))
    closed = the(replies(order, at + hours(2), case), Situation.CLOSED_REFUNDED)
    assert closed.rule == "F1" and closed.msg.params["amount_fen"] == case.refunded_fen(order)
    rendered(closed)


def test_S2_buyer_overdue_reply_M5() -> None:
    order, case = order_with_case(CaseType.RETURN_REFUND, Reason.NO_REASON)
    do(order, case, Action.APPROVE, M, DAY_3 + hours(2))
    fire_due(order, case, Auto.CLOSE_BUYER_OVERDUE)
    assert case.close_reason is CloseReason.BUYER_OVERDUE
    reply = the(replies(order, DAY_10, case), Situation.CLOSED_BUYER_OVERDUE)
    assert reply.rule == "M5" and reply.msg.params["closed_at"] == case.closed_at
    texts = rendered(reply)
    assert i18n.format_instant(case.closed_at, "zh_CN") in texts["zh_CN"]
    assert "not count as a cancellation" in texts["en"]


def test_S2_closed_after_refusal_and_after_platform_rejection_replies_M2_P1() -> None:
    order, case, at = refused_case()
    do(order, case, Action.ACCEPT_REJECTION, B, at + hours(1))
    rejected = the(replies(order, at + hours(2), case), Situation.CLOSED_REJECTED)
    assert rejected.rule == "M2"
    rendered(rejected)

    order, case, at = refused_case()
    do(order, case, Action.ESCALATE, B, at + hours(1), reason="Disagree.")
    do(order, case, Action.RULE, P, at + hours(3), outcome="reject", rationale="The goods match the listing.")
    ruled = the(replies(order, at + hours(4), case), Situation.CLOSED_PLATFORM_REJECTED)
    assert ruled.rule == "P1"
    assert "The goods match the listing." in rendered(ruled)["es"]


def test_S2_closed_because_the_order_was_cancelled_reply() -> None:
    order, case = order_with_case(CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM)
    do(order, case, Action.CANCEL, B, DAY_3 + hours(1))
    case.close_reason = CloseReason.ORDER_CANCELLED  # not produced by the domain today; the reply must exist anyway
    reply = the(suggested_replies(order, case, None, DAY_3 + hours(2), POL), Situation.CLOSED_ORDER_CANCELLED)
    SEEN.append(reply)
    rendered(reply)


def _run_every_scenario() -> list[Reply]:
    """Run every other test of this module again (each parametrization too) and collect the replies it saw.

    Independent of test selection, order and xdist distribution."""
    SEEN.clear()
    for name, fn in list(globals().items()):
        if not name.startswith("test_S2_") or name == "test_S2_every_situation_is_covered_and_renders_in_three_languages":
            continue
        marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
        if not marks:
            fn()
            continue
        (mark,) = marks
        for values in mark.args[1]:
            fn(*values)
    return list(SEEN)


def test_S2_every_situation_is_covered_and_renders_in_three_languages() -> None:
    # Every case status and every close reason has its situation (awaiting_buyer: refusal or one of two offers).
    by_status = {CaseStatus(s) for s in set(Situation) & set(CaseStatus)}
    assert by_status | {CaseStatus.AWAITING_BUYER, CaseStatus.CLOSED} == set(CaseStatus)
    assert {f"closed_{c}" for c in CloseReason} <= set(Situation)
    seen = _run_every_scenario()
    assert {r.situation for r in seen} == set(Situation)
    for reply in seen:
        rendered(reply)


#: How each language names the shop in the third person: the shop's own voice never does.
THE_SHOP = {"en": re.compile(r"\bthe shop\b|\bshop's\b", re.I), "zh_CN": re.compile("商家"), "es": re.compile(r"\bla tienda\b", re.I)}


def test_voices_of_S2_the_shops_voice_speaks_as_we_and_the_platforms_of_the_shop_with_the_same_values() -> None:
    """One set of replies, two voices: the shop's agent sends "we" (never "the shop"), the platform's agent keeps the
    third person; both carry the same situation, rule, deadline and values, in the three languages."""
    seen = _run_every_scenario()
    voiced = 0
    for reply in seen:
        shop, platform = reply.in_voice(Voice.SHOP), reply.in_voice(Voice.PLATFORM)
        assert platform == reply
        assert (shop.situation, shop.rule, shop.deadline, shop.msg.params) == (reply.situation, reply.rule, reply.deadline,
                                                                                 reply.msg.params)
        assert set(PLACEHOLDER.findall(shop.msg.text)) == set(PLACEHOLDER.findall(reply.msg.text))
        rendered(shop)
        for lang, pattern in THE_SHOP.items():  # the reply's own words (a status label or an exclusion is a value)
            words = i18n.translate(shop.msg.text, lang)
            assert not pattern.search(words), f"{lang}: the shop's voice names the shop: {words!r}"
        voiced += reply.shop_text is not None
    assert voiced >= 30
    # through the public entry point: the voice parameter picks the words
    order, case = order_with_case(CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM)
    as_shop = the(suggested_replies(order, case, None, DAY_3 + hours(1), POL, voice=Voice.SHOP), Situation.AWAITING_MERCHANT)
    as_platform = the(suggested_replies(order, case, None, DAY_3 + hours(1), POL), Situation.AWAITING_MERCHANT)
    assert "We have received your request and will answer by" in i18n.render(as_shop.msg, "en")
    assert "passed to the shop, which must answer by" in i18n.render(as_platform.msg, "en")
