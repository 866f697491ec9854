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
    local,
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
