"""SEC1/SEC2 on both databases: refused targets, the delivery pinned to the checked address, coarse error classes,
the bounded retry schedule that ends by disabling the subscription, the limits, and one outbox row per event."""

from __future__ import annotations

import socket
import ssl
from datetime import datetime

import httpx
import pytest
from sqlalchemy import func, select

from aftersales.service import egress, webhooks
from aftersales.service.egress import Egress
from aftersales.store import tables as t

PUBLIC = "93.184.216.34"
HOOK = "https://hooks.example/in"


def order_body(order_id: str, merchant: str = "mA", buyer: str = "bX") -> dict:
    return {"id": order_id, "merchant_id": merchant, "buyer_id": buyer, "paid_at": "2026-03-01T01:00:00+00:00",
            "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 1999}]}


class Dns:
    """A resolver playing DNS: each name answers from its list of answers in turn (the last one repeats)."""

    def __init__(self, **names: list[list[str]]) -> None:
        self.names = {k.replace("_", "."): v for k, v in names.items()}
        self.calls: list[str] = []

    def __call__(self, host, port, *args, **kwargs):
        self.calls.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        seq = self.names[host]
        addresses = seq[min(self.calls.count(host) - 1, len(seq) - 1)]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]


class Endpoint:
    """An httpx transport standing for the network: records every request; answers with ``reply``."""

    def __init__(self, reply) -> None:
        self.reply = reply
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.reply(request)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


@pytest.fixture
def dns(monkeypatch):
    resolver = Dns(hooks_example=[[PUBLIC]])
    monkeypatch.setattr(egress, "getaddrinfo", resolver)
    return resolver


def _open_case(api, order_id: str) -> dict:
    assert api.post("/v1/orders", order_body(order_id)).status_code == 201
    r = api.post("/v1/cases", {"order_id": order_id, "type": "refund_only", "reason": "no_reason"}, who="buyer_x")
    assert r.status_code == 201, r.text
    return r.json()


def _log(api, sub_id: str) -> list[dict]:
    r = api.get(f"/v1/webhooks/{sub_id}/deliveries", who="merchant_a")
    assert r.status_code == 200, r.text
    return r.json()["items"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:5432/", "http://[::1]/", "http://10.0.0.1/", "http://172.16.0.1/",
                                 "http://192.168.0.1/", "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/",
                                 "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "http://localhost/",
                                 "http://metadata.google.internal/"])
def test_SEC1_registration_refuses_internal_targets(api, url):
    r = api.post("/v1/webhooks", {"url": url}, who="merchant_a")
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["rule"] == "SEC1" and body["errors"][0]["field"] == "url"
    assert api.get("/v1/webhooks", who="merchant_a").json()["items"] == []


def test_SEC1_allow_private_setting_lets_a_local_receiver_subscribe(api, ctx):
    assert api.post("/v1/webhooks", {"url": "http://127.0.0.1:9/x"}, who="merchant_a").status_code == 422
    ctx.egress = Egress(allow_private=True)
    assert api.post("/v1/webhooks", {"url": "http://127.0.0.1:9/x"}, who="merchant_a").status_code == 201
    assert api.post("/v1/webhooks", {"url": "http://169.254.169.254/"}, who="merchant_a").status_code == 422


def test_SEC1_delivery_connects_to_the_checked_address_even_when_dns_changes_its_answer(api, ctx, monkeypatch):
    # Public at registration and at the first delivery's single lookup, loopback from then on (DNS rebinding).
    resolver = Dns(rebind_example=[[PUBLIC], [PUBLIC], ["127.0.0.1"]])
    monkeypatch.setattr(egress, "getaddrinfo", resolver)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("the HTTP client resolved the name itself"))
    sub = api.post("/v1/webhooks", {"url": "https://rebind.example/in", "event_types": ["case.opened"]}, who="merchant_a").json()
    endpoint = Endpoint(lambda request: httpx.Response(204))
    _open_case(api, "o1")
    with endpoint.client() as client:
        assert webhooks.dispatch_due(ctx, client=client) == 1
    sent = endpoint.requests[0]
    assert sent.url.host == PUBLIC and sent.headers["host"] == "rebind.example"
    assert sent.extensions["sni_hostname"] == "rebind.example"
    assert resolver.calls == ["rebind.example", "rebind.example"]  # registration, then once for the delivery

    # The next delivery looks again: loopback now, so nothing is sent and the log says only "refused_address".
    _open_case(api, "o2")
    with endpoint.client() as client:
        assert webhooks.dispatch_due(ctx, client=client) == 0
    assert len(endpoint.requests) == 1
    refused = [d for d in _log(api, sub["id"]) if d["status"] == "pending"]
    assert refused and refused[0]["last_error"] == "refused_address" and refused[0]["log"][0]["status_code"] is None


