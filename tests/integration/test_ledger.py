"""D2 for the money that moves today (F1 refunds, M3 reimbursements, G4 group refunds, P2 advance compensation):
every settled refund is one balanced ledger transaction, balances are derived from entries, and what the
ledger paid each buyer equals what the orders say was refunded."""

from __future__ import annotations

from sqlalchemy import func, select

from aftersales.domain.ledger import normal_balance
from aftersales.service.context import UnitOfWork
from aftersales.service.ledger import audit, balance
from aftersales.store import tables as t


def order_body(order_id: str, buyer: str = "bX", group: dict | None = None) -> dict:
    body = {"id": order_id, "merchant_id": "mA", "buyer_id": buyer, "paid_at": "2026-03-01T01:00:00+00:00", "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 2, "unit_price_fen": 1999}]}
    if group:
        body["group"] = group
    return body


def check_ledger_invariants(ctx) -> None:
    """Every transaction balances, no account but a debt is negative, refunded ≤ paid and = ledger credits (D2)."""
    with UnitOfWork(ctx, readonly=True) as uow:
        assert audit(uow) == []
        en = t.ledger_entries
        for account in [r.account for r in uow.conn.execute(select(en.c.account).distinct()).all()]:
            debits, credits = uow.conn.execute(select(func.sum(en.c.debit_fen), func.sum(en.c.credit_fen))
                                               .where(en.c.account == account)).one()
            assert balance(uow, account) == normal_balance(account, credits or 0, debits or 0)


def test_D2_refunds_group_failures_and_advance_compensation_post_balanced_transactions(api, ctx):
    # F1: a refund before shipment, paid by the merchant.
    api.post("/v1/orders", order_body("o1"))
    case = api.post("/v1/cases", {"order_id": "o1", "type": "refund_only", "reason": "no_reason"}, who="buyer_x").json()
    api.post(f"/v1/cases/{case['id']}/approve", who="merchant_a")
    # G4: a group that fails refunds its member in full, once.
    api.post("/v1/orders", order_body("o2", buyer="bY", group={"id": "g1", "size": 3}))
    api.advance(25 * 3600)
    # P2: the platform pays a refund ruling the merchant did not pay.
    api.post("/v1/orders", order_body("o3"))
    api.post("/v1/orders/o3/ship", {"carrier": "SF", "tracking_no": "1"}, who="merchant_a")
    api.post("/v1/orders/o3/deliver", {}, who="merchant_a")
    c3 = api.post("/v1/cases", {"order_id": "o3", "type": "refund_only", "reason": "quality_problem"}, who="buyer_x").json()
    api.post(f"/v1/cases/{c3['id']}/reject", {"reason": "no fault found"}, who="merchant_a")
    api.post(f"/v1/cases/{c3['id']}/escalate", {"reason": "it is broken"}, who="buyer_x")
    r = api.post(f"/v1/cases/{c3['id']}/rule", {"outcome": "refund", "refund_fen": 1000, "rationale": "photos show the defect"})
    assert r.status_code == 200, r.text
    api.advance(25 * 3600)

    page = api.get("/v1/ledger/transactions").json()
    kinds = sorted(tx["kind"] for tx in page["items"])
    assert kinds == ["advance_compensation", "deposit_recovery", "group_failure_refund", "payment", "payment", "payment", "refund"]
    for tx in page["items"]:
        assert sum(e["debit_fen"] for e in tx["entries"]) == sum(e["credit_fen"] for e in tx["entries"]) == tx["amount_fen"] > 0
    advance = next(tx for tx in page["items"] if tx["kind"] == "advance_compensation")
    assert {"account": "platform::compensation_fund", "debit_fen": 1000, "credit_fen": 0} in advance["entries"]
    assert advance["rule"] == "P2"

    mine = api.get("/v1/ledger/transactions", who="merchant_a", params={"account": "merchant:mA:sales"}).json()
    assert mine["balance_fen"] == 3 * 4498 - (4498 + 4498)  # three payments in, the two refunds it owed out
    # P2: what the platform advanced came back from mA's deposit — empty, so it is mA's debt (D1).
    deposit = api.get("/v1/merchants/mA/deposit", who="merchant_a").json()
    assert (deposit["balance_fen"], deposit["debt_fen"], deposit["restricted"]) == (0, 1000, True)
    assert api.get("/v1/ledger/transactions", who="merchant_b", params={"account": "merchant:mA:sales"}).status_code == 404
    x = api.get("/v1/ledger/transactions", who="buyer_x").json()
    assert {tx["order_id"] for tx in x["items"]} == {"o1", "o3"}  # bY's group refund is not shown to bX
    assert api.get("/v1/ledger/transactions", who="buyer_x", params={"account": "buyer:bX:refunds"}).json()["balance_fen"] == 4498 + 1000
    check_ledger_invariants(ctx)


def test_D2_a_settlement_is_posted_once_even_when_replayed(api, ctx):
    api.post("/v1/orders", order_body("o1"))
    case = api.post("/v1/cases", {"order_id": "o1", "type": "refund_only", "reason": "no_reason"}, who="buyer_x").json()
    for _ in range(3):
        api.post(f"/v1/cases/{case['id']}/approve", who="merchant_a", headers={"Idempotency-Key": "same"})
    api.post(f"/v1/cases/{case['id']}/approve", who="merchant_a")  # a fresh attempt: 409, nothing posted
    with ctx.engine.connect() as conn:
        kinds = conn.execute(select(t.ledger_transactions.c.kind).order_by(t.ledger_transactions.c.id)).scalars().all()
        assert kinds == ["payment", "refund"]
    check_ledger_invariants(ctx)
