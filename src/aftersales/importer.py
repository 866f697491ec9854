"""Bulk import of paid orders from CSV or JSON Lines: all or nothing.

Every row is validated first — its shape with the API's own model (:class:`aftersales.api.schemas.OrderIn`),
then against the database and the domain (unknown merchant, id already taken, ``paid_at`` in the future,
``new_order``, ``open_group``/``join``) — and only when no row is rejected are the orders written, through the
store's :class:`~aftersales.store.repositories.Tracker`, in ONE transaction. A rejected row means nothing is
written. A big file is read, checked and built by builder processes, chunk by chunk (:func:`_read`): what needs no
database (:class:`_Pure`); this process keeps the look-ups, the groups and the writing.

CSV: one line per order item, with the columns of :data:`CSV_COLUMNS`; consecutive lines with the same ``id``
are the lines of one order (the order's own fields other than ``id`` may be left empty on its later lines, or repeated).
JSON Lines: one ``OrderIn`` object (the body of ``POST /v1/orders``) per line.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
import os
import pickle
import queue
import re
import sqlite3
import subprocess
import sys
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from pydantic import ValidationError
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from aftersales import i18n
from aftersales.api.schemas import OrderIn
from aftersales.api.validation_messages import validation_msg
from aftersales.domain import deposits as d
from aftersales.domain.catalog import require_known_category
from aftersales.domain.errors import DomainError
from aftersales.domain.events import Event
from aftersales.domain.groups import Group, GroupStatus, open_group
from aftersales.domain.ids import ID_PATTERN
from aftersales.domain.messages import N_, Msg
from aftersales.domain.money import MAX_FEN
from aftersales.domain.orders import Order, OrderItem, new_order
from aftersales.domain.policy import version_id
from aftersales.service.context import Context, UnitOfWork
from aftersales.store import ledger as ledger_store
from aftersales.store import tables as t
from aftersales.store import terms as terms_store
from aftersales.store import webhooks as webhooks_store
from aftersales.store.bulk import SQLITE_CACHE_KIB, PreparedRows, category_codes, existing, import_cache
from aftersales.store.db import make_engine
from aftersales.store.repositories import EVENT_COLS, ORDER_COLS, SEARCH_COLS, Batch, Tracker, event_row

ORDER_COLUMNS = ("id", "merchant_id", "buyer_id", "paid_at", "shipping_fee_fen", "return_shipping_insured")
ITEM_COLUMNS = ("sku", "title", "category", "quantity", "unit_price_fen", "exclusion_confirmed")
GROUP_COLUMNS = ("group_id", "group_size", "group_auto_complete")
CSV_COLUMNS = ORDER_COLUMNS + ITEM_COLUMNS + GROUP_COLUMNS
REQUIRED_COLUMNS = ("id", "merchant_id", "buyer_id", "paid_at", "shipping_fee_fen", "sku", "title", "category", "quantity",
                    "unit_price_fen")
INT_COLUMNS = frozenset({"shipping_fee_fen", "quantity", "unit_price_fen", "group_size"})
BOOL_COLUMNS = frozenset({"return_shipping_insured", "exclusion_confirmed", "group_auto_complete"})
TRUE = frozenset({"true", "1", "yes", "y", "t"})
FALSE = frozenset({"false", "0", "no", "n", "f"})
_INT = re.compile(r"^[+-]?\d{1,18}$")
_CSV_GROUP_FIELDS = {"id": "group_id", "size": "group_size", "auto_complete": "group_auto_complete"}


class Progress(Protocol):
    """What the importer reports as it goes (the CLI shows it as a Rich progress bar)."""

    def phase(self, description: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class _Silent:
    def phase(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


#: A field that equality and hashing leave out (its name would be shadowed inside :class:`Rejection`, which has a ``field``).
_UNCOMPARED: Any = field(default=None, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a row was rejected: its line number in the file (1-based, the CSV header is line 1), the field, why —
    ``message`` in English, ``msg`` the same from the catalogs (:meth:`text` renders it in the operator's language)."""

    line: int
    field: str
    message: str
    msg: Msg | None = _UNCOMPARED

    @classmethod
    def of(cls, line: int, field: str, text: str, **params: Any) -> Rejection:
        """A rejection whose message is ``text`` (an ``N_`` msgid) over ``params``."""
        return cls.of_msg(line, field, Msg(text, params))

    @classmethod
    def of_msg(cls, line: int, field: str, msg: Msg, tz: str = i18n.DEFAULT_TZ) -> Rejection:
        """A rejection whose message is ``msg`` (its English ``message`` rendered here)."""
        return cls(line, field, i18n.render(msg, i18n.DEFAULT, tz), msg)

    def text(self, lang: str, tz: str = i18n.DEFAULT_TZ) -> str:
        return self.message if self.msg is None else i18n.render(self.msg, lang, tz)


@dataclass
class Report:
    """The outcome of an import. ``written`` is False whenever anything was rejected (nothing is written then)."""

    file: str
    format: str
    rows: int = 0
    orders: int = 0
    groups: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    written: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.rejections


@dataclass
class _Parsed:
    """One order as read from the file: where it is, its data (``None`` when it could not be read)."""

    line: int
    data: dict[str, Any] | None
    item_lines: list[int] = field(default_factory=list)
    errors: list[Rejection] = field(default_factory=list)
    model: OrderIn | _FastOrder | _Built | None = None


class ImportFileError(Exception):
    """The file itself cannot be read (unknown format, not UTF-8). ``msg`` is what the operator is told, from the
    catalogs (the CLI renders it in their language); ``str()`` is its English text."""

    def __init__(self, text: str, **params: Any) -> None:
        self.msg = Msg(text, params)
        super().__init__(i18n.render(self.msg, i18n.DEFAULT))


