"""The case search index (S1): what a shop's agent may type to find a case, as prefix-searchable terms.

Every order has its terms in ``search_terms`` — its id, the buyer's id, each SKU, each product title and the words of
it, the order's tracking number, and for each of its cases the case id and the return and replacement tracking
numbers — lower-cased, under its merchant. A search is one range scan of the ``(merchant_id, term)`` primary key:
``term >= q AND term < q + U+10FFFF`` (a prefix of the term, in code-point order: the column's collation is "C" on
PostgreSQL and SQLite compares bytes). Terms are only ever added (an old tracking number stays findable); the caller
checks each hit against the case as it is now, with :func:`matches`, so a stale term costs a row, never a wrong hit.

A title written without spaces (Chinese) is also indexed by each of its suffixes, so "茶壶" finds "景德镇青瓷茶壶".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from aftersales.domain.orders import Order

from . import tables as t
from .driver import Pipeline, executemany

MAX_TERM = 64
#: At most this many suffixes of a title word without spaces (a long Chinese title).
MAX_SUFFIXES = 32
#: Index rows read per order wanted: an order may match a prefix by a few of its terms (a title and its first word).
ROWS_PER_ORDER = 4
#: The last code point: every string with a given prefix sorts before ``prefix + TOP``.
TOP = "\U0010ffff"


@lru_cache(maxsize=1 << 16)
def _words(title: str) -> frozenset[str]:
    """A title and its words (cached: a shop's orders name the same products again and again)."""
    words = {title, *title.split()}
    out = set(words)
    for w in words:
        if not w.isascii():  # a script written without spaces: every suffix starts a findable word
            out.update(w[i:] for i in range(1, min(len(w), MAX_SUFFIXES)))
    return frozenset(out)


def terms(order_id: str, buyer_id: str, tracking_no: str | None, items: Iterable[tuple[str | None, str | None]],
          cases: Iterable[tuple[str, str | None, str | None]]) -> frozenset[str]:
    """The search terms of an order: ``items`` as (sku, title), ``cases`` as (id, return tracking, replacement
    tracking). The one definition of what is findable, used by the writer, the migration and the matcher."""
    values: set[str] = {order_id, buyer_id}
    if tracking_no:
        values.add(tracking_no)
    for sku, title in items:
        if sku:
            values.add(sku)
        if title:
            values |= _words(title)
    for case_id, returned, replaced in cases:
        values.add(case_id)
        values.update(v for v in (returned, replaced) if v)
    return frozenset(v.strip().lower()[:MAX_TERM] for v in values if v and v.strip())


def order_terms(order: Order) -> frozenset[str]:
    """:func:`terms` of an order aggregate with its cases."""
    return terms(order.id, order.buyer_id, order.tracking_no, ((i.sku, i.title) for i in order.items),
                 ((c.id, c.return_tracking_no, c.replacement_tracking_no) for c in order.cases))


def state_terms(order_id: str, order_state: Mapping[str, Any], case_states: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """:func:`terms` of an order as stored (its JSON state and its cases' JSON states)."""
    return terms(order_id, str(order_state.get("buyer_id") or ""), order_state.get("tracking_no"),
                 ((i.get("sku"), i.get("title")) for i in order_state.get("items") or []),
                 ((str(c.get("id")), c.get("return_tracking_no"), c.get("replacement_tracking_no")) for c in case_states))


def rows(merchant_id: str, order_id: str, new: Iterable[str]) -> list[dict[str, Any]]:
    return [{"merchant_id": merchant_id, "term": term, "order_id": order_id} for term in sorted(new)]


def add(conn: Connection, batch: list[dict[str, Any]], q: Pipeline | None = None) -> None:
    """Insert terms; one already there is left as it is (two units of work may add the same). ``q``: sent in the
    pipeline of the unit of work's flush (store/driver.py)."""
    if not batch:
        return
    stmt = _add_statement(conn.dialect.name == "postgresql")
    if q is not None:
        q.send(stmt, batch)
    else:
        executemany(conn, stmt, batch)


@cache
def _add_statement(pg: bool) -> Any:
    return (postgresql if pg else sqlite).insert(t.search_terms).on_conflict_do_nothing()


def order_ids(conn: Connection, merchant_id: str, prefix: str, *, limit: int) -> list[str]:
    """The shop's orders with a term starting with ``prefix`` (lower-case), at most ``limit`` of them."""
    s = t.search_terms.c
    # In index order, so that the scan stops after the rows it needs (a DISTINCT would read the whole range first:
    # 0.7 s for a title word of 44,000 orders at 5 million cases); an order matching by several terms is kept once.
    stmt = (select(s.order_id).where(s.merchant_id == merchant_id, s.term >= prefix, s.term < prefix + TOP)
            .order_by(s.term, s.order_id).limit(limit * ROWS_PER_ORDER))
    return list(dict.fromkeys(r.order_id for r in conn.execute(stmt).all()))[:limit]
