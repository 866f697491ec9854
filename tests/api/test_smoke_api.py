"""The shortest path through the API on both databases: open → approve → refunded (E2, M1, F1)."""


def order_body(order_id: str = "o1", merchant: str = "mA", buyer: str = "bX", **extra):
    body = {"id": order_id, "merchant_id": merchant, "buyer_id": buyer, "paid_at": "2026-03-01T01:00:00+00:00",
            "shipping_fee_fen": 500, "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 1999}]}
    body.update(extra)
    return body


def test_E2_refund_before_shipment_open_approve_refunded(api):
    assert api.post("/v1/orders", order_body()).status_code == 201
    r = api.post("/v1/cases", {"order_id": "o1", "type": "refund_only", "reason": "no_reason"}, who="buyer_x")
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["deadline"]["rule"] == "M1"
    r = api.post(f"/v1/cases/{case['id']}/approve", who="merchant_a")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed" and r.json()["close_reason"] == "refunded"
    order = api.get("/v1/orders/o1", who="buyer_x").json()
    assert order["refunded_fen"] == order["paid_fen"] == 2499
    assert order["status"] == "cancelled"
