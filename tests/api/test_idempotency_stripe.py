"""Idempotency-Key the way Stripe does it (API.md): authenticate first, scope the key by the authenticated
principal, record the answer with the effect before it leaves, never keep a secret in clear, purge after 24 h."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from sqlalchemy import func, select, update

from aftersales import worker
from aftersales.store import idempotency as idempotency_store
from aftersales.store import tables as t


def order(oid: str) -> dict[str, Any]:
    return {"id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00+00:00", "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 1999}]}


def rows(ctx: Any) -> list[Any]:
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(t.idempotency)).all())


def count(ctx: Any, table: Any) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# --- authenticate first -------------------------------------------------------------------------------------
def test_unauthenticated_posts_write_no_idempotency_row(api: Any, ctx: Any) -> None:
    before = count(ctx, t.idempotency)
    for i in range(40):
        headers = {"Idempotency-Key": f"k-{i}"}
        if i % 2:
            headers["Authorization"] = f"Bearer not-a-key-{i}"
        r = api.client.post("/v1/orders", json=order(f"o{i}"), headers=headers)
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json"), r.text
        assert "idempotent-replayed" not in r.headers
    assert count(ctx, t.idempotency) == before
    assert count(ctx, t.orders) == 0


def test_the_spellings_of_bearer_are_one_caller_and_top_up_once(api: Any, ctx: Any) -> None:
    key = api.keys["merchant_a"]
    body = {"amount_fen": 10_000}
    answers = [api.client.post("/v1/merchants/mA/deposit/top-ups", json=body,
                               headers={"Authorization": auth, "Idempotency-Key": "top-up-1"})
               for auth in (f"Bearer {key}", f"bearer {key}", f"BEARER {key}", f"Bearer  {key}", f"bearer {key} ")]
    assert answers[0].status_code == 201, answers[0].text
    assert "idempotent-replayed" not in answers[0].headers
    for again in answers[1:]:
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true", again.text
        assert again.content == answers[0].content
    assert api.get("/v1/merchants/mA/deposit").json()["balance_fen"] == 10_000  # one top-up, not five
    assert [r.principal for r in rows(ctx) if r.key == "top-up-1"] == ["merchant:mA"]


# --- recorded with the effect, before the answer leaves ------------------------------------------------------
def test_a_retry_right_after_the_answer_is_a_replay_never_409(api: Any, ctx: Any) -> None:
    """The first request is driven through the ASGI app by hand: at the moment its answer starts to leave, the
    record is already there with that answer, and a retry sent then (before the first has even finished) is a
    replay."""
    app = api.client.app
    headers = [(b"authorization", f"Bearer {api.keys['platform']}".encode()), (b"idempotency-key", b"race"),
               (b"content-type", b"application/json")]
    body = json.dumps(order("o1")).encode()

    def scope() -> dict[str, Any]:
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
                "path": "/v1/orders", "raw_path": b"/v1/orders", "root_path": "", "query_string": b"", "headers": headers,
                "client": ("127.0.0.1", 1234), "server": ("testserver", 80)}

    async def call(nested: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"body": b""}
        given = False

        async def receive() -> dict[str, Any]:
            nonlocal given
            if given:
                await anyio.sleep_forever()
            given = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out["status"], out["headers"] = message["status"], dict(message["headers"])
                if nested:  # the first answer is leaving: what is recorded, and what does a retry get now?
                    out["record"] = await anyio.to_thread.run_sync(rows, ctx)
                    out["retry"] = await call(nested=False)
            else:
                out["body"] += message.get("body", b"")

        await app(scope(), receive, send)
        return out

    async def main() -> None:
        first = await call(nested=True)
        assert first["status"] == 201, first["body"]
        (row,) = first["record"]
        assert row.status_code == 201 and row.response.encode() == first["body"]
        retry = first["retry"]
        assert retry["status"] == 201 and retry["headers"][b"idempotent-replayed"] == b"true", retry["body"]
        assert retry["body"] == first["body"]

    anyio.run(main)
    assert count(ctx, t.orders) == 1


def test_the_commit_of_the_effect_records_the_answer(api: Any, ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No second write after the command: the answer is in the transaction that created the order."""
    def no_second_write(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the answer should have been recorded by the commit of the effect")

    monkeypatch.setattr(idempotency_store, "record", no_second_write)
    first = api.post("/v1/orders", order("o1"), headers={"Idempotency-Key": "same-tx"})
    assert first.status_code == 201, first.text
    (row,) = [r for r in rows(ctx) if r.key == "same-tx"]
    assert row.status_code == 201 and row.response.encode() == first.content
    again = api.post("/v1/orders", order("o1"), headers={"Idempotency-Key": "same-tx"})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true" and again.content == first.content


def test_a_refusal_is_recorded_before_it_is_sent(api: Any, ctx: Any) -> None:
    first = api.post("/v1/orders", {**order("o1"), "merchant_id": "nobody"}, headers={"Idempotency-Key": "refused"})
    assert first.status_code == 404
    (row,) = [r for r in rows(ctx) if r.key == "refused"]
    assert row.status_code == 404 and row.response.encode() == first.content


# --- secrets ------------------------------------------------------------------------------------------------
def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.mark.parametrize(("path", "body", "who", "field"), [
    ("/v1/api-keys", {"role": "merchant", "subject_id": "mA", "label": "till"}, "platform", "key"),
    ("/v1/webhooks", {"url": "https://hooks.example.com/a"}, "merchant_a", "secret"),
    ("/v1/buyer-links", {"buyer_id": "bX"}, "platform", "path"),
])
def test_secrets_are_never_kept_and_a_replay_says_so(api: Any, ctx: Any, path: str, body: dict[str, Any], who: str,
                                                     field: str) -> None:
    first = api.post(path, body, who=who, headers={"Idempotency-Key": "secret-1"})
    assert first.status_code == 201, first.text
    secret = first.json()[field]
    assert isinstance(secret, str) and len(secret) > 20
    for row in rows(ctx):
        assert secret not in (row.response or ""), "a secret was stored in the idempotency table"
    again = api.post(path, body, who=who, headers={"Idempotency-Key": "secret-1"})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert secret not in again.text
    replay = again.json()
    assert replay[field] is None
    assert replay["redacted"]["sha256"] == {field: _sha(secret)} and "shown once" in replay["redacted"]["note"]
    assert {k: v for k, v in replay.items() if k not in (field, "redacted")} == \
        {k: v for k, v in first.json().items() if k != field}
    # The secret itself still works once: a replay does not issue another one.
    if field == "key":
        assert api.client.get("/v1/merchants/mA", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        assert count(ctx, t.api_keys) == 5  # the four of the fixture and this one


# --- purge --------------------------------------------------------------------------------------------------
def test_the_worker_purges_records_older_than_24_hours_only(api: Any, ctx: Any) -> None:
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    ages = {"old": timedelta(hours=24, seconds=1), "day": timedelta(hours=23, minutes=59), "new": timedelta(0)}
    for i, (k, age) in enumerate(ages.items()):
        assert api.post("/v1/orders", order(f"o{i}"), headers={"Idempotency-Key": k}).status_code == 201
        with ctx.engine.begin() as conn:
            conn.execute(update(t.idempotency).where(t.idempotency.c.key == k).values(created_at=now - age))
    assert worker.purge_idempotency(ctx, now) == 1
    assert sorted(r.key for r in rows(ctx)) == ["day", "new"]
    assert worker.purge_idempotency(ctx, now) == 0
