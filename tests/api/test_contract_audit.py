"""API.md conventions and RULEBOOK rules found wanting by the contract audit, through HTTP on SQLite and PostgreSQL.

The manual clock starts at 2026-03-01T02:00Z (10:00 in Asia/Shanghai); o1 is one item of 100.00 with 8.00 shipping.
"""

from __future__ import annotations

from typing import Any

from helpers import create_order, get_group, get_order, group_order, problem, ship


# --- API.md "Resources carry version; actions accept If-Match: <version>" --------------------------------------
def test_T2_stale_if_match_on_order_actions_is_409_and_changes_nothing(api: Any) -> None:
    order = create_order(api, "o1")
    version = order["version"]
    r = api.post("/v1/orders/o1/ship", {"carrier": "SF", "tracking_no": "SF1"}, who="merchant_a",
                 headers={"If-Match": str(version + 1)})
    assert "version" in problem(r, 409)["detail"]
    order = get_order(api, "o1")
    assert (order["status"], order["version"], order["shipped_at"]) == ("awaiting_shipment", version, None)

    r = api.post("/v1/orders/o1/ship", {"carrier": "SF", "tracking_no": "SF1"}, who="merchant_a",
                 headers={"If-Match": f'"{version}"'})
    assert r.status_code == 200, r.text
    shipped = r.json()
    assert shipped["status"] == "shipped" and shipped["version"] > version

    r = api.post("/v1/orders/o1/deliver", {}, who="merchant_a", headers={"If-Match": str(version)})
    problem(r, 409)
    assert get_order(api, "o1")["status"] == "shipped"
    r = api.post("/v1/orders/o1/deliver", {}, who="merchant_a", headers={"If-Match": str(shipped["version"])})
    assert r.status_code == 200 and r.json()["status"] == "delivered", r.text


def test_G5_stale_if_match_on_group_completion_is_409_and_changes_nothing(api: Any) -> None:
    group_order(api, "ga", "G1", size=3, auto_complete=True)
    version = get_group(api, "G1")["version"]
    r = api.post("/v1/groups/G1/complete", None, who="merchant_a", headers={"If-Match": str(version + 1)})
    problem(r, 409)
    group = get_group(api, "G1")
    assert (group["status"], group["version"]) == ("pending", version)
    assert get_order(api, "ga")["status"] == "group_pending"

    r = api.post("/v1/groups/G1/complete", None, who="merchant_a", headers={"If-Match": str(version)})
    assert r.status_code == 200 and r.json()["status"] == "formed", r.text
    ship(api, "ga")
