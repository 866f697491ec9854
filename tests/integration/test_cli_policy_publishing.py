"""`aftersales policy draft/drafts/schedule/withdraw` (T0, D3; issue 15) on a temporary SQLite database."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
from typer.testing import CliRunner

from aftersales import cli
from aftersales.config import Settings
from aftersales.service import publishing, terms
from aftersales.service.context import PLATFORM

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("AFTERSALES_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AFTERSALES_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str):
    return runner.invoke(cli.app, list(args))


def policy_file(path, **changes: int):
    text = resources.files("aftersales.policy").joinpath("default.toml").read_text("utf-8")
    for key, value in changes.items():
        lines = [f"{key} = {value}" if line.startswith(f"{key} = ") else line for line in text.splitlines()]
        text = "\n".join(lines) + "\n"
    path.write_text(text, "utf-8")
    return path


def drafts() -> list[dict]:
    r = invoke("policy", "drafts", "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_T0_cli_drafts_schedules_and_the_version_is_in_force(env):
    f = policy_file(env / "longer.toml", after_sales_days=20)
    r = invoke("policy", "draft", str(f), "--reason", "longer window for winter")
    assert r.exit_code == 0, r.output
    assert "after_sales_days" in r.stdout and "20" in r.stdout
    [d] = drafts()
    assert d["status"] == "draft" and d["difference"] == [{"name": "after_sales_days", "in_force": 15, "draft": 20}]

    r = invoke("policy", "schedule", d["id"])
    assert r.exit_code == 0, r.output
    ctx = cli._context(Settings())
    assert terms.policy_in_force(ctx, PLATFORM)["after_sales_days"] == 20
    # In force: it can no longer be withdrawn.
    r = invoke("policy", "withdraw", d["id"], "--reason", "oops")
    assert r.exit_code == 1 and "never changes once in force" in " ".join(r.output.split())

    # D3: each step recorded with who (the command line's user) and why.
    data, _ = publishing.record(ctx, PLATFORM, secret=Settings().record_secret)
    evs = [link["item"] for link in json.loads(data)["links"]]
    assert [(e["kind"], e["reason"]) for e in evs] == [("policy_drafted", "longer window for winter"),
                                                        ("policy_scheduled", "longer window for winter")]
    assert all(e["actor_id"].startswith("cli:") for e in evs)


def test_T0_cli_withdraws_a_future_version_and_refuses_an_invalid_file(env):
    f = policy_file(env / "later.toml", merchant_response_hours=36)
    later = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    assert invoke("policy", "draft", str(f), "--reason", "next week", "--effective-at", later).exit_code == 0
    [d] = drafts()
    assert invoke("policy", "schedule", d["id"]).exit_code == 0
    r = invoke("policy", "withdraw", d["id"], "--reason", "postponed")
    assert r.exit_code == 0, r.output
    assert drafts()[0]["status"] == "withdrawn"

    bad = policy_file(env / "bad.toml", no_reason_days=3)
    r = invoke("policy", "draft", str(bad), "--reason", "x")
    assert r.exit_code == 1 and "no_reason_days (E4)" in r.output
    assert invoke("policy", "draft", str(f), "--reason", "x", "--effective-at", "2026-01-01T00:00").exit_code == 2
    assert invoke("policy", "schedule", "pd_nosuch").exit_code == 1
    assert len(drafts()) == 1


def test_E4_E5_cli_drafts_category_terms_from_toml_tables_and_schedules_them(env):
    from aftersales.service import setup

    ctx = cli._context(Settings(), migrate=True)
    setup.put_category(ctx, PLATFORM, code="fruitbox", name="Fruit boxes", no_reason_return=True,
                       statutory_exclusion=None, after_sales_days=15, warranty_days=None)
    f = env / "fruit.toml"
    f.write_text("[categories.fruitbox]\nno_reason_return = false\nafter_sales_days = 8\n", "utf-8")
    at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    r = invoke("policy", "draft", str(f), "--reason", "fruit spoils", "--effective-at", at.isoformat())
    assert r.exit_code == 0, r.output
    assert "categories.fruitbox.after_sales_days" in r.stdout and "(policy unchanged)" in r.stdout
    [d] = drafts()
    assert d["version"] is None and d["category_difference"] == [
        {"category": "fruitbox", "name": "no_reason_return", "in_force": True, "draft": False},
        {"category": "fruitbox", "name": "after_sales_days", "in_force": 15, "draft": 8}]
    assert invoke("policy", "schedule", d["id"]).exit_code == 0
    versions = terms.category_versions(ctx, PLATFORM, "fruitbox")
    assert [(v["version"], v["after_sales_days"], v["effective_at"]) for v in versions] == [
        (1, 15, versions[0]["effective_at"]), (2, 8, at.isoformat())]
    # An unknown category or a bad term: exit 1 naming it, nothing drafted.
    f.write_text("[categories.nosuch]\nno_reason_return = true\n[categories.fruitbox]\nafter_sales_days = 'x'\n", "utf-8")
    r = invoke("policy", "draft", str(f), "--reason", "typo")
    assert r.exit_code == 1 and "categories.nosuch" in r.output and "categories.fruitbox" in r.output
    assert len(drafts()) == 1
