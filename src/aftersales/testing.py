"""Bulk data for tests and benchmarks, built through the domain and the store's unit of work (never raw rows)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event

from aftersales.domain.catalog import CaseType, Reason
from aftersales.domain.events import Actor
from aftersales.domain.opening import open_case
from aftersales.domain.orders import OrderItem, new_order
from aftersales.service.context import Context, UnitOfWork, run
from aftersales.store import repositories as repo
from aftersales.store import setup as setup_store


def ensure_merchant(ctx: Context, merchant_id: str, now: datetime) -> None:
    def cmd(uow: UnitOfWork) -> None:
        if repo.merchant(uow.conn, merchant_id) is None:
            setup_store.add_merchant(uow.conn, id=merchant_id, name=merchant_id, return_address=None, created_at=now)

    run(ctx, cmd)


def seed_open_cases(ctx: Context, n: int, opened_at: datetime, *, merchant_id: str = "m-bulk", prefix: str = "bulk",
                    chunk: int = 500) -> list[str]:
    """``n`` paid, unshipped orders, each with a buyer's refund_only case awaiting the merchant (E2, M1), opened at
    ``opened_at``: three timers per case (reminders at 36 h and 46 h, automatic approval at 48 h). Returns case ids."""
    ensure_merchant(ctx, merchant_id, opened_at)
    case_ids: list[str] = []
    for start in range(0, n, chunk):

        def cmd(uow: UnitOfWork, start: int = start) -> list[str]:
            ids = []
            for i in range(start, min(n, start + chunk)):
                order = new_order(id=f"{prefix}-o{i}", merchant_id=merchant_id, buyer_id=f"{prefix}-b{i % 97}",
                                  paid_at=opened_at - timedelta(hours=1), shipping_fee_fen=500,
                                  items=[OrderItem("sku-1", "Thing", "general", 1, 1000 + i % 500)])
                case = open_case(order, case_id=f"{prefix}-c{i}", actor=Actor.BUYER, case_type=CaseType.REFUND_ONLY,
                                 reason=Reason.NO_REASON, now=opened_at, policy=ctx.policy, categories={})
                uow.tracker.add_order(order)
                ids.append(case.id)
            return ids

        case_ids += run(ctx, cmd)
    return case_ids


@contextmanager
def sql_statements(engine: Engine) -> Iterator[list[tuple[str, bool]]]:
    """Every statement ``engine`` sends to the database within the block, as ``(sql, executemany)``, in order — what
    the engine's ``before_cursor_execute`` listeners see (the store's driver path included): the statement budgets
    and round-trip tests count with it."""
    seen: list[tuple[str, bool]] = []

    def listen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        seen.append((statement, many))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)
