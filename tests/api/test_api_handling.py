"""RULEBOOK §3 through HTTP: handling a case (M1–M8, C1, F1) and the platform's part in it (P1, P2).

Unless a test says otherwise the order is one item of 100.00 (10000 fen) plus 8.00 shipping, delivered at the
clock start 2026-03-01T02:00Z (10:00 in Asia/Shanghai), and the case is opened at that instant.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import (
    START,
    act,
    advance_to,
    assert_closed,
    assert_money_invariant,
    at,
    create_order,
    deadline,
    delivered_order,
    event,
    events,
    get_case,
    get_order,
    iso,
    item,
    kinds,
    local,
    open_case,
    options,
    problem,
    ship_replacement,
    ship_return,
    try_act,
    warranty_category,
    window_end,
)

AFTER_SALES_END = local(2026, 3, 17)
H = timedelta(hours=1)
ACTORS = {"buyer", "merchant", "platform", "system"}


def delivered_case(api, case_type="return_refund", reason="quality_problem", order_id="o1", order_kw=None, **fields):
    delivered_order(api, order_id, **(order_kw or {}))
    return open_case(api, order_id, case_type, reason, **fields)


def approved_return(api, reason="quality_problem", order_id="o1", order_kw=None, **fields):
    case = delivered_case(api, "return_refund", reason, order_id, order_kw, **fields)
    case = act(api, case["id"], "approve")
    assert case["status"] == "awaiting_return_shipment", case
    return case


def refunds_of(case):
    return case["refunds"] or []


# --- M1 ----------------------------------------------------------------------------------------------------
def _repair_case(api):
    cat = warranty_category(api)
    delivered_order(api, "o1", items=[item("tv", 300000, category=cat)])
    advance_to(api, AFTER_SALES_END)
    return open_case(api, "o1", "repair", "quality_problem")


M1_CASES = {
    "refund_only": ("refund_only", "quality_problem", "closed", None),
    "return_refund": ("return_refund", "quality_problem", "awaiting_return_shipment", ("close_buyer_overdue", "M5")),
    "exchange": ("exchange", "wrong_item", "awaiting_return_shipment", ("close_buyer_overdue", "M5")),
    "reship": ("reship", "missing_parts", "awaiting_replacement_shipment", ("ship_timeout", "M7")),
    "repair": ("repair", "quality_problem", "awaiting_return_shipment", ("close_buyer_overdue", "M5")),
}


@pytest.mark.parametrize("case_type", list(M1_CASES))
def test_M1_merchant_silence_for_48h_approves_each_type(api, case_type):
    _type, reason, status, next_deadline = M1_CASES[case_type]
    case = _repair_case(api) if case_type == "repair" else delivered_case(api, case_type, reason)
    opened = at(case["opened_at"])
    assert deadline(case) == ("auto_approve", opened + 48 * H, "M1")

    advance_to(api, opened + 48 * H - timedelta(seconds=1))
    assert get_case(api, case["id"])["status"] == "awaiting_merchant"
    api.advance(1)
    case = get_case(api, case["id"])
    assert case["status"] == status
    approved = event(events(api, case["id"]), "auto_approve")
    assert approved["actor"] == "system" and "M1" in approved["rules"]
    assert at(approved["at"]) == opened + 48 * H
    assert approved["from_status"] == "awaiting_merchant" and approved["to_status"] in (status, "refund_pending")
    if case_type == "refund_only":
        assert_closed(case, "refunded")
        assert case["refunded_fen"] == case["refund_fen"] == 10000
        assert get_order(api, "o1")["refunded_fen"] == 10000
        return
    action, due, rule = deadline(case)
    assert (action, rule) == next_deadline
    approved_at = opened + 48 * H
    if rule == "M5":  # M3: the return goes to the shop's default return address, the merchant paying the parcel
        assert due == window_end(approved_at, 7)
        assert case["return_shipping_payer"] == "merchant" and case["return_shipping_proposed"] == "merchant"
    else:
        assert due == approved_at + 48 * H
    assert case["refunded_fen"] == 0


def test_M1_reminders_to_the_merchant_12h_and_2h_before_the_deadline(api):
    case = delivered_case(api)
    opened = at(case["opened_at"])
    advance_to(api, opened + 36 * H - timedelta(seconds=1))
    assert "remind_merchant" not in kinds(events(api, case["id"]))
    api.advance(1)
    reminders = [e for e in events(api, case["id"]) if e["kind"] == "remind_merchant"]
    assert len(reminders) == 1
    assert at(reminders[0]["at"]) == opened + 36 * H
    assert reminders[0]["actor"] == "system" and reminders[0]["rules"] == ["M1"]
    assert at(reminders[0]["data"]["deadline"]) == opened + 48 * H
    # a reminder changes nothing the merchant must do
    still = get_case(api, case["id"])
    assert still["status"] == "awaiting_merchant" and deadline(still)[1] == opened + 48 * H

    advance_to(api, opened + 46 * H)
    reminders = [e for e in events(api, case["id"]) if e["kind"] == "remind_merchant"]
    assert [at(e["at"]) for e in reminders] == [opened + 36 * H, opened + 46 * H]
    advance_to(api, opened + 60 * H)
    evs = events(api, case["id"])
    assert len([e for e in evs if e["kind"] == "remind_merchant"]) == 2, "each reminder is sent once"
    assert kinds(evs).count("auto_approve") == 1


def test_M1_an_answer_before_the_deadline_cancels_the_reminders(api):
    case = delivered_case(api)
    act(api, case["id"], "approve")
    advance_to(api, at(case["opened_at"]) + 48 * H)
    evs = events(api, case["id"])
    assert "remind_merchant" not in kinds(evs) and "auto_approve" not in kinds(evs)


# --- M2 ----------------------------------------------------------------------------------------------------
def test_M2_refund_of_unshipped_order_cannot_be_refused(api):
    create_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "no_reason")
    problem(try_act(api, case["id"], "reject", {"reason": "we already packed it"}), 422, "M2")
    assert get_case(api, case["id"])["status"] == "awaiting_merchant"


def test_M2_valid_no_reason_return_cannot_be_refused(api):
    case = delivered_case(api, "return_refund", "no_reason")
    problem(try_act(api, case["id"], "reject", {"reason": "no returns"}), 422, "M2")
    case = get_case(api, case["id"])
    assert case["status"] == "awaiting_merchant" and case["rejection_reason"] is None


def test_M2_refusal_needs_a_reason_and_gives_the_buyer_7_days(api):
    case = delivered_case(api)
    problem(try_act(api, case["id"], "reject", {}), 422)
    problem(try_act(api, case["id"], "reject", {"reason": ""}), 422)
    advance_to(api, START + 10 * H)  # 20:00 local on 1 March
    case = act(api, case["id"], "reject", {"reason": "the photos show wear from use"})
    assert case["status"] == "awaiting_buyer"
    assert case["rejection_reason"] == "the photos show wear from use"
    assert deadline(case) == ("close_unanswered", window_end(START + 10 * H, 7), "M2")
    assert deadline(case)[1] == local(2026, 3, 9)
    assert {"resubmit", "escalate", "accept_rejection", "cancel"} <= set(get_case(api, case["id"], who="buyer_x")["allowed_actions"])


def test_M2_buyer_modifies_and_resubmits_for_a_new_merchant_wait(api):
    case = delivered_case(api)
    problem(try_act(api, case["id"], "resubmit", {"description": "more photos"}), 409)
    act(api, case["id"], "reject", {"reason": "not a defect"})
    advance_to(api, START + 30 * H)
    case = act(api, case["id"], "resubmit", {"reason": "not_as_described", "description": "the colour differs from the listing"})
    assert case["status"] == "awaiting_merchant" and case["reason"] == "not_as_described"
    assert case["description"] == "the colour differs from the listing" and case["rejection_reason"] is None
    assert deadline(case) == ("auto_approve", START + 78 * H, "M1")  # a new 48 h from the resubmission
    ev = event(events(api, case["id"]), "resubmit")
    assert ev["actor"] == "buyer" and set(ev["rules"]) >= {"M2", "M1"}


def test_M2_buyer_escalates_a_refusal_to_the_platform(api):
    case = delivered_case(api)
    act(api, case["id"], "reject", {"reason": "not a defect"})
    problem(try_act(api, case["id"], "escalate", {}), 422)
    case = act(api, case["id"], "escalate", {"reason": "it is a defect, see the video"})
    assert case["status"] == "platform_review" and case["escalation_reason"] == "it is a defect, see the video"
    assert deadline(case) == ("flag_platform_overdue", START + 24 * H, "P1")
    ev = event(events(api, case["id"]), "escalate")
    assert ev["actor"] == "buyer" and set(ev["rules"]) >= {"P1", "M2"}


def test_M2_buyer_accepts_the_refusal(api):
    case = delivered_case(api)
    act(api, case["id"], "reject", {"reason": "not a defect"})
    case = act(api, case["id"], "accept_rejection")
    assert_closed(case, "rejected")
    assert get_order(api, "o1")["buyer_cancellations"] == 0


def test_M2_buyer_silence_for_7_days_closes_the_case(api):
    case = delivered_case(api)
    case = act(api, case["id"], "reject", {"reason": "not a defect"})
    due = deadline(case)[1]
    advance_to(api, due - timedelta(seconds=1))
    assert get_case(api, case["id"])["status"] == "awaiting_buyer"
    api.advance(1)
    case = get_case(api, case["id"])
    assert_closed(case, "rejected")
    assert at(case["closed_at"]) == due
    ev = event(events(api, case["id"]), "close_unanswered")
    assert ev["actor"] == "system" and ev["rules"] == ["M2"]
    assert options(api, "o1")["cancellations_left"] == 3, "silence is not a cancellation (E8)"


# --- M3 ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("reason", "insured", "payer"), [
    ("no_reason", False, "buyer"),
    ("no_reason", True, "insurer"),
    ("quality_problem", False, "merchant"),
    ("damaged_in_transit", True, "merchant"),
    ("wrong_item", False, "merchant"),
])
def test_M3_system_proposes_who_pays_return_shipping(api, reason, insured, payer):
    case = approved_return(api, reason, order_kw={"insured": insured})
    assert case["return_shipping_proposed"] == payer
    assert case["return_shipping_payer"] == payer, "the merchant's answer (none given: agreed) is recorded"
    assert case["return_shipping_disputed"] is False
    ev = event(events(api, case["id"]), "approve")
    assert ev["actor"] == "merchant" and "M3" in ev["rules"] and ev["data"]["proposed_payer"] == payer


def test_M3_merchant_declining_to_pay_where_rule_says_merchant_lets_buyer_escalate(api):
    case = delivered_case(api, "return_refund", "quality_problem")
    case = act(api, case["id"], "approve", {"return_shipping_payer": "buyer"})
    assert case["status"] == "awaiting_return_shipment"
    assert case["return_shipping_proposed"] == "merchant" and case["return_shipping_payer"] == "buyer"
    assert case["return_shipping_disputed"] is True
    ev = event(events(api, case["id"]), "approve")
    assert ev["data"]["return_shipping_payer"] == "buyer" and ev["data"]["shipping_disputed"] is True

    case = act(api, case["id"], "escalate", {"reason": "the item is faulty, the shop must pay the parcel"})
    assert case["status"] == "platform_review"
    assert set(event(events(api, case["id"]), "escalate")["rules"]) >= {"P1", "M3"}


def test_M3_no_disagreement_no_escalation(api):
    case = approved_return(api, "no_reason")
    problem(try_act(api, case["id"], "escalate", {"reason": "I want the shop to pay"}), 422, "P1")
    assert get_case(api, case["id"])["status"] == "awaiting_return_shipment"


def test_M3_merchant_paid_return_shipping_is_reimbursed_with_the_refund_up_to_the_cap(api):
    case = approved_return(api, "quality_problem")
    case = ship_return(api, case["id"], shipping_fee_fen=2000)
    assert case["return_shipping_fee_fen"] == case["return_shipping_reimbursable_fen"] == 2000
    case = act(api, case["id"], "confirm_return")
    assert_closed(case, "refunded")
    [refund] = refunds_of(case)
    assert refund["refund_fen"] == 10800, "every item, merchant responsibility: goods and the order's shipping"
    assert refund["return_shipping_fen"] == 2000, "reimbursed separately from the goods refund"
    assert refund["amount_fen"] == 12800
    assert case["refund_fen"] == 10800 and case["refunded_fen"] == 12800
    order = assert_money_invariant(api, "o1")
    assert order["refunded_fen"] == order["paid_fen"] == 10800


def test_M3_fee_above_cap_is_reimbursed_up_to_the_cap(api):
    case = approved_return(api, "quality_problem")
    # A stated cap, not a silent one: the cost above the cap is accepted as stated, and the answer says what of it
    # goes back to the buyer.
    case = ship_return(api, case["id"], shipping_fee_fen=2600)
    assert case["status"] == "return_in_transit"
    assert (case["return_shipping_fee_fen"], case["return_shipping_reimbursable_fen"], case["return_shipping_cap_fen"]) == (
        2600, 2000, 2000)
    ev = event(events(api, case["id"]), "ship_return")
    assert "M3" in ev["rules"]
    assert (ev["data"]["shipping_fee_fen"], ev["data"]["reimbursable_fen"], ev["data"]["cap_fen"], ev["data"]["capped"]) == (
        2600, 2000, 2000, True)
    case = act(api, case["id"], "confirm_return")
    assert_closed(case, "refunded")
    [refund] = refunds_of(case)
    assert refund["return_shipping_fen"] == 2000, "min(stated cost, cap)"
    assert refund["amount_fen"] == 10800 + 2000 and case["refunded_fen"] == 12800
    assert_money_invariant(api, "o1")


def test_M3_buyer_paid_return_shipping_is_not_reimbursed(api):
    case = approved_return(api, "no_reason")
    ship_return(api, case["id"], shipping_fee_fen=1500)
    case = act(api, case["id"], "confirm_return")
    [refund] = refunds_of(case)
    assert refund["return_shipping_fen"] == 0 and refund["amount_fen"] == 10000
    assert case["refunded_fen"] == 10000


# --- M4 ----------------------------------------------------------------------------------------------------
def test_M4_merchant_offers_exchange_first_and_buyer_accepts(api):
    case = delivered_case(api, "return_refund", "quality_problem")
    case = act(api, case["id"], "offer_exchange")
    assert case["status"] == "awaiting_buyer" and case["offer"]["kind"] == "exchange"
    case = act(api, case["id"], "accept_offer")
    assert case["type"] == "exchange" and case["status"] == "awaiting_return_shipment"
    assert case["return_shipping_payer"] == "merchant" and case["refund_fen"] is None and case["offer"] is None
    assert deadline(case)[2] == "M5"


def test_M4_buyer_declines_exchange_and_return_goes_on_with_merchant_paying_shipping(api):
    case = delivered_case(api, "return_refund", "wrong_item")
    act(api, case["id"], "offer_exchange")
    case = act(api, case["id"], "decline_offer")
    assert case["type"] == "return_refund" and case["status"] == "awaiting_return_shipment"
    assert case["return_shipping_payer"] == "merchant" and case["offer"] is None
    assert set(event(events(api, case["id"]), "decline_offer")["rules"]) >= {"M4", "M3"}


def test_M4_exchange_first_only_for_quality_problems_and_wrong_items_after_delivery(api):
    for oid, reason in (("o1", "no_reason"), ("o2", "not_as_described"), ("o3", "late_delivery")):
        case = delivered_case(api, "return_refund", reason, order_id=oid)
        problem(try_act(api, case["id"], "offer_exchange"), 422, "M4")
        assert get_case(api, case["id"])["status"] == "awaiting_merchant"
    create_order(api, "o4")
    case = open_case(api, "o4", "refund_only", "quality_problem")
    problem(try_act(api, case["id"], "offer_exchange"), 422, "M4")


# --- M5 ----------------------------------------------------------------------------------------------------
def test_M5_buyer_must_ship_the_return_within_7_days_or_case_closes_buyer_overdue(api):
    case = approved_return(api)
    assert deadline(case) == ("close_buyer_overdue", window_end(START, 7), "M5")
    assert deadline(case)[1] == local(2026, 3, 9)
    problem(try_act(api, case["id"], "ship_return", {"carrier": "YTO"}), 422)
    problem(try_act(api, case["id"], "ship_return", {"carrier": "YTO", "tracking_no": "Y1"}, who="merchant_a"), 403)
    advance_to(api, local(2026, 3, 9) - timedelta(seconds=1))
    assert get_case(api, case["id"])["status"] == "awaiting_return_shipment"
    api.advance(1)
    case = get_case(api, case["id"])
    assert_closed(case, "buyer_overdue")
    ev = event(events(api, case["id"]), "close_buyer_overdue")
    assert ev["actor"] == "system" and ev["rules"] == ["M5"]
    # not a cancellation under E8
    assert get_order(api, "o1")["buyer_cancellations"] == 0
    assert options(api, "o1")["cancellations_left"] == 3
    assert case["refunded_fen"] == 0


def test_M5_shipping_the_return_records_carrier_and_tracking(api):
    case = approved_return(api)
    advance_to(api, START + 5 * H)
    case = ship_return(api, case["id"])
    assert case["status"] == "return_in_transit"
    assert case["return_shipment"]["carrier"] == "YTO" and case["return_shipment"]["tracking_no"]
    assert at(case["return_shipment"]["shipped_at"]) == START + 5 * H
    assert "cancel" not in case["allowed_actions"]


# --- M6 ----------------------------------------------------------------------------------------------------
def test_M6_return_with_delivery_record_refunds_48h_after_delivery(api):
    case = approved_return(api, "no_reason")
    ship_return(api, case["id"])
    advance_to(api, START + 30 * H)
    delivered_at = START + 20 * H
    case = act(api, case["id"], "mark_return_delivered", {"at": iso(delivered_at)})
    assert case["status"] == "awaiting_merchant_receipt"
    assert deadline(case) == ("return_timeout", delivered_at + 48 * H, "M6")
    # the law's outer bound: a refund within 7 days of receiving the goods (CRPL art. 25)
    assert deadline(case)[1] - delivered_at <= timedelta(days=7)
    advance_to(api, delivered_at + 48 * H - timedelta(seconds=1))
    assert get_case(api, case["id"])["status"] == "awaiting_merchant_receipt"
    api.advance(1)
    case = get_case(api, case["id"])
    assert_closed(case, "refunded")
    assert case["refunded_fen"] == 10000 and case["refunds"][0]["rule"] == "M6"
    ev = event(events(api, case["id"]), "return_timeout")
    assert ev["actor"] == "system" and "M6" in ev["rules"] and at(ev["at"]) == delivered_at + 48 * H


def test_M6_return_without_delivery_record_refunds_after_10_days(api):
    case = approved_return(api)
    advance_to(api, START + 2 * H)
    case = ship_return(api, case["id"])
    due = window_end(START + 2 * H, 10)
    assert due == local(2026, 3, 12)
    assert deadline(case) == ("return_timeout", due, "M6")
    advance_to(api, due - timedelta(seconds=1))
    assert get_case(api, case["id"])["status"] == "return_in_transit"
    api.advance(1)
    case = get_case(api, case["id"])
    assert_closed(case, "refunded")
    assert case["refunded_fen"] == 10800 and get_order(api, "o1")["refunded_fen"] == 10800
    assert event(events(api, case["id"]), "return_timeout")["actor"] == "system"


def test_M6_merchant_confirms_the_return_and_refunds_at_once(api):
    case = approved_return(api)
    ship_return(api, case["id"])
    act(api, case["id"], "mark_return_delivered")
    case = act(api, case["id"], "confirm_return")
    assert_closed(case, "refunded")
    assert case["refunds"][0]["rule"] == "M6" and case["refunds"][0]["payer"] == "merchant"


def test_M6_merchant_rejects_the_goods_with_evidence_and_the_platform_decides(api):
    case = approved_return(api, "no_reason")
    ship_return(api, case["id"])
    act(api, case["id"], "mark_return_delivered", who="platform")
    problem(try_act(api, case["id"], "reject_return", {}), 422)
    case = act(api, case["id"], "reject_return", {"reason": "returned used, tags removed (photos attached)"})
    assert case["status"] == "platform_review"
    assert deadline(case)[0] == "flag_platform_overdue" and deadline(case)[2] == "P1"
    assert set(event(events(api, case["id"]), "reject_return")["rules"]) >= {"M6", "P1"}
    case = act(api, case["id"], "rule", {"outcome": "reject", "rationale": "photos show heavy use"})
    assert_closed(case, "platform_rejected")
    assert case["ruling"]["outcome"] == "reject" and case["ruling"]["rationale"] == "photos show heavy use"
    assert get_case(api, case["id"], who="buyer_x")["ruling"]["rationale"] == "photos show heavy use"


# --- M7 ----------------------------------------------------------------------------------------------------
def test_M7_exchange_replacement_not_shipped_in_48h_turns_into_refund_of_the_goods(api):
    delivered_order(api, "o1", items=[item("s1", 10000), item("s2", 4000)])
    case = open_case(api, "o1", "exchange", "wrong_item", items=[{"sku": "s2", "quantity": 1}])
    act(api, case["id"], "approve")
    ship_return(api, case["id"], shipping_fee_fen=900)
    advance_to(api, START + 24 * H)
    case = act(api, case["id"], "confirm_return")
    assert case["status"] == "awaiting_replacement_shipment"
    assert deadline(case) == ("ship_timeout", START + 72 * H, "M7")
    advance_to(api, START + 72 * H)
    case = get_case(api, case["id"])
    assert_closed(case, "refunded")
    [refund] = case["refunds"]
    assert refund["goods"] == {"s2": 4000} and refund["shipping_fen"] == 0 and refund["rule"] == "M7"
    assert refund["return_shipping_fen"] == 900
    assert get_order(api, "o1")["refunded_fen"] == 4000
    assert event(events(api, case["id"]), "ship_timeout")["actor"] == "system"


def test_M7_exchange_replacement_delivered_and_auto_confirmed_after_7_days(api):
    case = delivered_case(api, "exchange", "quality_problem")
    act(api, case["id"], "approve")
    ship_return(api, case["id"], shipping_fee_fen=1000)
    advance_to(api, START + 30 * H)
    case = act(api, case["id"], "mark_return_delivered")
    assert case["status"] == "awaiting_replacement_shipment"
    assert deadline(case) == ("ship_timeout", START + 78 * H, "M7")
    case = ship_replacement(api, case["id"])
    assert case["status"] == "replacement_in_transit"
    assert "cancel" not in get_case(api, case["id"], who="buyer_x")["allowed_actions"]
    # M3: the merchant-paid return parcel is reimbursed now that the exchange goes ahead
    [refund] = case["refunds"]
    assert refund["kind"] == "return_shipping" and refund["return_shipping_fen"] == 1000 and refund["refund_fen"] == 0
    assert refund["key"] == f"case:{case['id']}:return-shipping"

    advance_to(api, START + 50 * H)
    delivered = START + 48 * H
    case = act(api, case["id"], "mark_replacement_delivered", {"at": iso(delivered)})
    assert deadline(case) == ("auto_confirm_received", window_end(delivered, 7), "M7")
    advance_to(api, window_end(delivered, 7))
    case = get_case(api, case["id"])
    assert_closed(case, "exchanged")
    assert get_order(api, "o1")["refunded_fen"] == 0
    assert event(events(api, case["id"]), "auto_confirm_received")["actor"] == "system"


def test_M7_reship_of_missing_items_confirmed_by_the_buyer(api):
    case = delivered_case(api, "reship", "missing_parts")
    case = act(api, case["id"], "approve")
    assert case["status"] == "awaiting_replacement_shipment"
    assert deadline(case) == ("ship_timeout", START + 48 * H, "M7")
    case = ship_replacement(api, case["id"])
    assert case["replacement_shipment"]["carrier"] == "SF"
    problem(try_act(api, case["id"], "cancel"), 409, "C1")
    case = act(api, case["id"], "confirm_received")
    assert_closed(case, "reshipped")


def test_M7_reship_not_shipped_in_48h_refunds_the_missing_items(api):
    delivered_order(api, "o1", items=[item("s1", 10000), item("s2", 2500)])
    case = open_case(api, "o1", "reship", "not_received", items=[{"sku": "s2", "quantity": 1}])
    act(api, case["id"], "approve")
    advance_to(api, START + 48 * H)
    case = get_case(api, case["id"])
    assert_closed(case, "refunded")
    assert case["refunded_fen"] == 2500 and case["refunds"][0]["goods"] == {"s2": 2500}


def test_M7_repair_goes_back_repaired_and_closes_as_repaired(api):
    cat = warranty_category(api)
    delivered_order(api, "o1", items=[item("tv", 300000, category=cat)])
    advance_to(api, AFTER_SALES_END + H)
    case = open_case(api, "o1", "repair", "quality_problem")
    act(api, case["id"], "approve")
    ship_return(api, case["id"])
    case = act(api, case["id"], "confirm_return")
    assert case["status"] == "awaiting_replacement_shipment"
    ship_replacement(api, case["id"])
    case = act(api, case["id"], "confirm_received")
    assert_closed(case, "repaired")
    assert get_order(api, "o1")["refunded_fen"] == 0


# --- M8 ----------------------------------------------------------------------------------------------------
def test_M8_buyer_accepts_a_partial_refund_and_keeps_the_goods(api):
    case = delivered_case(api, "refund_only", "not_as_described")
    problem(try_act(api, case["id"], "offer_partial_refund", {"refund_fen": 10001}), 422, "E10")
    case = act(api, case["id"], "offer_partial_refund", {"refund_fen": 3000})
    assert case["status"] == "awaiting_buyer"
    assert case["offer"]["kind"] == "partial_refund" and case["offer"]["refund_fen"] == 3000
    case = act(api, case["id"], "accept_offer")
    assert_closed(case, "refunded")
    assert case["refund_fen"] == 3000 and case["refunded_fen"] == 3000
    assert case["refunds"][0]["rule"] == "M8"
    assert get_order(api, "o1")["refunded_fen"] == 3000


def test_M8_buyer_declines_and_the_case_goes_on_where_it_was(api):
    case = delivered_case(api, "return_refund", "service_attitude")
    original_due = deadline(case)[1]
    advance_to(api, START + 5 * H)
    act(api, case["id"], "offer_partial_refund", {"refund_fen": 2000})
    case = act(api, case["id"], "decline_offer")
    assert case["status"] == "awaiting_merchant" and case["offer"] is None and case["refunded_fen"] == 0
    assert deadline(case) == ("auto_approve", original_due, "M1")


def test_M8_offer_waits_for_the_buyer_and_lapses_back_to_the_merchant(api):
    case = delivered_case(api, "refund_only", "quality_problem")
    case = act(api, case["id"], "offer_partial_refund", {"refund_fen": 2000})
    assert deadline(case)[:2] == ("lapse_offer", window_end(START, 7))
    advance_to(api, START + 60 * H)  # the merchant's 48 h do not run out while the buyer considers the offer
    case = get_case(api, case["id"])
    assert case["status"] == "awaiting_buyer" and case["refunded_fen"] == 0
    advance_to(api, window_end(START, 7))
    case = get_case(api, case["id"])
    assert case["offer"] is None
    lapse = event(events(api, case["id"]), "lapse_offer")
    assert lapse["actor"] == "system" and lapse["to_status"] == "awaiting_merchant"


def test_M8_lapsed_offer_after_merchant_deadline_approves_at_the_lapse_instant_never_back_in_time(api):
    case = delivered_case(api, "refund_only", "quality_problem")
    case = act(api, case["id"], "offer_partial_refund", {"refund_fen": 2000})
    action, due, _rule = deadline(case)
    assert action == "lapse_offer" and due == window_end(START, 7)
    advance_to(api, due)
    case = get_case(api, case["id"])
    assert case["offer"] is None
    evs = events(api, case["id"])
    lapse = event(evs, "lapse_offer")
    assert lapse["actor"] == "system" and at(lapse["at"]) == due and lapse["to_status"] == "awaiting_merchant"
    # Back where it was: waiting for the merchant, whose 48 h ran out meanwhile, so M1 approves, at the lapse
    # instant and never back in time before it (T2).
    approved = event(evs, "auto_approve")
    assert at(approved["at"]) == due and approved["id"] > lapse["id"]
    assert [at(e["at"]) for e in evs] == sorted(at(e["at"]) for e in evs)
    assert_closed(case, "refunded")
    assert case["refunded_fen"] == 10000 and at(case["refunds"][0]["settled_at"]) == due


def test_M8_declining_after_the_merchant_deadline_passed_approves_now(api):
    case = delivered_case(api, "refund_only", "quality_problem")
    act(api, case["id"], "offer_partial_refund", {"refund_fen": 2000})
    advance_to(api, START + 72 * H)
    case = act(api, case["id"], "decline_offer")
    assert deadline(case) == ("auto_approve", START + 72 * H, "M1")
    api.advance(0)
    case = get_case(api, case["id"])
    assert_closed(case, "refunded")
    assert at(event(events(api, case["id"]), "auto_approve")["at"]) == START + 72 * H


# --- C1 ----------------------------------------------------------------------------------------------------
def test_C1_buyer_cancels_while_nothing_has_moved(api):
    case = delivered_case(api)
    problem(try_act(api, case["id"], "cancel", who="merchant_a"), 403)
    case = act(api, case["id"], "cancel")
    assert_closed(case, "cancelled")
    ev = event(events(api, case["id"]), "cancel")
    assert ev["actor"] == "buyer" and set(ev["rules"]) >= {"C1", "E8"} and ev["data"]["cancellations_left"] == 2
    # after an approval, before the parcel leaves: still possible
    case = approved_return(api, order_id="o2")
    assert_closed(act(api, case["id"], "cancel"), "cancelled")


def test_C1_no_cancellation_once_goods_or_money_moved(api):
    case = approved_return(api)
    ship_return(api, case["id"])
    problem(try_act(api, case["id"], "cancel"), 409, "C1")
    case = act(api, case["id"], "confirm_return")
    problem(try_act(api, case["id"], "cancel"), 409, "C1")
    assert get_order(api, "o1")["buyer_cancellations"] == 0
    # exchange: the return was shipped, so cancelling while the shop prepares the replacement is refused too
    case = delivered_case(api, "exchange", "quality_problem", order_id="o2")
    act(api, case["id"], "approve")
    ship_return(api, case["id"])
    act(api, case["id"], "confirm_return")
    problem(try_act(api, case["id"], "cancel"), 409, "C1")
    assert get_case(api, case["id"])["status"] == "awaiting_replacement_shipment"


# --- F1 ----------------------------------------------------------------------------------------------------
def test_F1_refunds_listed_with_idempotency_keys_on_case_and_order(api):
    case = delivered_case(api, "refund_only", "quality_problem", refund_fen=4000)
    case = act(api, case["id"], "approve")
    assert_closed(case, "refunded")
    [refund] = case["refunds"]
    assert refund["key"] == f"case:{case['id']}:refund:1"
    assert refund["kind"] == "case" and refund["case_id"] == case["id"] and refund["payer"] == "merchant"
    assert refund["status"] == "settled" and refund["settled_at"] is not None and refund["amount_fen"] == 4000
    order = get_order(api, "o1", who="buyer_x")
    assert [r["key"] for r in order["refunds"]] == [refund["key"]]
    assert order["refunded_fen"] == 4000
    evs = events(api, case["id"])
    issued, settled = event(evs, "refund_issued"), event(evs, "refund_settled")
    assert issued["data"]["key"] == settled["data"]["key"] == refund["key"]
    assert "F1" in issued["rules"] and "F1" in settled["rules"]
    closed = event(evs, "closed")
    assert closed["to_status"] == "closed" and "F1" in closed["rules"]


def test_F1_a_retried_approval_never_pays_twice(api):
    case = delivered_case(api, "refund_only", "quality_problem")
    headers = {"Idempotency-Key": "approve-once"}
    first = try_act(api, case["id"], "approve", headers=headers)
    again = try_act(api, case["id"], "approve", headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    # the same key with another request is refused, and pays nothing
    problem(try_act(api, case["id"], "approve", {"return_shipping_payer": "merchant"}, headers=headers), 422)
    # without the key the second approval is a state conflict, never a second payment
    problem(try_act(api, case["id"], "approve"), 409)
    order = get_order(api, "o1")
    assert len(order["refunds"]) == 1 and order["refunded_fen"] == 10000


def test_F1_refunded_never_exceeds_paid_across_cases(api):
    delivered_order(api, "o1", items=[item("s1", 10000), item("s2", 5000)])
    c1 = open_case(api, "o1", "refund_only", "quality_problem", items=[{"sku": "s1", "quantity": 1}], refund_fen=6000)
    act(api, c1["id"], "approve")
    c2 = open_case(api, "o1", "return_refund", "quality_problem")
    assert c2["refund_fen"] == 4000 + 5000 + 800
    act(api, c2["id"], "approve")
    ship_return(api, c2["id"], shipping_fee_fen=1500)
    act(api, c2["id"], "confirm_return")
    order = assert_money_invariant(api, "o1")
    assert order["refunded_fen"] == order["paid_fen"] == 15800
    for o in options(api, "o1")["options"]:
        assert o["allowed"] is False


# --- P1 / P2 -----------------------------------------------------------------------------------------------
def escalated(api, **kw):
    case = delivered_case(api, "return_refund", "quality_problem", **kw)
    act(api, case["id"], "reject", {"reason": "not a defect"})
    return act(api, case["id"], "escalate", {"reason": "it is"})


def test_P1_platform_rules_a_refund_and_the_merchant_pays_it(api):
    case = escalated(api)
    problem(try_act(api, case["id"], "rule", {"outcome": "refund", "rationale": "x"}, who="buyer_x"), 403)
    problem(try_act(api, case["id"], "pay_ruling"), 409, "P1")
    problem(try_act(api, case["id"], "rule", {"outcome": "refund", "refund_fen": 10801, "rationale": "x"}), 422, "E10")
    advance_to(api, START + 3 * H)
    case = act(api, case["id"], "rule", {"outcome": "refund", "refund_fen": 6000, "rationale": "defect confirmed by photos"})
    assert case["status"] == "platform_review"
    assert case["ruling"]["outcome"] == "refund" and case["ruling"]["refund_fen"] == 6000
    assert deadline(case) == ("advance_compensation", START + 27 * H, "P2")
    for who in ("buyer_x", "merchant_a"):  # shown to both sides
        assert get_case(api, case["id"], who=who)["ruling"]["rationale"] == "defect confirmed by photos"
    problem(try_act(api, case["id"], "rule", {"outcome": "reject", "rationale": "again"}), 409, "P1")
    case = act(api, case["id"], "pay_ruling")
    assert_closed(case, "refunded")
    assert case["refunded_fen"] == 6000 and case["ruling"]["paid_by"] == "merchant"
    assert case["refunds"][0]["rule"] == "P1" and case["refunds"][0]["payer"] == "merchant"
    assert event(events(api, case["id"]), "rule")["actor"] == "platform"
    # nothing fires later
    advance_to(api, START + 30 * H)
    assert len(get_order(api, "o1")["refunds"]) == 1


def test_P1_platform_rejects_and_the_case_closes(api):
    case = escalated(api)
    case = act(api, case["id"], "rule", {"outcome": "reject", "rationale": "wear from use"})
    assert_closed(case, "platform_rejected")
    assert get_order(api, "o1")["refunded_fen"] == 0


def test_P1_agent_that_does_not_take_the_case_in_24h_is_flagged(api):
    case = escalated(api)
    advance_to(api, START + 24 * H)
    case = get_case(api, case["id"])
    assert case["platform_overdue"] is True and case["status"] == "platform_review"
    ev = event(events(api, case["id"]), "flag_platform_overdue")
    assert ev["actor"] == "system" and ev["rules"] == ["P1"]
    case = act(api, case["id"], "rule", {"outcome": "refund", "rationale": "late but fair"})
    assert case["ruling"]["refund_fen"] == 10800


def test_P2_platform_pays_in_advance_when_merchant_misses_merchant_pay_hours(api):
    case = escalated(api)
    case = act(api, case["id"], "rule", {"outcome": "refund", "refund_fen": 7000, "rationale": "defect"})
    due = deadline(case)[1]
    assert due == START + 24 * H
    advance_to(api, due - timedelta(seconds=1))
    assert get_case(api, case["id"])["status"] == "platform_review"
    api.advance(1)
    case = get_case(api, case["id"])
    assert_closed(case, "refunded")
    assert case["ruling"]["paid_by"] == "platform" and case["refunded_fen"] == 7000
    [refund] = case["refunds"]
    assert refund["payer"] == "platform" and refund["rule"] == "P2" and refund["status"] == "settled"
    ev = event(events(api, case["id"]), "advance_compensation")
    assert ev["actor"] == "system" and "P2" in ev["rules"] and at(ev["at"]) == due
    problem(try_act(api, case["id"], "pay_ruling"), 409)
    assert get_order(api, "o1")["refunded_fen"] == 7000


# --- events, If-Match, conflicts ---------------------------------------------------------------------------
def test_T2_events_list_every_change_with_actor_instant_and_rules(api):
    case = delivered_case(api, "return_refund", "quality_problem")
    act(api, case["id"], "approve")
    advance_to(api, START + 2 * H)
    ship_return(api, case["id"], shipping_fee_fen=800)
    advance_to(api, START + 30 * H)
    act(api, case["id"], "mark_return_delivered")
    act(api, case["id"], "confirm_return")
    evs = events(api, case["id"], who="buyer_x")
    # the refund the confirmation caused is recorded in the same instant, in the same transaction
    assert sorted(kinds(evs)[4:6]) == ["confirm_return", "refund_issued"]
    assert kinds(evs)[:4] == ["opened", "approve", "ship_return", "mark_return_delivered"]
    assert kinds(evs)[6:] == ["refund_settled", "closed"]
    assert [at(e["at"]) for e in evs] == sorted(at(e["at"]) for e in evs)
    for e in evs:
        assert e["actor"] in ACTORS and e["rules"] and e["at"] and e["case_id"] == case["id"] and e["order_id"] == "o1"
    assert {e["kind"]: e["actor"] for e in evs} == {
        "opened": "buyer", "approve": "merchant", "ship_return": "buyer", "mark_return_delivered": "merchant",
        "confirm_return": "merchant", "refund_issued": "merchant", "refund_settled": "system", "closed": "system"}
    assert at(event(evs, "ship_return")["at"]) == START + 2 * H
    assert event(evs, "opened")["rules"][0] == "E5"
    assert event(evs, "ship_return")["from_status"] == "awaiting_return_shipment"
    assert event(evs, "ship_return")["to_status"] == "return_in_transit"
    assert events(api, case["id"], who="merchant_a") == evs
    problem(api.get(f"/v1/cases/{case['id']}/events", who="buyer_y"), 404)
    problem(api.get(f"/v1/cases/{case['id']}/events", who="merchant_b"), 404)


def test_T2_stale_if_match_is_409_and_changes_nothing(api):
    case = delivered_case(api)
    version = case["version"]
    r = try_act(api, case["id"], "approve", headers={"If-Match": str(version + 1)})
    problem(r, 409)
    assert get_case(api, case["id"])["version"] == version and get_case(api, case["id"])["status"] == "awaiting_merchant"
    case = act(api, case["id"], "approve", headers={"If-Match": f'"{version}"'})
    assert case["version"] > version
    problem(try_act(api, case["id"], "ship_return", {"carrier": "Y", "tracking_no": "1"}, headers={"If-Match": str(version)}), 409)


def test_T2_action_not_allowed_in_current_status_is_409_problem_with_rule(api):
    case = delivered_case(api)
    body = problem(try_act(api, case["id"], "ship_return", {"carrier": "Y", "tracking_no": "1"}), 409, "M1")
    assert "ship" in body["detail"].lower()
    problem(try_act(api, case["id"], "confirm_received"), 409)
    problem(try_act(api, case["id"], "approve", who="buyer_x"), 403)
    act(api, case["id"], "cancel")
    for action, body in (("approve", None), ("reject", {"reason": "x"}), ("escalate", {"reason": "x"})):
        problem(try_act(api, case["id"], action, body), 409)
