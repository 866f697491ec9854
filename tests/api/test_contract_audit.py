"""API.md conventions and RULEBOOK rules found wanting by the contract audit, through HTTP on SQLite and PostgreSQL.

The manual clock starts at 2026-03-01T02:00Z (10:00 in Asia/Shanghai); o1 is one item of 100.00 with 8.00 shipping.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from helpers import (
    advance_to,
    create_order,
    get_case,
    get_group,
    get_order,
    group_order,
    iso,
    local,
    open_case,
    problem,
    ship,
)

from aftersales.api.app import create_app

REQUIRED = 100_000  # policy deposit_required_fen (D1)


def _withdraw(api: Any, amount: int) -> dict[str, Any]:
    assert api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": REQUIRED + amount}, who="merchant_a").status_code == 201
    r = api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": amount}, who="merchant_a")
    assert r.status_code == 201, r.text
    return dict(r.json())


def _withdrawal(api: Any) -> dict[str, Any]:
    [w] = api.get("/v1/merchants/mA/deposit/withdrawals", who="merchant_a").json()["items"]
    return dict(w)


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


def test_D1_stale_if_match_on_a_withdrawal_cancel_is_409_and_changes_nothing(api: Any) -> None:
    w = _withdraw(api, 5_000)
    url = f"/v1/merchants/mA/deposit/withdrawals/{w['id']}/cancel"
    problem(api.post(url, None, who="merchant_a", headers={"If-Match": str(w["version"] + 1)}), 409)
    assert _withdrawal(api)["status"] == "pending"
    assert api.get("/v1/merchants/mA/deposit").json()["pending_withdrawal_fen"] == 5_000
    r = api.post(url, None, who="merchant_a", headers={"If-Match": str(w["version"])})
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text


# --- API.md clock: "applies every automatic action that fell due, in due order" (F2, D1) ------------------------
def test_D1_F2_a_case_closed_by_an_earlier_automatic_action_no_longer_holds_the_withdrawal(api: Any) -> None:
    # Asked on local day 1 March: paid at the end of local day D+90 (T0), 31 May 00:00 in Shanghai.
    w = _withdraw(api, 5_000)
    assert w["due_at"] == iso(local(2026, 5, 31))
    # A case opened during the hold (the order's id sorts after the withdrawal's) is refunded by M1 48 h later.
    create_order(api, "zz1")
    case = open_case(api, "zz1", "refund_only", "no_reason")
    # One move of the clock past both: M1 (3 March) comes first, so at the hold's end nothing is open.
    advance_to(api, local(2026, 5, 31))
    assert get_case(api, case["id"])["close_reason"] == "refunded"
    w = _withdrawal(api)
    assert (w["status"], w["completed_at"]) == ("completed", iso(local(2026, 5, 31))), w
    d = api.get("/v1/merchants/mA/deposit").json()
    assert (d["balance_fen"], d["pending_withdrawal_fen"]) == (REQUIRED, 0)


def test_D1_F2_a_case_still_open_at_the_hold_end_holds_the_withdrawal_even_if_it_closes_in_the_same_move(api: Any) -> None:
    _withdraw(api, 5_000)
    advance_to(api, local(2026, 5, 30, 10))
    create_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "no_reason")  # M1 refunds it on 1 June at 10:00, after the hold's end
    advance_to(api, local(2026, 6, 2))
    assert get_case(api, case["id"])["closed_at"] == iso(local(2026, 6, 1, 10))
    w = _withdrawal(api)
    # Open at the hold's end (31 May) and at the first check a day later: paid at the check after it closed.
    assert (w["status"], w["completed_at"]) == ("completed", iso(local(2026, 6, 2))), w


# --- API.md "Validation errors are 422 and list the fields": the case list's status filter -------------------------
def test_T2_an_unknown_case_status_filter_is_422_naming_the_statuses(api: Any) -> None:
    create_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "no_reason")
    body = problem(api.get("/v1/cases", params={"status": "open"}), 422)
    assert body["errors"][0]["field"] == "status" and "awaiting_merchant" in body["errors"][0]["message"], body
    r = api.get("/v1/cases", params={"status": "awaiting_merchant"})
    assert [c["id"] for c in r.json()["items"]] == [case["id"]]
    assert api.get("/v1/cases", params={"status": "closed"}).json()["items"] == []


# --- API.md clock: "With the real clock these answer 404." ---------------------------------------------------------
def test_T0_the_clock_routes_answer_404_with_the_real_clock(database: Any) -> None:
    key = "real-clock-platform-key-" + "x" * 24
    settings = database.settings(clock="real", bootstrap_platform_key=key)
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {key}"}
        problem(client.get("/v1/clock", headers=headers), 404)
        problem(client.post("/v1/clock/advance", json={"seconds": 60}, headers=headers), 404)
        assert client.get("/v1/orders", headers=headers).status_code == 200  # the key itself is good


def test_M2_the_buyer_accepts_a_refusal_with_accept_offer_as_API_md_names_it(api):
    """M2: after a refusal the buyer may accept it; API.md's buyer action for that is ``accept_offer`` (the explicit
    ``accept_rejection`` does the same). With an offer on the case, ``accept_offer`` still accepts the offer."""
    create_order(api, "o1")
    ship(api, "o1")
    api.post("/v1/orders/o1/deliver", {}, who="merchant_a")
    case = open_case(api, "o1", "refund_only", "quality_problem")
    r = api.post(f"/v1/cases/{case['id']}/reject", {"reason": "The photos show no defect."}, who="merchant_a")
    assert r.status_code == 200, r.text
    assert api.post(f"/v1/cases/{case['id']}/accept_offer", {}, who="merchant_a").status_code == 403  # the buyer's act
    r = api.post(f"/v1/cases/{case['id']}/accept_offer", {}, who="buyer_x")
    assert r.status_code == 200, r.text
    closed = get_case(api, case["id"])
    assert (closed["status"], closed["close_reason"], closed["refunded_fen"]) == ("closed", "rejected", 0)
    events = api.get(f"/v1/cases/{case['id']}/events", who="buyer_x").json()
    assert events["items"][-1]["kind"] == "accept_rejection"
    # Nothing to accept any more: a second accept is refused and changes nothing.
    assert api.post(f"/v1/cases/{case['id']}/accept_offer", {}, who="buyer_x").status_code == 409
    assert get_case(api, case["id"])["version"] == closed["version"]