def detect_format(path: Path, fmt: str | None) -> str:
    """``csv`` or ``jsonl``: as given, else from the file extension."""
    if fmt:
        fmt = fmt.lower()
        if fmt not in ("csv", "jsonl"):
            raise ImportFileError(N_("unknown format '{fmt}': use csv or jsonl"), fmt=fmt)
        return fmt
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ImportFileError(N_("cannot tell the format of {file}: name it .csv or .jsonl, or pass --format"), file=path.name)


# --- reading -----------------------------------------------------------------------------------------------
def _csv_value(column: str, raw: str) -> Any:
    """CSV text → the JSON type ``OrderIn`` expects; anything unparsable is passed on for the model to reject."""
    value = raw.strip()
    if column in INT_COLUMNS and _INT.match(value):
        return int(value)
    if column in BOOL_COLUMNS:
        if value.lower() in TRUE:
            return True
        if value.lower() in FALSE:
            return False
    return value


#: What a reader yields for an order it was told to skip (another builder process's chunk, :func:`_read_chunks`).
_SKIPPED = None


def _read_csv(lines: Iterable[str], skip: Callable[[int], bool] | None = None) -> Iterator[_Parsed | None]:
    """The file's orders, in order; the n-th (from 0) is only counted, not checked, when ``skip(n)`` (yields None).
    Every id's first line is remembered whichever order is skipped, so that each process sees the same duplicates."""
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        header = []
    problems = [Rejection.of(1, col, N_("missing column")) for col in REQUIRED_COLUMNS if col not in header]
    problems += [Rejection.of(1, col, N_("unknown column (expected: {columns})"), columns=", ".join(CSV_COLUMNS)) for col in header if col not in CSV_COLUMNS]
    if problems:
        yield _Parsed(1, None, errors=problems)
        return
    width = len(header)
    at = {col: header.index(col) if col in header else None for col in CSV_COLUMNS}
    id_at = header.index("id")
    #: the order being read: its id and its lines (number, cells), or the rejection of a duplicate id
    current: list[tuple[int, list[str]]] | _Parsed | None = None
    current_id = ""
    first_line: dict[str, int] = {}
    n = -1  # the order yielded last

    def order(unit: list[tuple[int, list[str]]] | _Parsed) -> _Parsed | None:
        nonlocal n
        n += 1
        return _SKIPPED if skip is not None and skip(n) else _csv_order(unit, header, at)

    for cells in reader:
        if not cells:  # a blank line (csv.DictReader skipped those too)
            continue
        line = reader.line_num
        if len(cells) > width:  # more cells than columns
            yield order(_Parsed(line, None, errors=[Rejection.of(line, "(row)", N_("more cells than the {width} columns of the header"), width=width)]))
            current = None
            continue
        if len(cells) < width:
            cells += [""] * (width - len(cells))
        oid = cells[id_at].strip()
        if not oid and not "".join(cells).strip():  # every cell blank
            continue
        if isinstance(current, list) and oid and oid == current_id:
            current.append((line, cells))
            continue
        if current is not None:
            yield order(current)
        if oid and oid in first_line:
            current = _Parsed(line, None, errors=[Rejection.of(
                line, "id", N_("duplicate order id '{id}': already at line {first} (the lines of one order must be consecutive)"),
                id=oid, first=first_line[oid])])
            continue
        if oid:
            first_line[oid] = line
        current, current_id = [(line, cells)], oid
    if current is not None:
        yield order(current)


def _csv_order(lines: list[tuple[int, list[str]]] | _Parsed, header: list[str], at: dict[str, int | None]) -> _Parsed:
    """The order of these CSV lines: checked directly when every cell is plainly valid, else through ``OrderIn``."""
    if isinstance(lines, _Parsed):
        return lines
    fast = _fast_csv_order(lines, at)
    if fast is not None:
        return fast
    (line, cells), *more = lines
    parsed = _start_order(dict(zip(header, cells, strict=True)), line)
    for line, cells in more:
        _continue_order(parsed, dict(zip(header, cells, strict=True)), line)
    return parsed


class _FastItem(NamedTuple):
    sku: str
    title: str
    category: str
    quantity: int
    unit_price_fen: int
    exclusion_confirmed: bool


class _FastGroup(NamedTuple):
    id: str
    size: int
    auto_complete: bool


class _FastOrder(NamedTuple):
    """What ``OrderIn`` makes of a plainly valid order (the same values; see :func:`_fast_csv_order`)."""

    id: str
    merchant_id: str
    buyer_id: str
    paid_at: datetime
    shipping_fee_fen: int
    return_shipping_insured: bool
    items: list[_FastItem]
    group: _FastGroup | None


_FAST_ID = re.compile(ID_PATTERN[1:-1])  # the API's ids (schemas.Id): the documented alphabet, at most 64 characters
_FAST_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?(?:[+-][0-9]{2}:[0-9]{2}|Z)")
_FAST_UINT = re.compile(r"[0-9]{1,18}")


def _fast_bool(raw: str) -> bool | None:
    value = raw.strip().lower()
    if value == "" or value in FALSE:
        return False
    return True if value in TRUE else None


