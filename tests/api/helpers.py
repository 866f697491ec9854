"""Builders for the API tests of RULEBOOK §1–§3: orders, groups, categories, deliveries, cases and actions.

Every helper goes through HTTP (the ``api`` fixture of ``tests/conftest.py``) and asserts the status it expects,
so a test reads like the rulebook: ``case = open_case(api, "o1", "return_refund", "no_reason")``.
The manual clock starts at ``START`` (2026-03-01T02:00Z, 10:00 in Asia/Shanghai).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
PAID_AT = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
PROBLEM = "application/problem+json"

#: Who takes each case action by default (API.md).
MERCHANT_ACTIONS = frozenset({
    "approve", "reject", "offer_exchange", "offer_partial_refund", "mark_return_delivered", "confirm_return",
    "reject_return", "ship_replacement", "mark_replacement_delivered", "pay_ruling",
})
MERCHANT_KEY = {"mA": "merchant_a", "mB": "merchant_b"}
BUYER_KEY = {"bX": "buyer_x", "bY": "buyer_y"}


# --- time -------------------------------------------------------------------------------------------------
def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat()


def at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An instant given in platform time (Asia/Shanghai), as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def advance_to(api: Any, instant: datetime) -> dict[str, Any]:
    """Move the manual clock to ``instant`` exactly, applying every automatic action that falls due."""
    delta = instant - api.now()
    assert delta >= timedelta(0), f"the clock is already past {instant}"
    assert delta.microseconds == 0
    return api.advance(int(delta.total_seconds()))


def hours(n: float) -> int:
    return int(n * 3600)


def days(n: float) -> int:
    return int(n * 86400)


# --- problems ---------------------------------------------------------------------------------------------
def problem(r: Any, status: int, rule: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 answer with ``status`` (and the RULEBOOK id ``rule``); return its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status and body["title"] and body["type"] and body["detail"], body
    if rule is not None:
        assert body.get("rule") == rule, body
    return body


# --- set-up -----------------------------------------------------------------------------------------------
def put_category(api: Any, code: str, *, name: str | None = None, no_reason_return: bool = True,
                 statutory_exclusion: str | None = None, after_sales_days: int | None = None,
                 warranty_days: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name or code, "no_reason_return": no_reason_return,
                            "statutory_exclusion": statutory_exclusion}
    if after_sales_days is not None:
        body["after_sales_days"] = after_sales_days
    if warranty_days is not None:
        body["warranty_days"] = warranty_days
    r = api.put(f"/v1/categories/{code}", body)
    assert r.status_code in (200, 201), r.text
    return r.json()


def statutory_category(api: Any, code: str = "fresh", exclusion: str = "perishable") -> str:
    """E4: a category the law excludes from no-reason returns."""
    put_category(api, code, statutory_exclusion=exclusion)
    return code


def shop_excluded_category(api: Any, code: str = "underwear") -> str:
    """E4: a category the shop declares non-returnable (binds only items whose buyer confirmed it)."""
    put_category(api, code, no_reason_return=False)
    return code


def warranty_category(api: Any, code: str = "appliance", warranty_days: int = 365) -> str:
    """E6: household electrical goods with a warranty beyond the after-sales window."""
    put_category(api, code, warranty_days=warranty_days)
    return code


# --- orders -----------------------------------------------------------------------------------------------
def item(sku: str = "s1", unit_price_fen: int = 10000, quantity: int = 1, category: str = "apparel",
         title: str | None = None, exclusion_confirmed: bool | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"sku": sku, "title": title or f"Item {sku}", "category": category, "quantity": quantity,
                            "unit_price_fen": unit_price_fen}
    if exclusion_confirmed is not None:
        body["exclusion_confirmed"] = exclusion_confirmed
    return body


def order_body(order_id: str = "o1", *, merchant: str = "mA", buyer: str = "bX", items: list[dict[str, Any]] | None = None,
               shipping_fee_fen: int = 800, paid_at: datetime = PAID_AT, insured: bool | None = None,
               group: dict[str, Any] | None = None) -> dict[str, Any]:
    """An order of ``items`` (default: one item of 100.00) with 8.00 shipping, paid before the clock start."""
    body: dict[str, Any] = {"id": order_id, "merchant_id": merchant, "buyer_id": buyer, "paid_at": iso(paid_at),
                            "shipping_fee_fen": shipping_fee_fen, "items": items or [item()]}
    if insured is not None:
        body["return_shipping_insured"] = insured
    if group is not None:
        body["group"] = group
    return body


def create_order(api: Any, order_id: str = "o1", **kw: Any) -> dict[str, Any]:
    r = api.post("/v1/orders", order_body(order_id, **kw))
    assert r.status_code == 201, r.text
    return r.json()


def group_order(api: Any, order_id: str, group_id: str, *, size: int = 2, auto_complete: bool = False,
                **kw: Any) -> dict[str, Any]:
    """A member order of group ``group_id``: the first one opens the group at its ``paid_at`` (G1)."""
    return create_order(api, order_id, group={"id": group_id, "size": size, "auto_complete": auto_complete}, **kw)


def get_order(api: Any, order_id: str, who: str = "platform") -> dict[str, Any]:
    r = api.get(f"/v1/orders/{order_id}", who=who)
    assert r.status_code == 200, r.text
    return r.json()


def get_group(api: Any, group_id: str, who: str = "platform") -> dict[str, Any]:
    r = api.get(f"/v1/groups/{group_id}", who=who)
    assert r.status_code == 200, r.text
    return r.json()


def ship(api: Any, order_id: str, who: str = "merchant_a") -> dict[str, Any]:
    r = api.post(f"/v1/orders/{order_id}/ship", {"carrier": "SF", "tracking_no": f"SF-{order_id}"}, who=who)
    assert r.status_code == 200, r.text
    return r.json()


def deliver(api: Any, order_id: str, when: datetime | None = None, who: str = "merchant_a") -> dict[str, Any]:
    r = api.post(f"/v1/orders/{order_id}/deliver", {"at": iso(when)} if when else {}, who=who)
    assert r.status_code == 200, r.text
    return r.json()


def shipped_order(api: Any, order_id: str = "o1", **kw: Any) -> dict[str, Any]:
    create_order(api, order_id, **kw)
    return ship(api, order_id, who=MERCHANT_KEY[kw.get("merchant", "mA")])


def delivered_order(api: Any, order_id: str = "o1", when: datetime | None = None, **kw: Any) -> dict[str, Any]:
    """Create, ship now, then deliver at ``when`` (default now); the clock moves to ``when`` first if needed."""
    shipped_order(api, order_id, **kw)
    if when is not None and when > api.now():
        advance_to(api, when)
    order = deliver(api, order_id, when, who=MERCHANT_KEY[kw.get("merchant", "mA")])
    assert order["status"] == "delivered"
    return order


# --- eligibility ------------------------------------------------------------------------------------------
def options(api: Any, order_id: str, who: str = "buyer_x", lang: str | None = None) -> dict[str, Any]:
    headers = {"Accept-Language": lang} if lang else {}
    r = api.client.get(f"/v1/orders/{order_id}/after-sales-options", headers={**api.h(who), **headers})
    assert r.status_code == 200, r.text
    return r.json()


def option(opts: dict[str, Any], case_type: str) -> dict[str, Any]:
    matches = [o for o in opts["options"] if o["type"] == case_type]
    assert len(matches) == 1, opts
    return matches[0]


# --- cases ------------------------------------------------------------------------------------------------
def case_body(order_id: str, case_type: str, reason: str, **fields: Any) -> dict[str, Any]:
    return {"order_id": order_id, "type": case_type, "reason": reason, **fields}


def try_open(api: Any, order_id: str, case_type: str, reason: str, who: str = "buyer_x", lang: str | None = None,
             **fields: Any) -> Any:
    headers = {"Accept-Language": lang} if lang else None
    return api.post("/v1/cases", case_body(order_id, case_type, reason, **fields), who=who, headers=headers)


def open_case(api: Any, order_id: str, case_type: str, reason: str, who: str = "buyer_x", **fields: Any) -> dict[str, Any]:
    r = try_open(api, order_id, case_type, reason, who=who, **fields)
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["status"] == "awaiting_merchant" and case["deadline"]["rule"] == "M1", case
    return case


def default_actor(action: str) -> str:
    if action in MERCHANT_ACTIONS:
        return "merchant_a"
    if action == "rule":
        return "platform"
    return "buyer_x"


def try_act(api: Any, case_id: str, action: str, body: dict[str, Any] | None = None, who: str | None = None,
            headers: dict[str, str] | None = None) -> Any:
    return api.post(f"/v1/cases/{case_id}/{action}", body, who=who or default_actor(action), headers=headers)


def act(api: Any, case_id: str, action: str, body: dict[str, Any] | None = None, who: str | None = None,
        headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Take ``action`` (by its usual actor unless ``who``) and return the case it answers."""
    r = try_act(api, case_id, action, body, who=who, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def get_case(api: Any, case_id: str, who: str = "platform") -> dict[str, Any]:
    r = api.get(f"/v1/cases/{case_id}", who=who)
    assert r.status_code == 200, r.text
    return r.json()


def events(api: Any, case_id: str, who: str = "platform") -> list[dict[str, Any]]:
    r = api.get(f"/v1/cases/{case_id}/events", who=who)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def kinds(evs: list[dict[str, Any]]) -> list[str]:
    return [e["kind"] for e in evs]


def event(evs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The only event of ``kind``."""
    matches = [e for e in evs if e["kind"] == kind]
    assert len(matches) == 1, kinds(evs)
    return matches[0]


def ship_return(api: Any, case_id: str, shipping_fee_fen: int | None = None, who: str = "buyer_x") -> dict[str, Any]:
    body: dict[str, Any] = {"carrier": "YTO", "tracking_no": f"YT-{case_id[-6:]}"}
    if shipping_fee_fen is not None:
        body["shipping_fee_fen"] = shipping_fee_fen
    return act(api, case_id, "ship_return", body, who=who)


def ship_replacement(api: Any, case_id: str, who: str = "merchant_a") -> dict[str, Any]:
    return act(api, case_id, "ship_replacement", {"carrier": "SF", "tracking_no": f"SF-R-{case_id[-6:]}"}, who=who)


def assert_closed(case: dict[str, Any], close_reason: str) -> None:
    assert case["status"] == "closed", case
    assert case["close_reason"] == close_reason, case
    assert case["deadline"] is None, case
    assert case["closed_at"] is not None, case


def assert_money_invariant(api: Any, order_id: str) -> dict[str, Any]:
    """E10/F1: refunded never exceeds paid, and every refund has its own key and is settled."""
    order = get_order(api, order_id)
    assert 0 <= order["refunded_fen"] <= order["paid_fen"], order
    keys = [r["key"] for r in order["refunds"]]
    assert len(keys) == len(set(keys)), keys
    assert sum(r["refund_fen"] for r in order["refunds"]) == order["refunded_fen"], order
    return order


def window_end(instant: datetime, n: int) -> datetime:
    """T0: the end (exclusive) of an N-day window after ``instant``: local midnight starting local day D+N+1."""
    d = instant.astimezone(SHANGHAI).date() + timedelta(days=n + 1)
    return datetime(d.year, d.month, d.day, tzinfo=SHANGHAI).astimezone(UTC)


def deadline(case: dict[str, Any]) -> tuple[str, datetime, str]:
    """The case's next automatic action as (action, due_at, rule)."""
    d = case["deadline"]
    assert d is not None, case
    return d["action"], datetime.fromisoformat(d["due_at"]), d["rule"]
