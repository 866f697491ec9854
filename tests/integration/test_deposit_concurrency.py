"""P2 + D1 under concurrency, on SQLite and PostgreSQL: many advance compensations against one deposit at once,
racing with top-ups, leave the deposit exactly right — each advance recovered once, from the deposit as far as it
went and as debt beyond it, never a negative deposit, never a payment twice.

Each thread goes through the service layer with its own unit of work, so the merchant's row lock (PostgreSQL) or
the serialised writers (SQLite) are what keep the derived balances right.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from aftersales.domain.errors import StateConflict
from aftersales.service import cases as case_service
from aftersales.service import deposits
from aftersales.service.context import PLATFORM, Principal, UnitOfWork
from aftersales.service.ledger import audit, balance
from aftersales.store import tables as t

CASES = 24
RULING = 1_000
TOP_UPS = 8
MERCHANT_A = Principal("merchant", "mA")


def ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json())


def ruled_case(api: Any, oid: str) -> str:
    ok(api.post("/v1/orders", {"id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00+00:00",
                               "shipping_fee_fen": 0,
                               "items": [{"sku": "s1", "title": "Lamp", "category": "apparel", "quantity": 1,
                                          "unit_price_fen": 5_000}]}), 201)
    ok(api.post(f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": oid}, who="merchant_a"))
    ok(api.post(f"/v1/orders/{oid}/deliver", {}, who="merchant_a"))
    cid = str(ok(api.post("/v1/cases", {"order_id": oid, "type": "refund_only", "reason": "quality_problem"},
                          who="buyer_x"), 201)["id"])
    ok(api.post(f"/v1/cases/{cid}/reject", {"reason": "no fault"}, who="merchant_a"))
    ok(api.post(f"/v1/cases/{cid}/escalate", {"reason": "broken"}, who="buyer_x"))
    ok(api.post(f"/v1/cases/{cid}/rule", {"outcome": "refund", "refund_fen": RULING, "rationale": "defect"}))
    return cid


def race(jobs: list[Callable[[], Any]]) -> list[BaseException]:
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def runner(job: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            job()
        except BaseException as exc:  # collected and reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(job,)) for job in jobs]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    return errors


def test_P2_D1_many_advance_compensations_at_once_leave_the_deposit_exactly_right(api: Any, ctx: Any) -> None:
    ok(api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": 5_000}, who="merchant_a"), 201)
    case_ids = [ruled_case(api, f"o{i:02d}") for i in range(CASES)]

    def advance(cid: str) -> Callable[[], Any]:
        return lambda: case_service.act(ctx, PLATFORM, cid, "advance_compensate", {"reason": "merchant_unreachable"},
                                        if_match=None, lang="en")

    def top_up() -> Any:
        return deposits.top_up(ctx, MERCHANT_A, "mA", 1_000)

    # Every case twice (a retried request must not pay twice), and the top-ups, all at once.
    jobs = [advance(cid) for cid in case_ids] * 2 + [top_up] * TOP_UPS
    errors = race(jobs)
    assert len(errors) == CASES, errors  # the second advance of each case finds the ruling paid: 409
    assert all(isinstance(e, StateConflict) for e in errors), errors

    d = deposits.get_deposit(ctx, PLATFORM, "mA")
    owed = CASES * RULING - 5_000 - TOP_UPS * 1_000
    assert (d["balance_fen"], d["debt_fen"]) == (0, owed)
    with UnitOfWork(ctx, readonly=True) as uow:
        assert audit(uow) == []
        assert balance(uow, "platform::compensation_fund") == 0
        assert balance(uow, "buyer:bX:refunds") == CASES * RULING
        recoveries = uow.conn.execute(select(func.count()).select_from(t.ledger_transactions)
                                      .where(t.ledger_transactions.c.kind == "deposit_recovery")).scalar_one()
        assert recoveries == CASES
    for cid in case_ids:
        assert ok(api.get(f"/v1/cases/{cid}"))["refunded_fen"] == RULING