def _fast_csv_order(lines: list[tuple[int, list[str]]], at: dict[str, int | None]) -> _Parsed | None:
    """The order, or None unless every cell is one ``OrderIn`` plainly accepts as is — ids matching the API's id
    pattern, a title of 1–200 characters without NUL, amounts and quantities as plain digits within their API bounds,
    an RFC 3339 instant with an offset between 1970 and 9998, yes/no flags — and the further lines leave the order's
    own and group columns empty. Anything else takes the general path (the API's model, its exact messages)."""
    get = _fast_cells(at)
    line, cells = lines[0]
    oid, merchant, buyer = get(cells, "id"), get(cells, "merchant_id"), get(cells, "buyer_id")
    paid, fee = get(cells, "paid_at"), get(cells, "shipping_fee_fen")
    if not (_FAST_ID.fullmatch(oid) and _FAST_ID.fullmatch(merchant) and _FAST_ID.fullmatch(buyer)
            and _FAST_INSTANT.fullmatch(paid) and _FAST_UINT.fullmatch(fee)) or len(lines) > 200:
        return None
    try:
        paid_at = datetime.fromisoformat(paid)
        utc = paid_at.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    shipping = int(fee)
    insured = _fast_bool(get(cells, "return_shipping_insured"))
    if not 1970 <= utc.year <= 9998 or shipping > MAX_FEN or insured is None:
        return None
    group = None
    gid, gsize, gauto = get(cells, "group_id"), get(cells, "group_size"), get(cells, "group_auto_complete")
    if gid or gsize or gauto:
        auto = _fast_bool(gauto)
        if not (_FAST_ID.fullmatch(gid) and _FAST_UINT.fullmatch(gsize)) or auto is None or not 2 <= int(gsize) <= 1000:
            return None
        group = _FastGroup(gid, int(gsize), auto)
    items = []
    for n, (_, cells) in enumerate(lines):
        if n and any(get(cells, col) for col in _REPEATED_COLUMNS):
            return None
        sku, title, category = get(cells, "sku"), get(cells, "title"), get(cells, "category")
        qty, price = get(cells, "quantity"), get(cells, "unit_price_fen")
        confirmed = _fast_bool(get(cells, "exclusion_confirmed"))
        if not (_FAST_ID.fullmatch(sku) and _FAST_ID.fullmatch(category) and _FAST_UINT.fullmatch(qty) and _FAST_UINT.fullmatch(price)
                and 0 < len(title) <= 200 and "\x00" not in title) or confirmed is None:
            return None
        quantity, unit = int(qty), int(price)
        if not (1 <= quantity <= 100000 and 1 <= unit <= MAX_FEN):
            return None
        items.append(_FastItem(sku, title, category, quantity, unit, confirmed))
    return _Parsed(line, _FAST_DATA, item_lines=[n for n, _ in lines],
                   model=_FastOrder(oid, merchant, buyer, paid_at, shipping, insured, items, group))


#: Columns of an order's first line that its further lines may only repeat (they take the general path if not empty).
_REPEATED_COLUMNS = tuple(c for c in ORDER_COLUMNS if c != "id") + GROUP_COLUMNS
#: ``_Parsed.data`` of an order read by the fast path (only its presence counts).
_FAST_DATA: dict[str, Any] = {}


def _fast_cells(at: dict[str, int | None]) -> Any:
    def get(cells: list[str], col: str) -> str:
        i = at[col]
        return "" if i is None else cells[i].strip()

    return get


def _start_order(cells: dict[str, str], line: int) -> _Parsed:
    data: dict[str, Any] = {}
    for col in ORDER_COLUMNS:
        value = _csv_value(col, cells.get(col, ""))
        if value != "":
            data[col] = value
    data.setdefault("id", "")
    data["items"] = [_csv_item(cells)]
    if any(cells.get(col, "").strip() for col in GROUP_COLUMNS):
        group: dict[str, Any] = {}
        for key, col in _CSV_GROUP_FIELDS.items():
            value = _csv_value(col, cells.get(col, ""))
            if value != "":
                group[key] = value
        data["group"] = group
    return _Parsed(line, data, item_lines=[line])


def _csv_item(cells: dict[str, str]) -> dict[str, Any]:
    item = {}
    for col in ITEM_COLUMNS:
        value = _csv_value(col, cells.get(col, ""))
        if value != "":
            item[col] = value
    return item


def _continue_order(order: _Parsed, cells: dict[str, str], line: int) -> None:
    """A further line of the same order: its order and group fields, if given, must repeat the first line's."""
    assert order.data is not None
    first = _start_order(cells, line).data
    assert first is not None
    for col in ORDER_COLUMNS:
        if col in first and first[col] != order.data.get(col):
            order.errors.append(Rejection.of(line, col, N_("differs from line {first} of the same order"), first=order.line))
    if "group" in first and first["group"] != order.data.get("group"):
        order.errors.append(Rejection.of(line, "group_id", N_("the group differs from line {first} of the same order"),
                                          first=order.line))
    order.data["items"].append(first["items"][0])
    order.item_lines.append(line)


def _read_jsonl(lines: Iterable[str], skip: Callable[[int], bool] | None = None) -> Iterator[_Parsed | None]:
    """As :func:`_read_csv`: one order per line that is not blank."""
    number = 0
    n = -1
    for physical in lines:
        for raw in physical.splitlines() or [""]:  # str.splitlines, as when the whole text was split at once
            number += 1
            if not raw.strip():
                continue
            n += 1
            if skip is not None and skip(n):
                yield _SKIPPED
                continue
            try:
                data = json.loads(raw)
            except ValueError as exc:
                yield _Parsed(number, None, errors=[Rejection.of(number, "(line)", N_("not valid JSON: {error}"), error=str(exc))])
                continue
            if not isinstance(data, dict):
                yield _Parsed(number, None, errors=[Rejection.of(number, "(line)", N_("each line must be a JSON object (an order)"))])
                continue
            yield _Parsed(number, data)


def _field_of(loc: tuple[int | str, ...], fmt: str) -> str:
    if fmt == "jsonl":
        out = ""
        for part in loc:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out or "(order)"
    if loc and loc[0] == "items":
        return str(loc[2]) if len(loc) > 2 else "items"
    if loc and loc[0] == "group":
        return _CSV_GROUP_FIELDS.get(str(loc[1]), "group_id") if len(loc) > 1 else "group_id"
    return str(loc[0]) if loc else "(order)"


