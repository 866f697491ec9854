"""Versions of the law an order is judged by: category terms (E4–E6) and platform policy versions (T0).

A version row is inserted once and never updated. ``categories`` keeps the current terms (what the set-up API lists);
``category_versions`` keeps every terms version with the instant it took effect; ``policy_versions`` the parameters of
every policy version the service ran with.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, bindparam, event, func, insert, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from aftersales.domain.catalog import Category, StatutoryExclusion, default_category
from aftersales.domain.policy import Policy, from_parameters, version_id

from . import driver
from . import tables as t

_V = t.category_versions


def _category(code: str, name: str, r: Any) -> Category:
    return Category(code, name, r.no_reason_return, StatutoryExclusion(r.statutory_exclusion) if r.statutory_exclusion else None,
                    r.after_sales_days, r.warranty_days, r.version)


def latest_version(conn: Connection, code: str) -> Any:
    """The highest-numbered version row of ``code`` (None if it has none)."""
    return conn.execute(select(_V).where(_V.c.code == code).order_by(_V.c.version.desc()).limit(1)).first()


def version_at(conn: Connection, code: str, instant: datetime) -> Any:
    """The version row of ``code`` in force at ``instant``: the latest to take effect at or before it (numbers break
    ties); before the first, the first (as :meth:`TermsBook.at`). None if the category has no version."""
    row = conn.execute(select(_V).where(_V.c.code == code, _V.c.effective_at <= instant)
                       .order_by(_V.c.effective_at.desc(), _V.c.version.desc()).limit(1)).first()
    return row if row is not None else conn.execute(
        select(_V).where(_V.c.code == code).order_by(_V.c.effective_at, _V.c.version).limit(1)).first()


def add_category_version(conn: Connection, code: str, values: dict[str, Any], now: datetime, *,
                         draft_id: str | None = None) -> int:
    """Record the terms of ``values`` as a new version of ``code`` effective at ``now`` when they differ from the
    version in force then; its number (the one in force when nothing changes). ``draft_id``: the published draft it
    comes from (its ``now`` may lie in the future)."""
    current = version_at(conn, code, now)
    new = Category(code, "", values["no_reason_return"],
                   StatutoryExclusion(values["statutory_exclusion"]) if values["statutory_exclusion"] else None,
                   values["after_sales_days"], values["warranty_days"])
    if current is not None and _category(code, "", current).same_terms(new):
        return int(current.version)
    last = latest_version(conn, code)
    number = 1 if last is None else int(last.version) + 1
    conn.execute(insert(_V).values(code=code, version=number, no_reason_return=values["no_reason_return"],
                                   statutory_exclusion=values["statutory_exclusion"],
                                   after_sales_days=values["after_sales_days"], warranty_days=values["warranty_days"],
                                   effective_at=now, draft_id=draft_id))
    return number


def draft_category_versions(conn: Connection, draft_id: str) -> dict[str, int]:
    """The category versions a scheduled draft created: {code: version number}."""
    rows = conn.execute(select(_V.c.code, _V.c.version).where(_V.c.draft_id == draft_id)).all()
    return {r.code: int(r.version) for r in rows}


def remove_draft_category_versions(conn: Connection, draft_id: str, after: datetime) -> int:
    """Withdraw the category versions of a scheduled draft that have not taken effect (``effective_at`` > ``after``):
    no order can have been judged by them. A version in force is never removed."""
    r = conn.execute(_V.delete().where(_V.c.draft_id == draft_id, _V.c.effective_at > after))
    return int(r.rowcount or 0)


def category_versions(conn: Connection, code: str) -> list[dict[str, Any]]:
    """Every terms version of ``code``, oldest first."""
    rows = conn.execute(select(_V).where(_V.c.code == code).order_by(_V.c.version)).all()
    return [{"code": code, "version": r.version, "no_reason_return": r.no_reason_return,
             "statutory_exclusion": r.statutory_exclusion, "after_sales_days": r.after_sales_days,
             "warranty_days": r.warranty_days, "effective_at": r.effective_at, "draft_id": r.draft_id} for r in rows]


@dataclass
class TermsBook:
    """The terms versions of some categories, to find the one in force at an instant without a query per order."""

    names: dict[str, str]
    versions: dict[str, list[tuple[datetime, Category]]] = field(default_factory=dict)
    #: code → the instants its versions took effect (from ``versions``)
    starts: dict[str, list[datetime]] = field(default_factory=dict)

    def at(self, code: str, instant: datetime) -> Category:
        """The terms of ``code`` in force at ``instant``: the newest version that took effect at or before it.

        An instant before the category's first version takes the first version (the terms the platform first
        recorded for it); a category never configured has the default terms (policy windows, returnable), version None.
        """
        versions = self.versions.get(code)
        if not versions:
            return default_category(code)
        starts = self.starts.get(code)
        if starts is None or len(starts) != len(versions):  # built once per code (the import asks for every order)
            starts = self.starts[code] = [at for at, _ in versions]  # versions are in effect order (terms_book)
        i = bisect.bisect_right(starts, instant)
        return versions[i - 1][1] if i else versions[0][1]

    def for_items(self, codes: Iterable[str], instant: datetime) -> dict[str, Category]:
        return {code: self.at(code, instant) for code in codes}


# --- a per-process copy of the terms (issue 13: the reads of a new order) ------------------------------------------
# PostgreSQL: the categories and each category's versions are kept with the ``terms`` change mark read with them
# (migration 0027: every committed change of either table sets a new mark, from a sequence). A unit of work learns
# the mark in force from a statement it sends anyway (the merchant of a new order, the locked load of an order:
# :data:`TERMS_MARK` as a column); while it is the mark of the copy, the copy is what the database holds and is used
# without a statement. Otherwise the rows are read with the mark (one statement, as before) and the copy replaced.
# A change committed by any process before the unit of work began is therefore seen, as when every order read them.
# SQLite reads them every time (no round trip to save).

#: The ``terms`` change mark, as a column of a statement (NULL before migration 0027).
TERMS_MARK = select(t.change_marks.c.mark).where(t.change_marks.c.name == "terms").scalar_subquery()
_MARK_KEY = "aftersales.terms_mark"


@dataclass
class _Copy:
    #: (mark, rows of ``categories``)
    categories: tuple[int, list[Any]] | None = None
    #: code → (mark, rows of ``category_versions``, in effect order)
    versions: dict[str, tuple[int, list[Any]]] = field(default_factory=dict)


_COPIES: WeakKeyDictionary[Any, _Copy] = WeakKeyDictionary()
_COPIES_LOCK = threading.Lock()
#: More codes than this in a copy: start again (the import may ask for thousands of categories once).
MAX_COPIED_CODES = 1_000


def keeps_copy(conn: Connection) -> bool:
    """Whether this process keeps a copy of the terms for ``conn``'s database (PostgreSQL)."""
    return conn.dialect.name == "postgresql"


