"""Bulk import of paid orders from CSV or JSON Lines: all or nothing.

Every row is validated first — its shape with the API's own model (:class:`aftersales.api.schemas.OrderIn`),
then against the database and the domain (unknown merchant, id already taken, ``paid_at`` in the future,
``new_order``, ``open_group``/``join``) — and only when no row is rejected are the orders written, through the
store's :class:`~aftersales.store.repositories.Tracker`, in ONE transaction. A rejected row means nothing is
written.

CSV: one line per order item, with the columns of :data:`CSV_COLUMNS`; consecutive lines with the same ``id``
are the lines of one order (the order's own fields other than ``id`` may be left empty on its later lines, or repeated).
JSON Lines: one ``OrderIn`` object (the body of ``POST /v1/orders``) per line.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import select

from aftersales import i18n
from aftersales.api.schemas import OrderIn
from aftersales.domain.errors import DomainError
from aftersales.domain.groups import Group, open_group
from aftersales.domain.orders import Order, OrderItem, new_order
from aftersales.service.context import Context, UnitOfWork
from aftersales.store import tables as t
from aftersales.store.repositories import Tracker

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
#: Orders written per statement batch (one transaction in all).
BATCH = 2000
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


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a row was rejected: its line number in the file (1-based, the CSV header is line 1), the field, why."""

    line: int
    field: str
    message: str


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
    model: OrderIn | None = None


class ImportFileError(Exception):
    """The file itself cannot be read (unknown format, missing CSV columns, not UTF-8)."""


def detect_format(path: Path, fmt: str | None) -> str:
    """``csv`` or ``jsonl``: as given, else from the file extension."""
    if fmt:
        fmt = fmt.lower()
        if fmt not in ("csv", "jsonl"):
            raise ImportFileError(f"unknown format {fmt!r}: use csv or jsonl")
        return fmt
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ImportFileError(f"cannot tell the format of {path.name}: name it .csv or .jsonl, or pass --format")


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


def _read_csv(text: str, progress: Progress) -> Iterator[_Parsed]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    problems = [Rejection(1, col, "missing column") for col in REQUIRED_COLUMNS if col not in header]
    problems += [Rejection(1, col, f"unknown column (expected: {', '.join(CSV_COLUMNS)})") for col in header if col not in CSV_COLUMNS]
    if problems:
        yield _Parsed(1, None, errors=problems)
        return
    current: _Parsed | None = None
    first_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        progress.advance()
        if None in row:  # more cells than columns
            yield _Parsed(line, None, errors=[Rejection(line, "(row)", f"more cells than the {len(header)} columns of the header")])
            current = None
            continue
        cells = {k: (v or "") for k, v in row.items()}
        if not any(v.strip() for v in cells.values()):
            continue
        oid = cells["id"].strip()
        if current is not None and current.data is not None and oid and oid == current.data["id"]:
            _continue_order(current, cells, line)
            continue
        if current is not None:
            yield current
        if oid and oid in first_line:
            current = _Parsed(line, None, errors=[Rejection(line, "id", f"duplicate order id {oid!r}: already at line {first_line[oid]} "
                                                                    "(the lines of one order must be consecutive)")])
            continue
        if oid:
            first_line[oid] = line
        current = _start_order(cells, line)
    if current is not None:
        yield current


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
            order.errors.append(Rejection(line, col, f"differs from line {order.line} of the same order"))
    if "group" in first and first["group"] != order.data.get("group"):
        order.errors.append(Rejection(line, "group_id", f"the group differs from line {order.line} of the same order"))
    order.data["items"].append(first["items"][0])
    order.item_lines.append(line)