def _validate_shape(parsed: _Parsed, fmt: str) -> None:
    """API.md shape, with the API's own model; locations become (line, field)."""
    if parsed.data is None or parsed.model is not None:
        return
    try:
        parsed.model = OrderIn.model_validate(parsed.data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            line = parsed.line
            if fmt == "csv" and len(loc) > 1 and loc[0] == "items" and isinstance(loc[1], int) and loc[1] < len(parsed.item_lines):
                line = parsed.item_lines[loc[1]]
            # The API's message for the same error (POST /v1/orders' 422), from the catalogs.
            msg = Msg(N_("required (empty)")) if err["type"] == "missing" and fmt == "csv" else validation_msg(err)
            parsed.errors.append(Rejection.of_msg(line, _field_of(loc, fmt), msg))


# --- checking against the database and the domain ----------------------------------------------------------
def _domain_rejection(line: int, field: str, exc: DomainError, tz: str) -> Rejection:
    """The domain's explanation of a refusal, followed by its rule id."""
    msg = Msg("{explanation} ({rule})", {"explanation": exc.msg, "rule": exc.rule})  # nothing in it to translate: no msgid
    return Rejection.of_msg(line, field, msg, tz)


@dataclass
class _Released:
    """What a chunk leaves ready to write: groups that are no longer pending (or all, at the end of the file)
    and the orders whose group is settled, in file order (a group's orders right after it is released)."""

    groups: list[Group] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)


class _Pure:
    """The checks and the building that need no database (T0 paid_at, E4 categories, ``new_order``, the rows a unit
    of work writes for a new order that is in no group): done by this process for a small file, by each builder
    process for its chunks of a big one (:func:`_builder_main`), the same code either way. Made by :class:`_Builder`
    from what it read in the import's transaction (pickled to the builder processes)."""

    def __init__(self, *, fmt: str, tz: str, now: datetime, categories: frozenset[str], terms: terms_store.TermsBook,
                 schedule: Any, file_policy: Any) -> None:
        self.fmt, self.tz, self.now = fmt, tz, now
        self.categories, self.terms = categories, terms
        self.schedule, self.file_policy = schedule, file_policy
        self.starts = [entry[0] for entry in schedule.entries]
        self.versions: dict[int, str] = {}
        #: T0: per entry of the schedule, the earliest payment its version judged (its "since")
        self.earliest: dict[int, datetime] = {}

    def _policy_version(self, paid_at: datetime) -> str:
        """T0: the id of the version in force at ``paid_at`` — what ``schedule.at`` gives, which depends only on how
        many of the schedule's entries (in time order) began by then: computed once per entry, not hashed per order."""
        n = bisect_right(self.starts, paid_at)
        if n not in self.earliest or paid_at < self.earliest[n]:
            self.earliest[n] = paid_at
        found = self.versions.get(n)
        if found is None:
            found = self.versions[n] = version_id(self.schedule.at(self.file_policy, paid_at)[0])
        return found

    def _unknown_categories(self, p: _Parsed, m: OrderIn | _FastOrder) -> list[Rejection]:
        """E4: one rejection per item whose category was never created, at the item's line and field."""
        out = []
        items: list[Any] = list(m.items)
        for n, i in enumerate(items):
            try:
                require_known_category(i.sku, i.category, self.categories)
            except DomainError as exc:
                line = p.item_lines[n] if self.fmt == "csv" and n < len(p.item_lines) else p.line
                out.append(_domain_rejection(line, _field_of(("items", n, "category"), self.fmt), exc, self.tz))
        return out

    def order(self, p: _Parsed, m: OrderIn | _FastOrder) -> Order | list[Rejection]:
        """The new order of ``m`` (read at ``p``), or why it is rejected — the checks after the merchant's."""
        if m.paid_at > self.now:
            return [Rejection.of(p.line, "paid_at", N_("cannot be in the future (now is {now}) (T0)"), now=self.now.isoformat())]
        unknown = self._unknown_categories(p, m)
        if unknown:
            return unknown
        try:
            return new_order(id=m.id, merchant_id=m.merchant_id, buyer_id=m.buyer_id, paid_at=m.paid_at,
                             shipping_fee_fen=m.shipping_fee_fen, return_shipping_insured=m.return_shipping_insured,
                             items=[OrderItem(i.sku, i.title, i.category, i.quantity, i.unit_price_fen, i.exclusion_confirmed)
                                    for i in m.items],
                             group_id=m.group.id if m.group else None,
                             terms=self.terms.for_items({i.category for i in m.items}, m.paid_at),
                             policy_version=self._policy_version(m.paid_at))
        except DomainError as exc:
            return [_domain_rejection(p.line, str(exc.msg.params.get("field", "items")), exc, self.tz)]

    def build(self, parsed: list[_Parsed], dialect: Any, *, prepare: bool, events: bool) -> tuple[_Plain, _Prebuilt | None]:
        """In a builder process: check every order of a chunk (shape already checked) and replace its model by a
        :class:`_Built` (what the importing process still needs of it). With ``prepare``, the rows of the orders in
        no group are built here, in driver form — exactly those :meth:`Tracker.batch` gives for them, the same
        store code turning them into rows (``events``: their events too, for the outbox hook). The orders left with
        only the database's checks to pass are taken out of ``parsed``, into the :class:`_Plain` returned."""
        prebuilt, built = self._prepare(parsed, dialect, prepare=prepare, events=events)
        plain = _Plain([], [], [], 0)
        kept = []
        for p in parsed:
            m = p.model
            if isinstance(m, _Built) and (m.result is None or m.id in built) and m.group is None and not p.errors:
                plain.ids.append(m.id)
                plain.merchants.append(m.merchant_id)
                plain.lines.append(p.line)
                plain.rows += max(len(p.item_lines), 1)
            else:
                kept.append(p)
        parsed[:] = kept
        return plain, prebuilt

    def _prepare(self, parsed: list[_Parsed], dialect: Any, *, prepare: bool, events: bool) -> tuple[_Prebuilt | None, set[str]]:
        """:meth:`build`'s checks, and the rows of the orders in no group; with the ids of the orders they are of."""
        plain: list[Order] = []
        for p in parsed:
            m = p.model
            if p.data is not None:
                p.data = _FAST_DATA  # only its presence counts from here on
            if m is None or isinstance(m, _Built):
                continue
            group = None if m.group is None else _FastGroup(m.group.id, m.group.size, m.group.auto_complete)
            result: Order | list[Rejection] | None = None if p.errors else self.order(p, m)
            if isinstance(result, Order) and group is None:
                if prepare:
                    plain.append(result)
                else:
                    result = None  # a dry run: checked, nothing to write
            p.model = _Built(m.id, m.merchant_id, group, result)
        if not plain:
            return None, set()
        tracker = Tracker(None, self.now)  # type: ignore[arg-type]  # batch() never touches the database
        for order in plain:
            tracker.add_order(order)
        batch = tracker.batch()
        if any(d.recovery_merchants(batch.postings)) or batch.new_groups or batch.changed_groups or batch.changed_orders \
                or batch.new_cases or batch.changed_cases or batch.timers or batch.new_refunds or batch.settled_refunds \
                or batch.payment_jobs or batch.search_terms:
            # Rows this process would not send (never so for new orders): P2 needs balances. The importing process
            # builds them all, as for a small file.
            return None, set()
        rows = PreparedRows(dialect)
        rows.add(t.orders, ORDER_COLS, batch.new_orders)
        ledger_store.prepare(rows, batch.postings)
        rows.add(t.search_terms, SEARCH_COLS, batch.new_search_terms)
        rows.add(t.events, EVENT_COLS, [event_row(e, self.now) for e, _ in batch.events], numbered=True)
        return _Prebuilt(rows, batch.events if events else None), {o.id for o in plain}


