"""Concurrency on SQLite and PostgreSQL: many identical commands at once take effect exactly once (F1, E9).

Each thread goes through the service layer (``aftersales.service.cases``) with its own unit of work, so the
database's locking (BEGIN IMMEDIATE on SQLite, SELECT … FOR UPDATE on PostgreSQL) and the optimistic version
check are what keep the refund single. One variant goes through HTTP to a real uvicorn server on a free port.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from aftersales.api.app import create_app
from aftersales.service import cases as case_service
from aftersales.service.context import Principal
from aftersales.store import tables as t

N = 64
MERCHANT_A = Principal("merchant", "mA")
BUYER_X = Principal("buyer", "bX")


def order(oid: str) -> dict[str, Any]:
    return {"id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00+00:00",
            "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 1999}]}


def ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json())


def refund_only_case(api: Any, oid: str = "o1") -> str:
    """An unshipped order with a refund-only case: approving it refunds everything paid (E2)."""
    ok(api.post("/v1/orders", order(oid)), 201)
    return str(ok(api.post("/v1/cases", {"order_id": oid, "type": "refund_only", "reason": "no_reason"}, who="buyer_x"), 201)["id"])


def returned_case(api: Any, oid: str = "o1") -> str:
    """A return-and-refund case whose parcel is on its way back to the merchant."""
    ok(api.post("/v1/orders", order(oid)), 201)
    ok(api.post(f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": "T1"}))
    ok(api.post(f"/v1/orders/{oid}/deliver", {}))
    cid = str(ok(api.post("/v1/cases", {"order_id": oid, "type": "return_refund", "reason": "quality_problem"}, who="buyer_x"), 201)["id"])
    ok(api.post(f"/v1/cases/{cid}/approve", {}, who="merchant_a"))
    assert ok(api.post(f"/v1/cases/{cid}/ship_return", {"carrier": "SF", "tracking_no": "R1"}, who="buyer_x"))["status"] == "return_in_transit"
    return cid


def at_once(n: int, fn: Callable[[int], Any]) -> list[tuple[str, Any]]:
    """Run ``fn(i)`` in ``n`` threads released together; ("ok", result) or ("error", exception) each."""
    barrier = threading.Barrier(n)
    results: list[tuple[str, Any]] = [("missing", None)] * n

    def work(i: int) -> None:
        barrier.wait(timeout=60)
        try:
            results[i] = ("ok", fn(i))
        except Exception as exc:
            results[i] = ("error", exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(180)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    return results


def refunds(ctx: Any, case_id: str) -> list[Any]:
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(t.refunds).where(t.refunds.c.case_id == case_id)).all())


def assert_once(results: list[tuple[str, Any]]) -> dict[str, Any]:
    """Exactly one success; every other call a 409 (service ``Conflict`` or domain ``StateConflict``)."""
    wins = [v for kind, v in results if kind == "ok"]
    errors = [v for kind, v in results if kind == "error"]
    assert len(wins) == 1, f"{len(wins)} successes; errors: {Counter(type(e).__name__ for e in errors)}"
    unexpected = [e for e in errors if type(e).__name__ not in ("Conflict", "StateConflict") or e.status != 409]
    assert not unexpected, f"unexpected failures: {unexpected[:3]!r}"
    assert len(errors) == len(results) - 1
    return dict(wins[0])


def order_row(ctx: Any, oid: str) -> Any:
    with ctx.engine.connect() as conn:
        return conn.execute(select(t.orders).where(t.orders.c.id == oid)).one()


def test_64_concurrent_approvals_refund_once(api: Any, ctx: Any) -> None:
    cid = refund_only_case(api)
    results = at_once(N, lambda i: case_service.act(ctx, MERCHANT_A, cid, "approve", {}, if_match=None, lang="en"))
    won = assert_once(results)
    assert won["status"] == "closed" and won["close_reason"] == "refunded"
    rows = refunds(ctx, cid)
    assert len(rows) == 1
    o = order_row(ctx, "o1")
    assert o.refunded_fen == o.paid_fen == rows[0].amount_fen == 2499
    view = ok(api.get("/v1/orders/o1"))
    assert view["refunded_fen"] == view["paid_fen"] == 2499 and len(view["refunds"]) == 1
    with ctx.engine.connect() as conn:
        approvals = conn.execute(select(func.count()).select_from(t.events)
                                 .where(t.events.c.case_id == cid, t.events.c.kind == "approve")).scalar_one()
    assert approvals == 1


def test_64_concurrent_return_confirmations_refund_once(api: Any, ctx: Any) -> None:
    cid = returned_case(api)
    results = at_once(N, lambda i: case_service.act(ctx, MERCHANT_A, cid, "confirm_return", {}, if_match=None, lang="en"))
    won = assert_once(results)
    assert won["status"] == "closed" and won["close_reason"] == "refunded"
    rows = refunds(ctx, cid)
    assert len(rows) == 1
    o = order_row(ctx, "o1")
    assert o.refunded_fen == rows[0].amount_fen == won["refunded_fen"] > 0
    assert o.refunded_fen <= o.paid_fen
    with ctx.engine.connect() as conn:
        confirmations = conn.execute(select(func.count()).select_from(t.events)
                                     .where(t.events.c.case_id == cid, t.events.c.kind == "confirm_return")).scalar_one()
    assert confirmations == 1


def test_64_concurrent_opens_make_one_open_case(api: Any, ctx: Any) -> None:
    """E9: at most one open case per order, whatever the interleaving."""
    ok(api.post("/v1/orders", order("o1")), 201)
    data = {"order_id": "o1", "type": "refund_only", "reason": "no_reason"}
    results = at_once(N, lambda i: case_service.open_case(ctx, BUYER_X, dict(data), lang="en"))
    wins = [v for kind, v in results if kind == "ok"]
    errors = [v for kind, v in results if kind == "error"]
    assert len(wins) == 1, f"{len(wins)} cases opened; errors: {Counter(type(e).__name__ for e in errors)}"
    for e in errors:  # refused by E9 (422) or beaten to the lock (409)
        assert (getattr(e, "rule", None) == "E9" and e.status == 422) or (type(e).__name__ in ("Conflict", "StateConflict")), repr(e)
    with ctx.engine.connect() as conn:
        open_cases = conn.execute(select(func.count()).select_from(t.cases)
                                  .where(t.cases.c.order_id == "o1", t.cases.c.status != "closed")).scalar_one()
        all_cases = conn.execute(select(func.count()).select_from(t.cases).where(t.cases.c.order_id == "o1")).scalar_one()
    assert open_cases == all_cases == 1
    assert ok(api.get("/v1/orders/o1"))["open_case_id"] == wins[0]["id"]


# --- through HTTP, to a real server ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(database: Any) -> Iterator[str]:
    """A uvicorn server over the test database, in a thread, on a free port (its own engine and pool)."""
    port = _free_port()
    app = create_app(database.settings())
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(30)
        app.state.ctx.engine.dispose()


@pytest.mark.parametrize("action", ["approve", "confirm_return"])
def test_64_concurrent_http_actions_refund_once(api: Any, ctx: Any, server: str, action: str) -> None:
    cid = refund_only_case(api) if action == "approve" else returned_case(api)
    headers = {"Authorization": f"Bearer {api.keys['merchant_a']}"}

    with httpx.Client(base_url=server, timeout=120, limits=httpx.Limits(max_connections=N)) as client:
        results = at_once(N, lambda i: client.post(f"/v1/cases/{cid}/{action}", headers=headers))
    assert all(kind == "ok" for kind, _ in results), [v for kind, v in results if kind != "ok"][:3]
    statuses = Counter(r.status_code for _, r in results)
    assert statuses == {200: 1, 409: N - 1}, statuses
    for _, r in results:
        if r.status_code == 409:
            assert r.headers["content-type"].startswith("application/problem+json"), r.text
    rows = refunds(ctx, cid)
    assert len(rows) == 1
    o = order_row(ctx, "o1")
    assert o.refunded_fen == rows[0].amount_fen > 0
    if action == "approve":
        assert o.refunded_fen == o.paid_fen
