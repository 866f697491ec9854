"""E7 merchant-opened cases, E4 unknown categories and named exclusions (S4), D1's withdrawal hold in local days (T0)
— through HTTP on SQLite and PostgreSQL.

The manual clock starts at 2026-03-01T02:00Z (10:00 in Asia/Shanghai); o1 is one item of 100.00 with 8.00 shipping.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from helpers import (
    act,
    advance_to,
    at,
    delivered_order,
    events,
    get_case,
    get_order,
    item,
    local,
    option,
    options,
    order_body,
    problem,
    put_category,
    shop_excluded_category,
    statutory_category,
    try_act,
    try_open,
)


def opened_by_merchant(api: Any, order_id: str, case_type: str, reason: str, **fields: Any) -> dict[str, Any]:
    r = try_open(api, order_id, case_type, reason, who="merchant_a", buyer_consent=True, **fields)
    assert r.status_code == 201, r.text
    case = dict(r.json())
    assert case["opened_by"] == "merchant" and case["buyer_id"] == "bX"
    return case


# --- E7 -------------------------------------------------------------------------------------------------------
def test_E7_merchant_opened_case_starts_approved(api: Any) -> None:
    # After every window the buyer can open nothing; the shop opens cases for the buyer, with the buyer's consent.
    delivered_order(api, "o1")
    delivered_order(api, "o2")
    delivered_order(api, "o3")
    advance_to(api, local(2026, 3, 20))

    refund = opened_by_merchant(api, "o1", "refund_only", "quality_problem", refund_fen=4000)
    assert (refund["status"], refund["close_reason"], refund["refunded_fen"]) == ("closed", "refunded", 4000)
    assert get_order(api, "o1")["refunded_fen"] == 4000

    ret = opened_by_merchant(api, "o2", "return_refund", "quality_problem")
    assert ret["status"] == "awaiting_return_shipment" and ret["return_shipping_payer"] == "merchant"
    assert ret["deadline"]["rule"] == "M5" and ret["first_response_at"] is not None
    assert "reject" not in ret["allowed_actions"] and "approve" not in ret["allowed_actions"]
    r = try_act(api, ret["id"], "reject", {"reason": "changed my mind"})
    assert r.status_code == 409, r.text  # no M1 wait, nothing left for the shop to refuse
    evs = events(api, ret["id"])
    assert [e["kind"] for e in evs][:2] == ["opened", "approve"]
    approval = evs[1]
    assert approval["actor"] == "merchant" and {"E7", "M1", "M3", "M5"} <= set(approval["rules"])
    # The buyer ships the return as for any approved return (all later rules apply, E7).
    shipped = act(api, ret["id"], "ship_return", {"carrier": "SF", "tracking_no": "SF-back"})
    assert shipped["status"] == "return_in_transit"

    reship = opened_by_merchant(api, "o3", "reship", "missing_parts")
    assert reship["status"] == "awaiting_replacement_shipment" and reship["deadline"]["rule"] == "M7"
    # No M1 deadline was ever armed for the shop's own case: past 48 h, nothing fires on it but its M7 clock.
    due = at(reship["deadline"]["due_at"])
    assert due is not None
    advance_to(api, due - timedelta(seconds=1))
    assert get_case(api, reship["id"])["status"] == "awaiting_replacement_shipment"


# --- S4 + E4 --------------------------------------------------------------------------------------------------
def test_S4_E4_refusal_names_the_exclusion(api: Any) -> None:
    fresh = statutory_category(api, "fresh", "perishable")
    papers = statutory_category(api, "papers", "periodical")
    lingerie = shop_excluded_category(api, "lingerie")
    # Only excluded goods: a no-reason return is refused, and the refusal says which law excludes which item.
    delivered_order(api, "only", items=[item("f1", 3000, category=fresh, title="Fresh lychees 1 kg")])
    body = problem(try_open(api, "only", "return_refund", "no_reason", lang="en"), 422, "E4")
    assert "Fresh lychees 1 kg" in body["detail"] and "fresh or perishable goods" in body["detail"], body
    assert "reason" in body["detail"] and "not accepted" not in body["detail"]
    # A mixed order: naming an excluded item in a no-reason return names its exclusion.
    delivered_order(api, "mixed", items=[item("a1", 5000, title="Linen shirt"),
                                         item("n1", 800, category=papers, title="City Weekly no. 12"),
                                         item("u1", 2000, category=lingerie, title="Silk slip", exclusion_confirmed=True)])
    for sku, title, words in (("n1", "City Weekly no. 12", "newspapers"), ("u1", "Silk slip", "the shop stated")):
        body = problem(try_open(api, "mixed", "return_refund", "no_reason", lang="en",
                                items=[{"sku": sku, "quantity": 1}]), 422, "E4")
        assert title in body["detail"] and words in body["detail"], body
    # The eligibility explanation names every excluded line, not only the first.
    explanation = option(options(api, "mixed", lang="en"), "return_refund")["explanation"]
    assert "City Weekly no. 12" in explanation and "Silk slip" in explanation, explanation
    assert "Linen shirt" not in explanation
    # The returnable line can still go back without a reason.
    r = try_open(api, "mixed", "return_refund", "no_reason", items=[{"sku": "a1", "quantity": 1}])
    assert r.status_code == 201, r.text


# --- E4: unknown categories -----------------------------------------------------------------------------------
def test_E4_order_with_an_unknown_category_is_refused(api: Any) -> None:
    statutory_category(api, "fresh", "perishable")
    body = problem(api.post("/v1/orders", order_body("o1", items=[item("s1"), item("s2", category="frsh")])), 422, "E4")
    assert "frsh" in body["detail"] and "apparel, fresh" in body["detail"], body
    assert api.get("/v1/orders/o1").status_code == 404  # nothing written
    # With many categories, the refusal lists them sorted, and counts the rest.
    for n in range(30):
        put_category(api, f"cat{n:02d}")
    body = problem(api.post("/v1/orders", order_body("o1", items=[item(category="Fresh")])), 422, "E4")
    assert "apparel, cat00, cat01" in body["detail"] and "(32 in all)" in body["detail"], body
    assert "cat25" not in body["detail"]
    assert api.post("/v1/orders", order_body("o1", items=[item(category="fresh")])).status_code == 201