@dataclass
class _Plain:
    """The orders of a chunk a builder process found valid and in no group (their rows built, or a dry run), as
    columns: all the importing process checks of them is the database's (ids taken, merchants)."""

    ids: list[str]
    merchants: list[str]
    lines: list[int]
    #: their lines in the file
    rows: int


class _Built(NamedTuple):
    """An order as a builder process leaves it for the importing process: who it is, and its new order (a group's
    member, or every order when the rows were not built there), why it was rejected, or None (written from the
    chunk's :class:`_Prebuilt` rows, or not to be written: a dry run)."""

    id: str
    merchant_id: str
    group: _FastGroup | None
    result: Order | list[Rejection] | None


@dataclass
class _Prebuilt:
    """The rows a builder process built for a chunk's orders in no group; ``events``: theirs, when a webhook
    subscription may want them (the outbox hook)."""

    rows: PreparedRows
    events: list[tuple[Event, str]] | None


class _Builder:
    """Rows → domain objects, chunk by chunk, with the state that spans chunks (merchants seen, groups of the file).

    The orders of a group opened by the file are held back until the group forms (G3) or the file ends, so that
    each is written once, in its final state (G1–G3), as when the whole file was built before writing; orders
    joining a group that was already in the database go through the unit of work's tracker (written at commit).
    What needs no database is :class:`_Pure`'s (here, or in builder processes)."""

    def __init__(self, ctx: Context, uow: UnitOfWork, fmt: str, side: Connection, lock: Any, *, check_taken: bool) -> None:
        self.ctx, self.uow, self.fmt = ctx, uow, fmt
        #: Look-ups of what the import does not write itself (merchants, ids and groups already stored) go through a
        #: second connection, so that they do not wait for the writer; only what must be locked in the import's own
        #: transaction (a stored group and its members) takes ``lock``, the writer's hold on that transaction.
        self.side, self.lock = side, lock
        self.tz = ctx.policy.timezone
        self.group_field = "group_id" if fmt == "csv" else "group.id"
        self.check_taken = check_taken
        self.merchants: set[str] = set()
        self.unknown_merchants: set[str] = set()
        #: group id → the group (None: neither in the database nor opened, its first row was rejected)
        self.groups: dict[str, Group | None] = {}
        #: groups of the database (loaded, locked): their new members are the tracker's
        self.db_groups: set[str] = set()
        #: pending groups opened by the file → their orders held back
        self.held: dict[str, list[Order]] = {}
        #: groups the file opened (G1)
        self.opened = 0
        #: E4–E6/T0: the category codes created, every category's terms versions (to fix each order's terms as in
        #: force at its paid_at), and whether a webhook subscription may want the events (the outbox hook)
        try:
            categories = category_codes(side)
            terms = terms_store.terms_book(side)
            self.subscribed = webhooks_store.any_active_subscription(side)
        finally:
            side.rollback()
        with lock:  # T0: each order gets the version in force at its paid_at (a published one, issue 15)
            schedule = ctx.schedule(uow.conn)
            assert ctx.file_policy is not None
            self.pure = _Pure(fmt=fmt, tz=self.tz, now=uow.now, categories=categories, terms=terms, schedule=schedule,
                              file_policy=ctx.file_policy)
            for policy in {ctx.file_policy, *(p for at, _, _, p in schedule.entries if at <= uow.now)}:
                terms_store.ensure_policy_version(uow.conn, policy, uow.now)

    def judged(self, earliest: dict[int, datetime]) -> None:
        """T0: the earliest payments a builder process's chunk gave each schedule entry's version."""
        for n, paid_at in earliest.items():
            if n not in self.pure.earliest or paid_at < self.pure.earliest[n]:
                self.pure.earliest[n] = paid_at

    def record_versions(self, conn: Connection, now: datetime) -> None:
        """T0: each policy version that judged imported orders was in force by the earliest of their payments."""
        pure = self.pure
        for _n, paid_at in sorted(pure.earliest.items()):
            terms_store.ensure_policy_version(conn, pure.schedule.at(pure.file_policy, paid_at)[0], now, judged_at=paid_at)

    def _known_merchants(self, ids: set[str]) -> None:
        unknown = sorted(ids - self.merchants - self.unknown_merchants)
        if unknown:
            found = self._lookup(t.merchants.c.id, unknown)
            self.merchants |= found
            self.unknown_merchants |= set(unknown) - found

    def _load_groups(self, ids: set[str]) -> None:
        """Groups the file names that it has not seen yet: those already in the database are loaded and locked."""
        new = sorted(ids - self.groups.keys())
        if not new:
            return
        for gid in sorted(self._lookup(t.groups.c.id, new)):
            with self.lock:
                self.groups[gid] = self.uow.tracker.get_group(gid, lock=True)
            self.db_groups.add(gid)

    def _lookup(self, column: Any, ids: list[str]) -> set[str]:
        try:
            return existing(self.side, column, ids)
        finally:
            self.side.rollback()  # a fresh snapshot for the next look-up

    def chunk(self, parsed: list[_Parsed], plain: _Plain | None = None) -> tuple[_Released, list[Rejection]]:
        """The chunk's rejections, and what it leaves ready to write; the ``plain`` orders of a builder process (and
        those it left without a result) are only checked against the database here."""
        uow = self.uow
        models = [p.model for p in parsed if p.model is not None and not p.errors]
        rejections: list[Rejection] = []
        released = _Released()
        ids = [m.id for m in models] + (plain.ids if plain is not None else [])
        if not ids:
            return released, rejections
        taken = self._lookup(t.orders.c.id, ids) if self.check_taken else set()
        self._known_merchants({m.merchant_id for m in models} | set(plain.merchants if plain is not None else ()))
        self._load_groups({m.group.id for m in models if m.group is not None})
        if plain is not None and (taken or not self.merchants.issuperset(plain.merchants)):
            for oid, merchant_id, line in zip(plain.ids, plain.merchants, plain.lines, strict=True):
                if oid in taken:
                    rejections.append(Rejection.of(line, "id", N_("order '{id}' already exists"), id=oid))
                elif merchant_id not in self.merchants:
                    rejections.append(Rejection.of(line, "merchant_id", N_("unknown merchant '{id}'"), id=merchant_id))
        for p in parsed:
            m = p.model
            if m is None or p.errors:
                continue
            if m.id in taken:
                rejections.append(Rejection.of(p.line, "id", N_("order '{id}' already exists"), id=m.id))
                continue
            if m.merchant_id not in self.merchants:
                rejections.append(Rejection.of(p.line, "merchant_id", N_("unknown merchant '{id}'"), id=m.merchant_id))
                continue
            result = m.result if isinstance(m, _Built) else self.pure.order(p, m)
            if result is None:  # its rows were built by a builder process (or a dry run)
                continue
            if isinstance(result, list):
                rejections += result
                continue
            order = result
            if m.group is None:
                released.orders.append(order)
                continue
            gid = m.group.id
            group = self.groups.get(gid)
            try:
                if group is None:  # G1: the first paid order opens the group
                    group = open_group(id=gid, merchant_id=order.merchant_id, size=m.group.size,
                                       auto_complete=m.group.auto_complete, first=order, policy=self.ctx.policy)
                    self.groups[gid] = group
                    self.held[gid] = []
                    self.opened += 1
                elif group.merchant_id != order.merchant_id:
                    rejections.append(Rejection.of(p.line, self.group_field, N_("group '{id}' belongs to another merchant"), id=gid))
                    continue
                elif gid in self.db_groups:
                    with self.lock:
                        members = [uow.tracker.get_order(oid, lock=True) for oid in group.member_ids]
                    group.join(order, order.paid_at, [o for o in members if o is not None])
                else:
                    group.join(order, order.paid_at, self.held.get(gid, []))
            except DomainError as exc:
                rejections.append(_domain_rejection(p.line, self.group_field, exc, self.tz))
                continue
            if gid in self.db_groups:
                uow.tracker.add_order(order)  # written with the group at commit, as any change to a stored group
                continue
            self.held[gid].append(order)
            if group.status is not GroupStatus.PENDING:  # G3: formed; its orders are final
                released.groups.append(group)
                released.orders += self.held.pop(gid)
        return released, rejections

    def rest(self) -> _Released:
        """At the end of the file: the groups still pending (they keep their G4 timer) and their orders."""
        released = _Released()
        for gid, orders in self.held.items():
            group = self.groups[gid]
            assert group is not None
            released.groups.append(group)
            released.orders += orders
        self.held = {}
        return released


