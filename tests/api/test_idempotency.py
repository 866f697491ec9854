"""Idempotency-Key on every POST (API.md): the same key with the same body replays the first response (with
``Idempotent-Replayed: true`` and no second effect); with another body it is 422; keys are per principal; a 5xx
is not a result and is not stored, so the client may retry with the same key."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from aftersales.service import orders as order_service
from aftersales.store import tables as t

PROBLEM = "application/problem+json"


def order(oid: str, merchant: str = "mA", buyer: str = "bX") -> dict[str, Any]:
    return {"id": oid, "merchant_id": merchant, "buyer_id": buyer, "paid_at": "2026-03-01T01:00:00+00:00",
            "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 1999}]}


def count(ctx: Any, table: Any) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def counts(ctx: Any) -> dict[str, int]:
    return {tb.name: count(ctx, tb) for tb in (t.orders, t.cases, t.refunds, t.events, t.groups)}


def key(k: str) -> dict[str, str]:
    return {"Idempotency-Key": k}


def delivered_case(api: Any, oid: str, case_type: str = "refund_only") -> str:
    assert api.post("/v1/orders", order(oid)).status_code == 201
    assert api.post(f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": "T1"}).status_code == 200
    assert api.post(f"/v1/orders/{oid}/deliver", {}).status_code == 200
    r = api.post("/v1/cases", {"order_id": oid, "type": case_type, "reason": "quality_problem"}, who="buyer_x")
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# --- replay -------------------------------------------------------------------------------------------------
def test_same_key_same_body_replays_the_first_response_without_a_second_effect(api: Any, ctx: Any) -> None:
    first = api.post("/v1/orders", order("o1"), headers=key("create-o1"))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    before = counts(ctx)
    for _ in range(3):
        again = api.post("/v1/orders", order("o1"), headers=key("create-o1"))
        assert again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
        assert again.headers["content-type"] == first.headers["content-type"]
    assert counts(ctx) == before
    # Without the key the same body is a new request: the order exists already.
    assert api.post("/v1/orders", order("o1")).status_code == 409


def test_a_replayed_case_action_refunds_once(api: Any, ctx: Any) -> None:
    case_id = delivered_case(api, "o1")
    first = api.post(f"/v1/cases/{case_id}/approve", {}, who="merchant_a", headers=key("approve-1"))
    assert first.status_code == 200 and first.json()["close_reason"] == "refunded", first.text
    before = counts(ctx)
    again = api.post(f"/v1/cases/{case_id}/approve", {}, who="merchant_a", headers=key("approve-1"))
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert counts(ctx) == before
    assert count(ctx, t.refunds) == 1
    assert api.get("/v1/orders/o1").json()["refunded_fen"] == first.json()["refunded_fen"] > 0
    # A new key is a new request, refused by the case's state now.
    assert api.post(f"/v1/cases/{case_id}/approve", {}, who="merchant_a", headers=key("approve-2")).status_code == 409


def test_a_refusal_is_a_result_and_is_replayed_too(api: Any, ctx: Any) -> None:
    first = api.post("/v1/orders", order("o1", merchant="mZ"), headers=key("k-404"))
    assert first.status_code == 404 and first.headers["content-type"].startswith(PROBLEM)
    # Even once the merchant exists, the key answers what it answered first.
    assert api.post("/v1/merchants", {"id": "mZ", "name": "Z"}).status_code == 201
    again = api.post("/v1/orders", order("o1", merchant="mZ"), headers=key("k-404"))
    assert again.status_code == 404 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert count(ctx, t.orders) == 0


def test_a_post_without_body_is_replayed(api: Any, ctx: Any) -> None:
    case_id = delivered_case(api, "o1")
    first = api.post(f"/v1/cases/{case_id}/cancel", None, who="buyer_x", headers=key("cancel"))
    assert first.status_code == 200, first.text
    events = count(ctx, t.events)
    again = api.post(f"/v1/cases/{case_id}/cancel", None, who="buyer_x", headers=key("cancel"))
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content and count(ctx, t.events) == events


# --- conflict -----------------------------------------------------------------------------------------------
def test_same_key_other_body_is_422_and_changes_nothing(api: Any, ctx: Any) -> None:
    assert api.post("/v1/orders", order("o1"), headers=key("k1")).status_code == 201
    before = counts(ctx)
    r = api.post("/v1/orders", order("o2"), headers=key("k1"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == 422 and body["type"] and body["title"] and body["detail"]
    assert "idempotent-replayed" not in r.headers
    assert counts(ctx) == before
    assert api.get("/v1/orders/o2").status_code == 404
    # The key still replays its first request.
    again = api.post("/v1/orders", order("o1"), headers=key("k1"))
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"


def test_same_key_same_body_on_another_path_is_422(api: Any, ctx: Any) -> None:
    case_a = delivered_case(api, "o1")
    case_b = delivered_case(api, "o2")
    assert api.post(f"/v1/cases/{case_a}/approve", {}, who="merchant_a", headers=key("k")).status_code == 200
    before = counts(ctx)
    r = api.post(f"/v1/cases/{case_b}/approve", {}, who="merchant_a", headers=key("k"))
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM), r.text
    assert counts(ctx) == before
    assert api.get(f"/v1/cases/{case_b}").json()["status"] == "awaiting_merchant"


# --- principals -----------------------------------------------------------------------------------------------
def test_different_principals_use_the_same_key_independently(api: Any, ctx: Any) -> None:
    a = api.post("/v1/orders", order("o1"), headers=key("shared"))
    p = api.post("/v1/orders", order("o2"), who="merchant_a", headers=key("shared"))
    b = api.post("/v1/orders", order("o3", merchant="mB", buyer="bY"), who="merchant_b", headers=key("shared"))
    for r in (a, p, b):
        assert r.status_code == 201, r.text
        assert "idempotent-replayed" not in r.headers
    assert count(ctx, t.orders) == 3
    # Two buyers, one key, the same body shape on their own orders: two cases.
    x = api.post("/v1/cases", {"order_id": "o1", "type": "refund_only", "reason": "no_reason"}, who="buyer_x", headers=key("c"))
    y = api.post("/v1/cases", {"order_id": "o3", "type": "refund_only", "reason": "no_reason"}, who="buyer_y", headers=key("c"))
    assert x.status_code == y.status_code == 201, (x.text, y.text)
    assert x.json()["id"] != y.json()["id"]
    # And the other principal's identical request is not a replay of someone else's response.
    z = api.post("/v1/cases", {"order_id": "o1", "type": "refund_only", "reason": "no_reason"}, who="merchant_b", headers=key("c"))
    assert z.status_code == 404 and "idempotent-replayed" not in z.headers, z.text
    assert x.json()["id"] not in z.text


# --- failures are not results -------------------------------------------------------------------------------
def test_a_5xx_is_not_stored_and_the_key_can_be_retried(api: Any, ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = order_service.create_order
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(order_service, "create_order", flaky)
    first = api.post("/v1/orders", order("o1"), headers=key("retry-me"))
    assert first.status_code == 500, first.text
    assert first.headers["content-type"].startswith(PROBLEM)
    assert count(ctx, t.orders) == 0 and count(ctx, t.idempotency) == 0
    second = api.post("/v1/orders", order("o1"), headers=key("retry-me"))
    assert second.status_code == 201, second.text
    assert "idempotent-replayed" not in second.headers
    assert calls["n"] == 2 and count(ctx, t.orders) == 1
    third = api.post("/v1/orders", order("o1"), headers=key("retry-me"))
    assert third.status_code == 201 and third.headers["idempotent-replayed"] == "true"
    assert calls["n"] == 2


def test_a_request_still_running_answers_409_to_its_twin(api: Any, ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = order_service.create_order
    entered, release = threading.Event(), threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(order_service, "create_order", slow)
    results: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: results.setdefault("first", api.post("/v1/orders", order("o1"), headers=key("slow"))))
    worker.start()
    try:
        assert entered.wait(30)
        twin = api.post("/v1/orders", order("o1"), headers=key("slow"))
        assert twin.status_code == 409 and twin.headers["content-type"].startswith(PROBLEM), twin.text
    finally:
        release.set()
        worker.join(30)
    assert results["first"].status_code == 201
    assert count(ctx, t.orders) == 1
    replay = api.post("/v1/orders", order("o1"), headers=key("slow"))
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"


def test_keys_live_at_least_24_hours(api: Any, ctx: Any) -> None:
    first = api.post("/v1/orders", order("o1"), headers=key("day-old"))
    assert first.status_code == 201
    with ctx.engine.begin() as conn:
        conn.execute(update(t.idempotency).where(t.idempotency.c.key == "day-old")
                     .values(created_at=datetime.now(UTC) - timedelta(hours=24, minutes=30)))
    again = api.post("/v1/orders", order("o1"), headers=key("day-old"))
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