def _read_jsonl(text: str, progress: Progress) -> Iterator[_Parsed]:
    for number, raw in enumerate(text.splitlines(), start=1):
        progress.advance()
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except ValueError as exc:
            yield _Parsed(number, None, errors=[Rejection(number, "(line)", f"not valid JSON: {exc}")])
            continue
        if not isinstance(data, dict):
            yield _Parsed(number, None, errors=[Rejection(number, "(line)", "each line must be a JSON object (an order)")])
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
    if parsed.data is None:
        return
    try:
        parsed.model = OrderIn.model_validate(parsed.data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            line = parsed.line
            if fmt == "csv" and len(loc) > 1 and loc[0] == "items" and isinstance(loc[1], int) and loc[1] < len(parsed.item_lines):
                line = parsed.item_lines[loc[1]]
            message = err["msg"]
            if err["type"] == "missing" and fmt == "csv":
                message = "required (empty)"
            parsed.errors.append(Rejection(line, _field_of(loc, fmt), message))


# --- checking against the database and the domain ----------------------------------------------------------
def _existing(uow: UnitOfWork, column: Any, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        found.update(uow.conn.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def _domain_error(exc: DomainError, tz: str) -> str:
    return f"{i18n.render_error(exc, 'en', tz)} ({exc.rule})"


@dataclass
class _Build:
    """Orders and groups built in memory, in file order."""

    orders: list[Order] = field(default_factory=list)
    new_groups: dict[str, Group] = field(default_factory=dict)
    members: dict[str, Order] = field(default_factory=dict)


def _build(ctx: Context, uow: UnitOfWork, parsed: list[_Parsed], fmt: str, progress: Progress) -> tuple[_Build, list[Rejection]]:
    """Turn validated rows into domain objects; every refusal becomes a rejection of its line."""
    tz = ctx.policy.timezone
    group_field = "group_id" if fmt == "csv" else "group.id"
    models = [p for p in parsed if p.model is not None and not p.errors]
    taken = _existing(uow, t.orders.c.id, [p.model.id for p in models if p.model])
    merchants = _existing(uow, t.merchants.c.id, sorted({p.model.merchant_id for p in models if p.model}))
    built = _Build()
    rejections: list[Rejection] = []
    groups: dict[str, Group | None] = {}
    for p in models:
        progress.advance()
        m = p.model
        assert m is not None
        if m.id in taken:
            rejections.append(Rejection(p.line, "id", f"order {m.id!r} already exists"))
            continue
        if m.merchant_id not in merchants:
            rejections.append(Rejection(p.line, "merchant_id", f"unknown merchant {m.merchant_id!r}"))
            continue
        if m.paid_at > uow.now:
            rejections.append(Rejection(p.line, "paid_at", f"cannot be in the future (now is {uow.now.isoformat()}) (T0)"))
            continue
        try:
            order = new_order(id=m.id, merchant_id=m.merchant_id, buyer_id=m.buyer_id, paid_at=m.paid_at,
                              shipping_fee_fen=m.shipping_fee_fen, return_shipping_insured=m.return_shipping_insured,
                              items=[OrderItem(i.sku, i.title, i.category, i.quantity, i.unit_price_fen, i.exclusion_confirmed)
                                     for i in m.items],
                              group_id=m.group.id if m.group else None)
        except DomainError as exc:
            rejections.append(Rejection(p.line, str(exc.msg.params.get("field", "items")), _domain_error(exc, tz)))
            continue
        if m.group is not None:
            gid = m.group.id
            if gid not in groups:
                groups[gid] = uow.tracker.get_group(gid, lock=True)
            group = groups[gid]
            try:
                if group is None:
                    group = open_group(id=gid, merchant_id=order.merchant_id, size=m.group.size,
                                       auto_complete=m.group.auto_complete, first=order, policy=ctx.policy)
                    groups[gid] = built.new_groups[gid] = group
                elif group.merchant_id != order.merchant_id:
                    rejections.append(Rejection(p.line, group_field, f"group {gid!r} belongs to another merchant"))
                    continue
                else:
                    members = [built.members.get(oid) or uow.tracker.get_order(oid, lock=True) for oid in group.member_ids]
                    group.join(order, order.paid_at, [o for o in members if o is not None])
            except DomainError as exc:
                rejections.append(Rejection(p.line, group_field, _domain_error(exc, tz)))
                continue
        built.orders.append(order)
        built.members[order.id] = order
    return built, rejections


# --- the import --------------------------------------------------------------------------------------------
def import_orders(ctx: Context, path: Path, fmt: str | None = None, *, progress: Progress | None = None,
                  dry_run: bool = False) -> Report:
    """Validate every row of ``path``; if none is rejected (and not ``dry_run``), write all in one transaction."""
    started = time.perf_counter()
    progress = progress or _Silent()
    fmt = detect_format(path, fmt)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    report = Report(file=str(path), format=fmt)
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    progress.phase("reading and validating rows", max(lines - (1 if fmt == "csv" else 0), 0))
    reader = _read_csv(text, progress) if fmt == "csv" else _read_jsonl(text, progress)
    parsed: list[_Parsed] = []
    seen: dict[str, int] = {}
    for p in reader:
        _validate_shape(p, fmt)
        if fmt == "jsonl" and p.model is not None:
            if p.model.id in seen:
                p.errors.append(Rejection(p.line, "id", f"duplicate order id {p.model.id!r}: already at line {seen[p.model.id]}"))
            else:
                seen[p.model.id] = p.line
        parsed.append(p)
        report.rows += max(len(p.item_lines), 1)
        report.rejections += p.errors
    report.orders = sum(1 for p in parsed if p.data is not None)

    with UnitOfWork(ctx) as uow:
        progress.phase("checking against the database and the rules", sum(1 for p in parsed if p.model and not p.errors))
        built, rejections = _build(ctx, uow, parsed, fmt, progress)
        report.rejections += rejections
        report.rejections.sort(key=lambda r: r.line)
        report.groups = len(built.new_groups)
        if report.rejections or dry_run:
            report.seconds = time.perf_counter() - started
            return report  # rolled back: nothing was written
        progress.phase("writing orders", len(built.orders))
        for group in built.new_groups.values():
            uow.tracker.add_group(group)
        uow.tracker.flush()  # groups first (orders refer to them), and the existing members a joined group formed
        for start in range(0, len(built.orders), BATCH):
            # The Tracker writes new orders, and all events, with one statement per table.
            batch = Tracker(uow.conn, uow.now, on_events=uow.tracker.on_events, on_postings=uow.tracker.on_postings)
            for order in built.orders[start:start + BATCH]:
                batch.add_order(order)
            batch.flush()
            progress.advance(len(built.orders[start:start + BATCH]))
        uow.commit()
        report.written = True
    report.seconds = time.perf_counter() - started
    return report