def note_mark(conn: Connection, mark: Any) -> None:
    """The ``terms`` mark a statement of this transaction read (:data:`TERMS_MARK`)."""
    if mark is not None and (tx := conn.get_transaction()) is not None:
        conn.info[_MARK_KEY] = (tx, int(mark))


def known_mark(conn: Connection) -> int | None:
    """The change mark a statement of this transaction read (:func:`note_mark`; None: none read yet)."""
    known = conn.info.get(_MARK_KEY)
    if known is None or known[0] is not conn.get_transaction():
        return None
    return int(known[1])


def _copy(conn: Connection) -> _Copy:
    engine = conn.engine
    copy = _COPIES.get(engine)
    if copy is None:
        with _COPIES_LOCK:
            copy = _COPIES.setdefault(engine, _Copy())
    return copy


def category_rows(conn: Connection, plain: Any) -> list[Any]:
    """The rows of ``categories`` (``plain``: the statement that reads them all, SQLite's): from the copy when the
    mark this transaction read is the copy's, else read with the mark (and kept)."""
    if not keeps_copy(conn):
        return list(driver.execute(conn, plain).all())
    copy = _copy(conn)
    mark, rows = _marked_rows(conn, copy.categories, _MARKED_CATEGORIES, plain, None)
    if mark is not None:
        copy.categories = (mark, rows)
    return rows


def _version_rows(conn: Connection, code: str) -> list[Any]:
    """The version rows of ``code`` in effect order, from the copy as :func:`category_rows`."""
    copy, params = _copy(conn), {"code": code}
    mark, rows = _marked_rows(conn, copy.versions.get(code), _MARKED_VERSIONS, _BOOK_ONE[1], params)
    if mark is not None:
        if len(copy.versions) >= MAX_COPIED_CODES:
            copy.versions.clear()
        copy.versions[code] = (mark, rows)
    return rows


def _marked_rows(conn: Connection, kept: tuple[int, list[Any]] | None, marked: Any, plain: Any,
                 params: dict[str, Any] | None) -> tuple[int | None, list[Any]]:
    """``kept``'s rows when the mark this transaction read is its mark: ``(None, rows)``. Otherwise the rows read
    with the mark in force (``marked``, outer-joined to the mark's row: ``(mark, rows)``, to be kept), or by
    ``plain`` when there is no mark row (``(None, rows)``)."""
    mark = known_mark(conn)
    if mark is not None and kept is not None and kept[0] == mark:
        return None, kept[1]
    rows = driver.execute(conn, marked, params).all()
    if not rows or rows[0].terms_mark is None:  # no mark row: read them as they are
        return None, list(driver.execute(conn, plain, params).all())
    note_mark(conn, rows[0].terms_mark)
    return int(rows[0].terms_mark), [r for r in rows if r.code is not None]


