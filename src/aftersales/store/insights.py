"""The queries of a shop's insights (S1, S3, S5): GROUP BY in the database, over the window indexes of migration
20261130_0008. The figures themselves (shares, percentiles of SQLite's durations, ordering) are
:mod:`aftersales.service.insights`'."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, and_, bindparam, case, exists, func, select, text
from sqlalchemy.dialects.postgresql import array

from . import tables as t


def jit_off(conn: Connection) -> None:
    """PostgreSQL: these scans are short and read the window indexes: compiling them (JIT) costs more than it saves."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")


def shops(conn: Connection, merchant_id: str | None) -> list[Any]:
    """(id, name) of every merchant, or of that one, by name."""
    m = t.merchants.c
    stmt = select(m.id, m.name).order_by(m.name, m.id)
    if merchant_id is not None:
        stmt = stmt.where(m.id == merchant_id)
    return list(conn.execute(stmt).all())


def _cases_in(merchant_id: str | None, start: datetime, until: datetime) -> list[Any]:
    c = t.cases.c
    where = [c.opened_at >= start, c.opened_at <= until]
    if merchant_id is not None:
        where.append(c.merchant_id == merchant_id)
    return where


def reason_counts(conn: Connection, merchant_id: str | None, start: datetime, until: datetime) -> dict[str, int]:
    """Cases opened in the window per reason."""
    c = t.cases.c
    return {r: int(n) for r, n in conn.execute(
        select(c.reason, func.count()).where(*_cases_in(merchant_id, start, until)).group_by(c.reason)).all()}


#: Close reasons that are no one's resolution: the buyer withdrew (``cancelled``), the order itself was cancelled.
NOT_RESOLVED = ("cancelled", "order_cancelled")


def resolved_by_a_person() -> Any:
    """S1: a case counts in the resolution time only when a person resolved it — closed, neither withdrawn by the
    buyer nor closed with its cancelled order, and acted on by the merchant or the platform. A case only the system
    handled (an instant E2 refund before shipment, an approval because the merchant's deadline ran out) is left out.
    (The ``closed`` event itself is often the system's: it closes a case once its refund settles.)"""
    c, e = t.cases.c, t.events.c
    return and_(c.closed_at.is_not(None), c.close_reason.not_in(NOT_RESOLVED),
                exists().where(e.case_id == c.id, e.actor.in_(("merchant", "platform"))))


def _seconds(interval: Any) -> Any:
    """Whole seconds of a PostgreSQL interval, truncated as ``int(timedelta.total_seconds())``."""
    return func.trunc(func.extract("epoch", interval)).cast(BigInteger)


def time_percentiles(conn: Connection, merchant_id: str | None, start: datetime,
                     until: datetime) -> tuple[int, tuple[int, int], tuple[tuple[Any, Any], tuple[Any, Any]]]:
    """PostgreSQL: (cases, (with a first response, closed), ((first response p50, p90), (resolution p50, p90))).

    ``percentile_disc`` is the nearest rank: the first value whose position reaches ``p`` × n; 0.5 and 0.9 × n are
    exact in binary at any n we hold, so it is ``ceil(p·n/100)``. The intervals are sorted as they are and only the
    two picked are turned into seconds: truncating is monotone, so the k-th smallest of the truncated values is the
    truncation of the k-th smallest interval."""
    c = t.cases.c
    resolved = case((resolved_by_a_person(), c.closed_at))  # NULL otherwise: left out of count and percentiles
    picked = [func.percentile_disc(q).within_group(col - c.opened_at).label(f"{name}{q}")
              for col, name in ((c.first_response_at, "f"), (resolved, "r")) for q in (0.5, 0.9)]
    inner = select(func.count().label("n"), func.count(c.first_response_at).label("nf"),
                   func.count(resolved).label("nr"), *picked).where(*_cases_in(merchant_id, start, until)).subquery()
    row = conn.execute(select(inner.c.n, inner.c.nf, inner.c.nr, *[_seconds(inner.c[p.name]) for p in picked])).one()
    return int(row[0]), (int(row[1]), int(row[2])), ((row[3], row[4]), (row[5], row[6]))


def case_instants(conn: Connection, merchant_id: str | None, start: datetime, until: datetime) -> list[Any]:
    """(opened_at, first_response_at, closed_at) of every case opened in the window; ``closed_at`` only of the cases
    a person resolved (:func:`resolved_by_a_person`), else None."""
    c = t.cases.c
    resolved = case((resolved_by_a_person(), c.closed_at)).label("closed_at")
    return list(conn.execute(select(c.opened_at, c.first_response_at, resolved).where(*_cases_in(merchant_id, start, until))).all())


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


def returns_and_sales(conn: Connection, merchant_id: str | None, start: datetime, until: datetime, *,
                      return_types: Sequence[str], not_sold: Sequence[str]) -> tuple[dict[str, int], dict[str, tuple[Any, int]]]:
    """Per sku: return cases naming it (cases opened in the window); (title, units sold) of the orders paid in it.

    The SKUs live in the JSON state and are expanded with the database's JSON table functions — one GROUP BY each.
    One shop: its (merchant_id, instant) index; all shops: the instant's."""
    dialect = conn.dialect.name
    common: dict[str, Any] = {"since": start, "until": until}
    if merchant_id is not None:
        common["m"] = merchant_id
    returns_sql = _RETURNS_SQL[dialect].format(shop="AND cases.merchant_id = :m" if merchant_id is not None else "")
    sold_sql = _SOLD_SQL[dialect].format(shop="AND orders.merchant_id = :m" if merchant_id is not None else "")
    returned = {r.sku: int(r.n) for r in conn.execute(
        _params(returns_sql).bindparams(bindparam("types", expanding=True)),
        {**common, "types": list(return_types)}).all()}
    sold = {r.sku: (r.title, int(r.units or 0)) for r in conn.execute(
        _params(sold_sql).bindparams(bindparam("not_sold", expanding=True)),
        {**common, "not_sold": list(not_sold)}).all()}
    return returned, sold


def weekly_counts(conn: Connection, merchant_id: str | None, starts: Sequence[datetime], until: datetime) -> dict[str, list[int]]:
    """Cases opened and closed per week (weeks start at ``starts``; the last runs to ``until`` included): one query
    per column, each over its own window index. PostgreSQL finds the week of each instant by ``width_bucket`` over
    the week starts (a binary search, one GROUP BY); SQLite sums one CASE per week."""
    c = t.cases.c
    bounds = [*starts[1:], until]
    last = len(bounds) - 1
    counts: dict[str, list[int]] = {}
    for col, name in ((c.opened_at, "opened"), (c.closed_at, "closed")):
        where: list[Any] = [col >= starts[0], col <= until]
        if merchant_id is not None:
            where.append(c.merchant_id == merchant_id)
        per_week = [0] * len(starts)
        if conn.dialect.name == "postgresql":
            bucket = func.width_bucket(col, array(starts[1:], type_=t.UtcDateTime()))  # WEEKS: at least 4
            for b, k in conn.execute(select(bucket, func.count()).where(*where).group_by(bucket)).all():
                per_week[int(b)] += int(k)
        else:
            cols = [func.sum(case((and_(col >= a, col <= b if i == last else col < b), 1), else_=0))
                    for i, (a, b) in enumerate(zip(starts, bounds, strict=True))]
            per_week = [int(v or 0) for v in conn.execute(select(*cols).where(*where)).one()]
        counts[name] = per_week
    return counts
