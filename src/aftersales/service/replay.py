"""What-if replay over the stored history (issue 15): every order with something in [start, end), replayed under the
policy version it was paid under and under a candidate policy, differences counted by shop, category and rule id.

Reads one snapshot (a read-only transaction) and writes nothing. ``identity=True`` replays under the version in force
only and checks every event and every amount against the stored history (the proof the domain is deterministic).
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aftersales.domain import replay as dreplay
from aftersales.domain.catalog import Category
from aftersales.domain.policy import Policy, version_id
from aftersales.store import replay as store
from aftersales.store import repositories as repo
from aftersales.store.codec import encode
from aftersales.store.repositories import Tracker

from .context import Context
from .terms import order_policy

BATCH = 500
Progress = Callable[[int, int], None]


@dataclass
class CaseSample:
    """A case that differs, with both timelines."""

    order_id: str
    case_id: str
    merchant_id: str
    differences: list[dreplay.Difference]
    in_force: list[dict[str, Any]]
    candidate: list[dict[str, Any]]


@dataclass
class ReplayReport:
    start: datetime
    end: datetime
    until: datetime
    #: The draft's policy version (None: each order's own version, the draft changing only category terms)
    candidate_version: str | None
    identity: bool
    orders: int = 0
    cases: int = 0
    refused_openings: int = 0
    events: int = 0
    seconds: float = 0.0
    #: identity: orders whose replay under their own version did not reproduce the stored history, and how often
    mismatched_orders: int = 0
    mismatches: int = 0
    mismatch_samples: list[dict[str, Any]] = field(default_factory=list)
    unreplayable: list[str] = field(default_factory=list)
    #: candidate vs version in force: cases that differ, and differences by kind, shop, category and rule id
    differing_cases: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_shop: Counter[str] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    rows: list[dict[str, Any]] = field(default_factory=list)
    samples: list[CaseSample] = field(default_factory=list)
    #: The draft's category terms (E4–E6) the replay used in place of those the orders were paid under
    candidate_terms: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: CPU seconds each process spent replaying (one entry per process; not part of the report's contents)
    cpu_seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(), "until": self.until.isoformat(),
            "candidate_version": self.candidate_version, "candidate_terms": self.candidate_terms,
            "identity": self.identity, "orders": self.orders,
            "cases": self.cases, "refused_openings": self.refused_openings, "events": self.events,
            "seconds": round(self.seconds, 3), "mismatched_orders": self.mismatched_orders, "mismatches": self.mismatches,
            "mismatch_samples": self.mismatch_samples, "unreplayable": self.unreplayable,
            "differing_cases": self.differing_cases, "by_kind": dict(sorted(self.by_kind.items())),
            "by_shop": dict(sorted(self.by_shop.items())), "by_category": dict(sorted(self.by_category.items())),
            "by_rule": dict(sorted(self.by_rule.items())),
            "samples": [{"order_id": s.order_id, "case_id": s.case_id, "merchant_id": s.merchant_id,
                         "differences": [_difference(d) for d in s.differences],
                         "in_force": s.in_force, "candidate": s.candidate} for s in self.samples],
        }


#: Columns of the CSV report: one line per difference.
CSV_COLUMNS = ("order_id", "case_id", "merchant_id", "categories", "kind", "rules", "before", "after")


def csv_text(rows: list[dict[str, Any]]) -> str:
    """The CSV report: a header of :data:`CSV_COLUMNS`, then one line per difference."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _difference(d: dreplay.Difference) -> dict[str, Any]:
    return {"kind": d.kind, "case_id": d.case_id, "rules": list(d.rules), "before": d.before, "after": d.after}


def _recorded(r: Any) -> dreplay.Recorded:
    return dreplay.Recorded(r.kind, r.actor, r.at, tuple(r.rules), r.case_id, r.from_status, r.to_status, r.data)


def _refused(r: Any) -> dreplay.RefusedOpening:
    return dreplay.RefusedOpening(r.id, r.actor, r.case_type, r.reason, dict(r.items) if r.items else None, r.refund_fen,
                                  bool(r.buyer_consent), r.rule, r.at, r.events_before)


def run_replay(ctx: Context, policy: Policy | None, start: datetime, end: datetime, *, identity: bool = False,
               terms: Mapping[str, Category] | None = None, sample: int = 20, progress: Progress | None = None,
               batch: int = BATCH, workers: int = 1) -> ReplayReport:
    """Replay every order with something in [start, end) under its stamped version and under the candidate: the policy
    ``policy`` (None: each order's own version) with the category terms ``terms`` in place of those the order was paid
    under (E4–E6). ``identity`` replays under the stamped version only. Reads one snapshot; writes nothing.

    ``workers`` > 1 splits the orders (in id order) into that many contiguous ranges replayed by as many processes
    (:mod:`aftersales.service.replay_workers`), whose reports are merged in range order: the same report as one
    process gives, sooner on as many cores."""
    began, cpu = time.perf_counter(), time.process_time()
    with store.snapshot(ctx.engine) as conn:
        until = ctx.clock.now(conn)
        report = new_report(start, end, until, policy, terms, identity)
        order_ids = store.order_ids_in_window(conn, start, end)
        if progress is not None:
            progress(0, len(order_ids))
        if workers > 1 and len(order_ids) > batch:
            from .replay_workers import run_parallel

            report = run_parallel(ctx, conn, report, order_ids, policy, terms, sample=sample, progress=progress,
                                  batch=batch, workers=workers)
        else:
            replay_range(ctx, conn, report, order_ids, policy, terms, sample=sample, batch=batch,
                         progress=None if progress is None else lambda done: progress(done, len(order_ids)))
            report.cpu_seconds = [time.process_time() - cpu]
    report.seconds = time.perf_counter() - began
    return report


