"""The authorisation matrix (API.md "Auth", RULEBOOK T2): every operation of the API × every principal.

Principals: the platform, merchant A (``mA``), merchant B (``mB``), buyer X (``bX``), buyer Y (``bY``) and a caller
without a key. The order under test belongs to mA/bX, so mB and bY are the *outsiders*.

Operations are enumerated from ``app.routes``: a route added without an entry in ``MATRIX`` fails
``test_every_route_has_a_matrix_entry`` (and the matrix test itself).

Expected answers, as the code does them consistently:

* no key → 401 on every operation except the public ones (``/healthz``, ``/openapi.json``, the docs pages);
* another tenant's order, case or group → 404, never another tenant's data (the 404 is the one an unknown id
  gets, and no response to an outsider carries the id, the buyer or any data of the order or case);
* a key of the wrong *role* for an operation → 403 (``Principal.require`` runs before any lookup, so the 403 says
  nothing about whether the target exists: bY gets the same 403 for bX's order as for an unknown one);
* a principal of the right tenant but the wrong side of a case action (the merchant confirming the buyer's
  receipt, the platform approving, …) → 403 ``not-permitted`` (T2);
* two deliberate exceptions to "wrong role → 403", both answered 404 because the resource does not exist for that
  role: the manual clock (``/v1/clock*``) answers 404 to every key but the platform's (as it does with the real
  clock), and merchants and groups are invisible to buyers (``GET /v1/merchants/{id}``, ``GET /v1/groups/{id}``).

Every cell whose operation changes state gets its own fresh order/case/group; read-only operations share one
order of mA/bX with an open case. A refused request must leave the whole database unchanged.
"""

from __future__ import annotations

import hashlib
import itertools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, insert, inspect, select, text

from aftersales.store import tables as t

PRINCIPALS = ("platform", "merchant_a", "merchant_b", "buyer_x", "buyer_y", "anonymous")
INSIDERS = ("platform", "merchant_a", "buyer_x")
OUTSIDERS = ("merchant_b", "buyer_y")
PROBLEM = "application/problem+json"
TITLE_MARK = "SecretTitleOfX"
DESC_MARK = "SecretDescriptionOfX"


# --- the routes of the application --------------------------------------------------------------------------
def operations(app: Any) -> set[tuple[str, str]]:
    """Every (method, path) the application answers, HEAD aside, through included routers and mounts."""
    out: set[tuple[str, str]] = set()

    def walk(routes: Any, prefix: str) -> None:
        for route in routes:
            sub = getattr(route, "original_router", None)  # FastAPI's included router
            if sub is not None:
                walk(sub.routes, prefix + getattr(getattr(route, "include_context", None), "prefix", ""))
            elif getattr(route, "methods", None):
                out.update((m, prefix + route.path) for m in route.methods if m != "HEAD")
            elif hasattr(route, "routes"):  # a mount or a plain router
                walk(route.routes, prefix + getattr(route, "path", ""))

    walk(app.routes, "")
    # The workbench's pages (/app) are not API operations: tests/web checks their sessions, CSRF and tenants.
    return {(m, p) for m, p in out if not p.startswith("/app")}