# --- writing -----------------------------------------------------------------------------------------------
class _Sink:
    """Writes released groups and orders through the store's one batch writer: each chunk's rows are built by a
    :class:`~aftersales.store.repositories.Tracker` (exactly what a unit of work writes for a new order or group —
    its row and JSON state, D2 payment transaction and entries, S1 search terms, G4 timer, events through the outbox
    hook) on the caller's thread, and written by :meth:`~aftersales.store.repositories.Batch.write` (COPY on
    PostgreSQL, executemany on SQLite, for a chunk's thousands of rows) on a writer thread, in the unit of work's
    transaction, while the caller reads and checks the next chunk: the database (SQLite's B-trees, or the PostgreSQL
    server) works on one core while Python works on the other. At most two chunks wait; ``lock`` is held while a
    chunk is written."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.lock = threading.Lock()
        self.jobs: queue.Queue[tuple[Batch | None, _Prebuilt | None] | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.cache: AbstractContextManager[None] | None = import_cache(uow.conn)
        self.cache.__enter__()
        self.thread = threading.Thread(target=self._run, name="import-writer", daemon=True)
        self.thread.start()

    # --- the caller's thread ---
    def write(self, released: _Released, prebuilt: _Prebuilt | None = None) -> None:
        """Queue ``released`` (its batch built here) and the rows a builder process built for the same chunk."""
        if self.error is not None:
            raise self.error
        batch = None
        if released.groups or released.orders:
            tracker = Tracker(self.uow.conn, self.uow.now)  # one chunk's identity map, dropped once its batch is built
            for group in released.groups:
                tracker.add_group(group)
            for order in released.orders:
                tracker.add_order(order)
            batch = tracker.batch()
        if batch is not None or prebuilt is not None:
            self.jobs.put((batch, prebuilt))

    def finish(self) -> None:
        """Wait until every chunk is written; raise what the writer met."""
        self.close()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join()
        if self.cache is not None:
            self.cache.__exit__(None, None, None)
            self.cache = None

    # --- the writer thread ---
    def _run(self) -> None:
        uow = self.uow
        while (job := self.jobs.get()) is not None:
            if self.error is not None:
                continue  # drain: the caller raises it at its next write
            batch, prebuilt = job
            try:
                with self.lock:
                    if batch is not None:
                        batch.write(uow.conn, uow.now, uow.tracker.on_events)
                    if prebuilt is not None:
                        ids = prebuilt.rows.write(uow.conn)
                        if prebuilt.events and uow.tracker.on_events is not None:  # the outbox hook, as Batch.write
                            uow.tracker.on_events(uow.conn, [(i, e, m) for i, (e, m) in zip(ids["events"], prebuilt.events,
                                                                                         strict=True)])
            except BaseException as exc:  # handed to the caller's thread
                self.error = exc


# --- the import --------------------------------------------------------------------------------------------
#: Orders validated, built and written per step (one transaction in all).
CHUNK = 5000
__all__ = ["CSV_COLUMNS", "SQLITE_CACHE_KIB", "import_orders"]


def _scan(path: Path) -> int:
    """Count the lines of ``path`` and check it is UTF-8 text, without holding it in memory."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    lines = 0
    offset = 0
    last = b"\n"
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                raise ImportFileError(N_("{file}: not UTF-8 text ({problem} at byte {offset})"), file=str(path), problem=exc.reason,
                                      offset=offset + exc.start) from None
            lines += block.count(b"\n")
            offset += len(block)
            last = block[-1:]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise ImportFileError(N_("{file}: not UTF-8 text ({problem} at byte {offset})"), file=str(path), problem=exc.reason,
                                      offset=offset + exc.start) from None
    return lines + (0 if last == b"\n" else 1)