def new_report(start: datetime, end: datetime, until: datetime, policy: Policy | None,
               terms: Mapping[str, Category] | None, identity: bool) -> ReplayReport:
    return ReplayReport(start, end, until, version_id(policy) if policy is not None else None, identity,
                        candidate_terms={code: _terms(c) for code, c in sorted((terms or {}).items())})


def replay_range(ctx: Context, conn: Any, report: ReplayReport, order_ids: list[str], candidate: Policy | None,
                 terms: Mapping[str, Category] | None, *, sample: int, batch: int,
                 progress: Callable[[int], None] | None = None) -> None:
    """Replay the orders ``order_ids`` (in this order, batches of ``batch``) into ``report``, read through ``conn`` up
    to the report's clock; ``progress(done)`` after each batch."""
    categories = repo.categories(conn)
    for i in range(0, len(order_ids), batch):
        chunk = order_ids[i:i + batch]
        tracker = Tracker(conn, report.until)
        tracker.load_orders(chunk)
        events = store.order_events(conn, chunk)
        refused = store.refused_openings(conn, chunk)
        for oid in chunk:
            order = tracker.get_order(oid)
            if order is None:
                continue
            group = tracker.get_group(order.group_id) if order.group_id else None
            history = dreplay.History(order, [_recorded(r) for r in events[oid]], report.until,
                                      [_refused(r) for r in refused[oid]], categories, group)
            _one(ctx, conn, report, history, candidate, terms, report.identity, sample)
        if progress is not None:
            progress(min(i + batch, len(order_ids)))


def merge(into: ReplayReport, part: ReplayReport, sample: int) -> None:
    """Add the report of the next range of orders to ``into`` (ranges merged in order give the report of one run)."""
    for name in ("orders", "cases", "refused_openings", "events", "mismatched_orders", "mismatches", "differing_cases"):
        setattr(into, name, getattr(into, name) + getattr(part, name))
    for name in ("by_kind", "by_shop", "by_category", "by_rule"):
        getattr(into, name).update(getattr(part, name))
    into.mismatch_samples = (into.mismatch_samples + part.mismatch_samples)[:sample]
    into.unreplayable += part.unreplayable
    into.rows += part.rows
    into.samples = (into.samples + part.samples)[:sample]
    into.cpu_seconds += part.cpu_seconds


def _terms(c: Category) -> dict[str, Any]:
    return {"no_reason_return": c.no_reason_return,
            "statutory_exclusion": c.statutory_exclusion.value if c.statutory_exclusion else None,
            "after_sales_days": c.after_sales_days, "warranty_days": c.warranty_days}


def _one(ctx: Context, conn: Any, report: ReplayReport, history: dreplay.History, candidate: Policy | None,
         terms: Mapping[str, Category] | None, identity: bool, sample: int) -> None:
    order = history.order
    report.orders += 1
    report.cases += len(order.cases)
    report.refused_openings += len(history.refused)
    report.events += len(history.events)
    stamped = order_policy(ctx, conn, order)
    try:
        in_force = dreplay.replay(history, stamped)
    except dreplay.Unreplayable as exc:
        report.unreplayable.append(str(exc))
        return
    mismatches = dreplay.check_identity(history, in_force, encode)
    if mismatches:
        report.mismatched_orders += 1
        report.mismatches += len(mismatches)
        if len(report.mismatch_samples) < sample:
            report.mismatch_samples.append({"order_id": order.id, "mismatches": [
                {"index": m.index, "expected": m.expected, "got": m.got} for m in mismatches[:20]]})
    if identity:
        return
    draft = dreplay.replay(history, candidate or stamped, terms)
    differences = dreplay.compare(in_force, draft)
    if not differences:
        return
    categories = sorted({i.category for i in order.items})
    by_case: dict[str, list[dreplay.Difference]] = {}
    for d in differences:
        by_case.setdefault(d.case_id, []).append(d)
        report.by_kind[d.kind] += 1
        report.by_shop[order.merchant_id] += 1
        for c in categories:
            report.by_category[c] += 1
        for r in d.rules:
            report.by_rule[r] += 1
        report.rows.append({"order_id": order.id, "case_id": d.case_id, "merchant_id": order.merchant_id,
                            "categories": " ".join(categories), "kind": d.kind, "rules": " ".join(d.rules),
                            "before": d.before, "after": d.after})
    report.differing_cases += len(by_case)
    for cid, diffs in by_case.items():
        if len(report.samples) >= sample:
            break
        report.samples.append(CaseSample(order.id, cid, order.merchant_id, diffs,
                                         dreplay.timeline(in_force, cid, encode), dreplay.timeline(draft, cid, encode)))
