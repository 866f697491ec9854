"""``GET /v1/orders`` (API.md, Orders): T2 scoping per role, each filter, keyset pages without duplicates, and bad
input refused with 422 — on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from helpers import PAID_AT, create_order, deliver, iso, problem, ship

from aftersales.api.schemas import OrderStatusName
from aftersales.service.orders import ORDER_STATUSES


def ids(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    return [o["id"] for o in r.json()["items"]]


def page_through(api: Any, who: str = "platform", limit: int = 2, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        r = api.get("/v1/orders", who=who, params={**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("paging did not end")


@pytest.fixture
def shop(api: Any) -> Any:
    """Orders of two merchants and two buyers, paid an hour apart (oA1 oldest … oB2 newest); oA1 shipped."""
    for n, (oid, merchant, buyer) in enumerate([("oA1", "mA", "bX"), ("oA2", "mA", "bY"), ("oB1", "mB", "bX"),
                                                 ("oB2", "mB", "bY")]):
        create_order(api, oid, merchant=merchant, buyer=buyer, paid_at=PAID_AT - timedelta(hours=4 - n))
    ship(api, "oA1")
    return api


def test_T2_each_role_lists_only_its_own_orders_newest_paid_first(shop: Any) -> None:
    api = shop
    assert ids(api.get("/v1/orders")) == ["oB2", "oB1", "oA2", "oA1"]
    assert ids(api.get("/v1/orders", who="merchant_a")) == ["oA2", "oA1"]
    assert ids(api.get("/v1/orders", who="merchant_b")) == ["oB2", "oB1"]
    assert ids(api.get("/v1/orders", who="buyer_x")) == ["oB1", "oA1"]
    assert ids(api.get("/v1/orders", who="buyer_y")) == ["oB2", "oA2"]
    # Each item is the order as GET /v1/orders/{id} shows it.
    listed = api.get("/v1/orders", who="buyer_x").json()["items"][1]
    assert listed == api.get("/v1/orders/oA1", who="buyer_x").json()


def test_T2_a_filter_naming_another_tenant_returns_nothing_of_theirs(shop: Any) -> None:
    api = shop
    r = api.get("/v1/orders", who="merchant_a", params={"merchant_id": "mB"})
    assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}
    assert ids(api.get("/v1/orders", who="buyer_x", params={"buyer_id": "bY"})) == []
    # A merchant filtering by buyer sees that buyer's orders in its own shop only.
    assert ids(api.get("/v1/orders", who="merchant_a", params={"buyer_id": "bX"})) == ["oA1"]
    assert ids(api.get("/v1/orders", who="buyer_x", params={"merchant_id": "mB"})) == ["oB1"]
    # Its own id as a filter changes nothing.
    assert ids(api.get("/v1/orders", who="merchant_a", params={"merchant_id": "mA"})) == ["oA2", "oA1"]


def test_each_filter_of_the_order_list(shop: Any) -> None:
    api = shop
    assert ids(api.get("/v1/orders", params={"merchant_id": "mA"})) == ["oA2", "oA1"]
    assert ids(api.get("/v1/orders", params={"buyer_id": "bY"})) == ["oB2", "oA2"]
    assert ids(api.get("/v1/orders", params={"merchant_id": "mB", "buyer_id": "bY"})) == ["oB2"]
    assert ids(api.get("/v1/orders", params={"status": "shipped"})) == ["oA1"]
    assert ids(api.get("/v1/orders", params={"status": "awaiting_shipment"})) == ["oB2", "oB1", "oA2"]
    assert ids(api.get("/v1/orders", params={"status": "cancelled"})) == []
    # paid_after is inclusive, paid_before exclusive; any UTC offset names the same instant.
    second = PAID_AT - timedelta(hours=3)  # oA2's paid_at
    assert ids(api.get("/v1/orders", params={"paid_after": iso(second)})) == ["oB2", "oB1", "oA2"]
    assert ids(api.get("/v1/orders", params={"paid_before": iso(second)})) == ["oA1"]
    shanghai = (second + timedelta(hours=8)).replace(tzinfo=None).isoformat() + "+08:00"
    assert ids(api.get("/v1/orders", params={"paid_after": shanghai, "paid_before": iso(PAID_AT - timedelta(hours=1))})) \
        == ["oB1", "oA2"]
    deliver(api, "oA1")
    assert ids(api.get("/v1/orders", who="buyer_x", params={"status": "delivered"})) == ["oA1"]


def test_paging_through_all_orders_visits_each_once(api: Any) -> None:
    # Seven orders, three of them paid at the same instant: the id breaks the tie, so no page repeats or skips one.
    expected = []
    for n in range(7):
        oid = f"o{n}"
        create_order(api, oid, merchant="mA" if n % 2 else "mB", paid_at=PAID_AT - timedelta(hours=min(n, 3)))
        expected.append(oid)
    for limit in (1, 2, 3, 7, 200):
        seen = [o["id"] for o in page_through(api, limit=limit)]
        assert len(seen) == len(set(seen)) == 7
        assert seen == ["o0", "o1", "o2", "o6", "o5", "o4", "o3"]
    assert [o["id"] for o in page_through(api, "merchant_a", limit=1)] == ["o1", "o5", "o3"]
    assert [o["id"] for o in page_through(api, "buyer_x", limit=2, merchant_id="mB")] == ["o0", "o2", "o6", "o4"]
    last = api.get("/v1/orders", params={"limit": "7"}).json()
    assert last["next_cursor"] is None and len(last["items"]) == 7


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize("params", [
    {"limit": "201"}, {"limit": "0"}, {"limit": "-1"}, {"limit": "x"},
    {"status": "paid"}, {"status": "SHIPPED"}, {"status": ""},
    {"paid_after": "2026-03-01T01:00:00"}, {"paid_before": "2026-03-01"}, {"paid_after": "yesterday"},
    {"merchant_id": "m A"}, {"buyer_id": "b" * 65},
    {"cursor": "!!"}, {"cursor": _b64("oA1")}, {"cursor": _b64("not-a-date|oA1")}, {"cursor": _b64("|oA1")},
    {"cursor": _b64("2026-03-01T01:00:00|oA1")}, {"cursor": _b64("2026-03-01T01:00:00+00:00|")},
    {"cursor": _b64("2026-03-01T01:00:00+00:00|o\x00")}, {"cursor": "A" * 201},
])
def test_bad_order_list_inputs_are_refused_with_422(shop: Any, params: dict[str, str]) -> None:
    problem(shop.get("/v1/orders", params=params), 422)


def test_a_bad_status_names_the_order_statuses(shop: Any) -> None:
    body = problem(shop.get("/v1/orders", params={"status": "paid"}), 422)
    assert all(s in str(body) for s in ORDER_STATUSES), body


def test_the_order_statuses_of_the_list_are_those_of_the_domain() -> None:
    assert OrderStatusName.__args__ == ORDER_STATUSES  # type: ignore[attr-defined]


def test_T2_listing_orders_needs_a_key(shop: Any) -> None:
    problem(shop.get("/v1/orders", who="anonymous"), 401)
