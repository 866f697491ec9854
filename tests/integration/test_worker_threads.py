"""The worker loop: a webhook delivery that hangs (an endpoint answering only at the timeout, or a backlog being
sent) must not hold up the automatic actions. M1: the merchant's silence approves the case and the refund is
paid while the webhook sender is still stuck."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import select

from aftersales import worker
from aftersales.service import webhooks
from aftersales.service.context import run
from aftersales.store import tables as t

#: How long the test waits for the worker at most (a bound on a wait, not a measured figure).
PATIENCE_SECONDS = 60


def order_body(order_id: str) -> dict:
    return {"id": order_id, "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00+00:00",
            "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 1999}]}


def _case_status(ctx, case_id: str) -> tuple[str, str | None]:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(t.cases.c.status, t.cases.c.close_reason).where(t.cases.c.id == case_id)).one()
    return row.status, row.close_reason


def test_m1_deadline_is_applied_while_a_webhook_delivery_hangs(api, ctx, monkeypatch):
    sending, release = threading.Event(), threading.Event()

    def hanging_send(client, row, egress):
        sending.set()
        release.wait(PATIENCE_SECONDS)
        return None, "ReadTimeout: the endpoint did not answer", 10_000

    monkeypatch.setattr(webhooks, "send", hanging_send)
    assert api.post("/v1/webhooks", {"url": "https://hooks.example/slow"}, who="merchant_a").status_code == 201
    assert api.post("/v1/orders", order_body("o-slow")).status_code == 201
    case = api.post("/v1/cases", {"order_id": "o-slow", "type": "refund_only", "reason": "no_reason"}, who="buyer_x").json()
    assert case["status"] == "awaiting_merchant"

    thread, stop = worker.start_in_thread(ctx, 0.02)
    try:
        assert sending.wait(PATIENCE_SECONDS), "the worker never tried to deliver the case's events"
        # The sender is stuck now. M1: 48 h pass without an answer from the merchant.
        run(ctx, lambda uow: ctx.clock.set(uow.conn, uow.now + timedelta(hours=49)))
        give_up = time.monotonic() + PATIENCE_SECONDS
        while _case_status(ctx, case["id"])[0] != "closed" and time.monotonic() < give_up:
            time.sleep(0.05)
        assert not release.is_set()
        assert _case_status(ctx, case["id"]) == ("closed", "refunded"), "the deadline waited behind a webhook delivery"
    finally:
        release.set()
        stop.set()
        thread.join(PATIENCE_SECONDS)
    assert not thread.is_alive()


def test_T0_a_queued_replay_is_run_by_the_worker_in_a_thread_of_its_own(api, ctx):
    """Issue 15: the worker takes a queued what-if replay and runs it to its report, next to its other loops."""
    current = api.get("/v1/policy").json()
    body = {k: v for k, v in current.items() if k not in ("version", "effective_at", "draft_id")}
    draft = api.put("/v1/policy", {**body, "no_reason_days": 10, "reason": "replay"}).json()
    assert api.post("/v1/orders", order_body("o-replayed")).status_code == 201
    job = api.post(f"/v1/policy/drafts/{draft['id']}/replays", {"from": "2020-01-01", "to": "2030-01-01"}).json()
    assert job["status"] == "queued"

    thread, stop = worker.start_in_thread(ctx, 0.02)
    try:
        give_up = time.monotonic() + PATIENCE_SECONDS
        while api.get(f"/v1/policy/replays/{job['id']}").json()["status"] != "done" and time.monotonic() < give_up:
            time.sleep(0.05)
        got = api.get(f"/v1/policy/replays/{job['id']}").json()
        assert got["status"] == "done", got
        assert got["progress"] == {"done": 1, "total": 1} and got["report"]["orders"] == 1
    finally:
        stop.set()
        thread.join(PATIENCE_SECONDS)
    assert not thread.is_alive()
