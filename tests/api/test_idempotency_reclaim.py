"""Idempotency-Key claims that can be taken again (API.md): a key past its 48 h, or a claim abandoned mid-request
by a server that died (no response, no commit, older than the in-flight limit); a claim whose request committed but
whose response was lost is never taken again (409). The middleware tries the INSERT first and looks at the holder
only when the key is taken: these are the paths that look."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from aftersales.store import tables as t


def order(oid: str) -> dict[str, Any]:
    return {"id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00+00:00", "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 1999}]}


def key(k: str) -> dict[str, str]:
    return {"Idempotency-Key": k}


def _age(ctx: Any, k: str, **values: Any) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(update(t.idempotency).where(t.idempotency.c.key == k).values(**values))


def _orders(ctx: Any) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.orders)).scalar_one())


def test_a_key_past_48_hours_is_a_new_request(api: Any, ctx: Any) -> None:
    assert api.post("/v1/orders", order("o1"), headers=key("old")).status_code == 201
    _age(ctx, "old", created_at=datetime.now(UTC) - timedelta(hours=49))
    r = api.post("/v1/orders", order("o2"), headers=key("old"))  # another body: not a mismatch any more
    assert r.status_code == 201, r.text
    assert "idempotent-replayed" not in r.headers and r.json()["id"] == "o2"
    assert _orders(ctx) == 2
    replay = api.post("/v1/orders", order("o2"), headers=key("old"))  # and the new claim holds
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"


def test_an_abandoned_claim_is_taken_over(api: Any, ctx: Any) -> None:
    assert api.post("/v1/orders", order("o1"), headers=key("dead")).status_code == 201
    # As if the server died before committing: no status, older than the in-flight limit.
    _age(ctx, "dead", status_code=None, response=None, created_at=datetime.now(UTC) - timedelta(minutes=10))
    r = api.post("/v1/orders", order("o3"), headers=key("dead"))
    assert r.status_code == 201, r.text
    assert "idempotent-replayed" not in r.headers


def test_a_fresh_unanswered_claim_is_in_progress(api: Any, ctx: Any) -> None:
    assert api.post("/v1/orders", order("o1"), headers=key("busy")).status_code == 201
    _age(ctx, "busy", status_code=None, response=None, created_at=datetime.now(UTC))
    r = api.post("/v1/orders", order("o1"), headers=key("busy"))
    assert r.status_code == 409 and r.json()["type"].endswith("idempotency-in-progress")


def test_an_applied_claim_without_response_is_never_taken_again(api: Any, ctx: Any) -> None:
    assert api.post("/v1/orders", order("o1"), headers=key("lost")).status_code == 201
    _age(ctx, "lost", status_code=0, response=None, created_at=datetime.now(UTC) - timedelta(minutes=10))
    r = api.post("/v1/orders", order("o1"), headers=key("lost"))
    assert r.status_code == 409 and r.json()["type"].endswith("idempotency-applied")
    assert _orders(ctx) == 1
