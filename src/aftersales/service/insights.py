"""Insights of a shop (S1, S3, S5): what its after-sales cases say, counted in SQL.

Four figures over a window of whole weeks (Monday 00:00 in the platform's timezone, up to now):

* ``reasons`` — cases opened per S3 category (product, logistics, service, buyer, other) and per reason; the
  category of a reason is the domain's (:func:`aftersales.domain.catalog.reason_category`), never a second table;
* ``times`` — S1 first-response time (opened → the shop's first action, ``first_response_at`` of the case) and
  resolution time (opened → closed) of the cases a person resolved only
  (:func:`aftersales.store.insights.resolved_by_a_person`: not withdrawn by the buyer, not closed with its cancelled
  order, acted on by the merchant or the platform — an E2 instant refund or a timeout approval is the system's),
  p50 and p90 (nearest rank);
* ``returns`` — per product (sku): return cases (types of :data:`RETURN_TYPES`) naming it ÷ units sold of it (units
  of the shop's orders paid in the window, not cancelled and not waiting for their group); the rate is shown with
  its sample (``units_sold``) and withheld (``rate_permille`` None) below :data:`MIN_SAMPLE_UNITS` units sold —
  ``exact_rate_permille`` keeps it for the exports, which carry the sample next to it;
* ``trend`` — cases opened and closed per week.

Counting is GROUP BY in the database. The percentiles need the durations sorted, so ``times`` reads three instants
per case of the window (not the case state); the SKUs of cases and orders live in their JSON state and are expanded
with the database's JSON table functions (``json_each`` on SQLite, ``json_each``/``json_array_elements`` on
PostgreSQL) — still one GROUP BY query each.

Who sees what (T2): a merchant its own shop only (another shop is unknown: 404); the platform any shop, or every
shop together (``merchant_id=None``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aftersales.domain.cases import RETURN_TYPES
from aftersales.domain.catalog import Reason, ReasonCategory, reason_category
from aftersales.store import insights as store
from aftersales.store import repositories as repo

from .context import Context, Principal, UnitOfWork, read
from .errors import Invalid, NotFound

#: Windows offered, in weeks.
WEEKS = (4, 12, 26, 52)
CATEGORY_ORDER = (ReasonCategory.PRODUCT, ReasonCategory.LOGISTICS, ReasonCategory.SERVICE, ReasonCategory.BUYER,
                  ReasonCategory.OTHER)
NOT_SOLD = ("cancelled", "group_pending")
#: S5: a return rate over fewer units sold than this says nothing: it is withheld (None), its counts still shown.
MIN_SAMPLE_UNITS = 20


@dataclass(frozen=True, slots=True)
class Window:
    """``weeks`` whole weeks in the platform's timezone: [start, until] (now included), ``starts`` each Monday."""

    weeks: int
    start: datetime
    until: datetime
    starts: tuple[datetime, ...]


def window(now: datetime, weeks: int, tz: str) -> Window:
    """The window of ``weeks`` weeks ending now; each week starts Monday 00:00 in ``tz`` (DST-safe)."""
    if weeks not in WEEKS:
        raise Invalid("weeks must be one of {values}", values=", ".join(map(str, WEEKS)))
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    monday = (local - timedelta(days=local.weekday())).date()
    starts = tuple(datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(now.tzinfo)
                   for d in (monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)))
    return Window(weeks, starts[0], now, starts)


def shop_scope(who: Principal, merchant_id: str | None) -> str | None:
    """The shop the caller reads: a merchant always its own (another shop: NotFound), the platform its choice."""
    who.require("merchant", "platform")
    if who.role == "merchant":
        if merchant_id not in (None, who.subject_id):
            raise NotFound("merchant", merchant_id or "")
        return who.subject_id
    return merchant_id


def shops(ctx: Context, who: Principal) -> list[dict[str, Any]]:
    """The shops the caller may pick: the platform every merchant, a merchant itself."""
    who.require("merchant", "platform")

    def q(uow: UnitOfWork) -> list[dict[str, Any]]:
        rows = store.shops(uow.conn, who.subject_id if who.role == "merchant" else None)
        return [{"id": r.id, "name": r.name} for r in rows]

    return read(ctx, q)


def _check_shop(uow: UnitOfWork, merchant_id: str | None) -> None:
    if merchant_id is not None and repo.merchant(uow.conn, merchant_id) is None:
        raise NotFound("merchant", merchant_id)


def _share(n: int, total: int) -> int:
    """``n`` of ``total`` in tenths of a percent, rounded half up (integers: no float drift in exports)."""
    return (n * 2000 + total) // (2 * total) if total else 0


# --- the four figures -------------------------------------------------------------------------------------------
def reasons(uow: UnitOfWork, merchant_id: str | None, w: Window) -> dict[str, Any]:
    """S3: cases opened in the window per reason and per category, with shares in tenths of a percent."""
    per_reason = store.reason_counts(uow.conn, merchant_id, w.start, w.until)
    total = sum(per_reason.values())
    by_category: dict[str, int] = {cat.value: 0 for cat in CATEGORY_ORDER}
    for code, n in per_reason.items():
        by_category[reason_category(Reason(code)).value] += n
    return {
        "total": total,
        "categories": [{"category": cat, "cases": n, "share_permille": _share(n, total)} for cat, n in by_category.items()],
        "reasons": [{"reason": r.value, "category": reason_category(r).value, "cases": per_reason.get(r.value, 0),
                     "share_permille": _share(per_reason.get(r.value, 0), total)} for r in Reason],
    }


