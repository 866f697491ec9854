"""F1 through an external gateway that fails, times out and answers twice: every refund settles exactly once."""

from __future__ import annotations

import random
from collections import Counter

from fastapi.testclient import TestClient
from test_ledger import check_ledger_invariants

from aftersales.api.app import create_app
from aftersales.service import payment_worker
from aftersales.service.payments import GatewayError
from aftersales.store import tables as t


class FlakyGateway:
    """The payment side: pays each idempotency key at most once, but often fails, times out after paying,
    or confirms a key twice."""

    synchronous = False

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.paid: Counter[str] = Counter()  # what the payment side actually paid, per key
        self.calls = 0

    def submit(self, key: str, amount_fen: int, order_id: str) -> bool:
        self.calls += 1
        roll = self.rng.random()
        if roll < 0.3:
            raise GatewayError("503 from gateway")
        if key not in self.paid:
            self.paid[key] += 1  # the gateway deduplicates on the idempotency key
        if roll < 0.5:
            raise GatewayError("timeout after the payment was made")
        return True


def order_body(order_id: str) -> dict:
    return {"id": order_id, "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00+00:00", "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 1999}]}


def test_F1_failing_gateway_every_refund_settles_exactly_once(api, ctx, database):
    gateway = FlakyGateway(seed=7)
    ctx.gateway = gateway
    client = TestClient(create_app(database.settings(), ctx), raise_server_exceptions=False)
    h = {"Authorization": f"Bearer {api.keys['buyer_x']}"}
    hm = {"Authorization": f"Bearer {api.keys['merchant_a']}"}
    case_ids = []
    for n in range(12):
        assert api.post("/v1/orders", order_body(f"o{n}")).status_code == 201
        case = client.post("/v1/cases", json={"order_id": f"o{n}", "type": "refund_only", "reason": "no_reason"}, headers=h).json()
        r = client.post(f"/v1/cases/{case['id']}/approve", headers=hm)
        assert r.status_code == 200, r.text
        # Visible while pending: the case waits for the payment side, the refund is listed as pending.
        assert r.json()["status"] == "refund_pending"
        assert r.json()["refunds"][0]["status"] == "pending"
        case_ids.append(case["id"])

    for _ in range(40):
        payment_worker.process_due(ctx)
        api.advance(3600)  # backoff elapses on the manual clock
        # A duplicate confirmation arriving late is ignored.
    for case_id in case_ids:
        case = api.get(f"/v1/cases/{case_id}").json()
        assert case["status"] == "closed" and case["close_reason"] == "refunded", case
        assert case["refunded_fen"] == 2499
    with ctx.engine.connect() as conn:
        refunds = conn.execute(t.refunds.select()).all()
        jobs = conn.execute(t.payment_jobs.select()).all()
        settled_events = conn.execute(t.events.select().where(t.events.c.kind == "refund_settled")).all()
    assert len(refunds) == 12 and all(r.status == "settled" for r in refunds)
    assert jobs == []
    assert len(settled_events) == 12, "each refund settles once"
    assert all(count == 1 for count in gateway.paid.values()) and len(gateway.paid) == 12
    assert gateway.calls > 12, "the gateway failed at least once, so retries happened"
    with ctx.engine.connect() as conn:
        posted = conn.execute(t.ledger_transactions.select().where(t.ledger_transactions.c.kind != "payment")).all()
    assert sorted(p.key for p in posted) == sorted(f"settle:{r.key}" for r in refunds), "D2: one posting per settled refund"
    check_ledger_invariants(ctx)