class _Restart(Exception):
    """The optimistic first pass met a rejected row or an id already taken: check everything in a second pass."""


def _is_unique_violation(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError):
        exc = exc.orig or exc
    return getattr(exc, "sqlstate", None) == "23505" or (isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc))


def import_orders(ctx: Context, path: Path, fmt: str | None = None, *, progress: Progress | None = None,
                  dry_run: bool = False) -> Report:
    """Validate every row of ``path`` and write them in ONE transaction, committed only if no row is rejected.

    The file is streamed: each chunk of orders is validated, built and written in the transaction, then the next
    is read; the transaction is committed at the end, or rolled back if any row was rejected (nothing is written
    then, and every rejected row is reported). A first, optimistic pass lets the primary key find ids already in
    the database; at its first rejection (or a taken id) it stops, rolls back, and a second pass checks every row
    as before — each id looked up, every row checked, writing only until the first rejection."""
    started = time.perf_counter()
    progress = progress or _Silent()
    fmt = detect_format(path, fmt)
    lines = _scan(path)
    try:
        report = _import(ctx, path, fmt, lines, progress, dry_run, optimistic=not dry_run)
    except _Restart:
        report = _import(ctx, path, fmt, lines, progress, dry_run, optimistic=False)
    report.seconds = time.perf_counter() - started
    return report


def _import(ctx: Context, path: Path, fmt: str, lines: int, progress: Progress, dry_run: bool, *,
            optimistic: bool) -> Report:
    report = Report(file=str(path), format=fmt)
    header = 1 if fmt == "csv" else 0
    progress.phase(N_("importing orders (rows)") if optimistic or dry_run else N_("checking every row (rows)"),
                   max(lines - header, 0))
    with UnitOfWork(ctx) as uow, ctx.engine.connect() as side:
        side.execution_options(readonly=True)
        sink = _Sink(uow)
        builder = _Builder(ctx, uow, fmt, side, sink.lock, check_taken=not optimistic)
        seen: dict[str, int] = {}
        done = 0
        job = _Job(ctx.engine.url.render_as_string(hide_password=False), builder.pure, prepare=not dry_run,
                   events=builder.subscribed)
        try:
            with _read(path, fmt, CHUNK, lines, job) as chunks:
                for parsed, lines_read, built in chunks:
                    plain, prebuilt, earliest = built if built is not None else (None, None, None)
                    if fmt == "jsonl":
                        report.rejections += _duplicates(parsed, plain, seen)
                    if plain is not None:
                        report.rows += plain.rows
                        report.orders += len(plain.ids)
                    for p in parsed:
                        report.rows += max(len(p.item_lines), 1)
                        if p.data is not None:
                            report.orders += 1
                        report.rejections += p.errors
                    if optimistic and report.rejections:
                        raise _Restart
                    released, rejections = builder.chunk(parsed, plain)
                    report.rejections += rejections
                    if optimistic and report.rejections:
                        raise _Restart
                    if earliest is not None:
                        builder.judged(earliest)
                    if not report.rejections and not dry_run:
                        sink.write(released, prebuilt)
                    read = max(lines_read - header, 0)
                    progress.advance(read - done)
                    done = read
            report.groups = builder.opened
            report.rejections.sort(key=lambda r: r.line)
            if report.rejections or dry_run:
                return report  # rolled back: nothing was written
            sink.write(builder.rest())
            sink.finish()
            builder.record_versions(uow.conn, uow.now)
            uow.commit()
        except Exception as exc:  # the driver's own errors (COPY) as well as SQLAlchemy's
            if optimistic and _is_unique_violation(exc):
                raise _Restart from exc
            raise
        finally:
            sink.close()
        report.written = True
    return report


