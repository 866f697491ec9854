"""Insights of a shop (S1, S3, S5): what its after-sales cases say, counted in SQL.

Four figures over a window of whole weeks (Monday 00:00 in the platform's timezone, up to now):

* ``reasons`` — cases opened per S3 category (product, logistics, service, buyer, other) and per reason; the
  category of a reason is the domain's (:func:`aftersales.domain.catalog.reason_category`), never a second table;
* ``times`` — S1 first-response time (opened → the shop's first action, ``first_response_at`` of the case) and
  resolution time (opened → closed), p50 and p90 (nearest rank);
* ``returns`` — per product (sku): return cases (types of :data:`RETURN_TYPES`) naming it ÷ units sold of it (units
  of the shop's orders paid in the window, not cancelled and not waiting for their group);
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

from sqlalchemy import BigInteger, and_, bindparam, case, func, select, text
from sqlalchemy.dialects.postgresql import array

from aftersales.domain.cases import RETURN_TYPES
from aftersales.domain.catalog import Reason, ReasonCategory, reason_category
from aftersales.store import repositories as repo
from aftersales.store import tables as t

from .context import Context, Principal, UnitOfWork, read
from .errors import Invalid, NotFound

#: Windows offered, in weeks.
WEEKS = (4, 12, 26, 52)
CATEGORY_ORDER = (ReasonCategory.PRODUCT, ReasonCategory.LOGISTICS, ReasonCategory.SERVICE, ReasonCategory.BUYER,
                  ReasonCategory.OTHER)
NOT_SOLD = ("cancelled", "group_pending")


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
        raise Invalid(f"weeks must be one of {', '.join(map(str, WEEKS))}")
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
        m = t.merchants.c
        stmt = select(m.id, m.name).order_by(m.name, m.id)
        if who.role == "merchant":
            stmt = stmt.where(m.id == who.subject_id)
        return [{"id": r.id, "name": r.name} for r in uow.conn.execute(stmt).all()]

    return read(ctx, q)


def _check_shop(uow: UnitOfWork, merchant_id: str | None) -> None:
    if merchant_id is not None and repo.merchant(uow.conn, merchant_id) is None:
        raise NotFound("merchant", merchant_id)


def _share(n: int, total: int) -> int:
    """``n`` of ``total`` in tenths of a percent, rounded half up (integers: no float drift in exports)."""
    return (n * 2000 + total) // (2 * total) if total else 0


def _cases_in(merchant_id: str | None, w: Window) -> list[Any]:
    c = t.cases.c
    where = [c.opened_at >= w.start, c.opened_at <= w.until]
    if merchant_id is not None:
        where.append(c.merchant_id == merchant_id)
    return where


# --- the four figures -------------------------------------------------------------------------------------------
def reasons(uow: UnitOfWork, merchant_id: str | None, w: Window) -> dict[str, Any]:
    """S3: cases opened in the window per reason and per category, with shares in tenths of a percent."""
    c = t.cases.c
    per_reason = {r: int(n) for r, n in uow.conn.execute(
        select(c.reason, func.count()).where(*_cases_in(merchant_id, w)).group_by(c.reason)).all()}
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


def _seconds(interval: Any) -> Any:
    """Whole seconds of a PostgreSQL interval, truncated as ``int(timedelta.total_seconds())``."""
    return func.trunc(func.extract("epoch", interval)).cast(BigInteger)


def times(uow: UnitOfWork, merchant_id: str | None, w: Window) -> dict[str, Any]:
    """S1: first-response and resolution times (seconds) of the cases opened in the window, p50 and p90.

    PostgreSQL sorts the durations itself (``percentile_disc`` is the nearest rank: the first value whose position
    reaches ``p`` × n; 0.5 and 0.9 × n are exact in binary at any n we hold, so it is ``ceil(p·n/100)`` as in
    :func:`_percentile`) over the window index alone; SQLite's durations are sorted here. PostgreSQL computes the
    percentiles sharing one sort per measure."""
    c = t.cases.c
    if uow.conn.dialect.name == "postgresql":
        # The intervals are sorted as they are and only the two picked are turned into seconds: truncating is
        # monotone, so the k-th smallest of the truncated values is the truncation of the k-th smallest interval.
        picked = [func.percentile_disc(q).within_group(col - c.opened_at).label(f"{name}{q}")
                  for col, name in ((c.first_response_at, "f"), (c.closed_at, "r")) for q in (0.5, 0.9)]
        inner = select(func.count().label("n"), func.count(c.first_response_at).label("nf"),
                       func.count(c.closed_at).label("nr"), *picked).where(*_cases_in(merchant_id, w)).subquery()
        row = uow.conn.execute(select(inner.c.n, inner.c.nf, inner.c.nr,
                                      *[_seconds(inner.c[p.name]) for p in picked])).one()
        n, counts, ps = int(row[0]), (int(row[1]), int(row[2])), ((row[3], row[4]), (row[5], row[6]))
    else:
        rows = uow.conn.execute(select(c.opened_at, c.first_response_at, c.closed_at).where(*_cases_in(merchant_id, w))).all()
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


_RETURNS_SQL = {
    "sqlite": ("SELECT je.key AS sku, COUNT(DISTINCT cases.id) AS n FROM cases JOIN json_each(cases.state, '$.items') AS je "
               "WHERE cases.type IN :types AND cases.opened_at >= :since AND cases.opened_at <= :until "
               "{shop} GROUP BY je.key"),
    "postgresql": ("SELECT je.key AS sku, COUNT(DISTINCT cases.id) AS n FROM cases "
                   "CROSS JOIN LATERAL json_each(cases.state -> 'items') AS je "
                   "WHERE cases.type IN :types AND cases.opened_at >= :since AND cases.opened_at <= :until "
                   "{shop} GROUP BY je.key"),
}
_SOLD_SQL = {
    "sqlite": ("SELECT json_extract(je.value, '$.sku') AS sku, MAX(json_extract(je.value, '$.title')) AS title, "
               "SUM(json_extract(je.value, '$.quantity')) AS units FROM orders JOIN json_each(orders.state, '$.items') AS je "
               "WHERE orders.status NOT IN :not_sold AND orders.paid_at >= :since AND orders.paid_at <= :until "
               "{shop} GROUP BY json_extract(je.value, '$.sku')"),
    "postgresql": ("SELECT je.value ->> 'sku' AS sku, MAX(je.value ->> 'title') AS title, "
                   "SUM(CAST(je.value ->> 'quantity' AS BIGINT)) AS units FROM orders "
                   "CROSS JOIN LATERAL json_array_elements(orders.state -> 'items') AS je "
                   "WHERE orders.status NOT IN :not_sold AND orders.paid_at >= :since AND orders.paid_at <= :until "
                   "{shop} GROUP BY je.value ->> 'sku'"),
}


def _params(sql: str) -> Any:
    return text(sql).bindparams(bindparam("since", type_=t.UtcDateTime()), bindparam("until", type_=t.UtcDateTime()))


def returns(uow: UnitOfWork, merchant_id: str | None, w: Window) -> dict[str, Any]:
    """Return rate per product: return cases naming the sku ÷ units of it sold, in tenths of a percent."""
    dialect = uow.conn.dialect.name
    common: dict[str, Any] = {"since": w.start, "until": w.until}
    if merchant_id is not None:  # one shop: its (merchant_id, instant) index; all shops: the instant's
        common["m"] = merchant_id
    returns_sql = _RETURNS_SQL[dialect].format(shop="AND cases.merchant_id = :m" if merchant_id is not None else "")
    sold_sql = _SOLD_SQL[dialect].format(shop="AND orders.merchant_id = :m" if merchant_id is not None else "")
    returned = {r.sku: int(r.n) for r in uow.conn.execute(
        _params(returns_sql).bindparams(bindparam("types", expanding=True)),
        {**common, "types": sorted(str(x) for x in RETURN_TYPES)}).all()}
    sold = {r.sku: (r.title, int(r.units or 0)) for r in uow.conn.execute(
        _params(sold_sql).bindparams(bindparam("not_sold", expanding=True)),
        {**common, "not_sold": list(NOT_SOLD)}).all()}
    items = []
    for sku in sorted(set(returned) | set(sold)):
        title, units = sold.get(sku, (None, 0))
        n = returned.get(sku, 0)
        items.append({"sku": sku, "title": title, "units_sold": units, "return_cases": n,
                      "rate_permille": _share(n, units) if units else None})
    items.sort(key=lambda i: (-(i["rate_permille"] or 0), -i["return_cases"], i["sku"]))
    return {"items": items}


def trend(uow: UnitOfWork, merchant_id: str | None, w: Window) -> dict[str, Any]:
    """Cases opened and closed per week of the window: one query per column, each over its own window index.

    A week is [Monday, next Monday); the last one runs to now included (the manual clock stands still). PostgreSQL
    finds the week of each instant by ``width_bucket`` over the week starts (a binary search, one GROUP BY);
    SQLite sums one CASE per week."""
    c = t.cases.c
    bounds = [*w.starts[1:], w.until]
    last = len(bounds) - 1
    counts: dict[str, list[int]] = {}
    for col, name in ((c.opened_at, "opened"), (c.closed_at, "closed")):
        where: list[Any] = [col >= w.start, col <= w.until]
        if merchant_id is not None:
            where.append(c.merchant_id == merchant_id)
        per_week = [0] * len(w.starts)
        if uow.conn.dialect.name == "postgresql":
            bucket = func.width_bucket(col, array(w.starts[1:], type_=t.UtcDateTime()))  # WEEKS: at least 4
            for b, k in uow.conn.execute(select(bucket, func.count()).where(*where).group_by(bucket)).all():
                per_week[int(b)] += int(k)
        else:
            cols = [func.sum(case((and_(col >= a, col <= b if i == last else col < b), 1), else_=0))
                    for i, (a, b) in enumerate(zip(w.starts, bounds, strict=True))]
            per_week = [int(v or 0) for v in uow.conn.execute(select(*cols).where(*where)).one()]
        counts[name] = per_week
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
        if uow.conn.dialect.name == "postgresql":
            # These scans are short and read the window indexes: compiling them (JIT) costs more than it saves.
            uow.conn.exec_driver_sql("SET LOCAL jit = off")
        w = window(uow.now, weeks, ctx.policy.timezone)
        out: dict[str, Any] = {"merchant_id": shop, "weeks": weeks, "since": w.start.isoformat(),
                               "until": w.until.isoformat()}
        for name, fn in FIGURES.items():
            if only in (None, name):
                out[name] = fn(uow, shop, w)
        return out

    return read(ctx, q)


__all__ = ["FIGURES", "WEEKS", "Window", "insights", "shop_scope", "shops", "window"]
