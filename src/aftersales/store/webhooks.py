"""The SQL of webhooks: subscriptions, the one-row-per-event outbox, deliveries and their attempts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, and_, bindparam, delete, exists, func, insert, or_, select, text, update
from sqlalchemy.orm import aliased

from . import driver
from . import tables as t
from . import terms as terms_store

s, o, d, a = t.webhook_subscriptions, t.webhook_outbox, t.webhook_deliveries, t.webhook_attempts
#: PostgreSQL advisory lock taken by the fan-out: one fan-out at a time keeps deliveries in outbox (event) order.
FAN_OUT_LOCK = 0x57EB400C


# --- subscriptions -------------------------------------------------------------------------------------------
def merchant_exists(conn: Connection, merchant_id: str) -> bool:
    return conn.execute(select(t.merchants.c.id).where(t.merchants.c.id == merchant_id)).first() is not None


def count_kept(conn: Connection, merchant_id: str | None) -> int:
    """Subscriptions of one owner (a merchant's, or the platform-wide ones) not deleted — disabled ones count."""
    owner = s.c.merchant_id.is_(None) if merchant_id is None else s.c.merchant_id == merchant_id
    return int(conn.execute(select(func.count()).select_from(s).where(owner, or_(s.c.disabled_reason.is_(None),
                                                                               s.c.disabled_reason != "deleted"))).scalar_one())


def lock_owner(conn: Connection, merchant_id: str | None) -> None:
    """Serialise subscription changes of one merchant (PostgreSQL: its row, FOR UPDATE) so that two concurrent
    creations cannot both pass the limit. SQLite has one writer at a time already."""
    if conn.dialect.name == "postgresql" and merchant_id is not None:
        conn.execute(select(t.merchants.c.id).where(t.merchants.c.id == merchant_id).with_for_update())
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": FAN_OUT_LOCK + 1})


def insert_subscription(conn: Connection, **values: Any) -> None:
    conn.execute(insert(s).values(**values))


def subscription(conn: Connection, sub_id: str) -> Any:
    return conn.execute(select(s).where(s.c.id == sub_id)).first()


def subscriptions(conn: Connection, *, merchant_id: str | None, everyone: bool, after: str | None, limit: int) -> Sequence[Any]:
    """Subscriptions not deleted, by id: one merchant's, or (``everyone``) all of them."""
    stmt = select(s).where(or_(s.c.disabled_reason.is_(None), s.c.disabled_reason != "deleted"))
    if not everyone:
        stmt = stmt.where(s.c.merchant_id == merchant_id)
    if after is not None:
        stmt = stmt.where(s.c.id > after)
    return conn.execute(stmt.order_by(s.c.id).limit(limit + 1)).all()


def set_state(conn: Connection, sub_id: str, *, active: bool, disabled_at: datetime | None, reason: str | None) -> None:
    conn.execute(update(s).where(s.c.id == sub_id).values(active=active, disabled_at=disabled_at, disabled_reason=reason))


def any_subscriber(conn: Connection, merchants: Iterable[str]) -> bool:
    """Is there an active subscription that may want events of these merchants (theirs, or platform-wide)?

    Inside :func:`answered` for these merchants: the answer the flush read in its own round trip."""
    wanted = sorted(set(merchants))
    known = conn.info.get(_ANSWERED)
    if known is not None and known[0] == wanted:
        return bool(known[1])
    if len(wanted) == 1:  # a unit of work's usual case: a statement built once, sent through the driver
        return driver.execute(conn, _ANY_SUBSCRIBER_OF_ONE, {"merchant": wanted[0]}).first() is not None
    return conn.execute(_ANY_SUBSCRIBER, {"merchants": wanted}).first() is not None


_ANSWERED = "aftersales.any_subscriber"


def ask_any_subscriber(q: driver.Pipeline, merchants: Iterable[str]) -> Callable[[], bool] | None:
    """:func:`any_subscriber` for one merchant, answered in the pipeline ``q`` (the flush's round trip, before the
    events it writes are handed to the outbox hook): its answer once ``q`` has been synced. None: not asked (several
    merchants, or statements sent one by one — the hook asks itself).

    PostgreSQL keeps a copy of the active subscriptions per process, under the change mark they were read with
    (migration 0028: any change of a subscription moves the mark, store/terms.py): while the mark this transaction
    read is the copy's, the answer is the copy's and no statement is sent; otherwise the subscriptions are read
    with the mark in force, in the same round trip, and kept."""
    wanted = sorted(set(merchants))
    if len(wanted) != 1 or not q.together:
        return None
    merchant = wanted[0]
    mark = terms_store.known_mark(q.conn)
    if mark is None:  # no mark read by this transaction: the one question
        pending = q.execute(_ANY_SUBSCRIBER_OF_ONE, {"merchant": merchant})
        return lambda: bool(pending.all())
    kept = _KEPT.get(q.conn.engine)
    if kept is not None and kept.mark == mark:
        answer = kept.wants(merchant)
        return lambda: answer
    engine = q.conn.engine
    marked = q.execute(_MARKED_SUBSCRIBERS)

    def read() -> bool:
        rows = marked.all()
        if not rows:  # the mark's row is gone: whoever wants them sorts it out
            return True
        copy = _Subscribers(int(rows[0].terms_mark), any(r.id is not None and r.merchant_id is None for r in rows),
                            frozenset(r.merchant_id for r in rows if r.merchant_id is not None))
        _KEPT[engine] = copy
        return copy.wants(merchant)
    return read


@dataclass(frozen=True, slots=True)
class _Subscribers:
    """Who had an active subscription when the change mark was ``mark``: anybody platform-wide, which merchants."""

    mark: int
    platform_wide: bool
    merchants: frozenset[str]

    def wants(self, merchant: str) -> bool:
        return self.platform_wide or merchant in self.merchants


#: Per engine (a database): the active subscriptions as of a change mark (PostgreSQL).
_KEPT: WeakKeyDictionary[Any, _Subscribers] = WeakKeyDictionary()
#: The active subscriptions with the change mark in force, in one statement (one row with NULLs when there are none).
_MARKED_SUBSCRIBERS = (select(t.change_marks.c.mark.label("terms_mark"), s.c.id, s.c.merchant_id)
                       .select_from(t.change_marks.outerjoin(s, s.c.active.is_(True)))
                       .where(t.change_marks.c.name == "terms"))


@contextmanager
def answered(conn: Connection, merchants: Iterable[str], answer: bool) -> Iterator[None]:
    """Within the block, :func:`any_subscriber` of ``merchants`` on ``conn`` is ``answer`` (read by the same
    transaction just before, :func:`ask_any_subscriber`) without asking the database again."""
    conn.info[_ANSWERED] = (sorted(set(merchants)), answer)
    try:
        yield
    finally:
        conn.info.pop(_ANSWERED, None)


def any_active_subscription(conn: Connection) -> bool:
    """Is there any active subscription at all (the bulk import asks once whether its events may be wanted)?"""
    return conn.execute(select(s.c.id).where(s.c.active.is_(True)).limit(1)).first() is not None


#: Built once: asked by every unit of work that writes events (the outbox hook).
_ANY_SUBSCRIBER = select(s.c.id).where(s.c.active.is_(True), or_(s.c.merchant_id.is_(None),
                                                                  s.c.merchant_id.in_(bindparam("merchants", expanding=True)))).limit(1)
_ANY_SUBSCRIBER_OF_ONE = select(s.c.id).where(s.c.active.is_(True), or_(s.c.merchant_id.is_(None),
                                                                         s.c.merchant_id == bindparam("merchant"))).limit(1)


# --- outbox and fan-out --------------------------------------------------------------------------------------
def add_to_outbox(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(insert(o), rows)


def outbox_batch(conn: Connection, limit: int) -> Sequence[Any]:
    """The oldest outbox rows, taken by one fan-out at a time (PostgreSQL: a transaction-scoped advisory lock;
    SQLite: its single writer) so that deliveries are numbered in event order."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": FAN_OUT_LOCK})
    return conn.execute(select(o).order_by(o.c.id).limit(limit)).all()


def active_subscriptions(conn: Connection, merchants: Iterable[str]) -> Sequence[Any]:
    return conn.execute(select(s.c.id, s.c.merchant_id, s.c.event_types)
                        .where(s.c.active.is_(True), or_(s.c.merchant_id.is_(None), s.c.merchant_id.in_(set(merchants))))
                        .order_by(s.c.id)).all()


def add_deliveries(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(d), rows)


def remove_from_outbox(conn: Connection, ids: list[int]) -> None:
    conn.execute(delete(o).where(o.c.id.in_(ids)))


# --- deliveries ----------------------------------------------------------------------------------------------
def delivery_page(conn: Connection, sub_id: str, *, before: int | None, limit: int) -> Sequence[Any]:
    stmt = select(d).where(d.c.subscription_id == sub_id)
    if before is not None:
        stmt = stmt.where(d.c.id < before)
    return conn.execute(stmt.order_by(d.c.id.desc()).limit(limit + 1)).all()


def attempts_of(conn: Connection, delivery_ids: list[int]) -> Sequence[Any]:
    if not delivery_ids:
        return []
    return conn.execute(select(a).where(a.c.delivery_id.in_(delivery_ids)).order_by(a.c.id)).all()


def claim_due(conn: Connection, now: datetime, limit: int, lease: timedelta) -> list[Any]:
    """Lease up to ``limit`` due deliveries of active subscriptions whose predecessors (same subscription and
    ordering key) are done; counts the attempt."""
    earlier = aliased(d)
    blocked = exists().where(and_(earlier.c.subscription_id == d.c.subscription_id, earlier.c.ordering_key == d.c.ordering_key,
                                  earlier.c.status == "pending", earlier.c.id < d.c.id))
    stmt = (select(d.c.id, d.c.subscription_id, d.c.payload, d.c.attempts, s.c.url, s.c.secret)
            .join(s, s.c.id == d.c.subscription_id)
            .where(d.c.status == "pending", d.c.next_attempt_at <= now, s.c.active.is_(True), ~blocked)
            .order_by(d.c.next_attempt_at, d.c.id).limit(limit))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=d, skip_locked=True)
    rows = list(conn.execute(stmt).all())
    if rows:
        conn.execute(update(d).where(d.c.id.in_([r.id for r in rows])).values(attempts=d.c.attempts + 1, next_attempt_at=now + lease))
    return rows


def add_attempt(conn: Connection, delivery_id: int, at: datetime, status: int | None, error: str | None, duration_ms: int) -> None:
    conn.execute(insert(a).values(delivery_id=delivery_id, at=at, status_code=status, error=error, duration_ms=duration_ms))


def mark_delivered(conn: Connection, delivery_id: int, at: datetime, status: int) -> None:
    conn.execute(update(d).where(d.c.id == delivery_id).values(status="delivered", delivered_at=at, last_status_code=status, last_error=None))


def mark_failed_attempt(conn: Connection, delivery_id: int, *, status: int | None, error: str, next_attempt_at: datetime | None) -> None:
    """Another try at ``next_attempt_at``, or (None) none: the delivery has ``failed``."""
    values: dict[str, Any] = {"last_status_code": status, "last_error": error}
    values.update({"next_attempt_at": next_attempt_at} if next_attempt_at is not None else {"status": "failed"})
    conn.execute(update(d).where(d.c.id == delivery_id).values(**values))
