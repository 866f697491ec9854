"""Outbox and webhooks: every event arrives, signed (Standard Webhooks), in order per case, through a receiver
that is down, then failing, then healthy."""

from __future__ import annotations

import pytest
from receiver import Receiver
from standardwebhooks.webhooks import Webhook

from aftersales.service import webhooks
from aftersales.service.egress import Egress
from aftersales.store import tables as t


@pytest.fixture
def ctx(ctx):
    """These tests deliver to a receiver on 127.0.0.1: the operator's AFTERSALES_WEBHOOK_ALLOW_PRIVATE (SEC1)."""
    ctx.egress = Egress(allow_private=True)
    return ctx


def order_body(order_id: str, merchant: str = "mA", buyer: str = "bX") -> dict:
    return {"id": order_id, "merchant_id": merchant, "buyer_id": buyer, "paid_at": "2026-03-01T01:00:00+00:00",
            "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 1999}]}


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def _events_for(api, case_id):
    return api.get(f"/v1/cases/{case_id}/events", who="merchant_a").json()["items"]


def test_webhooks_survive_down_then_failing_receiver_and_arrive_signed_in_order(api, ctx, receiver):
    r = api.post("/v1/webhooks", {"url": receiver.url, "event_types": ["case.*", "order.order_delivered"]}, who="merchant_a")
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["secret"].startswith("whsec_")
    # mB's subscription must never see mA's events (tenancy).
    other = api.post("/v1/webhooks", {"url": receiver.url + "/b"}, who="merchant_b").json()

    case_ids = []
    for n in range(3):
        assert api.post("/v1/orders", order_body(f"o{n}")).status_code == 201
        case = api.post("/v1/cases", {"order_id": f"o{n}", "type": "refund_only", "reason": "no_reason"}, who="buyer_x").json()
        assert api.post(f"/v1/cases/{case['id']}/approve", who="merchant_a").status_code == 200
        case_ids.append(case["id"])

    # Receiver down: nothing delivered, nothing lost; attempts are logged with the error.
    assert webhooks.dispatch_due(ctx) == 0
    log = api.get(f"/v1/webhooks/{sub['id']}/deliveries", who="merchant_a").json()["items"]
    assert log and all(d["status"] == "pending" for d in log)
    tried = [d for d in log if d["attempts"]]
    # Only the first delivery of each case is tried; the rest wait behind it (order per case).
    assert len(tried) == len(case_ids) and all(d["last_error"] and d["log"][0]["status_code"] is None for d in tried)

    # Receiver up but failing with 500.
    receiver.start()
    receiver.mode = "error"
    api.advance(3600)
    assert webhooks.dispatch_due(ctx) == 0
    log = api.get(f"/v1/webhooks/{sub['id']}/deliveries", who="merchant_a").json()["items"]
    assert any(a["status_code"] == 500 for d in log for a in d["log"])

    # Recovered: every event arrives.
    receiver.mode = "ok"
    for _ in range(10):
        api.advance(3600)
        webhooks.dispatch_due(ctx)
    log = api.get(f"/v1/webhooks/{sub['id']}/deliveries", who="merchant_a").json()["items"]
    assert log and all(d["status"] == "delivered" for d in log)

    hook = Webhook(sub["secret"])
    got_ids = set()
    for msg in receiver.received:
        payload = hook.verify(msg["body"], msg["headers"])  # raises if the signature is wrong
        assert payload["data"]["merchant_id"] == "mA"
        got_ids.add(payload["data"]["event_id"])
    # Every case event of mA arrived, each case's events in order.
    for case_id in case_ids:
        expected = [e["id"] for e in _events_for(api, case_id)]
        arrived = [m["json"]["data"]["event_id"] for m in receiver.received if m["json"]["data"]["case_id"] == case_id]
        assert sorted(set(arrived)) == expected
        firsts = list(dict.fromkeys(arrived))
        assert firsts == expected, "deliveries of one case must arrive in event order"
    other_log = api.get(f"/v1/webhooks/{other['id']}/deliveries", who="merchant_b").json()["items"]
    assert other_log == []


def test_webhook_tampered_body_fails_verification(api, ctx, receiver):
    receiver.start()
    sub = api.post("/v1/webhooks", {"url": receiver.url, "event_types": ["case.opened"]}, who="merchant_a").json()
    api.post("/v1/orders", order_body("o1"))
    api.post("/v1/cases", {"order_id": "o1", "type": "refund_only", "reason": "no_reason"}, who="buyer_x")
    assert webhooks.dispatch_due(ctx) == 1
    msg = receiver.received[0]
    assert msg["json"]["type"] == "case.opened"
    with pytest.raises(Exception):
        Webhook(sub["secret"]).verify(msg["body"].replace("refund_only", "return_refund"), msg["headers"])


def test_S6_delivery_event_carries_the_contact_the_shop_first_message(api, ctx, receiver):
    receiver.start()
    api.post("/v1/webhooks", {"url": receiver.url, "event_types": ["order.order_delivered"]})
    api.post("/v1/orders", order_body("o1"))
    api.post("/v1/orders/o1/ship", {"carrier": "SF", "tracking_no": "1"}, who="merchant_a")
    api.post("/v1/orders/o1/deliver", {}, who="merchant_a")
    assert webhooks.dispatch_due(ctx) == 1
    data = receiver.received[0]["json"]["data"]
    assert "S6" in data["rules"]
    assert set(data["message"]) == {"zh_CN", "es", "en"} and all(data["message"].values())


def test_webhook_subscription_is_tenant_scoped(api):
    sub = api.post("/v1/webhooks", {"url": "http://127.0.0.1:9/x"}, who="merchant_a").json()
    assert sub["merchant_id"] == "mA"
    assert api.get(f"/v1/webhooks/{sub['id']}/deliveries", who="merchant_b").status_code == 404
    assert api.get(f"/v1/webhooks/{sub['id']}/deliveries", who="buyer_x").status_code == 404
    assert api.post("/v1/webhooks", {"url": "http://x/y", "merchant_id": "mA"}, who="merchant_b").status_code == 404
    assert api.post("/v1/webhooks", {"url": "ftp://x/y"}, who="merchant_a").status_code == 422


def test_rolled_back_command_leaves_no_delivery(api, ctx):
    api.post("/v1/webhooks", {"url": "http://127.0.0.1:9/x"})
    api.post("/v1/orders", order_body("o1"))
    with ctx.engine.connect() as conn:
        before = conn.execute(t.webhook_outbox.select()).all()
    assert before, "the order's event waits in the outbox"
    # Refused: refund above what is left (E10) — nothing is written, so nothing is delivered.
    r = api.post("/v1/cases", {"order_id": "o1", "type": "refund_only", "reason": "no_reason", "refund_fen": 10**9}, who="buyer_x")
    assert r.status_code == 422 and r.json()["rule"] == "E10"
    with ctx.engine.connect() as conn:
        after = conn.execute(t.webhook_outbox.select()).all()
        assert conn.execute(t.webhook_deliveries.select()).all() == []
    assert len(after) == len(before)
