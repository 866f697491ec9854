"""What-if replay (issue 15): generate a history of N cases, then replay it under the version in force (identity).

Not a test. Run: ``.venv/bin/python bench/replay.py --cases 100000`` (SQLite file in a temporary directory) or with
``--database-url postgresql+psycopg://...`` (a fresh schema is created and dropped).

The history is built through the domain, as the services would have built it, in chunks written by the store's own
unit of work (``Tracker.flush``): each order is paid, most are shipped and delivered, and one case is opened on it,
in five stories taken in turn — a partial refund the merchant approves (M1, F1); a no-reason return the merchant
leaves unanswered (M1 reminders and automatic approval), shipped back and confirmed (M5, M6); a refund before
shipment approved by the merchant's silence (E2, M1); a refusal the buyer never answers (M2); a no-reason return
refused after the window (E4, recorded in ``refused_openings``) followed by a quality case the buyer cancels (C1).
Every automatic action due before the clock fires at its due instant, as the worker would have done. Then
``service.replay.run_replay(..., identity=True)`` replays everything and must report 0 mismatches — once per process
count of ``--workers 1,2`` (the orders split into ranges, one per process, the reports merged).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sqlalchemy import text

from aftersales.domain import cases as dcases
from aftersales.domain.catalog import CaseType, Reason
from aftersales.domain.errors import DomainError
from aftersales.domain.events import Actor
from aftersales.domain.opening import open_case
from aftersales.domain.orders import Order, OrderItem, RefundStatus, new_order
from aftersales.domain.policy import Policy, load, version_id
from aftersales.service.context import Clock, Context, UnitOfWork, run
from aftersales.service.replay import run_replay
from aftersales.service.terms import stamp
from aftersales.store import replay as replay_store
from aftersales.store.db import make_engine
from aftersales.store.migrate import upgrade
from aftersales.testing import ensure_merchant

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
SHOPS = 20


def _advance(order: Order, to: datetime, policy: Policy) -> None:
    """Every automatic action due by ``to``, at its due instant, each refund settled at once (the built-in gateway)."""
    while True:
        due = [(d.due_at, d.action is not dcases.Auto.REMIND_MERCHANT, c.id, d) for c in order.cases for d in c.timers()
               if d.due_at <= to and (d.stage, f"{d.action}@{d.due_at.isoformat()}") not in c.fired]
        if not due:
            return
        *_, cid, d = min(due, key=lambda x: x[:3])
        if not dcases.fire(order, cid, d.action, d.stage, to, policy, due_at=d.due_at):
            return
        _settle(order, d.due_at)


def _settle(order: Order, now: datetime) -> None:
    for r in list(order.refunds):
        if r.status is RefundStatus.PENDING:
            order.settle_refund(r.key, now)


def _story(i: int, policy: Policy, terms: dict, vid: str, refused: list[dict]) -> Order:
    paid = NOW - (60 * D) + timedelta(minutes=37 * (i % 2000)) + timedelta(seconds=i % 53)
    shop = f"m-r{i % SHOPS:02d}"
    order = new_order(id=f"r-o{i:07d}", merchant_id=shop, buyer_id=f"r-b{i % 997}", paid_at=paid,
                      shipping_fee_fen=600 if i % 3 else 0,
                      items=[OrderItem("sku-1", "Thing", "general", 1 + i % 2, 1500 + i % 700)],
                      terms=terms, policy_version=vid)
    kind = i % 5
    cid = f"r-c{i:07d}"

    def step(at: datetime, fn: Callable[[], object]) -> None:
        _advance(order, at, policy)
        fn()
        _settle(order, at)

    def act(action: dcases.Action, actor: Actor, **params: object) -> Callable[[], object]:
        return lambda: dcases.act(order, cid, action, actor, t, policy, **params)

    def opening(case_type: CaseType, reason: Reason, **extra: object) -> Callable[[], object]:
        return lambda: open_case(order, case_id=cid, actor=Actor.BUYER, case_type=case_type, reason=reason, now=t,
                                 policy=policy, categories={}, **extra)  # type: ignore[arg-type]

    if kind == 2:  # E2 + M1: refund before shipment, the merchant's silence approves it
        t = paid + 3 * H
        step(t, opening(CaseType.REFUND_ONLY, Reason.NO_REASON))
    else:
        t = paid + 20 * H
        step(t, lambda: order.ship(Actor.MERCHANT, "SF", f"SF{i}", t))
        t = paid + 2 * D
        step(t, lambda: order.deliver(Actor.PLATFORM, t, t))
        if kind == 0:  # M1 + F1: a partial refund approved by the merchant
            t += 1 * D
            step(t, opening(CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, refund_fen=500))
            t += 5 * H
            step(t, act(dcases.Action.APPROVE, Actor.MERCHANT))
        elif kind == 1:  # M1 silence, M5 shipped back, M6 confirmed
            t += 2 * D
            step(t, opening(CaseType.RETURN_REFUND, Reason.NO_REASON))
            t += 3 * D
            step(t, act(dcases.Action.SHIP_RETURN, Actor.BUYER, carrier="YTO", tracking_no=f"YT{i}", shipping_fee_fen=800))
            t += 2 * D
            step(t, act(dcases.Action.CONFIRM_RETURN, Actor.MERCHANT))
        elif kind == 3:  # M2: refused, the buyer never answers
            t += 4 * D
            step(t, opening(CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM))
            t += 10 * H
            step(t, act(dcases.Action.REJECT, Actor.MERCHANT, reason="No defect."))
        else:  # E4 refused after the window, then C1
            t += 9 * D
            try:
                open_case(order, case_id="x", actor=Actor.BUYER, case_type=CaseType.RETURN_REFUND,
                          reason=Reason.NO_REASON, now=t, policy=policy, categories={})
            except DomainError as exc:
                refused.append({"order_id": order.id, "merchant_id": shop, "actor": "buyer", "case_type": "return_refund",
                                "reason": "no_reason", "items": None, "refund_fen": None, "buyer_consent": False,
                                "rule": exc.rule, "at": t})
            t += 1 * H
            step(t, opening(CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM))
            t += 2 * H
            step(t, act(dcases.Action.CANCEL, Actor.BUYER))
    _advance(order, NOW, policy)
    return order


def generate(ctx: Context, n: int, chunk: int = 1000) -> None:
    for s in range(SHOPS):
        ensure_merchant(ctx, f"m-r{s:02d}", NOW - 90 * D)
    terms, vid = run(ctx, lambda uow: stamp(ctx, uow.conn, NOW - 90 * D, ["general"], NOW - 90 * D))
    for start in range(0, n, chunk):
        refused: list[dict] = []

        def cmd(uow: UnitOfWork, start: int = start, refused: list[dict] = refused) -> None:
            for i in range(start, min(n, start + chunk)):
                uow.tracker.add_order(_story(i, ctx.policy, terms, vid, refused))

        def refusals(uow: UnitOfWork, refused: list[dict] = refused) -> None:
            for r in refused:
                replay_store.record_refused_opening(uow.conn, **r)

        run(ctx, cmd)
        if refused:  # after the orders' events: a refusal's place in its order's history (events before it)
            run(ctx, refusals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--out", default=None, help="Write the figures as JSON here.")
    parser.add_argument("--workers", default="1", help="Replay with each of these process counts, e.g. 1,2 (the same "
                        "history; the reports must be equal).")
    args = parser.parse_args()

    schema = None
    if args.database_url:
        url = args.database_url
        schema = f"bench_replay_{int(time.time())}"
        with make_engine(url).begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    else:
        url = f"sqlite:///{tempfile.mkdtemp()}/replay.db"
    engine = make_engine(url, schema=schema)
    try:
        upgrade(engine)
        ctx = Context(engine=engine, policy=load(), clock=Clock(True, NOW))
        began = time.perf_counter()
        generate(ctx, args.cases)
        generated = time.perf_counter() - began
        print(f"generated {args.cases} cases in {generated:.1f} s", file=sys.stderr)
        runs: dict[int, dict[str, object]] = {}
        report = None
        for workers in (int(w) for w in args.workers.split(",")):
            load_before = os.getloadavg()[0]
            report = run_replay(ctx, None, NOW - 120 * D, NOW + D, identity=True, workers=workers,
                                progress=lambda done, total: print(f"\r{done}/{total}", end="", file=sys.stderr))
            print(f"\nworkers={workers}: {report.seconds:.1f} s, {report.mismatches} mismatches", file=sys.stderr)
            runs[workers] = {"seconds": round(report.seconds, 1), "cases_per_second": round(report.cases / report.seconds),
                             "mismatches": report.mismatches, "unreplayable": len(report.unreplayable),
                             "cpu_seconds_per_process": [round(c, 1) for c in report.cpu_seconds],
                             "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}
        assert report is not None
        figures = {"database": engine.dialect.name, "orders": report.orders, "cases": report.cases,
                   "refused_openings": report.refused_openings, "events": report.events,
                   "seconds": round(report.seconds, 1), "cases_per_second": round(report.cases / report.seconds),
                   "events_per_second": round(report.events / report.seconds), "mismatches": report.mismatches,
                   "unreplayable": len(report.unreplayable), "generate_seconds": round(generated, 1),
                   "policy_version": version_id(ctx.policy), "runs": runs, "cpus": os.cpu_count()}
        print(json.dumps(figures, indent=1))
        if args.out:
            Path(args.out).write_text(json.dumps(figures, indent=1) + "\n", "utf-8")
        if report.mismatches or report.unreplayable:
            print(json.dumps(report.mismatch_samples[:3], indent=1), report.unreplayable[:3], file=sys.stderr)
            sys.exit(1)
    finally:
        if schema:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


if __name__ == "__main__":
    main()
