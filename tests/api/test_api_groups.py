"""RULEBOOK §1 through HTTP: group-buy orders (G1–G5), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from helpers import (
    PAID_AT,
    START,
    act,
    advance_to,
    create_order,
    get_group,
    get_order,
    group_order,
    iso,
    open_case,
    option,
    options,
    problem,
    try_open,
)

EXPIRES = PAID_AT + timedelta(hours=24)  # 2026-03-02T01:00Z = 09:00 on 2 March in Asia/Shanghai


def test_G1_first_paid_member_opens_group_that_waits_24_hours(api):
    first = group_order(api, "ga", "G1", size=3)
    assert first["status"] == "group_pending"
    assert first["paid_fen"] == 10800
    g = first["group"]
    assert g["id"] == "G1" and g["size"] == 3 and g["members"] == 1 and g["status"] == "pending"
    assert g["opened_at"] == iso(PAID_AT)
    assert g["expires_at"] == iso(EXPIRES)

    second = group_order(api, "gb", "G1", size=3, buyer="bY", paid_at=START)
    assert second["status"] == "group_pending"
    assert second["group"]["members"] == 2
    assert second["group"]["expires_at"] == iso(EXPIRES), "joining never extends the window"
    assert get_group(api, "G1")["members"] == 2
    assert get_order(api, "ga")["status"] == "group_pending"


def test_G2_options_refuse_every_type_and_explain_expiry_instant_and_what_happens(api):
    group_order(api, "ga", "G2")
    opts = options(api, "ga", lang="en")
    assert len(opts["options"]) == 5
    assert {o["type"] for o in opts["options"]} == {"refund_only", "return_refund", "exchange", "reship", "repair"}
    for o in opts["options"]:
        assert o["allowed"] is False
        assert o["rule"] in ("E1", "G2")
        assert o["max_refund_fen"] == 0
    text = option(opts, "refund_only")["explanation"]
    assert "G2" in text
    # the exact instant the group expires, in platform time with its offset
    assert "Mar 2, 2026" in text and "9:00:00" in text and "UTC+08:00" in text, text
    assert "refunded" in text and "automatically" in text, text  # unformed → full refund, nothing to do
    assert "invit" in text.lower(), text  # inviting others lets the order proceed
    assert "complet" in text.lower(), text  # or the shop completing the group (G5)

    # The merchant and customer service see the same answer (the suggested reply).
    merchant_view = options(api, "ga", who="merchant_a", lang="en")
    assert option(merchant_view, "refund_only")["explanation"] == text


def test_G2_opening_a_case_while_pending_is_422_with_rule_and_explanation(api):
    group_order(api, "ga", "G2")
    for case_type, reason in (("refund_only", "no_reason"), ("return_refund", "quality_problem"), ("reship", "not_received")):
        body = problem(try_open(api, "ga", case_type, reason, lang="en"), 422)
        assert body["rule"] in ("E1", "G2")
        assert "Mar 2, 2026" in body["detail"] and "UTC+08:00" in body["detail"], body
    order = get_order(api, "ga")
    assert order["case_ids"] == [] and order["status"] == "group_pending"


def test_G2_merchant_cannot_ship_while_group_pending(api):
    group_order(api, "ga", "G2")
    r = api.post("/v1/orders/ga/ship", {"carrier": "SF", "tracking_no": "SF1"}, who="merchant_a")
    problem(r, 409, "G2")
    order = get_order(api, "ga")
    assert order["status"] == "group_pending" and order["shipped_at"] is None


def test_G3_last_member_paying_forms_group_and_every_order_awaits_shipment(api):
    group_order(api, "ga", "G3", size=2)
    second = group_order(api, "gb", "G3", size=2, buyer="bY", paid_at=START)
    assert second["group"]["status"] == "formed"
    assert second["group"]["closed_at"] == iso(START)
    for oid in ("ga", "gb"):
        assert get_order(api, oid)["status"] == "awaiting_shipment"
    # §2 applies now: E2 refund before shipment, and the merchant may ship.
    refund = option(options(api, "ga"), "refund_only")
    assert refund["allowed"] is True and refund["rule"] == "E2"
    assert api.post("/v1/orders/gb/ship", {"carrier": "SF", "tracking_no": "SF2"}, who="merchant_a").status_code == 200
    # A formed group takes no more members.
    r = api.post("/v1/orders", {"id": "gc", "merchant_id": "mA", "buyer_id": "bX", "paid_at": iso(START),
                                "shipping_fee_fen": 0, "items": [{"sku": "s1", "title": "T", "category": "apparel",
                                                                  "quantity": 1, "unit_price_fen": 100}],
                                "group": {"id": "G3", "size": 2}})
    problem(r, 409, "G1")


def test_G4_unformed_group_fails_at_expiry_and_refunds_every_member_in_full_exactly_once(api):
    group_order(api, "ga", "G4", size=3)
    group_order(api, "gb", "G4", size=3, buyer="bY", paid_at=START, shipping_fee_fen=1200)

    advance_to(api, EXPIRES - timedelta(seconds=1))
    assert get_group(api, "G4")["status"] == "pending"
    assert get_order(api, "ga")["refunded_fen"] == 0

    out = api.advance(1)
    assert out["fired"] >= 1
    group = get_group(api, "G4")
    assert group["status"] == "failed" and group["closed_at"] == iso(EXPIRES)
    for oid, shipping in (("ga", 800), ("gb", 1200)):
        order = get_order(api, oid)
        assert order["status"] == "cancelled" and order["cancelled_at"] == iso(EXPIRES)
        assert order["paid_fen"] == 10000 + shipping
        assert order["refunded_fen"] == order["paid_fen"], "items and shipping, in full"
        assert len(order["refunds"]) == 1
        refund = order["refunds"][0]
        assert refund["kind"] == "group_failure" and refund["rule"] == "G4" and refund["case_id"] is None
        assert refund["key"] == f"group-failure:{oid}"
        assert refund["status"] == "settled" and refund["settled_at"] is not None
        assert refund["shipping_fen"] == shipping and refund["goods"] == {"s1": 10000}
        assert refund["amount_fen"] == order["paid_fen"]

    # Exactly once: nothing more fires, nothing is paid twice, however far the clock moves.
    assert api.advance(3 * 86400)["fired"] == 0
    for oid in ("ga", "gb"):
        order = get_order(api, oid)
        assert len(order["refunds"]) == 1 and order["refunded_fen"] == order["paid_fen"]
    # No after-sales case is needed, nor possible, on a cancelled and refunded order.
    assert all(o["allowed"] is False for o in options(api, "ga")["options"])
    problem(try_open(api, "ga", "refund_only", "no_reason"), 422)
    # The failed group takes no late member, and a cancelled order cannot be shipped.
    late = {"id": "gz", "merchant_id": "mA", "buyer_id": "bX", "paid_at": iso(EXPIRES + timedelta(hours=1)),
            "shipping_fee_fen": 0, "items": [{"sku": "s1", "title": "T", "category": "apparel", "quantity": 1,
                                              "unit_price_fen": 100}], "group": {"id": "G4", "size": 3}}
    problem(api.post("/v1/orders", late), 409, "G1")
    problem(api.post("/v1/orders/ga/ship", {"carrier": "SF", "tracking_no": "X"}, who="merchant_a"), 409)


def test_G4_group_with_automatic_completion_forms_at_expiry_via_clock_advance(api):
    group_order(api, "ga", "G4A", size=5, auto_complete=True)
    advance_to(api, EXPIRES - timedelta(seconds=1))
    assert get_order(api, "ga")["status"] == "group_pending"
    assert api.advance(1)["fired"] >= 1
    group = get_group(api, "G4A")
    assert group["status"] == "formed" and group["closed_at"] == iso(EXPIRES) and group["members"] == 1
    order = get_order(api, "ga")
    assert order["status"] == "awaiting_shipment"
    assert order["refunded_fen"] == 0 and order["refunds"] == []
    assert option(options(api, "ga"), "refund_only")["rule"] == "E2"


def test_G5_merchant_completes_group_early_then_buyer_gets_refund_before_shipment(api):
    group_order(api, "ga", "G5", size=4, auto_complete=True)
    r = api.post("/v1/groups/G5/complete", who="merchant_a")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "formed" and r.json()["closed_at"] == iso(START)
    assert get_order(api, "ga")["status"] == "awaiting_shipment"

    # E2, the faster way out seed-000 describes.
    refund = option(options(api, "ga"), "refund_only")
    assert refund["allowed"] is True and refund["rule"] == "E2" and refund["max_refund_fen"] == 10800
    case = open_case(api, "ga", "refund_only", "no_reason")
    case = act(api, case["id"], "approve")
    assert case["status"] == "closed" and case["close_reason"] == "refunded" and case["refunded_fen"] == 10800
    order = get_order(api, "ga")
    assert order["status"] == "cancelled" and order["refunded_fen"] == order["paid_fen"] == 10800

    # Nothing fires at the old expiry instant: the group is no longer pending.
    advance_to(api, EXPIRES + timedelta(seconds=1))
    assert get_group(api, "G5")["status"] == "formed"
    assert len(get_order(api, "ga")["refunds"]) == 1


def test_G5_platform_agent_may_complete_too(api):
    group_order(api, "ga", "G5P", size=2, auto_complete=True)
    r = api.post("/v1/groups/G5P/complete", who="platform")
    assert r.status_code == 200 and r.json()["status"] == "formed"


def test_G5_completion_refused_without_auto_complete_for_buyers_other_shops_and_after_formation(api):
    group_order(api, "ga", "G5N", size=3)
    problem(api.post("/v1/groups/G5N/complete", who="merchant_a"), 422, "G5")
    assert get_group(api, "G5N")["status"] == "pending"

    group_order(api, "gb", "G5Y", size=3, auto_complete=True)
    problem(api.post("/v1/groups/G5Y/complete", who="buyer_x"), 403)
    problem(api.post("/v1/groups/G5Y/complete", who="merchant_b"), 404)
    assert api.post("/v1/groups/G5Y/complete", who="merchant_a").status_code == 200
    problem(api.post("/v1/groups/G5Y/complete", who="merchant_a"), 409, "G5")
    # A plain order still works alongside.
    assert create_order(api, "plain")["status"] == "awaiting_shipment"
