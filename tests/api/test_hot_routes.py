"""The dispatch table of the lean routes (api/hot.py) answers exactly as FastAPI's own path does.

Each request below is sent to the application twice — with the table (as served) and without it (``hot_routes =
False``: FastAPI routes, solves and validates everything) — and the two answers must be the same bytes: status,
headers and body. The requests are the hot routes' reads and refusals (a write could not be sent twice), in the
shapes a client gets wrong: bodies that are not JSON or not the model, other media types, bad or repeated headers,
unknown or malformed ids, stale versions, unknown keys, other languages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from helpers import create_order, open_case

from aftersales.api.app import create_app
from aftersales.api.hot import _Table

M = {"Authorization": "Bearer {merchant_a}"}
B = {"Authorization": "Bearer {buyer_x}"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def plain(api: Any, database: Any, ctx: Any) -> Iterator[TestClient]:
    """The same application over the same database, with every request on FastAPI's own path."""
    app = create_app(database.settings(), ctx)
    app.hot_routes = False  # type: ignore[attr-defined]
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _headers(api: Any, headers: dict[str, str] | list[tuple[str, str]]) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, dict) else headers
    return [(k, v.format(**api.keys)) for k, v in items]


def same(api: Any, plain: TestClient, method: str, path: str, headers: Any = (), body: bytes | None = None) -> Any:
    """Send the request to both paths; the answers must be identical. Returns the table's."""
    sent = _headers(api, headers)
    hot = api.client.request(method, path, headers=sent, content=body, follow_redirects=False)
    ref = plain.request(method, path, headers=sent, content=body, follow_redirects=False)
    assert (hot.status_code, hot.headers.multi_items(), hot.content) == (ref.status_code, ref.headers.multi_items(),
                                                                         ref.content), (method, path, headers, body)
    return hot


def test_reads_and_refusals_are_fastapi_s(api: Any, plain: TestClient) -> None:
    create_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "no_reason")
    cid = case["id"]
    ok = same(api, plain, "GET", "/healthz")
    assert ok.status_code == 200 and ok.json() == {"status": "ok"}
    assert same(api, plain, "GET", "/v1/orders/o1", M).json()["id"] == "o1"
    assert same(api, plain, "GET", f"/v1/cases/{cid}", B).status_code == 200
    for query in ("", "?limit=1", "?status=shipped", "?limit=0", "?limit=x", "?status=bogus", "?paid_after=2026-03-01T00:00:00",
                  "?paid_after=2026-03-01T00:00:00%2B08:00", "?cursor=%25%25", "?merchant_id=mA&merchant_id=mB"):
        same(api, plain, "GET", "/v1/orders" + query, M)
    same(api, plain, "GET", "/v1/orders/o1/after-sales-options", {**B, "Accept-Language": "zh-CN"})
    for path in ("/v1/orders/nope", "/v1/orders/" + "x" * 65, "/v1/orders/a%20b", "/v1/orders/o1/", "/v1/cases/nope"):
        same(api, plain, "GET", path, M)
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "},
                    [("Authorization", "Bearer {merchant_a}"), ("Authorization", "Bearer {buyer_x}")]):
        same(api, plain, "GET", "/v1/orders/o1", headers)
    same(api, plain, "HEAD", "/healthz")
    same(api, plain, "OPTIONS", "/v1/orders")

    bodies: list[tuple[dict[str, str] | list[tuple[str, str]], bytes | None]] = [
        ({**M, **JSON}, b"{"), ({**M, **JSON}, b"\xff\xfe"), ({**M, **JSON}, b"null"), ({**M, **JSON}, b"[]"),
        ({**M, **JSON}, b'{"id": "o2"}'), ({**M, **JSON}, b""), (M, b'{"id": "o2"}'),
        ({**M, "Content-Type": "text/plain"}, b'{"id": "o2"}'), ({**M, "Content-Type": "application/merge-patch+json"}, b"{}"),
        ({**M, **JSON, "Accept-Language": "es"}, b'{"id": 5, "extra": true}'),
        ({**M, **JSON, "Idempotency-Key": ""}, b"{}"), ({**JSON}, b"{}"), ({"Authorization": "Bearer nope", **JSON}, b"{}"),
        ([*M.items(), *JSON.items(), ("Content-Type", "text/plain")], b"{}"),
        ({**M, **JSON}, b'{"id": "o1", "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00Z", '
                        b'"items": [{"sku": "s", "title": "t", "category": "nope", "quantity": 1, "unit_price_fen": 1}]}'),
    ]
    for headers, body in bodies:
        same(api, plain, "POST", "/v1/orders", headers, body)
        same(api, plain, "POST", "/v1/cases", {**dict(_headers(api, headers)), **B} if isinstance(headers, dict) else headers, body)
    same(api, plain, "POST", "/v1/cases", {**B, **JSON}, b'{"order_id": "o1", "type": "refund_only", "reason": "no_reason"}')

    act = f"/v1/cases/{cid}/approve"
    for headers, body in [({**M, **JSON}, b"{"), ({**M, **JSON}, b'{"nope": 1}'), ({**M, "If-Match": "abc"}, None),
                          ({**M, "If-Match": '"999"'}, None), ({**M, "If-Match": "W/\"0\""}, None), (B, None), ({}, None),
                          ({**M, **JSON, "If-Match": "x"}, b"{"), ({**M, "Content-Type": "text/plain"}, b"{}"),
                          ({**M, "Accept-Language": "zh-CN", "If-Match": '"999"'}, None)]:
        same(api, plain, "POST", act, headers, body)
    for path in ("/v1/cases/nope/approve", f"/v1/cases/{cid}/approve/", f"/v1/cases/{cid}/nope", "/v1/cases/a%20b/approve",
                 f"/v1/cases/{cid}/resubmit", f"/v1/cases/{cid}/rule"):
        same(api, plain, "POST", path, M)
    same(api, plain, "POST", "/v1/orders/o1/ship", {**M, **JSON, "If-Match": '"999"'}, b'{"carrier": "SF", "tracking_no": "1"}')
    same(api, plain, "POST", "/v1/orders/o1/deliver", {**M, "If-Match": "nope"})
    same(api, plain, "GET", act, M)  # a method the path does not take: 405 with Allow


def test_the_table_picks_the_route_fastapi_picks(api: Any) -> None:
    """Every lean route is in the table, and for a path of each the table's route is the first one FastAPI's
    router would take (the first route, in its order, whose method and path both match)."""
    app = api.client.app
    table = _Table(app)
    contexts = list(iter_route_contexts(app.routes))
    lean = [c for c in contexts if isinstance(c.original_route, APIRoute) and hasattr(c.original_route.endpoint, "lean")]
    assert {"/healthz", "/v1/orders", "/v1/cases", "/v1/cases/{case_id}/approve"} <= {c.path for c in lean}
    for context in lean:
        path = re.sub(r"\{[^}]+\}", "x1", context.path)
        for method in context.methods:
            first = next(c for c in contexts if (getattr(c, "methods", None) is None or method in c.methods)
                         and c.path_regex.match(path))
            found = table.find(method, path)
            assert found is not None and found[0].original is first.original_route is context.original_route, context.path
    assert table.find("POST", "/v1/cases/bulk-actions") is None  # not lean: FastAPI's
    assert table.find("POST", "/v1/cases/x1/assignee") is None
