"""K2 refund remedies are refunds under E10 (paid through an open case), and K1 phone complaints take their buyer from
what they name — through HTTP on SQLite and PostgreSQL. The ledger audit of the ``api`` fixture runs after each test.

o1 (helpers): one item of 100.00 and 8.00 shipping, paid before the manual clock starts (10:00 in Asia/Shanghai).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from helpers import act, advance_to, at, create_order, delivered_order, events, get_case, get_order, open_case, problem

DESC = "The shop ignores my after-sales request."


def file(api: Any, who: str = "buyer_x", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"channel": "in_app_chat", "category": "after_sales_not_handled", "description": DESC, **fields}
    r = api.post("/v1/complaints", body, who=who)
    assert r.status_code == 201, r.text
    return dict(r.json())


def do(api: Any, cid: str, verb: str, body: Any = None, who: str = "platform") -> Any:
    return api.post(f"/v1/complaints/{cid}/{verb}", body, who=who)


def answered(api: Any, order_id: str = "o1", **fields: Any) -> dict[str, Any]:
    """A complaint about ``order_id``, accepted by the platform and answered by the shop: ready to be resolved."""
    c = file(api, order_id=order_id, **fields)
    assert do(api, c["id"], "accept").status_code == 200
    r = do(api, c["id"], "respond", {"answer": "No."}, who="merchant_a")
    assert r.status_code == 200, r.text
    return dict(r.json())


def refund_body(amount_fen: int) -> dict[str, Any]:
    return {"outcome": "upheld", "rationale": "The shop did not handle it.",
            "remedies": [{"type": "refund", "amount_fen": amount_fen}]}


def complaint_refunds(order: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in order["refunds"] if r["kind"] == "complaint"]


# --- K2 + E10 -------------------------------------------------------------------------------------------------
def test_K2_refund_remedy_excludes_shipping_after_delivery(api: Any) -> None:
    delivered_order(api, "o1")  # 10000 goods + 800 shipping; no case: E10 refunds no shipping after delivery
    c = answered(api)
    body = problem(do(api, c["id"], "resolve", refund_body(10001)), 422, "E10")
    assert "100.01" in body["detail"] and "100.00" in body["detail"]
    assert get_order(api, "o1")["refunded_fen"] == 0
    r = do(api, c["id"], "resolve", refund_body(10000))
    assert r.status_code == 200, r.text
    order = get_order(api, "o1")
    [refund] = complaint_refunds(order)
    assert (refund["goods"], refund["shipping_fen"], refund["rule"], refund["payer"]) == ({"s1": 10000}, 0, "K2", "platform")
    assert order["refunded_fen"] == 10000 and order["paid_fen"] == 10800


def test_K2_refund_remedy_before_shipment_may_include_the_shipping_fee(api: Any) -> None:
    create_order(api, "o1")  # E2: the whole order, shipping included, is refundable
    c = answered(api)
    assert do(api, c["id"], "resolve", refund_body(10800)).status_code == 200
    order = get_order(api, "o1")
    [refund] = complaint_refunds(order)
    assert (refund["goods"], refund["shipping_fen"]) == ({"s1": 10000}, 800)
    assert order["status"] == "cancelled" and order["refunded_fen"] == order["paid_fen"]


def test_K2_refund_remedy_above_E10_is_refused(api: Any) -> None:
    delivered_order(api, "o1")
    # A refund of 3000 already made on the order (a partial refund the buyer accepted, M8) leaves 7000 of the goods.
    case = open_case(api, "o1", "refund_only", "quality_problem")
    act(api, case["id"], "offer_partial_refund", {"refund_fen": 3000})
    assert act(api, case["id"], "accept_offer")["status"] == "closed"
    c = answered(api)
    before = get_order(api, "o1")
    body = problem(do(api, c["id"], "resolve", refund_body(7001)), 422, "E10")
    assert "70.01" in body["detail"] and "70.00" in body["detail"]  # refused, not reduced (T1)
    after = get_order(api, "o1")
    assert (after["refunded_fen"], after["version"]) == (3000, before["version"])
    assert api.get(f"/v1/complaints/{c['id']}").json()["status"] == "answered"
    assert do(api, c["id"], "resolve", refund_body(7000)).status_code == 200
    assert get_order(api, "o1")["refunded_fen"] == 10000


def test_K2_refund_remedy_pays_through_open_case_and_cancels_its_deadlines(api: Any) -> None:
    delivered_order(api, "o1")
    case = open_case(api, "o1", "return_refund", "no_reason")  # waits for the shop (M1, 48 h)
    m1_due = at(case["deadline"]["due_at"])
    assert m1_due is not None
    c = answered(api)
    # The case's E10 limit is the goods it covers (no shipping for a no-reason return): more is refused.
    problem(do(api, c["id"], "resolve", refund_body(10800)), 422, "E10")
    assert get_case(api, case["id"])["status"] == "awaiting_merchant"
    r = do(api, c["id"], "resolve", refund_body(6000))
    assert r.status_code == 200, r.text
    paid = get_case(api, case["id"])
    assert (paid["status"], paid["close_reason"], paid["deadline"], paid["refunded_fen"]) == ("closed", "refunded", None, 6000)
    [refund] = paid["refunds"]
    assert (refund["rule"], refund["payer"], refund["kind"], refund["shipping_fen"]) == ("K2", "platform", "complaint", 0)
    evs = events(api, case["id"])
    remedy = next(e for e in evs if e["kind"] == "complaint_refund")
    assert remedy["actor"] == "platform" and "K2" in remedy["rules"] and remedy["data"]["complaint_id"] == c["id"]
    assert remedy["from_status"] == "awaiting_merchant"
    order = get_order(api, "o1")
    assert order["refunded_fen"] == 6000 and order["open_case_id"] is None and len(order["refunds"]) == 1
    # Past the old M1 deadline (and its reminders) nothing more happens to the case or the order.
    seen = len(evs)
    done = advance_to(api, m1_due + timedelta(hours=1))
    assert done["fired"] == 0 and not done.get("failed")  # every timer of the case's old stage is stale
    assert len(events(api, case["id"])) == seen
    assert get_case(api, case["id"])["version"] == paid["version"]
    later = get_order(api, "o1")
    assert later["refunded_fen"] == 6000 <= later["paid_fen"] and later["version"] == order["version"]


def test_K2_refund_remedy_on_a_pending_group_is_refused(api: Any) -> None:
    create_order(api, "o1", group={"id": "g1", "size": 2})
    c = answered(api)
    problem(do(api, c["id"], "resolve", refund_body(100)), 422, "E1")
    assert get_order(api, "o1")["refunded_fen"] == 0


# --- K1 -------------------------------------------------------------------------------------------------------
def test_K1_agent_complaint_takes_buyer_from_order(api: Any) -> None:
    delivered_order(api, "o1")
    by_order = file(api, who="platform", channel="phone", order_id="o1")
    assert (by_order["buyer_id"], by_order["merchant_id"], by_order["filed_by"]) == ("bX", "mA", "platform")
    case = open_case(api, "o1", "refund_only", "quality_problem")
    by_case = file(api, who="platform", channel="phone", case_id=case["id"])
    assert (by_case["buyer_id"], by_case["order_id"]) == ("bX", "o1")
    # Naming the buyer too is fine when it is the order's; a contradicting buyer is refused, and so is a shop
    # complaint that names no buyer at all.
    assert file(api, who="platform", channel="phone", order_id="o1", buyer_id="bX")["buyer_id"] == "bX"
    problem(api.post("/v1/complaints", {"channel": "phone", "category": "other", "description": DESC,
                                        "order_id": "o1", "buyer_id": "bY"}), 422)
    problem(api.post("/v1/complaints", {"channel": "phone", "category": "other", "description": DESC,
                                        "case_id": case["id"], "buyer_id": "bY"}), 422)
    problem(api.post("/v1/complaints", {"channel": "phone", "category": "other", "description": DESC,
                                        "merchant_id": "mA"}), 422)
    shop = file(api, who="platform", channel="phone", merchant_id="mA", buyer_id="bY")
    assert (shop["buyer_id"], shop["order_id"]) == ("bY", None)
    assert api.get(f"/v1/complaints/{by_order['id']}", who="buyer_x").status_code == 200
