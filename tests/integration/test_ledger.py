"""D2 for the money that moves today (F1 refunds, M3 reimbursements, G4 group refunds, P2 advance compensation):
every settled refund is one balanced ledger transaction, balances are derived from entries, and what the
ledger paid each buyer equals what the orders say was refunded."""

from __future__ import annotations

from sqlalchemy import func, select

from aftersales.service.context import UnitOfWork
from aftersales.service.ledger import balance, unbalanced_transactions
from aftersales.store import tables as t


def order_body(order_id: str, buyer: str = "bX", group: dict | None = None) -> dict:
    body = {"id": order_id, "merchant_id": "mA", "buyer_id": buyer, "paid_at": "2026-03-01T01:00:00+00:00", "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 2, "unit_price_fen": 1999}]}
    if group:
        body["group"] = group
    return body


def check_ledger_invariants(ctx) -> None:
    """Every transaction balances, every balance is the sum of its entries, refunded ≤ paid and = ledger credits."""
    with UnitOfWork(ctx, readonly=True) as uow:
        assert unbalanced_transactions(uow) == []
        en = t.ledger_entries
        accounts = [r.account for r in uow.conn.execute(select(en.c.account).distinct()).all()]
        for account in accounts:
            debits, credits = uow.conn.execute(select(func.sum(en.c.debit_fen), func.sum(en.c.credit_fen))
                                               .where(en.c.account == account)).one()
            assert balance(uow, account) == (credits or 0) - (debits or 0)
            if account.startswith("buyer:"):
                assert balance(uow, account) >= 0
        for o in uow.conn.execute(select(t.orders.c.id, t.orders.c.paid_fen, t.orders.c.refunded_fen, t.orders.c.buyer_id)).all():
            assert o.refunded_fen <= o.paid_fen
            settled = uow.conn.execute(select(func.coalesce(func.sum(t.refunds.c.refund_fen), 0))
                                       .where(t.refunds.c.order_id == o.id, t.refunds.c.status == "settled")).scalar_one()
            credited = uow.conn.execute(
                select(func.coalesce(func.sum(en.c.credit_fen), 0)).join(t.ledger_transactions)
                .where(t.ledger_transactions.c.order_id == o.id, en.c.account == f"buyer:{o.buyer_id}:refunds")).scalar_one()
            assert credited == settled


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
    assert kinds == ["advance_compensation", "group_failure_refund", "refund"]
    for tx in page["items"]:
        assert sum(e["debit_fen"] for e in tx["entries"]) == sum(e["credit_fen"] for e in tx["entries"]) == tx["amount_fen"] > 0
    advance = next(tx for tx in page["items"] if tx["kind"] == "advance_compensation")
    assert {"account": "platform::compensation_fund", "debit_fen": 1000, "credit_fen": 0} in advance["entries"]
    assert advance["rule"] == "P2"

    mine = api.get("/v1/ledger/transactions", who="merchant_a", params={"account": "merchant:mA:sales"}).json()
    assert mine["balance_fen"] == -(4498 + 4498)  # the merchant paid the two refunds it owed
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
        assert conn.execute(select(func.count()).select_from(t.ledger_transactions)).scalar_one() == 1
    check_ledger_invariants(ctx)