def _conn_refused(request):
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def _disconnected(request):
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)


def _timeout(request):
    raise httpx.ReadTimeout("timed out", request=request)


def _tls(request):
    try:
        raise ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    except ssl.SSLError as exc:
        raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", request=request) from exc


@pytest.mark.parametrize(("reply", "status", "error"), [
    (_conn_refused, None, "connection_error"),
    (_disconnected, None, "connection_error"),
    (_timeout, None, "timeout"),
    (_tls, None, "tls_error"),
    (lambda request: httpx.Response(404), 404, "http_4xx"),
    (lambda request: httpx.Response(503), 503, "http_5xx"),
    (lambda request: httpx.Response(302, headers={"location": "http://127.0.0.1/"}), 302, "http_3xx"),
])
def test_SEC1_delivery_log_keeps_a_coarse_error_class_only(api, ctx, dns, reply, status, error):
    sub = api.post("/v1/webhooks", {"url": HOOK, "event_types": ["case.opened"]}, who="merchant_a").json()
    _open_case(api, "o1")
    endpoint = Endpoint(reply)
    with endpoint.client() as client:
        assert webhooks.dispatch_due(ctx, client=client) == 0
    assert len(endpoint.requests) == 1, "a redirect is never followed"
    [delivery] = _log(api, sub["id"])
    assert delivery["last_error"] == error and delivery["last_status_code"] == status
    assert delivery["log"][0]["error"] == error and delivery["log"][0]["status_code"] == status


def test_SEC2_retries_follow_the_bounded_schedule_then_the_subscription_is_disabled(api, ctx, dns):
    sub = api.post("/v1/webhooks", {"url": HOOK, "event_types": ["case.opened"]}, who="merchant_a").json()
    _open_case(api, "o1")
    endpoint = Endpoint(_conn_refused)
    waits = []
    with endpoint.client() as client:
        assert webhooks.dispatch_due(ctx, client=client) == 0
        for _ in range(20):
            [delivery] = _log(api, sub["id"])
            if delivery["status"] != "pending":
                break
            waits.append(round((datetime.fromisoformat(delivery["next_attempt_at"]) - api.now()).total_seconds()))
            api.advance(waits[-1])
            webhooks.dispatch_due(ctx, client=client)
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert delivery["status"] == "failed" and delivery["attempts"] == webhooks.MAX_ATTEMPTS == len(endpoint.requests) == 8
    view = api.get(f"/v1/webhooks/{sub['id']}", who="merchant_a").json()
    assert view["active"] is False and view["disabled_reason"] == "delivery_failed" and view["disabled_at"]

    # Disabled: later events are not even fanned out to it, and nothing is sent.
    _open_case(api, "o2")
    with endpoint.client() as client:
        api.advance(86400)
        webhooks.dispatch_due(ctx, client=client)
    assert len(endpoint.requests) == 8 and len(_log(api, sub["id"])) == 1

    # Its owner enables it again (the URL is checked again); new events flow.
    assert api.post(f"/v1/webhooks/{sub['id']}/enable", who="merchant_b").status_code == 404
    enabled = api.post(f"/v1/webhooks/{sub['id']}/enable", who="merchant_a")
    assert enabled.status_code == 200 and enabled.json()["active"] is True and enabled.json()["disabled_at"] is None
    assert api.post(f"/v1/webhooks/{sub['id']}/enable", who="merchant_a").status_code == 409
    endpoint.reply = lambda request: httpx.Response(200)
    _open_case(api, "o3")
    with endpoint.client() as client:
        assert webhooks.dispatch_due(ctx, client=client) == 1