def _duplicates(parsed: list[_Parsed], plain: _Plain | None, seen: dict[str, int]) -> list[Rejection]:
    """JSON Lines: an id already at an earlier line of the file (``seen``: id → its first line) is rejected, on the
    order itself (``parsed``: not checked further) or, for the ``plain`` ones, returned."""
    found: list[tuple[int, str, _Parsed | None]] = [(p.line, p.model.id, p) for p in parsed if p.model is not None]
    if plain is not None:
        found = sorted(found + [(line, oid, None) for line, oid in zip(plain.lines, plain.ids, strict=True)], key=lambda f: f[0])
    out = []
    for line, oid, p in found:
        if oid not in seen:
            seen[oid] = line
            continue
        rejection = Rejection.of(line, "id", N_("duplicate order id '{id}': already at line {first}"), id=oid, first=seen[oid])
        if p is not None:
            p.errors.append(rejection)
        else:
            out.append(rejection)
    return out


class _Counted:
    """The lines of a file, counted as they are read (for the progress bar)."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.lines = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.f:
            self.lines += 1
            yield line


#: Files of more lines than this are read, checked and built by :data:`BUILDERS` builder processes while this one
#: checks against the database, builds what spans chunks (groups) and writes: below it, starting them (fresh
#: interpreters importing the API's models, ~0.5 s each) would cost more than they save.
PARALLEL_LINES = 20_000
#: Builder processes for a big file: each reads the whole file (cheap: the C CSV reader, the lines' ids) and checks
#: and builds every BUILDERS-th chunk of it (the costly part); at least two, so that this process's share (the
#: look-ups, the groups, sending the rows) is never the only work that overlaps with one builder's.
BUILDERS = max(2, min(4, (os.cpu_count() or 1)))


@dataclass
class _Job:
    """What a builder process needs (pickled to it): the database URL (for its dialect: the columns' bind
    processing), the checks' state (:class:`_Pure`), whether to build the rows (not for a dry run), and whether the
    outbox hook wants the events."""

    url: str
    pure: _Pure
    prepare: bool
    events: bool


def _read_chunks(path: Path, fmt: str, size: int, part: tuple[int, int] = (0, 1)) -> Iterator[tuple[list[_Parsed], int]]:
    """Chunks of ``size`` orders as read from the file, their shape checked, each with the lines read by then; with
    ``part`` = (k, n), only the chunks k, k + n, k + 2n, … (the others are read but not checked)."""
    k, n = part
    skip = None if n == 1 else lambda i: (i // size) % n != k
    with path.open(encoding="utf-8-sig", newline="" if fmt == "csv" else None) as f:
        counted = _Counted(f)
        reader = _read_csv(counted, skip) if fmt == "csv" else _read_jsonl(counted, skip)
        for number, chunk in enumerate(_chunks(reader, size)):
            if number % n != k:
                continue
            parsed = [p for p in chunk if p is not None]
            for p in parsed:
                _validate_shape(p, fmt)
            yield parsed, counted.lines


def _builder_main(argv: list[str]) -> None:
    """A builder process (``python -c``, see :func:`_read`): ``argv`` = (file, format, chunk size, k, n); the
    :class:`_Job` comes pickled on its standard input. For each of its chunks (:func:`_read_chunks` with (k, n)):
    (orders, lines read, (:class:`_Plain`, :class:`_Prebuilt` or None, T0's earliest payments)) pickled down its standard output,
    then None (or what it raised)."""
    out = sys.stdout.buffer
    try:
        job: _Job = pickle.load(sys.stdin.buffer)  # noqa: S301 - written by the importing process, our parent
        dialect = make_engine(job.url).dialect  # no connection: only its bind processing
        part = (int(argv[3]), int(argv[4]))
        for parsed, lines_read in _read_chunks(Path(argv[0]), argv[1], int(argv[2]), part):
            plain, prebuilt = job.pure.build(parsed, dialect, prepare=job.prepare, events=job.events)
            pickle.dump((parsed, lines_read, (plain, prebuilt, dict(job.pure.earliest))), out, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(None, out)
    except Exception as exc:  # handed to the importing process
        pickle.dump(exc, out)
    out.flush()


Chunk = tuple[list[_Parsed], int, tuple[_Plain, _Prebuilt | None, dict[int, datetime]] | None]


@contextmanager
def _read(path: Path, fmt: str, size: int, lines: int, job: _Job) -> Iterator[Iterator[Chunk]]:
    """:func:`_read_chunks`, in this process (the checks and building left to :class:`_Builder`) for a file of up
    to :data:`PARALLEL_LINES` lines; else from :data:`BUILDERS` builder processes, chunk k from process k mod n, in
    file order (each pipe holds its process back about a chunk ahead). The processes are stopped however the import
    ends. Plain interpreters running this module only — not multiprocessing, whose ``spawn`` would import the
    caller's main script again."""
    if lines <= PARALLEL_LINES:
        yield ((parsed, lines_read, None) for parsed, lines_read in _read_chunks(path, fmt, size))
        return
    code = "import sys; from aftersales.importer import _builder_main; _builder_main(sys.argv[1:])"
    procs = []
    try:
        for k in range(BUILDERS):
            proc = subprocess.Popen([sys.executable, "-c", code, str(path), fmt, str(size), str(k), str(BUILDERS)],  # noqa: S603
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            procs.append(proc)
            assert proc.stdin is not None
            pickle.dump(job, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.close()

        def received() -> Iterator[Chunk]:
            for number in itertools.count():
                pipe = procs[number % len(procs)].stdout
                assert pipe is not None
                item = pickle.load(pipe)  # noqa: S301 - written by our own child process
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item

        yield received()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            assert proc.stdout is not None
            proc.stdout.close()
            proc.wait()


def _chunks(reader: Iterator[_Parsed | None], size: int) -> Iterator[list[_Parsed | None]]:
    chunk: list[_Parsed | None] = []
    for p in reader:
        chunk.append(p)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
