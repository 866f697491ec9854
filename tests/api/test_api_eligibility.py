"""RULEBOOK §0 (T0, T1) and §2 through HTTP: what a buyer may open (E1–E10), on SQLite and PostgreSQL.

Unless a test says otherwise the order is one item of 100.00 (10000 fen) plus 8.00 shipping, delivered at the
clock start, 2026-03-01T02:00Z = 10:00 on 1 March in Asia/Shanghai: local day D = 1 March, so the no-reason
window ends at 9 March 00:00 (+08:00) and the after-sales window at 17 March 00:00 (+08:00).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from helpers import (
    START,
    act,
    advance_to,
    create_order,
    deliver,
    delivered_order,
    get_case,
    get_order,
    group_order,
    iso,
    item,
    local,
    open_case,
    option,
    options,
    problem,
    put_category,
    ship,
    shipped_order,
    shop_excluded_category,
    statutory_category,
    try_act,
    try_open,
    warranty_category,
)

NO_REASON_END = local(2026, 3, 9)  # end of local day D+7
AFTER_SALES_END = local(2026, 3, 17)  # end of local day D+15
TYPES = ("refund_only", "return_refund", "exchange", "reship", "repair")
MERCHANT_REASONS = {"quality_problem", "not_as_described", "wrong_item", "missing_parts", "counterfeit",
                    "damaged_in_transit", "not_received", "late_delivery", "service_attitude"}


def refused_everywhere(opts, rule):
    assert {o["type"] for o in opts["options"]} == set(TYPES)
    for o in opts["options"]:
        assert o["allowed"] is False, o
        assert o["rule"] == rule, o
        assert o["explanation"], o


# --- T0 ----------------------------------------------------------------------------------------------------
def test_T0_delivery_at_2330_local_counts_windows_from_the_next_local_day(api):
    late = local(2026, 3, 1, 23, 30)  # 2026-03-01T15:30Z
    shipped_order(api, "late")
    shipped_order(api, "after_midnight")
    advance_to(api, local(2026, 3, 2, 0, 30))
    assert deliver(api, "late", late)["delivered_at"] == iso(late) == "2026-03-01T15:30:00+00:00"
    deliver(api, "after_midnight", local(2026, 3, 2, 0, 30))

    ret = option(options(api, "late"), "return_refund")
    assert ret["allowed"] is True and ret["rule"] == "E4"
    # RULEBOOK T0 example: delivered 2026-03-01T23:30+08:00, 7-day window → open until 2026-03-09T00:00+08:00.
    assert ret["reason_deadlines"]["no_reason"] == "2026-03-08T16:00:00+00:00"
    assert ret["reason_deadlines"]["quality_problem"] == iso(local(2026, 3, 17))
    assert option(options(api, "late"), "refund_only")["deadline"] == iso(local(2026, 3, 17))
    # One hour later, on local day 2 March: every window ends a day later.
    ret2 = option(options(api, "after_midnight"), "return_refund")
    assert ret2["reason_deadlines"]["no_reason"] == iso(local(2026, 3, 10))
    assert ret2["deadline"] == iso(local(2026, 3, 18))

    # The window is open until the instant, exclusive.
    advance_to(api, local(2026, 3, 9) - timedelta(seconds=1))
    assert "no_reason" in option(options(api, "late"), "return_refund")["reasons"]
    advance_to(api, local(2026, 3, 9))
    ret = option(options(api, "late"), "return_refund")
    assert "no_reason" not in ret["reasons"] and ret["rule"] == "E5"
    problem(try_open(api, "late", "return_refund", "no_reason"), 422, "E4")
    assert "no_reason" in option(options(api, "after_midnight"), "return_refund")["reasons"]
    assert open_case(api, "after_midnight", "return_refund", "no_reason")["reason"] == "no_reason"


def test_T0_naive_timestamps_are_rejected(api):
    shipped_order(api, "o1")
    r = api.post("/v1/orders/o1/deliver", {"at": "2026-03-01T02:00:00"}, who="merchant_a")
    assert r.status_code == 422, r.text
    r = api.post("/v1/orders", {"id": "o2", "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00",
                                "shipping_fee_fen": 0, "items": [item()]})
    assert r.status_code == 422, r.text


def test_T1_amounts_must_be_positive_integers_of_fen(api):
    create_order(api, "o1")
    for bad in (0, -100, 10.5, "100", True):
        problem(try_open(api, "o1", "refund_only", "no_reason", refund_fen=bad), 422)
    assert get_order(api, "o1")["case_ids"] == []
    r = api.post("/v1/orders", {"id": "o2", "merchant_id": "mA", "buyer_id": "bX", "paid_at": iso(START),
                                "shipping_fee_fen": 0, "items": [item(unit_price_fen=99.5)]})
    problem(r, 422)


# --- E1 ----------------------------------------------------------------------------------------------------
def test_E1_pending_group_order_allows_nothing(api):
    group_order(api, "g1", "G")
    opts = options(api, "g1")
    for o in opts["options"]:
        assert o["allowed"] is False and o["rule"] in ("E1", "G2") and o["explanation"]
    for case_type in TYPES:
        assert problem(try_open(api, "g1", case_type, "quality_problem"), 422)["rule"] in ("E1", "G2")


# --- E2 ----------------------------------------------------------------------------------------------------
def test_E2_before_shipment_only_whole_order_refund_items_and_shipping_any_reason(api):
    create_order(api, "o1", items=[item("s1", 10000), item("s2", 2500, quantity=2)])
    opts = options(api, "o1")
    refund = option(opts, "refund_only")
    assert refund["allowed"] is True and refund["rule"] == "E2"
    assert refund["max_refund_fen"] == 15000 + 800
    assert set(refund["reasons"]) == MERCHANT_REASONS | {"no_reason", "other"}
    assert refund["deadline"] is None
    for t in TYPES[1:]:
        o = option(opts, t)
        assert o["allowed"] is False and o["rule"] == "E2" and o["explanation"]
        problem(try_open(api, "o1", t, "quality_problem"), 422, "E2")
    # A part of the order, or a partial amount, is not what E2 allows.
    problem(try_open(api, "o1", "refund_only", "no_reason", items=[{"sku": "s1", "quantity": 1}]), 422, "E2")
    problem(try_open(api, "o1", "refund_only", "no_reason", refund_fen=5000), 422, "E2")
    case = open_case(api, "o1", "refund_only", "no_reason")
    assert case["refund_fen"] == 15800
    assert {(i["sku"], i["quantity"]) for i in case["items"]} == {("s1", 1), ("s2", 2)}


# --- E3 ----------------------------------------------------------------------------------------------------
def test_E3_shipped_not_delivered_allows_refund_only_and_no_return(api):
    shipped_order(api, "o1")
    opts = options(api, "o1")
    refund = option(opts, "refund_only")
    assert refund["allowed"] is True and refund["rule"] == "E3" and refund["max_refund_fen"] == 10800
    for t in TYPES[1:]:
        assert option(opts, t)["allowed"] is False and option(opts, t)["rule"] == "E3"
    problem(try_open(api, "o1", "return_refund", "no_reason"), 422, "E3")
    case = open_case(api, "o1", "refund_only", "not_received")
    assert case["refund_fen"] == 10800
    case = act(api, case["id"], "approve")
    assert case["status"] == "closed" and case["close_reason"] == "refunded" and case["refunded_fen"] == 10800
    order = get_order(api, "o1")
    assert order["refunded_fen"] == order["paid_fen"] == 10800 and order["status"] == "cancelled"


# --- E4 ----------------------------------------------------------------------------------------------------
def test_E4_no_reason_return_until_end_of_local_day_D_plus_7(api):
    delivered_order(api, "o1")
    delivered_order(api, "o2")
    ret = option(options(api, "o1"), "return_refund")
    assert ret["allowed"] is True and ret["rule"] == "E4"
    assert "no_reason" in ret["reasons"] and set(ret["reasons"]) >= MERCHANT_REASONS
    assert ret["reason_deadlines"]["no_reason"] == iso(NO_REASON_END)
    assert ret["deadline"] == iso(AFTER_SALES_END)
    assert ret["items"] == ["s1"]

    advance_to(api, NO_REASON_END - timedelta(seconds=1))
    case = open_case(api, "o1", "return_refund", "no_reason", description="changed my mind, goods intact")
    assert case["refund_fen"] == 10000, "no-reason returns refund the goods, not the order's shipping (E10)"

    advance_to(api, NO_REASON_END)
    ret = option(options(api, "o2"), "return_refund")
    assert ret["rule"] == "E5" and "no_reason" not in ret["reasons"] and "no_reason" not in ret["reason_deadlines"]
    body = problem(try_open(api, "o2", "return_refund", "no_reason"), 422, "E4")
    assert "no-reason" in body["detail"] and "ended" in body["detail"]  # S4: why, not a bare "not accepted"


@pytest.mark.parametrize("exclusion", ["custom_made", "perishable", "digital", "periodical"])
def test_E4_statutory_exclusion_item_is_not_returnable_without_reason(api, exclusion):
    cat = statutory_category(api, f"cat_{exclusion}", exclusion)
    delivered_order(api, "mixed", items=[item("s1", 10000), item("x1", 3000, category=cat, title="Excluded thing")])
    ret = option(options(api, "mixed", lang="en"), "return_refund")
    assert ret["allowed"] is True and ret["rule"] == "E4"
    assert "Excluded thing" in ret["explanation"]
    # The excluded item cannot be named in a no-reason return …
    problem(try_open(api, "mixed", "return_refund", "no_reason", items=[{"sku": "x1", "quantity": 1}]), 422, "E4")
    # … and a no-reason return of the order covers only the eligible items.
    case = open_case(api, "mixed", "return_refund", "no_reason")
    assert [i["sku"] for i in case["items"]] == ["s1"] and case["refund_fen"] == 10000
    act(api, case["id"], "cancel")
    # A merchant-responsibility problem with the excluded item stays open (E5).
    case = open_case(api, "mixed", "return_refund", "quality_problem", items=[{"sku": "x1", "quantity": 1}])
    assert case["refund_fen"] == 3000

    # An order of excluded goods only: no no-reason return at all.
    delivered_order(api, "only", items=[item("x1", 3000, category=cat)])
    ret = option(options(api, "only"), "return_refund")
    assert ret["rule"] == "E5" and "no_reason" not in ret["reasons"] and ret["explanation"]
    problem(try_open(api, "only", "return_refund", "no_reason"), 422, "E4")


def test_E4_shop_exclusion_binds_only_when_buyer_confirmed_at_purchase(api):
    cat = shop_excluded_category(api)
    delivered_order(api, "confirmed", items=[item("u1", 5000, category=cat, exclusion_confirmed=True)])
    delivered_order(api, "unconfirmed", items=[item("u1", 5000, category=cat, exclusion_confirmed=False)])
    ret = option(options(api, "confirmed"), "return_refund")
    assert "no_reason" not in ret["reasons"]
    problem(try_open(api, "confirmed", "return_refund", "no_reason"), 422, "E4")
    ret = option(options(api, "unconfirmed"), "return_refund")
    assert ret["rule"] == "E4" and "no_reason" in ret["reasons"]
    assert open_case(api, "unconfirmed", "return_refund", "no_reason")["refund_fen"] == 5000


# --- E5 ----------------------------------------------------------------------------------------------------
def test_E5_merchant_responsibility_window_until_local_day_D_plus_15(api):
    delivered_order(api, "o1", items=[item("s1", 10000), item("s2", 4000)])
    advance_to(api, NO_REASON_END)
    opts = options(api, "o1")
    for t, reasons in (("refund_only", MERCHANT_REASONS | {"other"}), ("return_refund", MERCHANT_REASONS | {"other"}),
                       ("reship", {"missing_parts", "not_received"})):
        o = option(opts, t)
        assert o["allowed"] is True and o["rule"] == "E5" and o["deadline"] == iso(AFTER_SALES_END), o
        assert set(o["reasons"]) == reasons, o
    exchange = option(opts, "exchange")
    assert exchange["allowed"] is True and exchange["rule"] == "E5" and "quality_problem" in exchange["reasons"]
    assert "no_reason" not in exchange["reasons"]
    # refund_only keeps the goods: the goods' value, never the order's shipping.
    assert option(opts, "refund_only")["max_refund_fen"] == 14000
    # a merchant-responsibility return of every item refunds the shipping too
    assert option(opts, "return_refund")["max_refund_fen"] == 14800
    repair = option(opts, "repair")
    assert repair["allowed"] is False and repair["rule"] == "E6"
    # reship is for missing items only
    problem(try_open(api, "o1", "reship", "quality_problem"), 422, "E5")
    # A partial refund that keeps the goods.
    case = open_case(api, "o1", "refund_only", "quality_problem", refund_fen=3000)
    assert case["refund_fen"] == 3000 and case["type"] == "refund_only"
    act(api, case["id"], "cancel")

    advance_to(api, AFTER_SALES_END - timedelta(seconds=1))
    assert option(options(api, "o1"), "exchange")["allowed"] is True
    advance_to(api, AFTER_SALES_END)
    refused_everywhere(options(api, "o1"), "E7")


def test_E5_category_after_sales_days_override_the_policy(api):
    put_category(api, "furniture", after_sales_days=30)
    delivered_order(api, "o1", items=[item("f1", 50000, category="furniture")])
    opts = options(api, "o1")
    assert option(opts, "exchange")["deadline"] == iso(local(2026, 4, 1))  # end of local day D+30
    advance_to(api, AFTER_SALES_END)
    assert option(options(api, "o1"), "exchange")["allowed"] is True
    open_case(api, "o1", "exchange", "quality_problem")


# --- E6 ----------------------------------------------------------------------------------------------------
def test_E6_warranty_repair_after_window_for_quality_problem_only(api):
    cat = warranty_category(api)
    delivered_order(api, "o1", items=[item("tv", 300000, category=cat)])
    repair = option(options(api, "o1"), "repair")
    assert repair["allowed"] is False and repair["rule"] == "E6" and repair["explanation"]
    problem(try_open(api, "o1", "repair", "quality_problem"), 422, "E6")

    advance_to(api, AFTER_SALES_END)
    opts = options(api, "o1")
    repair = option(opts, "repair")
    assert repair["allowed"] is True and repair["rule"] == "E6"
    assert repair["reasons"] == ["quality_problem"]
    assert repair["deadline"] == iso(local(2027, 3, 2))  # end of local day D+365
    for t in ("refund_only", "return_refund", "exchange", "reship"):
        o = option(opts, t)
        assert o["allowed"] is False and o["rule"] == "E6", o
        problem(try_open(api, "o1", t, "quality_problem"), 422, "E6")
    problem(try_open(api, "o1", "repair", "service_attitude"), 422, "E6")
    case = open_case(api, "o1", "repair", "quality_problem")
    assert case["type"] == "repair" and case["refund_fen"] is None
    act(api, case["id"], "cancel")

    advance_to(api, local(2027, 3, 2))
    refused_everywhere(options(api, "o1"), "E7")


# --- E7 ----------------------------------------------------------------------------------------------------
def test_E7_after_the_windows_buyer_is_told_to_contact_the_shop_which_may_open_with_consent(api):
    delivered_order(api, "o1")
    advance_to(api, AFTER_SALES_END)
    opts = options(api, "o1", lang="en")
    refused_everywhere(opts, "E7")
    assert "contact the shop" in option(opts, "refund_only")["explanation"]
    body = problem(try_open(api, "o1", "return_refund", "quality_problem", lang="en"), 422, "E7")
    assert "contact the shop" in body["detail"]

    merchant_view = options(api, "o1", who="merchant_a")
    for o in merchant_view["options"]:
        assert o["allowed"] is True and o["rule"] == "E7"
    problem(try_open(api, "o1", "return_refund", "quality_problem", who="merchant_a"), 422, "E7")
    r = try_open(api, "o1", "return_refund", "quality_problem", who="merchant_a", buyer_consent=True)
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["opened_by"] == "merchant" and case["buyer_id"] == "bX"
    # The buyer sees it, and all later rules apply to it: it starts approved by the shop that opened it (M3/M5).
    assert get_case(api, case["id"], who="buyer_x")["id"] == case["id"]
    assert case["status"] == "awaiting_return_shipment" and case["return_shipping_payer"] == "merchant"
    assert case["deadline"]["rule"] == "M5"


# --- E8 ----------------------------------------------------------------------------------------------------
def test_E8_cancellations_left_counts_down_and_fourth_opening_is_refused(api):
    delivered_order(api, "o1")
    assert options(api, "o1")["cancellations_left"] == 3
    for left in (2, 1, 0):
        case = open_case(api, "o1", "return_refund", "no_reason")
        cancelled = act(api, case["id"], "cancel")
        assert cancelled["status"] == "closed" and cancelled["close_reason"] == "cancelled"
        assert cancelled["cancellations_left"] == left, "every cancellation answer states how many remain"
        assert options(api, "o1")["cancellations_left"] == left
        assert get_order(api, "o1")["buyer_cancellations"] == 3 - left
    opts = options(api, "o1")
    refused_everywhere(opts, "E8")
    body = problem(try_open(api, "o1", "refund_only", "quality_problem"), 422, "E8")
    assert "3" in body["detail"]
    assert len(get_order(api, "o1")["case_ids"]) == 3
    # Merchant-opened cases are not blocked.
    r = try_open(api, "o1", "refund_only", "quality_problem", who="merchant_a", buyer_consent=True, refund_fen=1000)
    assert r.status_code == 201, r.text
    assert r.json()["opened_by"] == "merchant"


def test_E8_other_orders_keep_their_own_count(api):
    create_order(api, "o1")
    create_order(api, "o2")
    act(api, open_case(api, "o1", "refund_only", "no_reason")["id"], "cancel")
    assert options(api, "o1")["cancellations_left"] == 2
    assert options(api, "o2")["cancellations_left"] == 3


# --- E9 ----------------------------------------------------------------------------------------------------
def test_E9_one_open_case_per_order(api):
    delivered_order(api, "o1")
    case = open_case(api, "o1", "exchange", "wrong_item")
    refused_everywhere(options(api, "o1"), "E9")
    assert case["id"] in option(options(api, "o1"), "reship")["explanation"]
    problem(try_open(api, "o1", "refund_only", "quality_problem"), 422, "E9")
    assert get_order(api, "o1")["open_case_id"] == case["id"]
    act(api, case["id"], "cancel")
    assert get_order(api, "o1")["open_case_id"] is None
    open_case(api, "o1", "refund_only", "quality_problem")


# --- E10 ---------------------------------------------------------------------------------------------------
def test_E10_excessive_refund_is_refused_never_capped(api):
    delivered_order(api, "o1")
    body = problem(try_open(api, "o1", "refund_only", "quality_problem", refund_fen=10001, lang="en"), 422, "E10")
    assert "not reduced" in body["detail"]
    assert get_order(api, "o1")["case_ids"] == [], "a refused request opens nothing"
    # Shipping is not refundable on a refund that keeps the goods, nor on a no-reason return.
    problem(try_open(api, "o1", "refund_only", "quality_problem", refund_fen=10800), 422, "E10")
    problem(try_open(api, "o1", "return_refund", "no_reason", refund_fen=10800), 422, "E10")
    case = open_case(api, "o1", "refund_only", "quality_problem", refund_fen=10000)
    assert case["refund_fen"] == 10000


def test_E10_refunds_never_exceed_what_is_left_across_cases(api):
    delivered_order(api, "o1", items=[item("s1", 10000), item("s2", 6000)])
    case = open_case(api, "o1", "refund_only", "quality_problem", items=[{"sku": "s1", "quantity": 1}], refund_fen=3000)
    case = act(api, case["id"], "approve")
    assert case["close_reason"] == "refunded" and case["refunded_fen"] == 3000
    assert get_order(api, "o1")["refunded_fen"] == 3000

    opts = options(api, "o1")
    assert option(opts, "refund_only")["max_refund_fen"] == 7000 + 6000
    problem(try_open(api, "o1", "refund_only", "quality_problem", items=[{"sku": "s1", "quantity": 1}], refund_fen=7001), 422, "E10")
    case = open_case(api, "o1", "return_refund", "quality_problem", items=[{"sku": "s1", "quantity": 1}])
    assert case["refund_fen"] == 7000, "what was paid for the item minus what was already refunded for it"
    act(api, case["id"], "cancel")

    # A merchant-responsibility return of every item: the rest of the goods plus the order's shipping.
    case = open_case(api, "o1", "return_refund", "not_as_described")
    assert case["refund_fen"] == 7000 + 6000 + 800
    problem(try_open(api, "o1", "refund_only", "quality_problem"), 422, "E9")
    order = get_order(api, "o1")
    assert order["refunded_fen"] <= order["paid_fen"]


def test_E10_everything_refunded_leaves_nothing_to_open(api):
    delivered_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "counterfeit")
    assert case["refund_fen"] == 10000
    act(api, case["id"], "approve")
    opts = options(api, "o1")
    for o in opts["options"]:
        assert o["allowed"] is False and o["max_refund_fen"] == 0
    problem(try_open(api, "o1", "refund_only", "counterfeit"), 422)
    order = get_order(api, "o1")
    assert order["refunded_fen"] == 10000 <= order["paid_fen"] == 10800


def test_E10_refund_fen_is_only_for_refund_types_and_items_must_exist(api):
    delivered_order(api, "o1")
    problem(try_open(api, "o1", "exchange", "quality_problem", refund_fen=100), 422, "E10")
    problem(try_open(api, "o1", "refund_only", "quality_problem", items=[{"sku": "nope", "quantity": 1}]), 422, "E10")
    problem(try_open(api, "o1", "refund_only", "quality_problem", items=[{"sku": "s1", "quantity": 2}]), 422, "E10")


# --- explanations in three languages ------------------------------------------------------------------
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_E_every_option_explained_in_zh_CN_es_and_en_by_accept_language(api):
    delivered_order(api, "o1")
    by_lang = {lang: options(api, "o1", lang=lang) for lang in ("zh-CN", "es", "en")}
    for i, en in enumerate(by_lang["en"]["options"]):
        zh, es = by_lang["zh-CN"]["options"][i], by_lang["es"]["options"][i]
        assert zh["type"] == es["type"] == en["type"]
        texts = [zh["explanation"], es["explanation"], en["explanation"]]
        assert all(t.strip() for t in texts), texts
        assert len(set(texts)) == 3, texts
        assert CJK.search(zh["explanation"]), zh
        assert not CJK.search(en["explanation"]) and not CJK.search(es["explanation"])
    # Refusals too (S4): the same 422 in three languages.
    create_order(api, "o2")
    details = {lang: problem(try_open(api, "o2", "return_refund", "no_reason", lang=lang), 422, "E2")["detail"]
               for lang in ("zh-CN", "es", "en")}
    assert len(set(details.values())) == 3, details
    assert CJK.search(details["zh-CN"])


def test_E_options_are_visible_to_buyer_merchant_and_platform_only(api):
    create_order(api, "o1")
    for who in ("buyer_x", "merchant_a", "platform"):
        assert api.get("/v1/orders/o1/after-sales-options", who=who).status_code == 200
    for who in ("buyer_y", "merchant_b"):
        problem(api.get("/v1/orders/o1/after-sales-options", who=who), 404)
    problem(try_open(api, "o1", "refund_only", "no_reason", who="buyer_y"), 404)
    r = try_act(api, "cs_missing", "cancel")
    problem(r, 404)
    ship(api, "o1")