def test_SEC2_subscriptions_per_merchant_and_event_types_are_limited(api, ctx, dns):
    limit = ctx.egress.max_subscriptions
    ids = []
    for _ in range(limit):
        r = api.post("/v1/webhooks", {"url": HOOK}, who="merchant_a")
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    over = api.post("/v1/webhooks", {"url": HOOK}, who="merchant_a")
    assert over.status_code == 422 and over.json()["rule"] == "SEC2"
    assert api.post("/v1/webhooks", {"url": HOOK}, who="merchant_b").status_code == 201, "the limit is per merchant"
    assert len(api.get("/v1/webhooks", who="merchant_a").json()["items"]) == limit
    assert api.client.delete(f"/v1/webhooks/{ids[0]}", headers=api.h("merchant_b")).status_code == 404
    assert api.client.delete(f"/v1/webhooks/{ids[0]}", headers=api.h("merchant_a")).status_code == 204
    assert api.get(f"/v1/webhooks/{ids[0]}", who="merchant_a").status_code == 404
    assert api.post("/v1/webhooks", {"url": HOOK}, who="merchant_a").status_code == 201, "a deleted one frees its place"

    unknown = api.post("/v1/webhooks", {"url": HOOK, "event_types": ["case.opened", "case.no_such_thing"]}, who="merchant_b")
    assert unknown.status_code == 422 and unknown.json()["rule"] == "SEC2" and unknown.json()["errors"][0]["field"] == "event_types.1"
    twice = api.post("/v1/webhooks", {"url": HOOK, "event_types": ["case.*", "case.*"]}, who="merchant_b")
    assert twice.status_code == 422 and twice.json()["rule"] == "SEC2"
    too_many = api.post("/v1/webhooks", {"url": HOOK, "event_types": ["case.opened"] * (len(webhooks.EVENT_TYPES) + 1)}, who="merchant_b")
    assert too_many.status_code == 422
    known = api.get("/v1/webhooks/event-types", who="merchant_b").json()["items"]
    assert "case.opened" in known and "group.*" in known and len(known) == len(webhooks.EVENT_TYPES)
    every = api.post("/v1/webhooks", {"url": HOOK, "event_types": known}, who="merchant_b")
    assert every.status_code == 201, every.text


def _outbox_rows(ctx) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.webhook_outbox)).scalar_one())


def _events_of(ctx, order_id: str) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.events).where(t.events.c.order_id == order_id)).scalar_one())


def test_SEC2_one_outbox_row_per_event_whatever_the_number_of_subscribers(api, ctx, dns):
    assert api.post("/v1/webhooks", {"url": HOOK}, who="merchant_a").status_code == 201
    _open_case(api, "o1")
    one_sub = _outbox_rows(ctx)
    assert one_sub == _events_of(ctx, "o1") > 0
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.webhook_deliveries)).scalar_one() == 0, "no fan-out in the request"

    for _ in range(ctx.egress.max_subscriptions - 1):
        assert api.post("/v1/webhooks", {"url": HOOK}, who="merchant_a").status_code == 201
    assert api.post("/v1/webhooks", {"url": HOOK}).status_code == 201  # platform-wide
    _open_case(api, "o2")
    assert _outbox_rows(ctx) - one_sub == _events_of(ctx, "o2") == _events_of(ctx, "o1")

    # The worker fans out: one delivery per event and subscriber, and the outbox empties.
    webhooks.fan_out_pending(ctx)
    assert _outbox_rows(ctx) == 0
    with ctx.engine.connect() as conn:
        per_sub = dict(conn.execute(select(t.webhook_deliveries.c.subscription_id, func.count())
                                    .group_by(t.webhook_deliveries.c.subscription_id)).all())
    assert len(per_sub) == ctx.egress.max_subscriptions + 1
    assert sorted(set(per_sub.values())) == [_events_of(ctx, "o1") + _events_of(ctx, "o2")]
