"""What-if replay (issue 15) on SQLite and PostgreSQL: identity under the version in force (T0: the domain is
deterministic), a draft lengthening the no-reason window (E4) against the refused openings, a draft shortening the
merchant's answer time (M1) against the automatic approvals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.api.helpers import delivered_order, problem, try_open
from typer.testing import CliRunner

from aftersales import cli, demo
from aftersales.domain import policy as policy_mod
from aftersales.domain import replay as dreplay
from aftersales.domain.errors import RuleViolation
from aftersales.service import cases as case_service
from aftersales.service import deadlines, orders, setup
from aftersales.service.context import PLATFORM, Context, Principal, read
from aftersales.service.replay import run_replay
from aftersales.store import replay as replay_store
from aftersales.store import tables as t
from aftersales.testing import ensure_merchant

MERCHANT = Principal("merchant", "mA")
BUYER = Principal("buyer", "bX")
EVER = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))
H = timedelta(hours=1)
D = timedelta(days=1)


def _advance(ctx: Context, delta: timedelta) -> None:
    deadlines.advance_clock(ctx, int(delta.total_seconds()))


def _delivered_order(ctx: Context, oid: str) -> None:
    orders.create_order(ctx, PLATFORM, {
        "id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": ctx.now() - 2 * H, "shipping_fee_fen": 800,
        "items": [{"sku": "s1", "title": "Linen shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 10000}],
    })
    orders.ship_order(ctx, MERCHANT, oid, "SF Express", f"SF{oid}")
    orders.deliver_order(ctx, MERCHANT, oid, None)


def _market(ctx: Context) -> None:
    ensure_merchant(ctx, "mA", ctx.now())
    setup.put_category(ctx, PLATFORM, code="apparel", name="Apparel", no_reason_return=True, statutory_exclusion=None,
                       after_sales_days=None, warranty_days=None)


def _open(ctx: Context, oid: str, case_type: str, reason: str, **extra: Any) -> dict[str, Any]:
    return case_service.open_case(ctx, BUYER, {"order_id": oid, "type": case_type, "reason": reason, **extra}, lang="en")


def _no_reason_refused(ctx: Context, oid: str) -> None:
    with pytest.raises(RuleViolation) as refused:
        _open(ctx, oid, "return_refund", "no_reason")
    assert refused.value.rule == "E4"


def _table_sizes(ctx: Context) -> dict[str, int]:
    def q(uow: Any) -> dict[str, int]:
        return {name: uow.conn.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in (("orders", t.orders), ("cases", t.cases), ("events", t.events),
                                    ("refunds", t.refunds), ("timers", t.timers), ("refused", t.refused_openings))} | {
            "order_events": uow.conn.execute(select(func.count()).select_from(t.events)
                                             .where(t.events.c.order_id.is_not(None))).scalar_one()}
    return read(ctx, q)


def test_T0_identity_replay_of_a_generated_history_reproduces_every_event_and_amount(ctx: Context) -> None:
    demo.seed(ctx)  # 22 orders, groups formed/failed/completed, 10 cases in every state, automatic actions, refunds
    _market(ctx)
    _delivered_order(ctx, "o-late")
    _advance(ctx, 9 * D)
    _no_reason_refused(ctx, "o-late")  # a refused opening is replayed too, and must be refused again by E4
    case = _open(ctx, "o-late", "refund_only", "quality_problem", refund_fen=3000)
    _advance(ctx, 49 * H)  # M1: the merchant's silence approves it, the refund settles (F1)
    before = _table_sizes(ctx)

    report = run_replay(ctx, None, *EVER, identity=True)

    assert report.orders == 23 and report.cases == 11 and report.refused_openings == 1
    assert report.mismatches == 0, report.mismatch_samples
    assert report.unreplayable == []
    assert report.events == before["order_events"]  # every event of every order (groups' own are facts, not replayed)
    assert _table_sizes(ctx) == before  # a snapshot, read only: nothing written

    # The identity compares every event, amounts included: a stored history that differs is reported.
    history = read(ctx, lambda uow: uow.tracker.get_order("o-late"))
    assert any(r.case_id == case["id"] and r.amount_fen == 3000 for r in history.refunds)


def test_E4_draft_lengthening_the_no_reason_window_reports_exactly_the_refusals_inside_the_new_window(ctx: Context) -> None:
    _market(ctx)
    for oid in ("o-d8", "o-d9", "o-d12", "o-d3"):
        _delivered_order(ctx, oid)
    _advance(ctx, 3 * D)
    _open(ctx, "o-d3", "return_refund", "no_reason")  # inside the 7-day window: allowed under both
    _advance(ctx, 5 * D)
    _no_reason_refused(ctx, "o-d8")  # day 8: outside 7 days, inside 10
    _advance(ctx, 1 * D)
    _no_reason_refused(ctx, "o-d9")  # day 9: inside 10
    _advance(ctx, 3 * D)
    _no_reason_refused(ctx, "o-d12")  # day 12: outside 10 days too
    assert read(ctx, lambda uow: replay_store.refused_opening_count(uow.conn)) == 3

    draft = policy_mod.override(ctx.policy, {"no_reason_days": 10})
    report = run_replay(ctx, draft, *EVER)

    assert report.mismatches == 0, report.mismatch_samples
    eligibility = [r for r in report.rows if r["kind"] == dreplay.ELIGIBILITY]
    assert sorted(r["order_id"] for r in eligibility) == ["o-d8", "o-d9"]
    assert all(r["rules"] == "E4" and r["before"] == "refused (E4)" and r["after"] == "allowed (E4)" for r in eligibility)
    assert report.by_rule["E4"] >= 2 and report.by_shop["mA"] >= 2 and report.by_category["apparel"] >= 2
    # Allowed by the draft, those returns would then have waited for the merchant, who never answered (M1).
    sample = next(s for s in report.samples if s.order_id == "o-d8")
    assert [(e["kind"], e["rules"]) for e in sample.in_force] == [("skipped open", ["E4"])]
    assert sample.candidate[0]["kind"] == "opened"
    assert any(e["kind"] == "auto_approve" and e["rules"][0] == "M1" for e in sample.candidate)  # 48 h of silence


def test_M1_draft_shortening_the_merchant_answer_time_changes_automatic_approvals(ctx: Context) -> None:
    _market(ctx)
    for oid in ("o-slow", "o-fast"):
        _delivered_order(ctx, oid)
    slow = _open(ctx, "o-slow", "refund_only", "quality_problem", refund_fen=2000)
    fast = _open(ctx, "o-fast", "refund_only", "quality_problem", refund_fen=2000)
    _advance(ctx, 10 * H)
    case_service.act(ctx, MERCHANT, fast["id"], "reject", {"reason": "Send a photo please."}, if_match=None, lang="en")
    _advance(ctx, 20 * H)
    # 30 h after opening, inside the 48 h of M1 but after the 24 h of the draft: the merchant refuses.
    case_service.act(ctx, MERCHANT, slow["id"], "reject", {"reason": "Not a defect."}, if_match=None, lang="en")
    _advance(ctx, 10 * D)  # M2: the buyers' silence closes both

    draft = policy_mod.override(ctx.policy, {"merchant_response_hours": 24})
    report = run_replay(ctx, draft, *EVER)

    assert report.mismatches == 0, report.mismatch_samples
    automatic = {r["case_id"]: r for r in report.rows if r["kind"] == dreplay.AUTOMATIC}
    assert set(automatic) == {slow["id"]}  # the merchant answered at 10 h: 24 h changes nothing automatic there
    assert "M1" in automatic[slow["id"]]["rules"].split()
    assert "auto_approve" in automatic[slow["id"]]["after"] and "auto_approve" not in automatic[slow["id"]]["before"]
    kinds = {r["kind"] for r in report.rows if r["case_id"] == slow["id"]}
    assert {dreplay.AUTOMATIC, dreplay.OUTCOME, dreplay.REFUND, dreplay.DEADLINES} <= kinds
    refund = next(r for r in report.rows if r["case_id"] == slow["id"] and r["kind"] == dreplay.REFUND)
    assert (refund["before"], refund["after"]) == ("0 fen", "2000 fen")
    # The merchant's refusal at 30 h comes after the draft's automatic approval: skipped, with the rule that refuses it.
    sample = next(s for s in report.samples if s.case_id == slow["id"])
    assert any(e["kind"] == "skipped reject" for e in sample.candidate)
    assert {r["kind"] for r in report.rows if r["case_id"] == fast["id"]} == {dreplay.DEADLINES}


def test_T0_cli_identity_and_draft_csv(ctx: Context, database: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _market(ctx)
    _delivered_order(ctx, "o-1")
    _advance(ctx, 8 * D)
    _no_reason_refused(ctx, "o-1")
    for name, value in database.env().items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    identity = runner.invoke(cli.app, ["policy", "replay", "--from", "2026-01-01", "--to", "2027-01-01", "--identity", "--json"])
    assert identity.exit_code == 0, identity.output
    assert json.loads(identity.output)["mismatches"] == 0

    out = tmp_path / "replay.csv"
    draft = runner.invoke(cli.app, ["policy", "replay", "--from", "2026-01-01", "--to", "2027-01-01",
                                    "--set", "no_reason_days=10", "--csv", str(out)])
    assert draft.exit_code == 0, draft.output
    assert "0 mismatch" in draft.output and "1 case(s) differ" in draft.output
    lines = out.read_text("utf-8").splitlines()
    assert lines[0] == "order_id,case_id,merchant_id,categories,kind,rules,before,after"
    assert any(line.startswith("o-1,refused-") and ",eligibility_changed,E4," in line for line in lines[1:])

    bad = runner.invoke(cli.app, ["policy", "replay", "--from", "2026-01-01", "--to", "2027-01-01", "--set", "no_reason_days=3"])
    assert bad.exit_code == 1 and "no_reason_days (E4)" in bad.output


def test_E4_a_refused_opening_is_recorded_and_answered_exactly_as_before(api: Any, ctx: Context) -> None:
    delivered_order(api, "o1")
    api.advance(9 * 24 * 3600)
    first = try_open(api, "o1", "return_refund", "no_reason")
    body = problem(first, 422, "E4")
    rows = read(ctx, lambda uow: replay_store.refused_openings(uow.conn, ["o1"]))["o1"]
    assert [(r.actor, r.case_type, r.reason, r.rule, r.at) for r in rows] == [
        ("buyer", "return_refund", "no_reason", "E4", api.now())]
    # The same refusal again, word for word: recording it changes nothing the caller sees.
    again = try_open(api, "o1", "return_refund", "no_reason")
    assert problem(again, 422, "E4") == body
    # An input error (E5: an unknown type) is no eligibility refusal: not recorded.
    assert try_open(api, "o1", "teleport", "no_reason").status_code == 422
    assert read(ctx, lambda uow: replay_store.refused_opening_count(uow.conn)) == 2


def test_E4_replay_of_a_draft_of_category_terms_reports_the_no_reason_returns_it_would_refuse(ctx: Context) -> None:
    from aftersales.service import publishing, replay_jobs

    _market(ctx)
    for oid in ("o-early", "o-quality"):
        _delivered_order(ctx, oid)
    _advance(ctx, 3 * D)
    _open(ctx, "o-early", "return_refund", "no_reason")  # allowed under the apparel terms it was paid under
    _open(ctx, "o-quality", "refund_only", "quality_problem", refund_fen=1000)  # not a no-reason return: unchanged
    # A draft of category terms only: apparel becomes custom-made (E4, a statutory exclusion); the policy stays.
    d = publishing.create_draft(ctx, PLATFORM, None, reason="made to measure", categories={
        "apparel": {"no_reason_return": True, "statutory_exclusion": "custom_made"}})
    assert d["version"] is None and [x["name"] for x in d["category_difference"]] == ["statutory_exclusion"]

    job = replay_jobs.start(ctx, PLATFORM, d["id"], "2020-01-01", "2030-01-01")
    assert replay_jobs.run_next(ctx) == 1
    report = replay_jobs.get(ctx, PLATFORM, job["id"])["report"]
    assert report["mismatches"] == 0 and report["candidate_version"] is None
    assert report["candidate_terms"] == {"apparel": {"no_reason_return": True, "statutory_exclusion": "custom_made",
                                                     "after_sales_days": None, "warranty_days": None}}
    eligibility = [(s["order_id"], x["before"], x["after"], x["rules"]) for s in report["samples"]
                   for x in s["differences"] if x["kind"] == dreplay.ELIGIBILITY]
    assert eligibility == [("o-early", "allowed (E4)", "refused (E4)", ["E4"])]
    assert {s["order_id"] for s in report["samples"]} == {"o-early"}
    assert report["by_category"]["apparel"] >= 1


def test_T0_replay_in_two_processes_gives_the_report_of_one(ctx: Context) -> None:
    """Issue 15 (a million cases in minutes): the orders split into ranges replayed by worker processes (one snapshot:
    PostgreSQL's exported to each), the reports merged in range order — the same report, differences and samples in
    the same order, as one process gives."""
    demo.seed(ctx)
    _market(ctx)
    for i in range(12):
        _delivered_order(ctx, f"o-{i:02d}")
    _advance(ctx, 8 * D)
    for i in range(0, 12, 3):
        _no_reason_refused(ctx, f"o-{i:02d}")  # refused under 7 days, allowed under 10
    draft = policy_mod.override(ctx.policy, {"no_reason_days": 10, "merchant_response_hours": 24})
    seen: list[tuple[int, int]] = []
    one = run_replay(ctx, draft, *EVER, sample=3, batch=5)
    two = run_replay(ctx, draft, *EVER, sample=3, batch=5, workers=2, progress=lambda d, t: seen.append((d, t)))
    a, b = one.as_dict(), two.as_dict()
    del a["seconds"], b["seconds"]
    assert a == b and one.rows == two.rows
    assert one.mismatches == 0 and one.differing_cases >= 4 and len(one.samples) == 3
    assert seen[0] == (0, one.orders) and seen[-1] == (one.orders, one.orders)
    identity = run_replay(ctx, None, *EVER, identity=True, batch=5, workers=3)
    assert identity.mismatches == 0 and identity.orders == one.orders