def terms_book(conn: Connection, codes: Iterable[str] | None = None, *, names: Mapping[str, str] | None = None) -> TermsBook:
    """Every version of the categories ``codes`` (all categories when None). ``names``: the name of every category,
    when the caller has just read them in this transaction (one query fewer)."""
    wanted: list[str] | None = None if codes is None else sorted(set(codes))
    cats, vers = _BOOK_ALL
    params: dict[str, Any] = {}
    if wanted is not None and len(wanted) == 1:  # an order of one category: statements built once, through the driver
        cats, vers = _BOOK_ONE
        params = {"code": wanted[0]}
    elif wanted is not None:
        cats = cats.where(t.categories.c.code.in_(wanted))
        vers = vers.where(_V.c.code.in_(wanted))
    # Only the statements built once go through the driver (its plans are kept per statement).
    through: Any = driver.execute if params or wanted is None else lambda c, stmt, _p: c.execute(stmt)
    if names is None:
        known = {r.code: r.name for r in through(conn, cats, params).all()}
    else:
        known = {code: name for code, name in names.items() if wanted is None or code in wanted}
    book = TermsBook(known)
    rows = _version_rows(conn, params["code"]) if params and keeps_copy(conn) else through(conn, vers, params).all()
    for r in rows:
        book.versions.setdefault(r.code, []).append((r.effective_at, _category(r.code, known.get(r.code, r.code), r)))
    return book


# Effect order: a version scheduled from a draft may have been numbered before an immediate change that takes
# effect earlier; at one instant the higher number wins.
_BOOK_ALL = (select(t.categories.c.code, t.categories.c.name), select(_V).order_by(_V.c.code, _V.c.effective_at, _V.c.version))
_BOOK_ONE = (_BOOK_ALL[0].where(t.categories.c.code == bindparam("code")), _BOOK_ALL[1].where(_V.c.code == bindparam("code")))


_C = t.change_marks
_MARKED_CATEGORIES = (select(_C.c.mark.label("terms_mark"), *t.categories.c)
                      .select_from(_C.outerjoin(t.categories, true())).where(_C.c.name == "terms"))
_MARKED_VERSIONS = (select(_C.c.mark.label("terms_mark"), *_V.c)
                    .select_from(_C.outerjoin(_V, _V.c.code == bindparam("code"))).where(_C.c.name == "terms")
                    .order_by(_V.c.effective_at, _V.c.version))


# --- platform policy versions ------------------------------------------------------------------------------------
def ensure_policy_version(conn: Connection, policy: Policy, now: datetime, judged_at: datetime | None = None) -> str:
    """Store ``policy``'s parameters under its version id, once (a concurrent insert of the same id is no error).

    ``judged_at``: the instant of something the version judged (an order's ``paid_at``). The version was in force by
    then, so the instant it took effect (``effective_at``, its "since") is moved back to it when it is earlier —
    never forward, in the same statement (:data:`_ENSURE_POLICY_JUDGED`: the row is locked only when it moves, so
    orders paid as usual, after the version's instant, do not queue behind one another)."""
    vid = version_id(policy)
    instant = now if judged_at is None else min(now, judged_at)
    known = _committed(conn).get(vid)
    if known is not None and known <= instant:
        # Stored, its instant at or before this one (rows are never deleted, their instant never moves forward): the
        # statement would change nothing. Every order of the B1 cycle is paid after its version's instant.
        return vid
    name = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
    if judged_at is None:
        driver.execute(conn, _ENSURE_POLICY[name], {"id": vid, "parameters": policy.as_dict(), "effective_at": instant})
    else:  # one statement either way (the B1 cycle's statement budget)
        driver.execute(conn, _ENSURE_POLICY_JUDGED[name], {"b_id": vid, "b_parameters": policy.as_dict(), "b_at": instant})
    pending = conn.info.setdefault(_ENSURED, {})
    pending[vid] = min(instant, pending.get(vid, instant))
    return vid


#: Per engine: policy version id → an instant its row is known to have, committed, at or after its "since"
#: (:func:`ensure_policy_version` sends nothing for an order paid at or after it). Filled by :func:`committed`, which
#: the unit of work calls once its COMMIT has succeeded; what a transaction ensured is forgotten when the next one
#: begins, and when it or a savepoint in it rolls back.
_COMMITTED: WeakKeyDictionary[Any, dict[str, datetime]] = WeakKeyDictionary()
_COMMITTED_LOCK = threading.Lock()
#: ``Connection.info`` key (kept with the driver's connection, across check-outs): what its transaction ensured.
_ENSURED = "aftersales.policy_versions_ensured"


