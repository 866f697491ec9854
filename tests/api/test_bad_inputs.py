"""Bad inputs (API.md conventions, T0, T1, T2, S4): each is a 4xx ``application/problem+json`` with ``type``,
``title``, ``status`` and ``detail``, and the database is exactly as it was before the request.

The table runs against one database per backend (SQLite and PostgreSQL) holding: a delivered order of mA/bX
with no case (``ordFree``), an order of mA/bX with an open refund-only case (``ordOpen`` / ``{case}``) and an
order of mB/bY with an open case (``ordOther`` / ``{ycase}``, another tenant's ids).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, inspect, select, text

from aftersales.domain.money import MAX_FEN

PROBLEM = "application/problem+json"
CHECKSUMMED = ("orders", "cases", "refunds", "events")
LIMIT = 1_000_000  # Settings.max_body_bytes


def order(oid: str = "ordNew", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00+00:00",
                            "shipping_fee_fen": 500, "items": [item()]}
    body.update(changes)
    return body


def item(**changes: Any) -> dict[str, Any]:
    return {"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 1999, **changes}


def case(**changes: Any) -> dict[str, Any]:
    return {"order_id": "ordFree", "type": "refund_only", "reason": "quality_problem", **changes}


def complaint(**changes: Any) -> dict[str, Any]:
    body = {"order_id": "ordFree", "channel": "in_app_chat", "category": "other", "description": "d", **changes}
    return {k: v for k, v in body.items() if v is not None}


def resolve(**remedy: Any) -> dict[str, Any]:
    return {"outcome": "upheld", "rationale": "r", "remedies": [{"type": "penalty", "amount_fen": 100, **remedy}]}


@dataclass
class Bad:
    name: str
    method: str
    path: str
    json: Any = None
    who: str = "platform"
    status: int = 422
    content: bytes | Iterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] | None = None
    rule: str | None = None
    #: A multipart/form-data body (``httpx`` ``files=``): evidence uploads.
    files: dict[str, Any] | None = None


def _chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), 64 * 1024):
        yield data[i:i + 64 * 1024]


BIG = json.dumps(order(items=[item(title="x" * 190, sku=f"s{i}") for i in range(6000)])).encode()
assert len(BIG) > LIMIT
JSON_CT = {"content-type": "application/json"}

BAD: list[Bad] = [
    # --- amounts (T1): negative, zero, overflowing, floats, strings, booleans ---------------------------------
    Bad("negative shipping fee", "POST", "/v1/orders", order(shipping_fee_fen=-1)),
    Bad("unknown category", "POST", "/v1/orders", order(items=[item(category="aparel")]), rule="E4"),
    Bad("zero unit price", "POST", "/v1/orders", order(items=[item(unit_price_fen=0)])),
    Bad("negative unit price", "POST", "/v1/orders", order(items=[item(unit_price_fen=-1999)])),
    Bad("unit price above 10**15", "POST", "/v1/orders", order(items=[item(unit_price_fen=MAX_FEN + 1)])),
    Bad("unit price 2**63", "POST", "/v1/orders", order(items=[item(unit_price_fen=2**63)])),
    Bad("unit price 10**40", "POST", "/v1/orders", order(items=[item(unit_price_fen=10**40)])),
    Bad("order total overflows", "POST", "/v1/orders", order(items=[item(quantity=100000, unit_price_fen=MAX_FEN)]), rule="T1"),
    Bad("float unit price", "POST", "/v1/orders", order(items=[item(unit_price_fen=19.99)])),
    Bad("integral float unit price", "POST", "/v1/orders", order(items=[item(unit_price_fen=1999.0)])),
    Bad("string unit price", "POST", "/v1/orders", order(items=[item(unit_price_fen="1999")])),
    Bad("boolean unit price", "POST", "/v1/orders", order(items=[item(unit_price_fen=True)])),
    Bad("null shipping fee", "POST", "/v1/orders", order(shipping_fee_fen=None)),
    Bad("zero refund", "POST", "/v1/cases", case(refund_fen=0), who="buyer_x"),
    Bad("negative refund", "POST", "/v1/cases", case(refund_fen=-1), who="buyer_x"),
    Bad("refund above 10**15", "POST", "/v1/cases", case(refund_fen=MAX_FEN + 1), who="buyer_x"),
    Bad("refund 2**63", "POST", "/v1/cases", case(refund_fen=2**63), who="buyer_x"),
    Bad("float refund", "POST", "/v1/cases", case(refund_fen=12.5), who="buyer_x"),
    Bad("string refund", "POST", "/v1/cases", case(refund_fen="100"), who="buyer_x"),
    Bad("refund above the amount paid", "POST", "/v1/cases", case(refund_fen=2500), who="buyer_x", rule="E10"),
    Bad("zero partial refund offer", "POST", "/v1/cases/{case}/offer_partial_refund", {"refund_fen": 0}, who="merchant_a"),
    Bad("2**63 partial refund offer", "POST", "/v1/cases/{case}/offer_partial_refund", {"refund_fen": 2**63}, who="merchant_a"),
    Bad("string partial refund offer", "POST", "/v1/cases/{case}/offer_partial_refund", {"refund_fen": "500"}, who="merchant_a"),
    Bad("partial refund above what is left", "POST", "/v1/cases/{case}/offer_partial_refund", {"refund_fen": 99999},
        who="merchant_a", rule="E10"),
    Bad("negative clock seconds", "POST", "/v1/clock/advance", {"seconds": -1}),
    Bad("float clock seconds", "POST", "/v1/clock/advance", {"seconds": 1.5}),
    # --- other wrong types and shapes ------------------------------------------------------------------------
    Bad("items is an object", "POST", "/v1/orders", order(items={"sku": "s1"})),
    Bad("string boolean", "POST", "/v1/orders", order(return_shipping_insured="yes")),
    Bad("string group size", "POST", "/v1/orders", order(group={"id": "g1", "size": "2"})),
    Bad("group of one", "POST", "/v1/orders", order(group={"id": "g1", "size": 1})),
    Bad("body is a list", "POST", "/v1/orders", [order()]),
    Bad("body is a string", "POST", "/v1/orders", "ordNew"),
    Bad("string consent", "POST", "/v1/cases", case(buyer_consent="true"), who="buyer_x"),
    Bad("null type", "POST", "/v1/cases", case(type=None), who="buyer_x"),
    Bad("missing reason", "POST", "/v1/cases", {"order_id": "ordFree", "type": "refund_only"}, who="buyer_x"),
    Bad("description over 2000 characters", "POST", "/v1/cases", case(description="x" * 2001), who="buyer_x"),
    Bad("empty rejection reason", "POST", "/v1/cases/{case}/reject", {"reason": ""}, who="merchant_a"),
    Bad("NUL in a title", "POST", "/v1/orders", order(items=[item(title="Sh\x00irt")])),
    Bad("NUL in a merchant name", "POST", "/v1/merchants", {"id": "mNul", "name": "a\x00b"}),
    Bad("NUL in a description", "POST", "/v1/cases", case(description="a\x00b"), who="buyer_x"),
    Bad("lone surrogate in a description", "POST", "/v1/cases", who="buyer_x", headers=JSON_CT,
        content=b'{"order_id": "ordFree", "type": "refund_only", "reason": "quality_problem", "description": "x\\ud800"}'),
    # --- unknown enums --------------------------------------------------------------------------------------
    Bad("unknown case type", "POST", "/v1/cases", case(type="refund_everything"), who="buyer_x"),
    Bad("unknown reason", "POST", "/v1/cases", case(reason="bored"), who="buyer_x"),
    Bad("unknown key role", "POST", "/v1/api-keys", {"role": "superuser", "subject_id": "x"}),
    Bad("unknown ruling outcome", "POST", "/v1/cases/{case}/rule", {"outcome": "maybe", "rationale": "r"}),
    Bad("unknown statutory exclusion", "PUT", "/v1/categories/wine", {"name": "Wine", "no_reason_return": True,
                                                                     "statutory_exclusion": "alcohol"}),
    Bad("unknown return shipping payer", "POST", "/v1/cases/{case}/approve", {"return_shipping_payer": "nobody"},
        who="merchant_a"),
    Bad("string no_reason_return", "PUT", "/v1/categories/wine", {"name": "Wine", "no_reason_return": "yes"}),
    Bad("negative after-sales days", "PUT", "/v1/categories/wine", {"name": "Wine", "no_reason_return": True,
                                                                   "after_sales_days": -1}),
    # --- instants (T0) ---------------------------------------------------------------------------------------
    Bad("naive paid_at", "POST", "/v1/orders", order(paid_at="2026-03-01T01:00:00")),
    Bad("garbage paid_at", "POST", "/v1/orders", order(paid_at="yesterday at noon")),
    Bad("date-only paid_at", "POST", "/v1/orders", order(paid_at="2026-03-01")),
    Bad("epoch-number paid_at", "POST", "/v1/orders", order(paid_at=1772326800)),
    Bad("epoch-string paid_at", "POST", "/v1/orders", order(paid_at="1772326800")),
    Bad("impossible date", "POST", "/v1/orders", order(paid_at="2026-02-30T01:00:00+00:00")),
    Bad("paid_at in the future", "POST", "/v1/orders", order(paid_at="2030-01-01T00:00:00+00:00"), rule="T0"),
    Bad("naive delivery instant", "POST", "/v1/orders/ordFree/deliver", {"at": "2026-03-01T01:00:00"}),
    Bad("naive due_before", "GET", "/v1/cases", params={"due_before": "2026-03-01T00:00:00"}),
    Bad("garbage due_before", "GET", "/v1/cases", params={"due_before": "soon"}),
    # --- bodies that are not JSON, not UTF-8, or too large ----------------------------------------------------
    Bad("not JSON", "POST", "/v1/orders", content=b"id=ordNew&merchant_id=mA", headers=JSON_CT),
    Bad("truncated JSON", "POST", "/v1/orders", content=json.dumps(order()).encode()[:-5], headers=JSON_CT),
    # invalid UTF-8 cannot even be parsed: 400 (documented in the routes' ERRORS), not a validation error.
    Bad("invalid UTF-8", "POST", "/v1/orders", content=b'{"id": "ord\xff\xfe", "merchant_id": "mA"}', headers=JSON_CT,
        status=400),
    Bad("empty body", "POST", "/v1/orders", content=b"", headers=JSON_CT),
    Bad("oversized body with Content-Length", "POST", "/v1/orders", content=BIG, headers=JSON_CT, status=413),
    Bad("oversized body streamed without Content-Length", "POST", "/v1/orders", content=_chunks(BIG), headers=JSON_CT,
        status=413),
    Bad("oversized body with Idempotency-Key", "POST", "/v1/orders", content=_chunks(BIG),
        headers={**JSON_CT, "Idempotency-Key": "big-1"}, status=413),
    Bad("lying Content-Length", "POST", "/v1/orders", content=b"{}", headers={**JSON_CT, "content-length": "x"}, status=413),
    # --- ids: the pattern refuses markup and SQL; unknown and foreign ids are 404 ----------------------------
    Bad("HTML in an order id", "POST", "/v1/orders", order("<script>alert(1)</script>")),
    Bad("SQL in an order id", "POST", "/v1/orders", order("o1'; DROP TABLE orders; --")),
    Bad("SQL in a merchant id", "POST", "/v1/merchants", {"id": "m' OR '1'='1", "name": "Evil"}),
    Bad("HTML in a sku", "POST", "/v1/orders", order(items=[item(sku="<b>s1</b>")])),
    Bad("HTML in an order id in the path", "GET", "/v1/orders/%3Cscript%3Ealert(1)%3C%5Cscript%3E"),
    Bad("SQL in a case id in the path", "POST", "/v1/cases/x'%20OR%20'1'='1/approve", {}, who="merchant_a"),
    Bad("HTML in a category code", "PUT", "/v1/categories/%3Cb%3Ewine", {"name": "Wine", "no_reason_return": True}),
    Bad("NUL in a path id", "GET", "/v1/orders/ord%00Free"),
    Bad("NUL in a webhook id", "GET", "/v1/webhooks/wh%00x/deliveries"),
    Bad("NUL in a webhook URL", "POST", "/v1/webhooks", {"url": "https://hooks.example.com/\x00", "merchant_id": "mA"}),
    Bad("HTML in a webhook id", "GET", "/v1/webhooks/%3Cb%3Ewh/deliveries"),
    Bad("SQL in a query filter", "GET", "/v1/cases", params={"order_id": "x' OR '1'='1"}),
    Bad("NUL in a status filter", "GET", "/v1/cases", params={"status": "closed\x00"}),
    Bad("HTML in a case order id", "POST", "/v1/cases", case(order_id="<img src=x onerror=alert(1)>"), who="buyer_x"),
    Bad("unknown merchant", "POST", "/v1/orders", order(merchant_id="mZ"), status=404),
    Bad("unknown order for a case", "POST", "/v1/cases", case(order_id="ordNowhere"), who="buyer_x", status=404),
    Bad("unknown case", "POST", "/v1/cases/cs_nowhere/approve", {}, who="merchant_a", status=404),
    Bad("unknown case action", "POST", "/v1/cases/{case}/explode", {}, who="merchant_a", status=404),
    Bad("unknown order", "POST", "/v1/orders/ordNowhere/ship", {"carrier": "SF", "tracking_no": "T"}, status=404),
    Bad("unknown merchant for a key", "POST", "/v1/api-keys", {"role": "merchant", "subject_id": "mZ"}, status=404),
    Bad("another merchant's order id", "POST", "/v1/orders", order(merchant_id="mA"), who="merchant_b", status=404),
    Bad("another buyer's order", "POST", "/v1/cases", case(order_id="ordOther"), who="buyer_x", status=404),
    Bad("another merchant's case", "POST", "/v1/cases/{ycase}/approve", {}, who="merchant_a", status=404),
    Bad("another merchant's order to ship", "POST", "/v1/orders/ordOther/ship", {"carrier": "SF", "tracking_no": "T"},
        who="merchant_a", status=404),
    Bad("existing order id", "POST", "/v1/orders", order("ordFree"), status=409),
    # --- unknown fields, items ------------------------------------------------------------------------------
    Bad("unknown field in an order", "POST", "/v1/orders", order(discount_fen=500)),
    Bad("unknown field in an item", "POST", "/v1/orders", order(items=[item(colour="red")])),
    Bad("unknown field in an action", "POST", "/v1/cases/{case}/reject", {"reason": "no", "refund_fen": 1}, who="merchant_a"),
    Bad("unknown field in a case", "POST", "/v1/cases", case(priority="high"), who="buyer_x"),
    Bad("empty items in an order", "POST", "/v1/orders", order(items=[])),
    Bad("no items in an order", "POST", "/v1/orders", {k: v for k, v in order().items() if k != "items"}),
    Bad("duplicate skus in an order", "POST", "/v1/orders", order(items=[item(), item(title="Again")]), rule="E10"),
    Bad("quantity 0 in an order", "POST", "/v1/orders", order(items=[item(quantity=0)])),
    Bad("quantity above 100000", "POST", "/v1/orders", order(items=[item(quantity=100001)])),
    Bad("empty items in a case", "POST", "/v1/cases", case(items=[]), who="buyer_x"),
    Bad("duplicate skus in a case", "POST", "/v1/cases", case(items=[{"sku": "s1", "quantity": 1}] * 2), who="buyer_x"),
    Bad("quantity 0 in a case", "POST", "/v1/cases", case(items=[{"sku": "s1", "quantity": 0}]), who="buyer_x"),
    Bad("unknown sku in a case", "POST", "/v1/cases", case(items=[{"sku": "s9", "quantity": 1}]), who="buyer_x"),
    # --- headers and lists ----------------------------------------------------------------------------------
    Bad("If-Match garbage", "POST", "/v1/cases/{case}/approve", {}, who="merchant_a", headers={"If-Match": "garbage"}),
    Bad("If-Match negative", "POST", "/v1/cases/{case}/approve", {}, who="merchant_a", headers={"If-Match": "-1"}),
    Bad("If-Match huge", "POST", "/v1/cases/{case}/approve", {}, who="merchant_a", headers={"If-Match": "9" * 40}),
    Bad("If-Match stale", "POST", "/v1/cases/{case}/approve", {}, who="merchant_a", headers={"If-Match": "999"}, status=409),
    Bad("Idempotency-Key too long", "POST", "/v1/orders", order(), headers={"Idempotency-Key": "k" * 201}),
    Bad("Idempotency-Key blank", "POST", "/v1/orders", order(), headers={"Idempotency-Key": "   "}),
    Bad("limit above 200", "GET", "/v1/cases", params={"limit": "201"}),
    Bad("limit 0", "GET", "/v1/cases", params={"limit": "0"}),
    Bad("limit not a number", "GET", "/v1/cases", params={"limit": "ten"}),
    Bad("events limit above 200", "GET", "/v1/cases/{case}/events", params={"limit": "1000"}),
    Bad("cursor of garbage", "GET", "/v1/cases", params={"cursor": "!!not-a-cursor!!"}),
    Bad("cursor decoding to NUL", "GET", "/v1/cases", params={"cursor": "AA"}),
    Bad("cursor of the wrong kind", "GET", "/v1/cases/{case}/events", params={"cursor": "YWJj"}),
    Bad("cursor too long", "GET", "/v1/cases", params={"cursor": "A" * 500}),
    Bad("no key", "POST", "/v1/orders", order(), who="anonymous", status=401),
    Bad("unknown key", "POST", "/v1/orders", order(), who="anonymous", headers={"Authorization": "Bearer as_p_forged"},
        status=401),
    Bad("wrong auth scheme", "GET", "/v1/cases", who="anonymous", headers={"Authorization": "Basic YTpi"}, status=401),
    Bad("wrong role", "POST", "/v1/cases/{case}/approve", {}, who="buyer_x", status=403, rule="T2"),
    # --- D3/K2/S5: evidence, messages, dispute paths, records ----------------------------------------------------
    Bad("evidence that is HTML named .png", "POST", "/v1/cases/{case}/evidence", who="buyer_x", rule="D3",
        files={"file": ("x.png", b"<html><script>alert(1)</script></html>", "image/png")}),
    Bad("empty evidence file", "POST", "/v1/cases/{case}/evidence", who="buyer_x", rule="D3", files={"file": ("x.png", b"", "image/png")}),
    Bad("evidence without a file", "POST", "/v1/cases/{case}/evidence", who="buyer_x", files={"note": (None, "no file")}),
    Bad("NUL in an evidence note", "POST", "/v1/cases/{case}/evidence", who="buyer_x",
        files={"file": ("x.png", b"\x89PNG\r\n\x1a\n", "image/png"), "note": (None, "a\x00b")}),
    Bad("evidence on another buyer's case", "POST", "/v1/cases/{ycase}/evidence", who="buyer_x", status=404,
        files={"file": ("x.png", b"\x89PNG\r\n\x1a\n", "image/png")}),
    Bad("evidence as JSON", "POST", "/v1/cases/{case}/evidence", {"file": "aGVsbG8="}, who="buyer_x"),
    Bad("evidence body over the upload limit", "POST", "/v1/cases/{case}/evidence", who="buyer_x", content=b"x",
        headers={"content-type": "multipart/form-data; boundary=x", "content-length": "99999999"}, status=413),
    Bad("executable as complaint evidence", "POST", "/v1/complaints/{acomplaint}/evidence", who="buyer_x", rule="D3",
        files={"file": ("x.pdf", b"MZ\x90\x00", "application/pdf")}),
    Bad("SQL in an evidence id", "GET", "/v1/cases/{case}/evidence/x'%20OR%20'1'='1", who="buyer_x"),
    Bad("unknown evidence id", "GET", "/v1/cases/{case}/evidence/ev_nowhere", who="buyer_x", status=404),
    Bad("empty message", "POST", "/v1/cases/{case}/messages", {"body": ""}, who="buyer_x"),
    Bad("message over 2000 characters", "POST", "/v1/cases/{case}/messages", {"body": "x" * 2001}, who="buyer_x"),
    Bad("NUL in a message", "POST", "/v1/cases/{case}/messages", {"body": "a\x00b"}, who="buyer_x"),
    Bad("string internal flag", "POST", "/v1/cases/{case}/messages", {"body": "hi", "internal": "true"}, who="merchant_a"),
    Bad("unknown field in a message", "POST", "/v1/cases/{case}/messages", {"body": "hi", "urgent": True}, who="buyer_x"),
    Bad("internal note by a buyer", "POST", "/v1/cases/{case}/messages", {"body": "hi", "internal": True}, who="buyer_x"),
    Bad("internal complaint note by a buyer", "POST", "/v1/complaints/{acomplaint}/messages", {"body": "hi", "internal": True},
        who="buyer_x"),
    Bad("message on another merchant's case", "POST", "/v1/cases/{ycase}/messages", {"body": "hi"}, who="merchant_a", status=404),
    Bad("messages cursor of garbage", "GET", "/v1/cases/{case}/messages", who="buyer_x", params={"cursor": "YWJj"}),
    Bad("unknown dispute path", "POST", "/v1/cases/{case}/dispute-paths", {"path": "duel", "started_at": "2026-03-01T01:00:00+00:00"},
        who="buyer_x"),
    Bad("naive dispute start", "POST", "/v1/cases/{case}/dispute-paths", {"path": "mediation", "started_at": "2026-03-01T01:00:00"},
        who="buyer_x"),
    Bad("dispute path starting in the future", "POST", "/v1/cases/{case}/dispute-paths",
        {"path": "mediation", "started_at": "2030-01-01T00:00:00+00:00"}, who="buyer_x", rule="D3"),
    Bad("outcome of an unknown dispute path", "POST", "/v1/cases/{case}/dispute-paths/dp_nowhere/outcome",
        {"ended_at": "2026-03-01T01:00:00+00:00", "outcome": "x"}, who="buyer_x", status=404),
    Bad("empty dispute outcome", "POST", "/v1/cases/{case}/dispute-paths/dp_nowhere/outcome",
        {"ended_at": "2026-03-01T01:00:00+00:00", "outcome": ""}, who="buyer_x"),
    Bad("record of another buyer's case", "GET", "/v1/cases/{ycase}/record", who="buyer_x", status=404),
    Bad("unsupported method", "DELETE", "/v1/orders/ordFree", status=405),
    # --- complaints (K1, K2): {complaint} is bX's, submitted; {acomplaint} bX's, accepted --------------------------
    Bad("complaint about nothing", "POST", "/v1/complaints", complaint(order_id=None), who="buyer_x", rule="K2"),
    Bad("unknown complaint category", "POST", "/v1/complaints", complaint(category="bored"), who="buyer_x"),
    Bad("unknown complaint channel", "POST", "/v1/complaints", complaint(channel="fax"), who="buyer_x"),
    Bad("empty complaint description", "POST", "/v1/complaints", complaint(description=""), who="buyer_x"),
    Bad("complaint description over 2000 characters", "POST", "/v1/complaints", complaint(description="x" * 2001),
        who="buyer_x"),
    Bad("NUL in a complaint description", "POST", "/v1/complaints", complaint(description="a\x00b"), who="buyer_x"),
    Bad("unknown field in a complaint", "POST", "/v1/complaints", complaint(severity="high"), who="buyer_x"),
    Bad("HTML in a complaint order id", "POST", "/v1/complaints", complaint(order_id="<b>o</b>"), who="buyer_x"),
    Bad("complaint about another buyer's order", "POST", "/v1/complaints", complaint(order_id="ordOther"), who="buyer_x",
        status=404),
    Bad("complaint about an unknown shop", "POST", "/v1/complaints", complaint(order_id=None, merchant_id="mZ"),
        who="buyer_x", status=404),
    Bad("phone complaint for another buyer's order", "POST", "/v1/complaints", complaint(channel="phone", buyer_id="bY"),
        rule="K2"),
    Bad("complaint order of another shop", "POST", "/v1/complaints", complaint(merchant_id="mB"), who="buyer_x", rule="K2"),
    Bad("phone complaint by a buyer", "POST", "/v1/complaints", complaint(channel="phone"), who="buyer_x", status=403,
        rule="K1"),
    Bad("phone complaint about a shop without the buyer", "POST", "/v1/complaints",
        complaint(channel="phone", order_id=None, merchant_id="mA")),  # K1: with an order, its buyer is taken
    Bad("phone complaint for another buyer than the order's", "POST", "/v1/complaints",
        complaint(channel="phone", buyer_id="bY"), rule="K2"),
    Bad("complaint by a merchant", "POST", "/v1/complaints", complaint(), who="merchant_a", status=403),
    Bad("accept an unknown complaint", "POST", "/v1/complaints/cp_nowhere/accept", status=404),
    Bad("accept by the merchant", "POST", "/v1/complaints/{complaint}/accept", who="merchant_a", status=403),
    Bad("accept with a stale If-Match", "POST", "/v1/complaints/{complaint}/accept", headers={"If-Match": "99"}, status=409),
    Bad("empty complaint rejection reason", "POST", "/v1/complaints/{complaint}/reject", {"reason": ""}),
    Bad("respond to a complaint not yet accepted", "POST", "/v1/complaints/{complaint}/respond", {"answer": "a"},
        who="merchant_a", status=404),
    Bad("respond to another shop's complaint", "POST", "/v1/complaints/{acomplaint}/respond", {"answer": "a"},
        who="merchant_b", status=404),
    Bad("empty complaint answer", "POST", "/v1/complaints/{acomplaint}/respond", {"answer": ""}, who="merchant_a"),
    Bad("resolve a submitted complaint", "POST", "/v1/complaints/{complaint}/resolve",
        {"outcome": "not_upheld", "rationale": "r"}, status=409, rule="K2"),
    Bad("unknown complaint outcome", "POST", "/v1/complaints/{acomplaint}/resolve", {"outcome": "maybe", "rationale": "r"}),
    Bad("upheld without a remedy", "POST", "/v1/complaints/{acomplaint}/resolve", {"outcome": "upheld", "rationale": "r"},
        rule="K2"),
    Bad("zero remedy", "POST", "/v1/complaints/{acomplaint}/resolve", resolve(amount_fen=0)),
    Bad("float remedy", "POST", "/v1/complaints/{acomplaint}/resolve", resolve(amount_fen=10.5)),
    Bad("remedy above 10**15", "POST", "/v1/complaints/{acomplaint}/resolve", resolve(amount_fen=MAX_FEN + 1)),
    Bad("unknown remedy type", "POST", "/v1/complaints/{acomplaint}/resolve", resolve(type="apology")),
    Bad("four remedies", "POST", "/v1/complaints/{acomplaint}/resolve",
        {"outcome": "upheld", "rationale": "r", "remedies": resolve()["remedies"] * 4}),
    Bad("complaint list limit above 200", "GET", "/v1/complaints", params={"limit": "201"}),
    Bad("complaint list flagged not a boolean", "GET", "/v1/complaints", params={"flagged": "maybe"}),
    Bad("complaint list unknown status", "GET", "/v1/complaints", params={"status": "lost"}),
    Bad("complaint list cursor of garbage", "GET", "/v1/complaints", params={"cursor": "!!x!!"}),
    Bad("complaint events cursor of the wrong kind", "GET", "/v1/complaints/{complaint}/events", params={"cursor": "YWJj"}),
    Bad("NUL in a complaint id", "GET", "/v1/complaints/cp%00x"),
    Bad("paid_at in year 1 east of UTC", "POST", "/v1/orders", order(paid_at="0001-01-01T00:00:00+01:00")),
    Bad("paid_at in year 9999 west of UTC", "POST", "/v1/orders", order(paid_at="9999-12-31T23:00:00-05:00")),
    # --- workbench accounts ---
    Bad("user with a short password", "POST", "/v1/users", {"username": "ann", "password": "short", "role": "platform_agent"}),
    Bad("user with an unknown role", "POST", "/v1/users", {"username": "ann", "password": "a long password", "role": "boss"}),
    Bad("merchant agent without merchant", "POST", "/v1/users", {"username": "ann", "password": "a long password",
                                                                    "role": "merchant_agent"}),
    Bad("merchant agent of an unknown merchant", "POST", "/v1/users", {"username": "ann", "password": "a long password",
                                                                          "role": "merchant_agent", "merchant_id": "mZ"}, status=404),
    Bad("username with spaces", "POST", "/v1/users", {"username": "a b", "password": "a long password", "role": "platform_agent"}),
    Bad("user created by a merchant", "POST", "/v1/users", {"username": "ann", "password": "a long password",
                                                            "role": "merchant_agent", "merchant_id": "mA"}, who="merchant_a", status=403),
    Bad("buyer link without buyer", "POST", "/v1/buyer-links", {}),
    Bad("buyer link by a buyer", "POST", "/v1/buyer-links", {"buyer_id": "bX"}, who="buyer_x", status=403),
    # --- deposits (D1, P2) --------------------------------------------------------------------------------------
    Bad("zero top-up", "POST", "/v1/merchants/mA/deposit/top-ups", {"amount_fen": 0}, who="merchant_a"),
    Bad("negative top-up", "POST", "/v1/merchants/mA/deposit/top-ups", {"amount_fen": -100}, who="merchant_a"),
    Bad("float top-up", "POST", "/v1/merchants/mA/deposit/top-ups", {"amount_fen": 100.5}, who="merchant_a"),
    Bad("string top-up", "POST", "/v1/merchants/mA/deposit/top-ups", {"amount_fen": "100"}, who="merchant_a"),
    Bad("top-up above 10**15", "POST", "/v1/merchants/mA/deposit/top-ups", {"amount_fen": MAX_FEN + 1}, who="merchant_a"),
    Bad("top-up with extra field", "POST", "/v1/merchants/mA/deposit/top-ups", {"amount_fen": 1, "to": "mB"}, who="merchant_a"),
    Bad("top-up of another merchant", "POST", "/v1/merchants/mB/deposit/top-ups", {"amount_fen": 1}, who="merchant_a", status=404),
    Bad("withdrawal while restricted", "POST", "/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 1}, who="merchant_a",
        rule="D1"),
    Bad("withdrawal by a buyer", "POST", "/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 1}, who="buyer_x", status=403),
    Bad("cancel of an unknown withdrawal", "POST", "/v1/merchants/mA/deposit/withdrawals/wdNope/cancel", who="merchant_a",
        status=404),
    Bad("close with an unknown reason", "POST", "/v1/merchants/mA/close", {"reason": "bored"}),
    Bad("close by the merchant", "POST", "/v1/merchants/mA/close", {"reason": "shop_closed"}, who="merchant_a", status=403),
    Bad("advance compensation without a ruling", "POST", "/v1/cases/{case}/advance_compensate",
        {"reason": "merchant_unreachable"}, status=409, rule="M1"),
    Bad("advance compensation with a bad reason", "POST", "/v1/cases/{case}/advance_compensate", {"reason": "x"}),
]


def snapshot(engine: Engine) -> dict[str, Any]:
    """Row counts of every table, and a checksum of the rows of orders, cases, refunds and events."""
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for name in sorted(inspect(conn).get_table_names()):
            if name != "alembic_version":
                out[name] = conn.execute(select(func.count()).select_from(text(f'"{name}"'))).scalar_one()
        for name in CHECKSUMMED:
            rows = conn.execute(select(text("*")).select_from(text(f'"{name}"'))).all()
            out[f"{name}#"] = hashlib.sha256("\n".join(sorted(repr(tuple(r)) for r in rows)).encode()).hexdigest()
    return out


def _setup(api: Any) -> dict[str, str]:
    def ok(r: Any, status: int = 200) -> dict[str, Any]:
        assert r.status_code == status, r.text
        return dict(r.json())

    for oid, merchant, buyer in (("ordFree", "mA", "bX"), ("ordOpen", "mA", "bX"), ("ordOther", "mB", "bY")):
        ok(api.post("/v1/orders", order(oid, merchant_id=merchant, buyer_id=buyer)), 201)
        ok(api.post(f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": "T1"}))
        ok(api.post(f"/v1/orders/{oid}/deliver", {}))
    mine = ok(api.post("/v1/cases", case(order_id="ordOpen"), who="buyer_x"), 201)
    theirs = ok(api.post("/v1/cases", case(order_id="ordOther"), who="buyer_y"), 201)
    submitted = ok(api.post("/v1/complaints", complaint(order_id="ordOpen"), who="buyer_x"), 201)
    accepted = ok(api.post("/v1/complaints", complaint(), who="buyer_x"), 201)
    ok(api.post(f"/v1/complaints/{accepted['id']}/accept"))
    return {"case": mine["id"], "ycase": theirs["id"], "complaint": submitted["id"], "acomplaint": accepted["id"]}


def test_the_table_is_large_enough() -> None:
    assert len(BAD) >= 40
    assert len({b.name for b in BAD}) == len(BAD), "names must be unique"


def test_bad_inputs_are_problems_and_change_nothing(api: Any, ctx: Any) -> None:
    ids = _setup(api)
    failures: list[str] = []
    for bad in BAD:
        path = bad.path.format(**ids)
        headers = {**api.h(bad.who), **bad.headers}
        before = snapshot(ctx.engine)
        if bad.files is not None:
            r = api.client.request(bad.method, path, files=bad.files, headers=headers, params=bad.params)
        elif bad.content is not None:
            content = bad.content if isinstance(bad.content, bytes) else _chunks(BIG)
            r = api.client.request(bad.method, path, content=content, headers=headers, params=bad.params)
        else:
            r = api.client.request(bad.method, path, json=bad.json, headers=headers, params=bad.params)
        where = f"{bad.name} ({bad.method} {path})"
        if r.status_code != bad.status:
            failures.append(f"{where}: {r.status_code}, expected {bad.status}: {r.text[:300]}")
        elif not r.headers.get("content-type", "").startswith(PROBLEM):
            failures.append(f"{where}: content-type {r.headers.get('content-type')}")
        else:
            body = r.json()
            if body.get("status") != bad.status or not all(isinstance(body.get(k), str) and body[k] for k in ("type", "title", "detail")):
                failures.append(f"{where}: incomplete problem {body}")
            elif bad.rule is not None and body.get("rule") != bad.rule:
                failures.append(f"{where}: rule {body.get('rule')}, expected {bad.rule}")
        after = snapshot(ctx.engine)
        if after != before:
            changed = sorted(k for k in before if before[k] != after.get(k))
            failures.append(f"{where}: the database changed ({changed})")
    assert not failures, f"{len(failures)} of {len(BAD)} bad inputs mishandled:\n" + "\n".join(failures)


MARKUP = ("<script>alert('x')</script><img src=x onerror=alert(1)> '; DROP TABLE cases; -- \" OR 1=1 "
          "%00 \\u0000 {{7*7}} ${jndi:ldap://x} \u202e\u0645\u0631\u062d\u0628\u0627 \U0001d518\u00e9\u4e2d\u6587\n\ttab")


def test_markup_and_sql_in_free_text_are_stored_verbatim(api: Any, ctx: Any) -> None:
    """Descriptions are inert text: accepted (201) and returned exactly as sent, whatever they look like."""
    _setup(api)
    r = api.post("/v1/cases", case(description=MARKUP), who="buyer_x")
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["description"] == MARKUP
    for who in ("buyer_x", "merchant_a", "platform"):
        got = api.get(f"/v1/cases/{created['id']}", who=who)
        assert got.status_code == 200 and got.json()["description"] == MARKUP, got.text
    listed = api.get("/v1/cases", who="merchant_a", params={"order_id": "ordFree"}).json()["items"]
    assert [c["description"] for c in listed] == [MARKUP]
    # The tables are all still there (nothing was executed), and the text is in the stored state unchanged.
    with ctx.engine.connect() as conn:
        state = conn.execute(text("SELECT state FROM cases WHERE id = :id"), {"id": created["id"]}).scalar_one()
    state = json.loads(state) if isinstance(state, str) else state
    assert state["description"] == MARKUP
    r = api.post(f"/v1/cases/{created['id']}/reject", {"reason": MARKUP}, who="merchant_a")
    assert r.status_code == 200 and r.json()["rejection_reason"] == MARKUP, r.text