def _percentile(sorted_values: list[int], p: int) -> int | None:
    """Nearest-rank percentile: the smallest value with at least ``p`` % of the values at or below it."""
    if not sorted_values:
        return None
    rank = -(-p * len(sorted_values) // 100)  # ceil without floats
    return sorted_values[max(rank, 1) - 1]


def times(uow: UnitOfWork, merchant_id: str | None, w: Window) -> dict[str, Any]:
    """S1: first-response and resolution times (seconds) of the cases opened in the window, p50 and p90.

    PostgreSQL sorts the durations itself (``percentile_disc`` is the nearest rank: the first value whose position
    reaches ``p`` × n; 0.5 and 0.9 × n are exact in binary at any n we hold, so it is ``ceil(p·n/100)`` as in
    :func:`_percentile`) over the window index alone; SQLite's durations are sorted here. PostgreSQL computes the
    percentiles sharing one sort per measure (:func:`aftersales.store.insights.time_percentiles`)."""
    if uow.conn.dialect.name == "postgresql":
        n, counts, ps = store.time_percentiles(uow.conn, merchant_id, w.start, w.until)
    else:
        rows = store.case_instants(uow.conn, merchant_id, w.start, w.until)
        response = sorted(int((r.first_response_at - r.opened_at).total_seconds()) for r in rows
                          if r.first_response_at is not None)
        resolved = sorted(int((r.closed_at - r.opened_at).total_seconds()) for r in rows if r.closed_at is not None)
        n, counts = len(rows), (len(response), len(resolved))
        ps = ((_percentile(response, 50), _percentile(response, 90)), (_percentile(resolved, 50), _percentile(resolved, 90)))
    return {"cases": n, "measures": [
        {"measure": name, "cases": k, "p50_seconds": _int(p[0]), "p90_seconds": _int(p[1])}
        for name, k, p in (("first_response", counts[0], ps[0]), ("resolution", counts[1], ps[1]))]}


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def returns(uow: UnitOfWork, merchant_id: str | None, w: Window) -> dict[str, Any]:
    """Return rate per product: return cases naming the sku ÷ units of it sold, in tenths of a percent — only over
    at least :data:`MIN_SAMPLE_UNITS` units sold (the sample size, ``units_sold``, is always shown)."""
    returned, sold = store.returns_and_sales(uow.conn, merchant_id, w.start, w.until,
                                             return_types=sorted(str(x) for x in RETURN_TYPES), not_sold=NOT_SOLD)
    items = []
    for sku in sorted(set(returned) | set(sold)):
        title, units = sold.get(sku, (None, 0))
        n = returned.get(sku, 0)
        items.append({"sku": sku, "title": title, "units_sold": units, "return_cases": n,
                      "rate_permille": _share(n, units) if units >= MIN_SAMPLE_UNITS else None,
                      # the rate over any sample (None without a unit sold): exports keep the number, with its sample
                      "exact_rate_permille": _share(n, units) if units else None})
    items.sort(key=lambda i: (-(i["rate_permille"] or 0), -i["return_cases"], i["sku"]))
    return {"items": items, "min_sample_units": MIN_SAMPLE_UNITS}


def trend(uow: UnitOfWork, merchant_id: str | None, w: Window) -> dict[str, Any]:
    """Cases opened and closed per week of the window: one query per column, each over its own window index.

    A week is [Monday, next Monday); the last one runs to now included (the manual clock stands still). PostgreSQL
    finds the week of each instant by ``width_bucket`` over the week starts (a binary search, one GROUP BY);
    SQLite sums one CASE per week."""
    counts = store.weekly_counts(uow.conn, merchant_id, w.starts, w.until)
    return {"weeks": [{"week_start": a.isoformat(), "opened": counts["opened"][i], "closed": counts["closed"][i]}
                      for i, a in enumerate(w.starts)]}


FIGURES = {"reasons": reasons, "times": times, "returns": returns, "trend": trend}


def insights(ctx: Context, who: Principal, *, merchant_id: str | None, weeks: int = 12,
             only: str | None = None) -> dict[str, Any]:
    """Every figure (or ``only`` one) of a shop — or, for the platform without ``merchant_id``, of all shops."""
    shop = shop_scope(who, merchant_id)
    if only is not None and only not in FIGURES:
        raise NotFound("figure", only)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        _check_shop(uow, shop)
        store.jit_off(uow.conn)
        w = window(uow.now, weeks, ctx.policy.timezone)
        out: dict[str, Any] = {"merchant_id": shop, "weeks": weeks, "since": w.start.isoformat(),
                               "until": w.until.isoformat()}
        for name, fn in FIGURES.items():
            if only in (None, name):
                out[name] = fn(uow, shop, w)
        return out

    return read(ctx, q)


__all__ = ["FIGURES", "MIN_SAMPLE_UNITS", "WEEKS", "Window", "insights", "shop_scope", "shops", "window"]