# --- fresh state ------------------------------------------------------------------------------------------
@dataclass
class World:
    """Builds orders and cases of mA/bX through the API, each with new ids."""

    api: Any
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def uid(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter):05d}"

    def ok(self, r: Any, status: int = 200) -> dict[str, Any]:
        assert r.status_code == status, f"set-up step failed: {r.status_code} {r.text}"
        return dict(r.json())

    def category(self) -> str:
        code = self.uid("cat")
        self.ok(self.api.put(f"/v1/categories/{code}", {"name": "Cat", "no_reason_return": True}), 201)
        return code

    def order(self, *, state: str = "delivered", group: str | None = None) -> str:
        oid = self.uid("ordA")
        body: dict[str, Any] = {
            "id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00+00:00",
            "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": TITLE_MARK, "category": "apparel", "quantity": 1, "unit_price_fen": 1999}],
        }
        if group is not None:
            body["group"] = {"id": group, "size": 2, "auto_complete": True}
        self.ok(self.api.post("/v1/orders", body), 201)
        if state in ("shipped", "delivered"):
            self.ok(self.api.post(f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": "T1"}))
        if state == "delivered":
            self.ok(self.api.post(f"/v1/orders/{oid}/deliver", {}))
        return oid

    def act(self, case_id: str, action: str, body: Any = None, who: str = "merchant_a") -> dict[str, Any]:
        return self.ok(self.api.post(f"/v1/cases/{case_id}/{action}", body, who=who))

    def case(self, status: str) -> tuple[str, str]:
        """A case of a delivered order of mA/bX in ``status`` (or a named intermediate situation)."""
        case_type = {"awaiting_return_shipment": "return_refund", "return_in_transit": "return_refund",
                     "awaiting_replacement_shipment": "exchange", "replacement_in_transit": "exchange"}.get(status, "refund_only")
        oid = self.order()
        case = self.ok(self.api.post("/v1/cases", {"order_id": oid, "type": case_type, "reason": "quality_problem",
                                                   "description": DESC_MARK}, who="buyer_x"), 201)
        cid = case["id"]
        if status == "offer":
            self.act(cid, "offer_partial_refund", {"refund_fen": 500})
        elif status in ("rejected", "platform_review", "ruled_refund"):
            self.act(cid, "reject", {"reason": "no"})
            if status != "rejected":
                self.act(cid, "escalate", {"reason": "unfair"}, who="buyer_x")
            if status == "ruled_refund":
                self.act(cid, "rule", {"outcome": "refund", "refund_fen": 1000, "rationale": "defective"}, who="platform")
        elif status != "awaiting_merchant":
            self.act(cid, "approve", {})
            if status != "awaiting_return_shipment":
                self.act(cid, "ship_return", {"carrier": "SF", "tracking_no": "R1"}, who="buyer_x")
            if status in ("awaiting_replacement_shipment", "replacement_in_transit"):
                self.act(cid, "confirm_return")
            if status == "replacement_in_transit":
                self.act(cid, "ship_replacement", {"carrier": "SF", "tracking_no": "R2"})
        return oid, cid


@dataclass
class Call:
    """One request of a cell, and what must not appear in an outsider's answer."""

    method: str
    path: str
    body: Any = None
    params: dict[str, str] | None = None
    secrets: tuple[str, ...] = ()
    #: Strings an insider's successful answer must contain (the data is really there for them).
    shows: tuple[str, ...] = ()
    #: A multipart/form-data upload (``httpx`` ``files=``), instead of a JSON body.
    files: dict[str, Any] | None = None


@dataclass
class Op:
    expect: dict[str, int]
    build: Callable[[World, Shared], Call]
    mutates: bool = False


@dataclass
class Shared:
    """The read-only fixture: an order of mA/bX with an open case, and a pending group of mA."""

    order_id: str
    case_id: str
    group_id: str
    webhook_id: str

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.order_id, self.case_id, self.group_id, "bX", TITLE_MARK, DESC_MARK)


def expect(default: int, anonymous: int = 401, **cells: int) -> dict[str, int]:
    out = {p: default for p in PRINCIPALS}
    out["anonymous"] = anonymous
    out.update(cells)
    return out


PUBLIC = expect(200, anonymous=200)
ANY_KEY = expect(200)
PLATFORM_ONLY = expect(403, platform=201)  # set-up operations (API.md "Set-up resources (platform)")
TENANT_READ = expect(200, merchant_b=404, buyer_y=404)
ORDER_WRITE = expect(403, platform=200, merchant_a=200, merchant_b=404)  # buyers: wrong role (403)
CLOCK = expect(404, platform=200)


def secret_order(world: World, call: Callable[[str], Call], **kw: Any) -> Call:
    oid = world.order(**kw)
    c = call(oid)
    c.secrets += (oid, "bX", TITLE_MARK)
    return c


def _new_webhook_delete(w: World, s: Shared) -> Call:
    hook = w.ok(w.api.post("/v1/webhooks", {"url": "https://hooks.example.com/d", "merchant_id": "mA"}), 201)["id"]
    return Call("DELETE", f"/v1/webhooks/{hook}", secrets=(hook,))


def _new_group(w: World, s: Shared) -> Call:
    gid = w.uid("grpA")
    w.order(state="paid", group=gid)
    return Call("POST", f"/v1/groups/{gid}/complete", secrets=(gid,))


def _new_order_call(w: World, s: Shared) -> Call:
    oid = w.uid("ordA")
    body = {"id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00+00:00",
            "shipping_fee_fen": 0,
            "items": [{"sku": "s1", "title": TITLE_MARK, "category": "apparel", "quantity": 1, "unit_price_fen": 100}]}
    return Call("POST", "/v1/orders", body, secrets=(oid,))


def _open_case_call(w: World, s: Shared) -> Call:
    oid = w.order()
    return Call("POST", "/v1/cases", {"order_id": oid, "type": "refund_only", "reason": "quality_problem",
                                      "description": DESC_MARK, "buyer_consent": True}, secrets=(oid, "bX", TITLE_MARK))


PLATFORM_ONLY_200 = expect(403, platform=200)


def _case_call(w: World, path: Callable[[str], str], body: Any, *, bulk: bool = False) -> Call:
    """A call on a fresh case of mA/bX awaiting the merchant (``bulk``: approve it through the bulk action)."""
    oid, cid = w.case("awaiting_merchant")
    if bulk:
        body = {"action": "approve", "case_ids": [cid]}
    return Call("POST", path(cid), body, secrets=(oid, cid, "bX", TITLE_MARK, DESC_MARK))


def _pending_withdrawal(w: World) -> Call:
    """A pending withdrawal of mA, written directly: the shared open case forbids requesting one through the API."""
    wid = w.uid("wd")
    now = datetime.now(UTC)
    with w.api.client.app.state.ctx.engine.begin() as conn:
        conn.execute(insert(t.withdrawals).values(id=wid, merchant_id="mA", amount_fen=1, status="pending",
                                                  requested_by="merchant:mA", requested_at=now, due_at=now, version=1))
    return Call("POST", f"/v1/merchants/mA/deposit/withdrawals/{wid}/cancel", secrets=(wid,))


def _address_call(w: World, suffix: str, method: str = "POST", body: Any = None) -> Call:
    """M5: a call on a fresh, non-default return address of mA, written directly."""
    aid = w.uid("ra")
    now = datetime.now(UTC)
    with w.api.client.app.state.ctx.engine.begin() as conn:
        conn.execute(insert(t.return_addresses).values(
            id=aid, merchant_id="mA", label="Dock", contact_name="", phone="", address=f"Dock {aid}", is_default=False,
            version=1, created_at=now, updated_at=now, archived_at=None))
    return Call(method, f"/v1/merchants/mA/return-addresses/{aid}{suffix}", body, secrets=(aid,))


def _parked_timer(w: World) -> Call:
    """F2: an automatic action parked after its last try (of a withdrawal that does not exist: stale once retried)."""
    now = datetime.now(UTC)
    with w.api.client.app.state.ctx.engine.begin() as conn:
        tid = conn.execute(insert(t.timers).values(
            subject="withdrawal", subject_id=w.uid("wd"), order_id=None, action="pay_withdrawal", stage=1, rule="D1",
            due_at=now, attempts=5, last_error="D1: test", stuck_at=now).returning(t.timers.c.id)).scalar_one()
    return Call("POST", f"/v1/automatic-actions/{tid}/retry")


def _new_merchant_close(w: World) -> Call:
    mid = w.uid("mShut")
    w.ok(w.api.post("/v1/merchants", {"id": mid, "name": "Shut"}), 201)
    return Call("POST", f"/v1/merchants/{mid}/close", {"reason": "merchant_unreachable"}, secrets=(mid,))


def _new_key_of_a(w: World) -> str:
    return str(w.ok(w.api.post("/v1/api-keys", {"role": "merchant", "subject_id": "mA"}), 201)["id"])


def _new_staff_session(w: World) -> str:
    from aftersales.service import users

    name = w.uid("agent")
    w.ok(w.api.post("/v1/users", {"username": name, "password": "a long password 1", "role": "platform_agent"}), 201)
    token = users.login(w.api.client.app.state.ctx, name, "a long password 1")
    return hashlib.sha256(token.encode()).hexdigest()


def _new_user_of_a(w: World) -> tuple[str, str]:
    """A fresh merchant agent of mA: (id, username)."""
    name = w.uid("agentA")
    made = w.ok(w.api.post("/v1/users", {"username": name, "password": "a long password 1", "role": "merchant_agent",
                                         "merchant_id": "mA"}), 201)
    return str(made["id"]), name


def _policy_draft_body(w: World) -> dict[str, Any]:
    """Issue 15: a draft of the policy in force itself, effective years ahead (scheduling it changes no answer)."""
    current = w.ok(w.api.get("/v1/policy"))
    body = {k: v for k, v in current.items() if k not in ("version", "effective_at", "draft_id")}
    return {**body, "reason": "matrix", "effective_at": "2036-01-01T00:00:00+00:00"}


def _policy_draft(w: World) -> str:
    return str(w.ok(w.api.put("/v1/policy", _policy_draft_body(w)), 201)["id"])


def _replay(w: World) -> str:
    """Issue 15: a queued what-if replay of a fresh draft."""
    return str(w.ok(w.api.post(f"/v1/policy/drafts/{_policy_draft(w)}/replays",
                               {"from": "2026-01-01", "to": "2026-02-01"}), 202)["id"])


MATRIX: dict[tuple[str, str], Op] = {
    # public
    ("GET", "/healthz"): Op(PUBLIC, lambda w, s: Call("GET", "/healthz")),
    # The root leads to the workbench (an API key is no session: the redirect ends on the sign-in page).
    ("GET", "/"): Op(PUBLIC, lambda w, s: Call("GET", "/")),
    ("GET", "/openapi.json"): Op(PUBLIC, lambda w, s: Call("GET", "/openapi.json")),
    ("GET", "/docs"): Op(PUBLIC, lambda w, s: Call("GET", "/docs")),
    ("GET", "/redoc"): Op(PUBLIC, lambda w, s: Call("GET", "/redoc")),
    # set-up (platform)
    ("POST", "/v1/merchants"): Op(PLATFORM_ONLY, lambda w, s: Call("POST", "/v1/merchants", {"id": w.uid("mNew"), "name": "New"}), True),
    ("GET", "/v1/merchants/{merchant_id}"): Op(expect(404, platform=200, merchant_a=200),
                                                lambda w, s: Call("GET", "/v1/merchants/mA", shows=("mA",))),
    ("POST", "/v1/api-keys"): Op(PLATFORM_ONLY, lambda w, s: Call("POST", "/v1/api-keys", {"role": "buyer", "subject_id": w.uid("bNew")}), True),
    ("PUT", "/v1/categories/{code}"): Op(PLATFORM_ONLY, lambda w, s: Call("PUT", f"/v1/categories/{w.uid('cat')}",
                                                                          {"name": "Cat", "no_reason_return": True}), True),
    ("GET", "/v1/categories"): Op(ANY_KEY, lambda w, s: Call("GET", "/v1/categories")),
    ("GET", "/v1/categories/{code}/versions"): Op(ANY_KEY, lambda w, s: Call("GET", f"/v1/categories/{w.category()}/versions")),
    ("GET", "/v1/policy"): Op(ANY_KEY, lambda w, s: Call("GET", "/v1/policy")),
    ("PUT", "/v1/policy"): Op(PLATFORM_ONLY, lambda w, s: Call("PUT", "/v1/policy", _policy_draft_body(w)), True),
    ("GET", "/v1/policy/drafts"): Op(PLATFORM_ONLY_200, lambda w, s: (lambda d: Call("GET", "/v1/policy/drafts"))(_policy_draft(w))),
    ("GET", "/v1/policy/drafts/{draft_id}"): Op(PLATFORM_ONLY_200, lambda w, s: Call("GET", f"/v1/policy/drafts/{_policy_draft(w)}")),
    ("POST", "/v1/policy/drafts/{draft_id}/schedule"): Op(PLATFORM_ONLY_200, lambda w, s: Call(
        "POST", f"/v1/policy/drafts/{_policy_draft(w)}/schedule"), True),
    ("POST", "/v1/policy/drafts/{draft_id}/withdraw"): Op(PLATFORM_ONLY_200, lambda w, s: Call(
        "POST", f"/v1/policy/drafts/{_policy_draft(w)}/withdraw"), True),
    ("POST", "/v1/policy/drafts/{draft_id}/replays"): Op(expect(403, platform=202), lambda w, s: Call(
        "POST", f"/v1/policy/drafts/{_policy_draft(w)}/replays", {"from": "2026-01-01", "to": "2026-02-01"}), True),
    ("GET", "/v1/policy/replays/{replay_id}"): Op(PLATFORM_ONLY_200, lambda w, s: Call(
        "GET", f"/v1/policy/replays/{_replay(w)}")),
    ("GET", "/v1/policy/replays/{replay_id}/report.csv"): Op(PLATFORM_ONLY_200, lambda w, s: Call(
        "GET", f"/v1/policy/replays/{_replay(w)}/report.csv")),
    ("GET", "/v1/policy/record"): Op(PLATFORM_ONLY_200, lambda w, s: Call("GET", "/v1/policy/record")),
    # orders and groups
    ("POST", "/v1/orders"): Op(expect(403, platform=201, merchant_a=201, merchant_b=404), _new_order_call, True),
    # T2: a filter naming another tenant is an empty page for outsiders, never their data nor a 403/404.
    ("GET", "/v1/orders"): Op(ANY_KEY, lambda w, s: Call("GET", "/v1/orders", params={
        "merchant_id": "mA", "buyer_id": "bX", "limit": "200"}, shows=(s.order_id, TITLE_MARK))),
    ("GET", "/v1/orders/{order_id}"): Op(TENANT_READ, lambda w, s: Call("GET", f"/v1/orders/{s.order_id}", shows=(s.order_id, TITLE_MARK))),
    ("POST", "/v1/orders/{order_id}/ship"): Op(ORDER_WRITE, lambda w, s: secret_order(
        w, lambda oid: Call("POST", f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": "T9"}), state="paid"), True),
    ("POST", "/v1/orders/{order_id}/deliver"): Op(ORDER_WRITE, lambda w, s: secret_order(
        w, lambda oid: Call("POST", f"/v1/orders/{oid}/deliver", {}), state="shipped"), True),
    ("GET", "/v1/orders/{order_id}/after-sales-options"): Op(TENANT_READ, lambda w, s: Call(
        "GET", f"/v1/orders/{s.order_id}/after-sales-options")),
    ("POST", "/v1/groups/{group_id}/complete"): Op(ORDER_WRITE, _new_group, True),
    ("GET", "/v1/groups/{group_id}"): Op(expect(404, platform=200, merchant_a=200),
                                         lambda w, s: Call("GET", f"/v1/groups/{s.group_id}", shows=(s.group_id,))),
    # cases
    ("POST", "/v1/cases"): Op(expect(404, platform=403, merchant_a=201, buyer_x=201), _open_case_call, True),
    ("GET", "/v1/cases"): Op(ANY_KEY, lambda w, s: Call("GET", "/v1/cases", params={"order_id": s.order_id})),
    ("GET", "/v1/cases/{case_id}"): Op(TENANT_READ, lambda w, s: Call("GET", f"/v1/cases/{s.case_id}", shows=(s.case_id, DESC_MARK))),
    ("GET", "/v1/cases/{case_id}/events"): Op(TENANT_READ, lambda w, s: Call("GET", f"/v1/cases/{s.case_id}/events", shows=(s.case_id,))),
    # S1, the queue at work: the merchant's own staff handle and bulk-approve its own cases; others: wrong role (403)
    ("POST", "/v1/cases/{case_id}/assignee"): Op(expect(403, merchant_a=200, merchant_b=404), lambda w, s: _case_call(
        w, lambda cid: f"/v1/cases/{cid}/assignee", {"assignee": None, "unassigned_only": True}), True),
    ("POST", "/v1/cases/bulk-actions"): Op(expect(403, merchant_a=200, merchant_b=404), lambda w, s: _case_call(
        w, lambda cid: "/v1/cases/bulk-actions", None, bulk=True), True),
    # webhooks: a merchant subscribes to its own events; the platform to anyone's; buyers have none
    ("POST", "/v1/webhooks"): Op(expect(403, platform=201, merchant_a=201, merchant_b=404), lambda w, s: Call(
        "POST", "/v1/webhooks", {"url": "https://hooks.example.com/a", "event_types": ["case.*"], "merchant_id": "mA"}), True),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): Op(expect(404, platform=200, merchant_a=200), lambda w, s: Call(
        "GET", f"/v1/webhooks/{s.webhook_id}/deliveries", secrets=(s.webhook_id,))),
    # SEC2: each merchant lists its own subscriptions (another's never appear), reads, deletes and re-enables them
    ("GET", "/v1/webhooks"): Op(expect(403, platform=200, merchant_a=200, merchant_b=200), lambda w, s: Call(
        "GET", "/v1/webhooks", secrets=(s.webhook_id,), shows=(s.webhook_id,))),
    ("GET", "/v1/webhooks/event-types"): Op(ANY_KEY, lambda w, s: Call("GET", "/v1/webhooks/event-types", shows=("case.opened",))),
    ("GET", "/v1/webhooks/{webhook_id}"): Op(expect(404, platform=200, merchant_a=200), lambda w, s: Call(
        "GET", f"/v1/webhooks/{s.webhook_id}", secrets=(s.webhook_id,), shows=(s.webhook_id,))),
    ("DELETE", "/v1/webhooks/{webhook_id}"): Op(expect(404, platform=204, merchant_a=204), _new_webhook_delete, True),
    # An active subscription: the insiders pass authorisation and get the 409 of "active already".
    ("POST", "/v1/webhooks/{webhook_id}/enable"): Op(expect(404, platform=409, merchant_a=409), lambda w, s: Call(
        "POST", f"/v1/webhooks/{s.webhook_id}/enable", secrets=(s.webhook_id,))),
    # ledger (D2): a merchant reads its own accounts only; another's account is 404
    ("GET", "/v1/ledger/transactions"): Op(expect(404, platform=200, merchant_a=200), lambda w, s: Call(
        "GET", "/v1/ledger/transactions", params={"account": "merchant:mA:sales"})),
    # deposits (D1): the platform and the merchant itself; buyers and other merchants do not see a merchant (404)
    ("GET", "/v1/merchants/{merchant_id}/deposit"): Op(expect(404, platform=200, merchant_a=200), lambda w, s: Call(
        "GET", "/v1/merchants/mA/deposit")),
    ("POST", "/v1/merchants/{merchant_id}/deposit/top-ups"): Op(expect(403, platform=201, merchant_a=201, merchant_b=404),
                                                               lambda w, s: Call("POST", "/v1/merchants/mA/deposit/top-ups",
                                                                                 {"amount_fen": 100}), True),
    # The shared order's open case forbids a withdrawal (D1): the insiders pass authorisation and get the rule's 422.
    ("POST", "/v1/merchants/{merchant_id}/deposit/withdrawals"): Op(
        expect(403, platform=422, merchant_a=422, merchant_b=404),
        lambda w, s: Call("POST", "/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 100}), True),
    ("GET", "/v1/merchants/{merchant_id}/deposit/withdrawals"): Op(expect(404, platform=200, merchant_a=200), lambda w, s: Call(
        "GET", "/v1/merchants/mA/deposit/withdrawals")),
    ("POST", "/v1/merchants/{merchant_id}/deposit/withdrawals/{withdrawal_id}/cancel"): Op(
        expect(403, platform=200, merchant_a=200, merchant_b=404), lambda w, s: _pending_withdrawal(w), True),
    # return addresses (M1, M5): the platform and the shop itself; another shop is told the shop does not exist (404)
    ("GET", "/v1/merchants/{merchant_id}/return-addresses"): Op(
        expect(403, platform=200, merchant_a=200, merchant_b=404),
        lambda w, s: Call("GET", "/v1/merchants/mA/return-addresses")),
    ("POST", "/v1/merchants/{merchant_id}/return-addresses"): Op(
        expect(403, platform=201, merchant_a=201, merchant_b=404),
        lambda w, s: Call("POST", "/v1/merchants/mA/return-addresses", {"address": "2 Dock Rd"}), True),
    ("GET", "/v1/merchants/{merchant_id}/return-addresses/{address_id}"): Op(
        expect(403, platform=200, merchant_a=200, merchant_b=404), lambda w, s: _address_call(w, "", "GET")),
    ("PATCH", "/v1/merchants/{merchant_id}/return-addresses/{address_id}"): Op(
        expect(403, platform=200, merchant_a=200, merchant_b=404),
        lambda w, s: _address_call(w, "", "PATCH", {"label": "Moved"}), True),
    ("POST", "/v1/merchants/{merchant_id}/return-addresses/{address_id}/default"): Op(
        expect(403, platform=200, merchant_a=200, merchant_b=404), lambda w, s: _address_call(w, "/default"), True),
    ("POST", "/v1/merchants/{merchant_id}/return-addresses/{address_id}/archive"): Op(
        expect(403, platform=200, merchant_a=200, merchant_b=404), lambda w, s: _address_call(w, "/archive"), True),
    ("POST", "/v1/merchants/{merchant_id}/close"): Op(PLATFORM_ONLY_200, lambda w, s: _new_merchant_close(w), True),
    # workbench accounts: created by the platform only
    ("POST", "/v1/users"): Op(PLATFORM_ONLY, lambda w, s: Call("POST", "/v1/users", {
        "username": w.uid("agent"), "password": "a long password 1", "role": "merchant_agent", "merchant_id": "mA"}), True),
    # listed by the platform (everyone) and by a merchant (its own shop's: B sees none of A's staff); disabled and
    # enabled by the platform only
    ("GET", "/v1/users"): Op(expect(403, platform=200, merchant_a=200, merchant_b=200), lambda w, s: (
        lambda u: Call("GET", "/v1/users", params={"limit": "200"}, secrets=u, shows=(u[1],)))(_new_user_of_a(w))),
    ("POST", "/v1/users/{user_id}/disable"): Op(expect(403, platform=200), lambda w, s: (
        lambda u: Call("POST", f"/v1/users/{u[0]}/disable", secrets=u))(_new_user_of_a(w)), True),
    ("POST", "/v1/users/{user_id}/enable"): Op(expect(403, platform=200), lambda w, s: (
        lambda u: Call("POST", f"/v1/users/{u[0]}/enable", secrets=u))(_new_user_of_a(w)), True),
    # a merchant resets its own shop's staff; another shop's user does not exist for it (404)
    ("POST", "/v1/users/{user_id}/reset-password"): Op(expect(403, platform=200, merchant_a=200, merchant_b=404), lambda w, s: (
        lambda u: Call("POST", f"/v1/users/{u[0]}/reset-password", secrets=u))(_new_user_of_a(w)), True),
    # no key needed: the current password is the credential (any caller who knows it may change it)
    ("POST", "/v1/password-changes"): Op(PUBLIC, lambda w, s: Call("POST", "/v1/password-changes", {
        "username": _new_user_of_a(w)[1], "current_password": "a long password 1",
        "new_password": "another long password"}), True),
    ("POST", "/v1/buyer-links"): Op(PLATFORM_ONLY, lambda w, s: Call("POST", "/v1/buyer-links", {"buyer_id": "bX"})),
    # F2: parked automatic actions, platform only
    ("GET", "/v1/automatic-actions/stuck"): Op(PLATFORM_ONLY_200, lambda w, s: Call("GET", "/v1/automatic-actions/stuck")),
    ("POST", "/v1/automatic-actions/{timer_id}/retry"): Op(PLATFORM_ONLY_200, lambda w, s: _parked_timer(w), True),
    # credentials: the platform manages every key, a merchant its own (another's is unknown: 404); sessions: platform
    ("GET", "/v1/api-keys"): Op(expect(403, platform=200, merchant_a=200, merchant_b=200), lambda w, s: (
        lambda kid: Call("GET", "/v1/api-keys", params={"limit": "200"}, secrets=(kid,)))(_new_key_of_a(w))),
    ("POST", "/v1/api-keys/{key_id}/revoke"): Op(expect(403, platform=200, merchant_a=200, merchant_b=404), lambda w, s: (
        lambda kid: Call("POST", f"/v1/api-keys/{kid}/revoke", secrets=(kid,)))(_new_key_of_a(w)), True),
    ("POST", "/v1/api-keys/{key_id}/rotate"): Op(expect(403, platform=201, merchant_a=201, merchant_b=404), lambda w, s: (
        lambda kid: Call("POST", f"/v1/api-keys/{kid}/rotate", secrets=(kid,)))(_new_key_of_a(w)), True),
    ("GET", "/v1/sessions"): Op(PLATFORM_ONLY_200, lambda w, s: Call("GET", "/v1/sessions")),
    ("POST", "/v1/sessions/{session_id}/revoke"): Op(expect(403, platform=204), lambda w, s: Call(
        "POST", f"/v1/sessions/{_new_staff_session(w)}/revoke"), True),
    # manual clock: hidden (404) from everyone but the platform
    ("GET", "/v1/clock"): Op(CLOCK, lambda w, s: Call("GET", "/v1/clock")),
    ("POST", "/v1/clock/advance"): Op(CLOCK, lambda w, s: Call("POST", "/v1/clock/advance", {"seconds": 0}), True),
}

#: Case actions: the situation the case must be in, the body, and who may take the action there (API.md, T2).
ACTIONS: dict[str, tuple[str, Any, tuple[str, ...]]] = {
    "approve": ("awaiting_merchant", {}, ("merchant_a",)),
    "reject": ("awaiting_merchant", {"reason": "not convinced"}, ("merchant_a",)),
    "offer_exchange": ("awaiting_merchant", None, ("merchant_a",)),
    "offer_partial_refund": ("awaiting_merchant", {"refund_fen": 500}, ("merchant_a",)),
    "accept_offer": ("offer", None, ("buyer_x",)),
    "decline_offer": ("offer", None, ("buyer_x",)),
    "ship_return": ("awaiting_return_shipment", {"carrier": "SF", "tracking_no": "R1"}, ("buyer_x",)),
    "mark_return_delivered": ("return_in_transit", {}, ("merchant_a", "platform")),
    "confirm_return": ("return_in_transit", None, ("merchant_a",)),
    "reject_return": ("return_in_transit", {"reason": "not the same goods"}, ("merchant_a",)),
    "ship_replacement": ("awaiting_replacement_shipment", {"carrier": "SF", "tracking_no": "R2"}, ("merchant_a",)),
    "mark_replacement_delivered": ("replacement_in_transit", {}, ("merchant_a", "platform")),
    "confirm_received": ("replacement_in_transit", None, ("buyer_x",)),
    "resubmit": ("rejected", {"description": "more photos"}, ("buyer_x",)),
    "accept_rejection": ("rejected", None, ("buyer_x",)),
    "cancel": ("awaiting_merchant", None, ("buyer_x",)),
    "escalate": ("rejected", {"reason": "unfair"}, ("buyer_x",)),
    "rule": ("platform_review", {"outcome": "reject", "rationale": "no evidence"}, ("platform",)),
    "pay_ruling": ("ruled_refund", None, ("merchant_a",)),
    "advance_compensate": ("ruled_refund", {"reason": "merchant_unreachable"}, ("platform",)),
}


def _action_op(action: str, situation: str, body: Any, allowed: tuple[str, ...]) -> Op:
    def build(w: World, s: Shared) -> Call:
        oid, cid = w.case(situation)
        return Call("POST", f"/v1/cases/{cid}/{action}", body, secrets=(oid, cid, "bX", TITLE_MARK, DESC_MARK))

    cells = {p: (200 if p in allowed else 403) for p in INSIDERS}
    return Op(expect(404, **cells), build, True)


for _action, (_situation, _body, _allowed) in ACTIONS.items():
    MATRIX[("POST", f"/v1/cases/{{case_id}}/{_action}")] = _action_op(_action, _situation, _body, _allowed)


# --- K1/K2 complaints: bX complains about an order of mA; the merchant sees it from acceptance on -------------
def _complaint(w: World, status: str) -> Call:
    """A complaint of bX about a fresh order of mA, in ``status`` (submitted, accepted or answered)."""
    oid = w.order()
    cid = w.ok(w.api.post("/v1/complaints", {"order_id": oid, "channel": "in_app_chat", "category": "other",
                                             "description": DESC_MARK}, who="buyer_x"), 201)["id"]
    if status in ("accepted", "answered"):
        w.ok(w.api.post(f"/v1/complaints/{cid}/accept", None))
    if status == "answered":
        w.ok(w.api.post(f"/v1/complaints/{cid}/respond", {"answer": "handled"}, who="merchant_a"))
    return Call("GET", f"/v1/complaints/{cid}", secrets=(oid, cid, "bX", TITLE_MARK, DESC_MARK), shows=(cid, DESC_MARK))


def _complaint_op(path: str, status: str, expected: dict[str, int], body: Any = None, method: str = "POST") -> Op:
    def build(w: World, s: Shared) -> Call:
        c = _complaint(w, status)
        return Call(method, c.path + path, body, secrets=c.secrets, shows=c.shows[:1])

    return Op(expected, build, method == "POST")


def _file_complaint_call(w: World, s: Shared) -> Call:
    oid = w.order()
    return Call("POST", "/v1/complaints", {"order_id": oid, "channel": "in_app_chat", "category": "other",
                                           "description": DESC_MARK}, secrets=(oid, "bX", TITLE_MARK, DESC_MARK))


MATRIX.update({
    ("GET", "/v1/complaint-channels"): Op(PUBLIC, lambda w, s: Call("GET", "/v1/complaint-channels")),
    # buyers file themselves (bY: bX's order is unknown); agents only record phone complaints (K1: 403)
    ("POST", "/v1/complaints"): Op(expect(403, buyer_x=201, buyer_y=404), _file_complaint_call, True),
    ("GET", "/v1/complaints"): Op(ANY_KEY, lambda w, s: Call("GET", "/v1/complaints")),
    ("GET", "/v1/complaints/{complaint_id}"): Op(TENANT_READ, lambda w, s: _complaint(w, "accepted")),
    ("GET", "/v1/complaints/{complaint_id}/events"): _complaint_op("/events", "accepted", TENANT_READ, method="GET"),
    ("POST", "/v1/complaints/{complaint_id}/accept"): _complaint_op("/accept", "submitted", expect(403, platform=200)),
    ("POST", "/v1/complaints/{complaint_id}/reject"): _complaint_op("/reject", "submitted", expect(403, platform=200),
                                                                    {"reason": "not for us"}),
    ("POST", "/v1/complaints/{complaint_id}/respond"): _complaint_op(
        "/respond", "accepted", expect(403, merchant_a=200, merchant_b=404), {"answer": "sorry"}),
    ("POST", "/v1/complaints/{complaint_id}/resolve"): _complaint_op(
        "/resolve", "answered", expect(403, platform=200), {"outcome": "not_upheld", "rationale": "fine"}),
})


# --- D3/K2/S5: evidence, messages, dispute paths and the record, on cases and on complaints ------------------------
EVIDENCE_PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)
PARTY_WRITE = expect(404, platform=201, merchant_a=201, buyer_x=201)


def _subject(w: World, s: Shared, plural: str) -> tuple[str, tuple[str, ...], str]:
    """The shared case, or a fresh complaint the merchant sees (accepted): (path, secrets, id)."""
    if plural == "cases":
        return f"/v1/cases/{s.case_id}", (), s.case_id
    c = _complaint(w, "accepted")
    return c.path, c.secrets, c.path.rsplit("/", 1)[-1]


def _record_op(plural: str, method: str, suffix: str, expected: dict[str, int], body: Any = None, *,
               upload: bool = False, prepare: str | None = None, mutates: bool = False) -> Op:
    def build(w: World, s: Shared) -> Call:
        base, secrets, sid = _subject(w, s, plural)
        path = base + suffix
        if prepare == "evidence":
            r = w.api.client.post(f"{base}/evidence", files={"file": ("a.png", EVIDENCE_PNG, "image/png")}, headers=w.api.h("buyer_x"))
            path = f"{base}/evidence/{w.ok(r, 201)['id']}"
        elif prepare == "dispute_path":
            new = w.ok(w.api.post(f"{base}/dispute-paths", {"path": "negotiation", "started_at": "2026-03-01T01:00:00+00:00"}), 201)
            path = f"{base}/dispute-paths/{new['id']}/outcome"
        files = {"file": ("a.png", EVIDENCE_PNG, "image/png")} if upload else None
        return Call(method, path, body, secrets=secrets, files=files, shows=(sid,) if suffix == "/record" else ())

    return Op(expected, build, mutates)


for _plural, _param in (("cases", "case_id"), ("complaints", "complaint_id")):
    _base = f"/v1/{_plural}/{{{_param}}}"
    MATRIX.update({
        ("POST", f"{_base}/evidence"): _record_op(_plural, "POST", "/evidence", PARTY_WRITE, upload=True),
        ("GET", f"{_base}/evidence"): _record_op(_plural, "GET", "/evidence", TENANT_READ),
        ("GET", f"{_base}/evidence/{{evidence_id}}"): _record_op(_plural, "GET", "", TENANT_READ, prepare="evidence"),
        ("POST", f"{_base}/messages"): _record_op(_plural, "POST", "/messages", PARTY_WRITE, {"body": "hello"}),
        ("GET", f"{_base}/messages"): _record_op(_plural, "GET", "/messages", TENANT_READ),
        ("POST", f"{_base}/dispute-paths"): _record_op(_plural, "POST", "/dispute-paths", PARTY_WRITE,
                                                       {"path": "mediation", "started_at": "2026-03-01T01:00:00+00:00"}),
        ("POST", f"{_base}/dispute-paths/{{path_id}}/outcome"): _record_op(
            _plural, "POST", "", expect(404, platform=200, merchant_a=200, buyer_x=200),
            {"ended_at": "2026-03-01T01:30:00+00:00", "outcome": "agreed"}, prepare="dispute_path", mutates=True),
        ("GET", f"{_base}/dispute-paths"): _record_op(_plural, "GET", "/dispute-paths", TENANT_READ),
        ("GET", f"{_base}/record"): _record_op(_plural, "GET", "/record", TENANT_READ),
    })


# --- checks -----------------------------------------------------------------------------------------------
_TABLES: weakref.WeakKeyDictionary[Engine, list[str]] = weakref.WeakKeyDictionary()


def fingerprint(engine: Engine) -> str:
    """A checksum of every row of every table (the schema's migration bookkeeping aside)."""
    digest = hashlib.sha256()
    with engine.connect() as conn:
        if engine not in _TABLES:  # the schema does not change during a test: reflected once
            _TABLES[engine] = sorted(n for n in inspect(conn).get_table_names() if n != "alembic_version")
        names = _TABLES[engine]
        if conn.dialect.name == "postgresql":  # hashed by the server, every table in one statement
            rows = conn.execute(text(" UNION ALL ".join(
                f"SELECT '{name}', count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{name}\" t"
                for name in names))).all()
            for row in rows:
                digest.update(repr(tuple(row)).encode())
            return digest.hexdigest()
        for name in names:
            digest.update(name.encode())
            rows = conn.execute(select(text("*")).select_from(text(f'"{name}"'))).all()
            for r in sorted(repr(tuple(r)) for r in rows):
                digest.update(r.encode())
    return digest.hexdigest()


def test_every_route_has_a_matrix_entry(tmp_path: Any) -> None:
    from aftersales.api.app import create_app
    from aftersales.config import Settings

    app = create_app(Settings(env="test", database_url=f"sqlite:///{tmp_path}/routes.db"))
    ops = operations(app)
    assert ("POST", "/v1/cases/{case_id}/approve") in ops and ("GET", "/v1/orders/{order_id}") in ops, ops
    missing = sorted(ops - MATRIX.keys())
    assert not missing, f"operations without an entry in the authorisation matrix: {missing}"
    stale = sorted(MATRIX.keys() - ops)
    assert not stale, f"matrix entries for operations that no longer exist: {stale}"


SHARDS = 4


# In SHARDS parts (every operation in exactly one), each with its own world, so that the test processes share it.
@pytest.mark.parametrize("shard", range(SHARDS))
def test_authorisation_matrix(api: Any, ctx: Any, shard: int) -> None:
    missing = sorted(operations(api.client.app) - MATRIX.keys())
    assert not missing, f"operations without an entry in the authorisation matrix: {missing}"
    world = World(api)
    hook = world.ok(api.post("/v1/webhooks", {"url": "https://hooks.example.com/a", "merchant_id": "mA"}), 201)["id"]
    shared_order, shared_case = world.case("awaiting_merchant")
    shared_group = world.uid("grpA")
    world.order(state="paid", group=shared_group)
    shared = Shared(shared_order, shared_case, shared_group, hook)

    failures: list[str] = []
    for (method, template), op in sorted(MATRIX.items())[shard::SHARDS]:
        call = None
        for who in PRINCIPALS:
            if call is None or op.mutates:
                call = op.build(world, shared)
            cell = f"{method} {template} as {who}"
            want = op.expect[who]
            before = fingerprint(ctx.engine) if want >= 400 or method == "GET" else None
            headers = api.h(who)
            r = api.client.request(call.method, call.path, json=call.body, params=call.params, headers=headers, files=call.files)
            if r.status_code != want:
                failures.append(f"{cell}: {r.status_code} (expected {want}) {r.text[:300]}")
                continue
            if r.status_code >= 400:
                if not r.headers.get("content-type", "").startswith(PROBLEM):
                    failures.append(f"{cell}: {r.status_code} is not {PROBLEM}: {r.headers.get('content-type')}")
                else:
                    body = r.json()
                    if body.get("status") != r.status_code or not all(body.get(k) for k in ("type", "title", "detail")):
                        failures.append(f"{cell}: incomplete problem {body}")
                if fingerprint(ctx.engine) != before:
                    failures.append(f"{cell}: refused with {r.status_code} but the database changed")
            elif method == "GET" and fingerprint(ctx.engine) != before:
                failures.append(f"{cell}: a read changed the database")
            if who in OUTSIDERS:
                secrets = set(call.secrets) | set(shared.secrets)
                leaked = sorted(s for s in secrets if s in r.text)
                if leaked:
                    failures.append(f"{cell}: the answer to an outsider contains {leaked}: {r.text[:300]}")
            elif r.status_code < 300:
                hidden = [s for s in call.shows if s not in r.text]
                if hidden:
                    failures.append(f"{cell}: the answer lacks {hidden}")
        if (method, template) == ("GET", "/v1/cases"):
            # The list filtered on A's order: insiders see the case, outsiders an empty page.
            for who in PRINCIPALS[:-1]:
                items = api.get("/v1/cases", who=who, params={"order_id": shared.order_id}).json()["items"]
                ids = [c["id"] for c in items]
                if ids != ([shared.case_id] if who in INSIDERS else []):
                    failures.append(f"GET /v1/cases?order_id as {who}: {ids}")
        if (method, template) == ("GET", "/v1/orders"):
            # Unfiltered, each outsider's list holds none of A's orders (they are all mA/bX's).
            for who in OUTSIDERS:
                listed = api.get("/v1/orders", who=who, params={"limit": "200"}).json()["items"]
                if listed:
                    failures.append(f"GET /v1/orders as {who}: {[o['id'] for o in listed]}")
    assert not failures, f"{len(failures)} cell(s) wrong:\n" + "\n".join(failures)


def test_outsiders_get_the_same_404_as_for_unknown_ids(api: Any) -> None:
    """T2: an outsider cannot tell another tenant's order or case from one that does not exist."""
    world = World(api)
    oid, cid = world.case("awaiting_merchant")
    pairs = [(f"/v1/orders/{oid}", "/v1/orders/ordUnknown1"), (f"/v1/cases/{cid}", "/v1/cases/cs_unknown"),
             (f"/v1/cases/{cid}/events", "/v1/cases/cs_unknown/events"),
             (f"/v1/orders/{oid}/after-sales-options", "/v1/orders/ordUnknown1/after-sales-options")]
    for who in OUTSIDERS:
        for theirs, unknown in pairs:
            a, b = api.get(theirs, who=who), api.get(unknown, who=who)
            assert a.status_code == b.status_code == 404, (a.text, b.text)
            assert a.json() == b.json(), (a.text, b.text)
        a = api.post(f"/v1/cases/{cid}/approve", {}, who=who)
        b = api.post("/v1/cases/cs_unknown/approve", {}, who=who)
        assert a.status_code == b.status_code == 404 and a.json() == b.json(), (a.text, b.text)