def _committed(conn: Connection) -> dict[str, datetime]:
    engine = conn.engine
    known = _COMMITTED.get(engine)
    if known is None:
        with _COMMITTED_LOCK:
            known = _COMMITTED.get(engine)
            if known is None:
                known = _COMMITTED[engine] = {}
                for name in ("begin", "rollback", "rollback_savepoint"):
                    event.listen(engine, name, _forget)
    return known


def committed(conn: Connection) -> None:
    """The transaction ``conn`` has just committed (its COMMIT succeeded): the policy versions it ensured are known
    stored from now on."""
    ensured = conn.info.pop(_ENSURED, None)
    if ensured:
        known = _committed(conn)
        for vid, instant in ensured.items():
            known[vid] = min(instant, known.get(vid, instant))


def _forget(conn: Connection, *_: Any) -> None:
    conn.info.pop(_ENSURED, None)


_ENSURE_POLICY = {name: dialect.insert(t.policy_versions).on_conflict_do_nothing(index_elements=["id"])
                  for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))}
_PV = t.policy_versions.c
_NEW_PV = {"id": bindparam("b_id"), "parameters": bindparam("b_parameters", type_=_PV.parameters.type),
           "effective_at": bindparam("b_at", type_=_PV.effective_at.type)}
_ensure_pg = postgresql.insert(t.policy_versions).values(**_NEW_PV).on_conflict_do_nothing(index_elements=["id"]).cte("ensured")
_ensure_lite = sqlite.insert(t.policy_versions).values(**_NEW_PV)
_ENSURE_POLICY_JUDGED = {
    # PostgreSQL: insert it if new, and move an existing row's instant back, in one statement; the UPDATE takes the
    # row's lock only when it moves it (ON CONFLICT DO UPDATE would lock it for every order, serialising them).
    "postgresql": update(t.policy_versions).add_cte(_ensure_pg)
    .where(_PV.id == bindparam("b_id"), _PV.effective_at > bindparam("b_at", type_=_PV.effective_at.type))
    .values(effective_at=bindparam("b_at", type_=_PV.effective_at.type)),
    # SQLite has one writer at a time (BEGIN IMMEDIATE): an upsert that moves the instant back when it is earlier.
    "sqlite": _ensure_lite.on_conflict_do_update(index_elements=["id"], set_={"effective_at": _ensure_lite.excluded.effective_at},
                                                 where=_PV.effective_at > _ensure_lite.excluded.effective_at),
}


def policy_version_row(conn: Connection, vid: str) -> Any:
    return conn.execute(select(t.policy_versions).where(t.policy_versions.c.id == vid)).first()


def load_policy_version(conn: Connection, vid: str) -> Policy | None:
    """The parameters stored for version ``vid`` (None if it was never stored)."""
    row = policy_version_row(conn, vid)
    return None if row is None else from_parameters(row.parameters)


def policy_version_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(t.policy_versions)).scalar_one())


# --- publishing a policy version (issue 15): drafts, schedule, the D3 record -------------------------------------
_D = t.policy_drafts
_E = t.policy_events


def insert_policy_draft(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(_D).values(**values))


def policy_draft(conn: Connection, draft_id: str, *, lock: bool = False) -> Any:
    q = select(_D).where(_D.c.id == draft_id)
    return conn.execute(q.with_for_update() if lock else q).first()


def policy_drafts(conn: Connection, status: str | None = None) -> list[Any]:
    """Drafts newest first (``status`` filters)."""
    q = select(_D).order_by(_D.c.created_at.desc(), _D.c.id.desc())
    if status is not None:
        q = q.where(_D.c.status == status)
    return list(conn.execute(q).all())


def set_policy_draft_status(conn: Connection, draft_id: str, old: str, new: str, values: dict[str, Any]) -> bool:
    """Move a draft from ``old`` to ``new`` (False when it was not ``old`` any more: a concurrent change)."""
    r = conn.execute(_D.update().where(_D.c.id == draft_id, _D.c.status == old).values(status=new, **values))
    return bool(r.rowcount == 1)


def scheduled_policies(conn: Connection) -> list[tuple[datetime, str, str | None, dict[str, Any]]]:
    """Every scheduled policy version: (effective_at, draft id, the file's version then, parameters), in effect order
    (a draft of category terms only is not one)."""
    rows = conn.execute(select(_D.c.effective_at, _D.c.id, _D.c.file_version, _D.c.parameters)
                        .where(_D.c.status == "scheduled", _D.c.version_id.is_not(None)).order_by(_D.c.effective_at, _D.c.scheduled_at, _D.c.id)).all()
    return [(r.effective_at, r.id, r.file_version, r.parameters) for r in rows]


def add_policy_event(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(_E).values(**values))


def policy_events(conn: Connection) -> list[Any]:
    return list(conn.execute(select(_E).order_by(_E.c.id)).all())
