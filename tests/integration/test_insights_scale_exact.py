"""S1, S3 insights computed in the database (issue 7, B5) give exactly the figures of the cases' own states.

Random cases of three shops over 60 weeks — instants with microseconds, cases opened exactly on a week's first
instant and exactly at "now", open cases without a first response, several SKUs — are written through the store,
then every figure of every window, for each shop and for all shops, is compared with a reference computed here in
Python from the JSON states alone (the definition: nearest-rank percentiles of whole seconds, weeks from Monday 00:00
in the platform's timezone, the last one up to now included). Also: migration 0008 fills ``first_response_at`` of
cases written before it.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from aftersales.domain.cases import RETURN_TYPES, Action
from aftersales.domain.cases import act as domain_act
from aftersales.domain.catalog import CaseType, Reason, reason_category
from aftersales.domain.events import Actor
from aftersales.domain.opening import open_case
from aftersales.domain.orders import OrderItem, RefundStatus, new_order
from aftersales.service import insights as svc
from aftersales.service.context import Context, Principal, UnitOfWork, run
from aftersales.store import tables as t
from aftersales.store.db import make_engine
from aftersales.store.migrate import upgrade
from aftersales.testing import ensure_merchant

NOW = datetime(2026, 11, 25, 3, 17, 42, 123456, tzinfo=UTC)
SHOPS = ("mA", "mB", "mC")
H = timedelta(hours=1)


def _build(ctx: Context, rng: random.Random, i: int, opened: datetime) -> Any:
    shop = SHOPS[i % 3 if i % 5 else 0]
    skus = rng.sample(["s1", "s2", "s3", "s4"], rng.randint(1, 2))
    order = new_order(id=f"o{i}", merchant_id=shop, buyer_id=f"b{i % 7}", paid_at=opened - rng.uniform(30, 200) * H,
                      shipping_fee_fen=500, items=[OrderItem(f"{shop}-{s}", f"T {s} {i % 3}", "general", rng.randint(1, 4),
                                                             1000 + 10 * i) for s in skus])
    kind = rng.choice(["refund", "return", "reject", "open", "open_return"])
    reason = rng.choice(list(Reason))
    d1 = timedelta(seconds=rng.uniform(1, 47 * 3600))
    try:
        if kind in ("return", "reject", "open_return"):
            order.ship(Actor.MERCHANT, "SF", "SF1", opened - 28 * H)
            order.deliver(Actor.MERCHANT, opened - 4 * H, opened - 4 * H)
        ctype = CaseType.RETURN_REFUND if kind in ("return", "open_return") else CaseType.REFUND_ONLY
        case = open_case(order, case_id=f"c{i:04d}", actor=Actor.BUYER, case_type=ctype, reason=reason, now=opened,
                         policy=ctx.policy, categories={})
        if kind == "refund":
            domain_act(order, case.id, Action.APPROVE, Actor.MERCHANT, opened + d1, ctx.policy)
        elif kind == "return":
            domain_act(order, case.id, Action.APPROVE, Actor.MERCHANT, opened + d1, ctx.policy)
            domain_act(order, case.id, Action.SHIP_RETURN, Actor.BUYER, opened + d1 + 5 * H, ctx.policy, carrier="SF",
                       tracking_no="SF2")
            domain_act(order, case.id, Action.CONFIRM_RETURN, Actor.MERCHANT,
                       opened + d1 + timedelta(seconds=rng.uniform(6 * 3600, 90 * 3600)), ctx.policy)
        elif kind == "reject":
            domain_act(order, case.id, Action.REJECT, Actor.MERCHANT, opened + d1, ctx.policy, reason="no defect")
            domain_act(order, case.id, Action.ACCEPT_REJECTION, Actor.BUYER, opened + d1 + rng.uniform(0.1, 30) * H,
                       ctx.policy)
    except Exception:  # a reason the rules refuse for this path: keep the order without a case
        pass
    for r in order.refunds:
        if r.status is RefundStatus.PENDING:
            order.settle_refund(r.key, r.created_at)
    return order


def _seed(ctx: Context, n: int) -> None:
    rng = random.Random(7)
    for shop in SHOPS:
        ensure_merchant(ctx, shop, NOW - timedelta(days=600))
    starts = svc.window(NOW, 52, ctx.policy.timezone).starts
    instants = [NOW - timedelta(seconds=rng.uniform(60, 60 * 7 * 86400)) for _ in range(n)]
    instants += [starts[3], starts[-1], starts[-1] - timedelta(microseconds=1), NOW, NOW - timedelta(seconds=1)]
    orders = [_build(ctx, rng, i, at) for i, at in enumerate(instants)]

    def cmd(uow: UnitOfWork) -> None:
        for o in orders:
            uow.tracker.add_order(o)
        ctx.clock.set(uow.conn, NOW)

    run(ctx, cmd)


def _pct(values: list[int], p: int) -> int | None:
    values = sorted(values)
    return values[max(1, -(-p * len(values) // 100)) - 1] if values else None


def _reference(ctx: Context, shop: str | None, weeks: int) -> dict[str, Any]:
    """The figures from the JSON states alone."""
    w = svc.window(NOW, weeks, ctx.policy.timezone)
    with ctx.engine.connect() as conn:
        cases = [r.state for r in conn.execute(select(t.cases.c.state))]
        orders = [r.state for r in conn.execute(select(t.orders.c.state))]
        by_person = {r.case_id for r in conn.execute(select(t.events.c.case_id).where(
            t.events.c.actor.in_(("merchant", "platform"))))}
    at = datetime.fromisoformat
    mine = [c for c in cases if shop in (None, c["merchant_id"])]
    inside = [c for c in mine if w.start <= at(c["opened_at"]) <= w.until]
    per_reason = {r.value: sum(1 for c in inside if c["reason"] == r.value) for r in Reason}
    cats: dict[str, int] = {}
    for r in Reason:
        cats[reason_category(r).value] = cats.get(reason_category(r).value, 0) + per_reason[r.value]
    first = [int((at(c["first_response_at"]) - at(c["opened_at"])).total_seconds()) for c in inside if c["first_response_at"]]
    # S1: resolution counts only what a person resolved — not withdrawn, not closed with its order, acted on by the
    # merchant or the platform.
    done = [int((at(c["closed_at"]) - at(c["opened_at"])).total_seconds()) for c in inside if c["closed_at"]
            and c["close_reason"] not in ("cancelled", "order_cancelled") and c["id"] in by_person]
    bounds = [*w.starts[1:], w.until]

    def week(instant: str | None) -> int | None:
        if instant is None or not w.start <= at(instant) <= w.until:
            return None
        return next(i for i, b in enumerate(bounds) if at(instant) < b or i == len(bounds) - 1)

    returned: dict[str, int] = {}
    for c in inside:
        if c["type"] in {str(x) for x in RETURN_TYPES}:
            for sku in c["items"]:
                returned[sku] = returned.get(sku, 0) + 1
    sold: dict[str, list[Any]] = {}
    for o in orders:
        if shop in (None, o["merchant_id"]) and o["status"] not in svc.NOT_SOLD and w.start <= at(o["paid_at"]) <= w.until:
            for item in o["items"]:
                entry = sold.setdefault(item["sku"], [item["title"], 0])
                entry[0], entry[1] = max(entry[0], item["title"]), entry[1] + item["quantity"]
    return {
        "reasons": (len(inside), per_reason, cats),
        "times": (len(inside), len(first), _pct(first, 50), _pct(first, 90), len(done), _pct(done, 50), _pct(done, 90)),
        "trend": [(sum(1 for c in mine if week(c["opened_at"]) == i), sum(1 for c in mine if week(c["closed_at"]) == i))
                  for i in range(weeks)],
        "returns": {s: (sold.get(s, [None, 0])[0], sold.get(s, [None, 0])[1], returned.get(s, 0))
                    for s in set(sold) | set(returned)},
    }


def _figures(out: dict[str, Any]) -> dict[str, Any]:
    r, tm = out["reasons"], out["times"]["measures"]
    return {
        "reasons": (r["total"], {x["reason"]: x["cases"] for x in r["reasons"]}, {x["category"]: x["cases"] for x in r["categories"]}),
        "times": (out["times"]["cases"], tm[0]["cases"], tm[0]["p50_seconds"], tm[0]["p90_seconds"], tm[1]["cases"],
                  tm[1]["p50_seconds"], tm[1]["p90_seconds"]),
        "trend": [(x["opened"], x["closed"]) for x in out["trend"]["weeks"]],
        "returns": {x["sku"]: (x["title"], x["units_sold"], x["return_cases"]) for x in out["returns"]["items"]},
    }


def test_S1_S3_insights_in_the_database_equal_the_figures_of_the_states(ctx: Context) -> None:
    _seed(ctx, 400)
    with ctx.engine.connect() as conn:
        n_cases = conn.execute(text("SELECT count(*) FROM cases")).scalar_one()
        n_first = conn.execute(text("SELECT count(*) FROM cases WHERE first_response_at IS NOT NULL")).scalar_one()
    assert n_cases > 300 and 0 < n_first < n_cases  # open cases have no first response
    for shop in (None, *SHOPS):
        for weeks in svc.WEEKS:
            got = _figures(svc.insights(ctx, Principal("platform"), merchant_id=shop, weeks=weeks))
            want = _reference(ctx, shop, weeks)
            assert got == want, (shop, weeks)
    # the edges are inside: the case opened at "now" and on the last week's first instant count in the last week
    last = svc.insights(ctx, Principal("platform"), merchant_id=None, weeks=4)["trend"]["weeks"][-1]
    assert last["opened"] >= 2


def test_S1_migration_0008_fills_first_response_at_from_the_state(ctx: Context, database: Any) -> None:
    _seed(ctx, 40)
    with ctx.engine.begin() as conn:
        expected = dict(conn.execute(select(t.cases.c.id, t.cases.c.first_response_at)).all())
        conn.execute(text("DELETE FROM alembic_version"))
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('20261122_0007')"))
        for name in ("ix_cases_opened", "ix_cases_merchant_opened", "ix_cases_closed", "ix_cases_merchant_closed",
                     "ix_orders_paid", "ix_orders_merchant_paid"):
            conn.execute(text(f"DROP INDEX {name}"))
        conn.execute(text("ALTER TABLE cases DROP COLUMN first_response_at"))
    assert any(v is not None for v in expected.values()) and any(v is None for v in expected.values())
    engine = make_engine(database.url, schema=database.schema)
    try:
        upgrade(engine, "20261130_0008")  # this migration only: the later ones are in place already
        with engine.connect() as conn:
            got = dict(conn.execute(select(t.cases.c.id, t.cases.c.first_response_at)).all())
    finally:
        engine.dispose()
    assert got == expected


@pytest.mark.parametrize("weeks", [4, 52])
def test_S1_percentiles_of_one_case_and_of_none(ctx: Context, weeks: int) -> None:
    ensure_merchant(ctx, "mA", NOW - timedelta(days=10))
    order = new_order(id="o1", merchant_id="mA", buyer_id="b1", paid_at=NOW - 50 * H, shipping_fee_fen=0,
                      items=[OrderItem("s", "T", "general", 1, 100)])
    case = open_case(order, case_id="c1", actor=Actor.BUYER, case_type=CaseType.REFUND_ONLY, reason=Reason.OTHER,
                     now=NOW - 10 * H, policy=ctx.policy, categories={})
    domain_act(order, case.id, Action.APPROVE, Actor.MERCHANT, NOW - 10 * H + timedelta(seconds=90.999999), ctx.policy)

    def cmd(uow: UnitOfWork) -> None:
        uow.tracker.add_order(order)
        ctx.clock.set(uow.conn, NOW)

    run(ctx, cmd)
    got = svc.insights(ctx, Principal("platform"), merchant_id="mA", weeks=weeks, only="times")["times"]
    assert got["measures"][0] == {"measure": "first_response", "cases": 1, "p50_seconds": 90, "p90_seconds": 90}
    ensure_merchant(ctx, "mB", NOW - timedelta(days=10))
    none = svc.insights(ctx, Principal("platform"), merchant_id="mB", weeks=weeks, only="times")["times"]
    assert none == {"cases": 0, "measures": [
        {"measure": m, "cases": 0, "p50_seconds": None, "p90_seconds": None} for m in ("first_response", "resolution")]}
