"""Eligibility benchmark: ``evaluate(...)`` decisions per second on one core (single process).

One decision = one call of :func:`aftersales.domain.eligibility.evaluate` returning the five options.

The workload is a population of distinct orders (``--orders-per-weight`` × the weights of ``FAMILIES``),
built through the domain itself from a small product catalogue: pending groups, unshipped and shipped
orders, delivered orders inside the no-reason window, inside the after-sales window, under warranty and
past every window (asked by the buyer and by the merchant, E7), multi-item orders with statutory and
shop exclusions, orders past the E8 cancellation limit, with an open case (E9), partially refunded, and
cancelled orders. Every order is asked about at its own instant; the population is shuffled so that
consecutive decisions concern different orders. Timing uses ``time.perf_counter`` over runs of at least
``--seconds`` each; the best and the median run are reported, overall and per family, and written to
``bench/results/eligibility.json``.

Run: ``make bench-eligibility`` or ``.venv/bin/python bench/eligibility.py [--seconds 1.0] [--runs 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aftersales.domain.cases import Action, act
from aftersales.domain.catalog import CaseType, Category, Reason, StatutoryExclusion
from aftersales.domain.eligibility import evaluate
from aftersales.domain.events import Actor
from aftersales.domain.groups import Group, open_group
from aftersales.domain.opening import open_case
from aftersales.domain.orders import Order, OrderItem, new_order
from aftersales.domain.policy import Policy

TARGET = 100_000
POLICY = Policy()
#: The instant the population is asked about ("now"), 12:00 in Asia/Shanghai; each order gets some jitter.
NOW = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)

CATEGORIES: dict[str, Category] = {
    "apparel": Category("apparel", "Apparel"),
    "home": Category("home", "Home"),
    "food": Category("food", "Fresh food", statutory_exclusion=StatutoryExclusion.PERISHABLE),
    "custom": Category("custom", "Custom-made", statutory_exclusion=StatutoryExclusion.CUSTOM_MADE),
    "underwear": Category("underwear", "Underwear", no_reason_return=False),
    "appliance": Category("appliance", "Household electrical", warranty_days=365),
    "books": Category("books", "Books", after_sales_days=30),
}
RETURNABLE = ("apparel", "home", "books")
EXCLUDED = ("food", "custom", "underwear")


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    title: str
    category: str
    price_fen: int


def catalogue(rng: random.Random) -> dict[str, list[Product]]:
    """Forty products per category, prices between 9.90 and 399 CNY (appliances up to 2999)."""
    out: dict[str, list[Product]] = {}
    for code in CATEGORIES:
        top = 299_900 if code == "appliance" else 39_900
        out[code] = [Product(f"{code}-{n:03d}", f"{code.title()} {n}", code, rng.randrange(990, top, 10)) for n in range(40)]
    return out


@dataclass(frozen=True, slots=True)
class Ask:
    """One decision to make: an order, who asks, when, and its group if any."""

    family: str
    order: Order
    actor: Actor
    now: datetime
    group: Group | None = None


class Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.products = catalogue(self.rng)
        self.n = 0

    def items(self, cats: tuple[str, ...], lines: int, *, confirmed: bool = False) -> list[OrderItem]:
        chosen: dict[str, Product] = {}
        while len(chosen) < lines:
            p = self.rng.choice(self.products[self.rng.choice(cats)])
            chosen[p.sku] = p
        return [OrderItem(sku=p.sku, title=p.title, category=p.category, quantity=self.rng.choice((1, 1, 1, 2, 3)),
                          unit_price_fen=p.price_fen, exclusion_confirmed=confirmed) for p in chosen.values()]

    def order(self, items: list[OrderItem], paid_at: datetime, *, group: bool = False) -> Order:
        self.n += 1
        return new_order(id=f"o{self.n}", merchant_id=f"m{self.n % 50}", buyer_id=f"b{self.n}", paid_at=paid_at,
                         shipping_fee_fen=self.rng.choice((0, 0, 600, 800, 1200)), items=items,
                         return_shipping_insured=self.rng.random() < 0.3, group_id=f"g{self.n}" if group else None)

    def jitter(self, hours: float) -> timedelta:
        return timedelta(seconds=self.rng.uniform(0, hours * 3600))

    def delivered(self, items: list[OrderItem], days_ago: tuple[float, float]) -> Order:
        delivered_at = NOW - timedelta(days=self.rng.uniform(*days_ago))
        order = self.order(items, delivered_at - timedelta(days=2) - self.jitter(24))
        order.ship(Actor.MERCHANT, "SF", f"SF{self.n}", delivered_at - timedelta(days=1) - self.jitter(12))
        order.deliver(Actor.SYSTEM, delivered_at, delivered_at)
        return order

    def now(self) -> datetime:
        return NOW + self.jitter(2)


def _fam_group_pending(b: Builder) -> Ask:
    order = b.order(b.items(RETURNABLE, 1), NOW - b.jitter(20), group=True)
    group = open_group(id=f"grp{b.n}", merchant_id=order.merchant_id, size=b.rng.choice((2, 3, 5)),
                       auto_complete=b.rng.random() < 0.5, first=order, policy=POLICY)
    return Ask("group_pending", order, Actor.BUYER, b.now(), group)


def _fam_unshipped(b: Builder) -> Ask:
    return Ask("unshipped", b.order(b.items(RETURNABLE + EXCLUDED, b.rng.choice((1, 1, 2))), NOW - b.jitter(40)), Actor.BUYER, b.now())


def _fam_shipped(b: Builder) -> Ask:
    order = b.order(b.items(RETURNABLE + EXCLUDED, b.rng.choice((1, 1, 2, 3))), NOW - timedelta(days=2) - b.jitter(24))
    order.ship(Actor.MERCHANT, "YTO", f"YT{b.n}", NOW - b.jitter(30))
    return Ask("shipped", order, Actor.BUYER, b.now())


def _fam_no_reason_window(b: Builder) -> Ask:
    return Ask("delivered_no_reason_window", b.delivered(b.items(RETURNABLE, b.rng.choice((1, 1, 2))), (0.1, 6)), Actor.BUYER, b.now())


def _fam_after_sales_window(b: Builder) -> Ask:
    return Ask("delivered_after_sales_window", b.delivered(b.items(RETURNABLE, b.rng.choice((1, 2))), (8.5, 14)), Actor.BUYER, b.now())


def _fam_exclusions(b: Builder) -> Ask:
    items = b.items(RETURNABLE, 1) + b.items(EXCLUDED, b.rng.choice((1, 2)), confirmed=b.rng.random() < 0.7)
    return Ask("multi_item_exclusions", b.delivered(items, (0.1, 6)), Actor.BUYER, b.now())


def _fam_all_excluded(b: Builder) -> Ask:
    return Ask("all_items_excluded", b.delivered(b.items(("food", "custom"), b.rng.choice((1, 2))), (0.1, 6)), Actor.BUYER, b.now())


def _fam_warranty(b: Builder) -> Ask:
    return Ask("delivered_warranty", b.delivered(b.items(("appliance",), 1), (20, 300)), Actor.BUYER, b.now())


def _fam_expired_buyer(b: Builder) -> Ask:
    return Ask("delivered_expired_buyer", b.delivered(b.items(RETURNABLE, b.rng.choice((1, 2))), (31, 90)), Actor.BUYER, b.now())


def _fam_expired_merchant(b: Builder) -> Ask:
    return Ask("delivered_expired_merchant", b.delivered(b.items(RETURNABLE, b.rng.choice((1, 2))), (31, 90)), Actor.MERCHANT, b.now())


def _fam_e8_limit(b: Builder) -> Ask:
    order = b.delivered(b.items(RETURNABLE, 1), (3, 6))
    at = order.delivered_at or NOW
    for n in range(POLICY.max_buyer_cancellations):
        at += timedelta(hours=1)
        open_case(order, case_id=f"c{b.n}-{n}", actor=Actor.BUYER, case_type=CaseType.RETURN_REFUND, reason=Reason.NO_REASON,
                  now=at, policy=POLICY, categories=CATEGORIES)
        act(order, f"c{b.n}-{n}", Action.CANCEL, Actor.BUYER, at, POLICY)
    return Ask("after_e8_limit", order, Actor.BUYER, b.now())


def _fam_case_open(b: Builder) -> Ask:
    order = b.delivered(b.items(RETURNABLE, b.rng.choice((1, 2))), (1, 6))
    open_case(order, case_id=f"c{b.n}", actor=Actor.BUYER, case_type=CaseType.EXCHANGE, reason=Reason.QUALITY_PROBLEM,
              now=NOW - timedelta(hours=6), policy=POLICY, categories=CATEGORIES)
    return Ask("case_open", order, Actor.BUYER, b.now())


def _fam_partially_refunded(b: Builder) -> Ask:
    order = b.delivered(b.items(RETURNABLE, 2), (1, 5))
    at, sku = NOW - timedelta(hours=12), order.items[0].sku
    open_case(order, case_id=f"c{b.n}", actor=Actor.BUYER, case_type=CaseType.REFUND_ONLY, reason=Reason.QUALITY_PROBLEM,
              now=at, policy=POLICY, categories=CATEGORIES, items={sku: 1})
    act(order, f"c{b.n}", Action.OFFER_PARTIAL_REFUND, Actor.MERCHANT, at, POLICY, refund_fen=min(500, order.items[0].unit_price_fen))
    act(order, f"c{b.n}", Action.ACCEPT_OFFER, Actor.BUYER, at, POLICY)
    order.settle_refund(order.refunds[0].key, at)
    return Ask("partially_refunded", order, Actor.BUYER, b.now())


def _fam_cancelled(b: Builder) -> Ask:
    order = b.order(b.items(RETURNABLE, 1), NOW - timedelta(days=3), group=True)
    group = open_group(id=f"grp{b.n}", merchant_id=order.merchant_id, size=3, auto_complete=False, first=order, policy=POLICY)
    group.expire([order], group.expires_at)
    return Ask("cancelled", order, Actor.BUYER, b.now(), group)


#: family → (builder, weight: decisions per 100 in the mix).
FAMILIES: dict[str, tuple[Callable[[Builder], Ask], int]] = {
    "group_pending": (_fam_group_pending, 8),
    "unshipped": (_fam_unshipped, 13),
    "shipped": (_fam_shipped, 12),
    "delivered_no_reason_window": (_fam_no_reason_window, 20),
    "delivered_after_sales_window": (_fam_after_sales_window, 10),
    "multi_item_exclusions": (_fam_exclusions, 9),
    "all_items_excluded": (_fam_all_excluded, 3),
    "delivered_warranty": (_fam_warranty, 4),
    "delivered_expired_buyer": (_fam_expired_buyer, 6),
    "delivered_expired_merchant": (_fam_expired_merchant, 2),
    "after_e8_limit": (_fam_e8_limit, 3),
    "case_open": (_fam_case_open, 5),
    "partially_refunded": (_fam_partially_refunded, 3),
    "cancelled": (_fam_cancelled, 2),
}


def population(orders_per_weight: int, seed: int) -> list[Ask]:
    b = Builder(seed)
    asks = [build(b) for build, weight in FAMILIES.values() for _ in range(weight * orders_per_weight)]
    b.rng.shuffle(asks)
    return asks


Work = list[tuple[Order, Actor, datetime, Group | None]]


def _time(work: Work, seconds: float) -> tuple[int, float, float]:
    """Evaluate the whole population repeatedly for at least ``seconds`` (wall clock, ``time.perf_counter``).

    Returns (decisions, wall seconds, CPU seconds of this process)."""
    policy, categories, ev, clock = POLICY, CATEGORIES, evaluate, time.perf_counter
    n = 0
    cpu = time.process_time()
    start = clock()
    deadline = start + seconds
    while True:
        for order, actor, now, group in work:
            ev(order, actor=actor, now=now, policy=policy, categories=categories, group=group)
        n += len(work)
        end = clock()
        if end >= deadline:
            return n, end - start, time.process_time() - cpu


def measure(asks: list[Ask], seconds: float, runs: int) -> dict[str, Any]:
    """Decisions per wall-clock second (the figure the target is about) and per CPU second of this process
    (the same unless the machine is busy with something else: then the wall figure drops, the CPU one does not)."""
    work: Work = [(a.order, a.actor, a.now, a.group) for a in asks]
    _time(work, min(0.3, seconds))  # warm-up
    rates, cpu_rates = [], []
    for _ in range(runs):
        n, wall, cpu = _time(work, seconds)
        rates.append(n / wall)
        cpu_rates.append(n / cpu if cpu > 0 else 0.0)
    return {"runs": [round(r) for r in rates], "best": round(max(rates)), "median": round(statistics.median(rates)),
            "per_cpu_second": {"runs": [round(r) for r in cpu_rates], "best": round(max(cpu_rates)),
                               "median": round(statistics.median(cpu_rates))}}


def _outcome(ask: Ask) -> str:
    e = evaluate(ask.order, actor=ask.actor, now=ask.now, policy=POLICY, categories=CATEGORIES, group=ask.group)
    assert len(e.options) == len(CaseType), ask.family
    return " ".join(f"{o.type}:{o.rule}{'+' if o.allowed else '-'}" for o in e.options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="eligibility decisions per second on one core")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum length of each timed run (default 1.0)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs over the whole population (default 5)")
    parser.add_argument("--orders-per-weight", type=int, default=40,
                        help="orders built per unit of family weight (default 40, i.e. 4000 distinct orders)")
    parser.add_argument("--family-seconds", type=float, default=0.5,
                        help="minimum run length per family for the per-family figures; 0 skips them (default 0.5)")
    parser.add_argument("--seed", type=int, default=20260320)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "eligibility.json")
    args = parser.parse_args(argv)

    asks = population(args.orders_per_weight, args.seed)
    outcomes: dict[str, Counter[str]] = {}
    for ask in asks:
        outcomes.setdefault(ask.family, Counter())[_outcome(ask)] += 1

    overall = measure(asks, args.seconds, args.runs)
    per_family: dict[str, int] = {}
    if args.family_seconds > 0:
        for family in FAMILIES:
            per_family[family] = measure([a for a in asks if a.family == family], args.family_seconds, 1)["best"]

    print(f"eligibility.evaluate on one core: {len(asks)} distinct orders in {len(FAMILIES)} families "
          f"(Python {sys.version.split()[0]}, {platform.machine()})")
    width = max(map(len, FAMILIES))
    for family, (_, weight) in FAMILIES.items():
        rate = f"{per_family[family]:>10,}/s" if family in per_family else ""
        common = outcomes[family].most_common(1)[0][0]
        print(f"  {family:<{width}} {weight:>3}%  {rate}  e.g. {common}")
    met = overall["best"] >= TARGET
    cpu = overall["per_cpu_second"]
    print(f"mix: best {overall['best']:,} decisions/s, median {overall['median']:,} "
          f"(runs: {', '.join(f'{r:,}' for r in overall['runs'])}); target {TARGET:,}/s {'met' if met else 'NOT met'}")
    print(f"     per CPU second of this process: best {cpu['best']:,}, median {cpu['median']:,} "
          f"(differs from the above when other processes compete for the core)")

    result = {
        "benchmark": "aftersales.domain.eligibility.evaluate",
        "unit": "decisions/s",
        "target": TARGET,
        "met": met,
        "mix": overall,
        "per_family_best": per_family,
        "families": {f: {"weight_percent": w, "outcomes": dict(outcomes[f])} for f, (_, w) in FAMILIES.items()},
        "distinct_orders": len(asks),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
