"""What-if replay jobs through HTTP (issue 15), on SQLite and PostgreSQL: a draft lengthening the no-reason window
(E4) replayed over a period by the worker's step (:func:`replay_jobs.run_next`, run here synchronously), its report
and CSV the same as :func:`run_replay` gives directly; platform only; bad periods are 422 (T0)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from helpers import days, delivered_order, open_case, problem, try_open
from test_policy_publishing import draft

from aftersales.domain import policy as policy_mod
from aftersales.service import replay_jobs
from aftersales.service.context import Context
from aftersales.service.replay import CSV_COLUMNS, run_replay

PERIOD = {"from": "2020-01-01", "to": "2030-01-01"}


def _refusals(api: Any) -> None:
    """Four delivered orders: one no-reason return inside 7 days, refusals on day 8, 9 and 12 (E4)."""
    for oid in ("o-d8", "o-d9", "o-d12", "o-d3"):
        delivered_order(api, oid)
    api.advance(days(3))
    open_case(api, "o-d3", "return_refund", "no_reason")
    api.advance(days(5))
    problem(try_open(api, "o-d8", "return_refund", "no_reason"), 422, "E4")
    api.advance(days(1))
    problem(try_open(api, "o-d9", "return_refund", "no_reason"), 422, "E4")
    api.advance(days(3))
    problem(try_open(api, "o-d12", "return_refund", "no_reason"), 422, "E4")


def test_E4_replay_job_of_a_longer_no_reason_window_reports_what_run_replay_reports(api: Any, ctx: Context) -> None:
    _refusals(api)
    d = draft(api, no_reason_days=10)
    r = api.post(f"/v1/policy/drafts/{d['id']}/replays", PERIOD)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["draft_id"] == d["id"] and job["report"] is None
    assert job["from"] == "2019-12-31T16:00:00+00:00"  # local midnight, Asia/Shanghai (T0)
    assert job["progress"] == {"done": 0, "total": None}

    assert replay_jobs.run_next(ctx) == 1  # the worker's step, synchronously
    assert replay_jobs.run_next(ctx) == 0  # nothing left

    got = api.get(f"/v1/policy/replays/{job['id']}").json()
    assert got["status"] == "done" and got["error"] is None and got["finished_at"]
    assert got["progress"]["done"] == got["progress"]["total"] == 4
    report = got["report"]

    start, end = datetime.fromisoformat(got["from"]), datetime.fromisoformat(got["to"])
    direct = run_replay(ctx, policy_mod.from_parameters(d["parameters"]), start, end, sample=replay_jobs.SAMPLE)
    expected = direct.as_dict()
    for key in ("orders", "cases", "refused_openings", "events", "differing_cases", "by_kind", "by_shop",
                "by_category", "by_rule", "samples", "mismatches", "candidate_version"):
        assert report[key] == expected[key], key
    assert report["candidate_version"] == d["version"] and report["mismatches"] == 0
    assert report["by_rule"]["E4"] >= 2 and report["by_shop"]["mA"] >= 2
    assert {s["order_id"] for s in report["samples"]} >= {"o-d8", "o-d9"}
    sample = next(s for s in report["samples"] if s["order_id"] == "o-d8")
    assert [e["kind"] for e in sample["in_force"]] == ["skipped open"] and sample["candidate"][0]["kind"] == "opened"

    r = api.get(f"/v1/policy/replays/{job['id']}/report.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(csv.DictReader(io.StringIO(r.text)).fieldnames or ()) == CSV_COLUMNS
    assert rows == [{k: str(v) for k, v in row.items()} for row in direct.rows]
    assert sorted(x["order_id"] for x in rows if x["rules"] == "E4" and x["after"] == "allowed (E4)") == ["o-d8", "o-d9"]


def test_T0_replay_job_reads_a_snapshot_and_writes_only_its_row(api: Any, ctx: Context) -> None:
    _refusals(api)
    d = draft(api, no_reason_days=10)
    before = api.get("/v1/orders").json(), api.get("/v1/policy/drafts").json()
    job = api.post(f"/v1/policy/drafts/{d['id']}/replays", {"from": "2020-01-01T00:00:00Z", "to": "2030-01-01"}).json()
    assert job["from"] == "2020-01-01T00:00:00+00:00"
    replay_jobs.run_next(ctx)
    assert (api.get("/v1/orders").json(), api.get("/v1/policy/drafts").json()) == before
    # An empty period: done, nothing to replay, the CSV is its header.
    empty = api.post(f"/v1/policy/drafts/{d['id']}/replays", {"from": "2020-01-01", "to": "2020-01-02"}).json()
    replay_jobs.run_next(ctx)
    got = api.get(f"/v1/policy/replays/{empty['id']}").json()
    assert got["status"] == "done" and got["report"]["orders"] == 0 and got["progress"] == {"done": 0, "total": 0}
    assert api.get(f"/v1/policy/replays/{empty['id']}/report.csv").text.strip() == ",".join(CSV_COLUMNS)


def test_T0_replay_jobs_are_the_platforms_alone(api: Any) -> None:
    d = draft(api, no_reason_days=10)
    job = api.post(f"/v1/policy/drafts/{d['id']}/replays", PERIOD).json()
    for who in ("merchant_a", "buyer_x"):
        problem(api.post(f"/v1/policy/drafts/{d['id']}/replays", PERIOD, who=who), 403)
        problem(api.get(f"/v1/policy/replays/{job['id']}", who=who), 403)
        problem(api.get(f"/v1/policy/replays/{job['id']}/report.csv", who=who), 403)
    problem(api.get("/v1/policy/replays/rj_nosuch"), 404)
    problem(api.get("/v1/policy/replays/rj_nosuch/report.csv"), 404)
    problem(api.post("/v1/policy/drafts/pd_nosuch/replays", PERIOD), 404)


def test_T0_replay_bad_periods_are_422_and_queue_nothing(api: Any, ctx: Context) -> None:
    d = draft(api, no_reason_days=10)
    url = f"/v1/policy/drafts/{d['id']}/replays"
    for body in ({"from": "2026-13-01", "to": "2027-01-01"}, {"from": "yesterday", "to": "2027-01-01"},
                 {"from": "2026-12-01T00:00:00", "to": "2027-01-01"},  # no offset (T0)
                 {"from": "0001-01-01", "to": "2027-01-01"},  # before year 1 in UTC
                 {"from": "2026-12-01", "to": "9999-12-31T23:00:00-10:00"},
                 {"from": "2027-01-01", "to": "2026-12-01"}, {"from": "2026-12-01", "to": "2026-12-01"}):
        problem(api.post(url, body), 422, "T0")
    for body in ({"from": "2026-12-01"}, {"to": "2026-12-01"}, {"from": "2026-12-01", "to": "2027-01-01", "x": 1},
                 {"from": 20261201, "to": "2027-01-01"}):
        problem(api.post(url, body), 422)
    assert replay_jobs.run_next(ctx) == 0  # nothing was queued


def test_T0_a_running_replay_whose_worker_died_is_taken_again(api: Any, ctx: Context) -> None:
    d = draft(api, no_reason_days=10)
    job = api.post(f"/v1/policy/drafts/{d['id']}/replays", PERIOD).json()
    from aftersales.service.context import run
    from aftersales.store import replay as store

    # A worker took it and died two heartbeats ago: another takes it over and finishes it.
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    run(ctx, lambda uow: store.update_job(uow.conn, job["id"], {"status": "running", "heartbeat_at": long_ago}))
    assert replay_jobs.run_next(ctx) == 1
    assert api.get(f"/v1/policy/replays/{job['id']}").json()["status"] == "done"


def test_T0_replay_job_asks_for_worker_processes_within_bounds(api: Any, ctx: Context) -> None:
    _refusals(api)
    d = draft(api, no_reason_days=10)
    for bad in (0, 17, "2", True):
        problem(api.post(f"/v1/policy/drafts/{d['id']}/replays", {**PERIOD, "workers": bad}), 422)
    r = api.post(f"/v1/policy/drafts/{d['id']}/replays", {**PERIOD, "workers": 2})
    assert r.status_code == 202 and r.json()["workers"] == 2, r.text
    assert replay_jobs.run_next(ctx) == 1
    got = api.get(f"/v1/policy/replays/{r.json()['id']}").json()
    assert got["status"] == "done" and got["workers"] == 2 and got["report"]["mismatches"] == 0
    assert sorted(x["order_id"] for s in got["report"]["samples"] for x in [s] if any(
        y["after"] == "allowed (E4)" for y in s["differences"])) == ["o-d8", "o-d9"]
