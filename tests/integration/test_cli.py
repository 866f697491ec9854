"""The command line (`aftersales ...`) on a temporary SQLite database: migrate, keys, demo, run, import, policy."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from aftersales import cli
from aftersales.config import Settings
from aftersales.importer import CSV_COLUMNS
from aftersales.service import setup, users
from aftersales.service.context import PLATFORM, Principal
from aftersales.store import tables as t

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fresh SQLite file, the real clock, and the working directory in tmp (for ./var/demo-keys.json)."""
    for name in list(os.environ):
        if name.startswith("AFTERSALES_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AFTERSALES_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str):
    return runner.invoke(cli.app, list(args))


def context():
    ctx = cli._context(Settings())
    return ctx


def test_migrate_creates_the_schema(env):
    result = invoke("migrate")
    assert result.exit_code == 0, result.output
    assert "database at head" in result.output
    with context().engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.orders)).scalar_one() == 0


def test_keys_create_for_each_role_and_refuse_a_merchant_key_for_an_unknown_merchant(env):
    assert invoke("migrate").exit_code == 0
    ctx = context()
    setup.create_merchant(ctx, PLATFORM, id="mA", name="Shop A", return_address=None)

    platform = invoke("keys", "create", "--role", "platform")
    merchant = invoke("keys", "create", "--role", "merchant", "--subject", "mA", "--label", "shop A staff")
    buyer = invoke("keys", "create", "--role", "buyer", "--subject", "bX")
    for result in (platform, merchant, buyer):
        assert result.exit_code == 0, result.output
    assert setup.authenticate(ctx, platform.stdout.strip(), None) == Principal("platform")
    assert setup.authenticate(ctx, merchant.stdout.strip(), None) == Principal("merchant", "mA")
    assert setup.authenticate(ctx, buyer.stdout.strip(), None) == Principal("buyer", "bX")

    unknown = invoke("keys", "create", "--role", "merchant", "--subject", "nobody")
    assert unknown.exit_code == 1
    assert "merchant not found" in unknown.output
    assert invoke("keys", "create", "--role", "buyer").exit_code == 1  # a buyer key needs its buyer id
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.api_keys)).scalar_one() == 3


def test_demo_seeds_every_order_status_and_cases_due_within_a_day_and_is_idempotent(env):
    before = datetime.now(UTC)
    result = invoke("demo")
    assert result.exit_code == 0, result.output
    ctx = context()
    with ctx.engine.connect() as conn:
        statuses = set(conn.execute(select(t.orders.c.status)).scalars())
        merchants = conn.execute(select(func.count()).select_from(t.merchants)).scalar_one()
        open_due = conn.execute(select(t.cases.c.id, t.cases.c.due_at).where(t.cases.c.status != "closed")).all()
        closed = conn.execute(select(func.count()).select_from(t.cases).where(t.cases.c.status == "closed")).scalar_one()
        categories = {r.code: r for r in conn.execute(select(t.categories)).all()}
        counts = {name: conn.execute(select(func.count()).select_from(tbl)).scalar_one()
                  for name, tbl in (("orders", t.orders), ("cases", t.cases), ("events", t.events), ("keys", t.api_keys))}
    assert statuses == {"group_pending", "awaiting_shipment", "shipped", "delivered", "cancelled"}
    assert merchants >= 3
    soon = [due for _, due in open_due if due is not None and before < due <= before + timedelta(hours=24)]
    assert len(soon) >= 3, open_due
    assert closed >= 2
    assert {"perishable", "custom_made"} <= {c.statutory_exclusion for c in categories.values()}
    assert any(not c.no_reason_return and c.statutory_exclusion is None for c in categories.values())  # a shop exclusion
    assert any(c.warranty_days == 365 for c in categories.values())

    keys_file = env / "var" / "demo-keys.json"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    keys = json.loads(keys_file.read_text())["keys"]
    roles = [k["role"] for k in keys]
    assert roles.count("platform") == 1 and roles.count("merchant") == merchants and roles.count("buyer") >= 2
    for k in keys:
        assert k["key"] in result.output
        if k["role"] == "workbench":  # a workbench login: username + password, which signs in
            assert users.login(ctx, k["subject_id"], k["key"])
        else:
            assert setup.authenticate(ctx, k["key"], None) == Principal(k["role"], k["subject_id"])
    assert {k["subject_id"] for k in keys if k["role"] == "workbench"} >= {"platform.agent", "fruit.agent"}
    assert "/app/buyer/enter?token=" in result.output  # a portal link for each demo buyer

    again = invoke("demo")
    assert again.exit_code == 0, again.output
    assert "nothing seeded" in again.output
    with ctx.engine.connect() as conn:
        assert counts == {name: conn.execute(select(func.count()).select_from(tbl)).scalar_one()
                          for name, tbl in (("orders", t.orders), ("cases", t.cases), ("events", t.events), ("keys", t.api_keys))}


def test_demo_follows_the_manual_clock(env, monkeypatch):
    start = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    monkeypatch.setenv("AFTERSALES_CLOCK", "manual")
    monkeypatch.setenv("AFTERSALES_CLOCK_START", start.isoformat())
    assert invoke("demo").exit_code == 0
    with context().engine.connect() as conn:
        opened = conn.execute(select(func.max(t.cases.c.opened_at))).scalar_one()
        due = conn.execute(select(t.cases.c.due_at).where(t.cases.c.status != "closed")).scalars().all()
    assert start - timedelta(days=30) < opened <= start
    assert sum(start < d <= start + timedelta(hours=24) for d in due) >= 3


def test_run_seeds_once_prints_the_same_working_keys_each_time_then_serves(env, monkeypatch):
    served = []
    monkeypatch.setattr(cli, "serve", lambda **kw: served.append(kw))
    first = invoke("run")
    assert first.exit_code == 0, first.output
    assert "http://127.0.0.1:8000" in first.output
    keys = json.loads((env / "var" / "demo-keys.json").read_text())["keys"]
    second = invoke("run", "--port", "8123")
    assert second.exit_code == 0, second.output
    assert "http://127.0.0.1:8123" in second.output
    ctx = context()
    for k in keys:
        assert k["key"] in first.output and k["key"] in second.output
        if k["role"] != "workbench":
            setup.authenticate(ctx, k["key"], None)
    same = {"workers": 1, "in_process_worker": None, "threads": None}  # run serves with the configured defaults
    assert served == [{"host": None, "port": None, **same}, {"host": None, "port": 8123, **same}]


def _import_shop() -> tuple[str, str]:
    """Shop mA and the category apparel (E4: the rows' category); the CSV header and a row template (``n``, ``qty``)."""
    setup.create_merchant(context(), PLATFORM, id="mA", name="Shop A", return_address=None)
    setup.put_category(context(), PLATFORM, code="apparel", name="Apparel", no_reason_return=True,
                       statutory_exclusion=None, after_sales_days=None, warranty_days=None)
    return ",".join(CSV_COLUMNS), "o{n},mA,bX,2026-03-01T01:00:00+00:00,500,,s1,Shirt,apparel,{qty},1999,,,,"


def test_import_orders_reports_the_rejected_line_and_exits_1_then_imports_a_good_file(env):
    assert invoke("migrate").exit_code == 0
    header, row = _import_shop()
    bad = env / "bad.csv"
    bad.write_text("\n".join([header, row.format(n=1, qty=1), row.format(n=2, qty="two")]) + "\n")
    result = invoke("import", "orders", str(bad))
    assert result.exit_code == 1
    assert "quantity" in result.output and "nothing was imported" in result.output
    assert " 3 " in result.output  # the line number of the bad row
    good = env / "good.jsonl"
    good.write_text(json.dumps({"id": "j1", "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00+00:00",
                                "shipping_fee_fen": 0, "items": [{"sku": "s1", "title": "Shirt", "category": "apparel",
                                                                  "quantity": 1, "unit_price_fen": 1999}]}) + "\n")
    result = invoke("import", "orders", str(good))
    assert result.exit_code == 0, result.output
    assert "imported 1 orders" in result.output
    with context().engine.connect() as conn:
        assert list(conn.execute(select(t.orders.c.id)).scalars()) == ["j1"]


def test_policy_show_prints_the_parameters(env):
    result = invoke("policy", "show")
    assert result.exit_code == 0, result.output
    assert "no_reason_days" in result.output
    data = json.loads(invoke("policy", "show", "--json").stdout)
    assert data["no_reason_days"] == 7 and data["merchant_response_hours"] == 48


def test_D2_ledger_audit_passes_on_a_seeded_marketplace_and_names_a_broken_transaction(env):
    assert invoke("demo").exit_code == 0
    result = invoke("ledger", "audit")
    assert result.exit_code == 0, result.output
    assert "balances" in result.output
    with context().engine.begin() as conn:  # tamper: one entry of one transaction loses a fen
        entry_id = conn.execute(select(func.min(t.ledger_entries.c.id)).where(t.ledger_entries.c.credit_fen > 0)).scalar_one()
        conn.execute(t.ledger_entries.update().where(t.ledger_entries.c.id == entry_id)
                     .values(credit_fen=t.ledger_entries.c.credit_fen - 1))
    result = invoke("ledger", "audit")
    assert result.exit_code == 1
    assert "does not balance" in result.output


def test_users_create_and_a_buyer_link_that_opens_the_portal(env):
    assert invoke("migrate").exit_code == 0
    ctx = context()
    setup.create_merchant(ctx, PLATFORM, id="mA", name="Shop A", return_address=None)
    ok = invoke("users", "create", "--username", "alice", "--role", "merchant_agent", "--merchant", "mA",
                "--password", "a long password 1")
    assert ok.exit_code == 0, ok.output
    assert users.login(ctx, "alice", "a long password 1")
    short = invoke("users", "create", "--username", "bob", "--role", "platform_agent", "--password", "short")
    assert short.exit_code == 1 and "10 characters" in short.output
    orphan = invoke("users", "create", "--username", "carol", "--role", "merchant_agent", "--password", "a long password 1")
    assert orphan.exit_code == 1 and "merchant_id" in orphan.output
    link = invoke("users", "link", "bX", "--base-url", "https://shop.example")
    assert link.exit_code == 0
    token = link.output.strip().split("token=", 1)[1].replace("\n", "")
    assert users.buyer_login(ctx, Settings().secret_key, token)


@pytest.mark.parametrize(("lang", "unreadable", "why", "rejected", "valid", "imported"), [
    ("zh_CN.UTF-8", "未知格式“xml”：请使用 csv 或 jsonl", ["应为整数", "订单“o9”已存在"], "3 个订单中有 2 个问题：未导入任何数据",
     "校验通过：1 个订单", "已导入 1 个订单"),
    ("es_ES.UTF-8", "formato desconocido «xml»: use csv o jsonl", ["Debe ser un número entero", "el pedido «o9» ya existe"],
     "2 problema(s) en 3 pedido(s): no se importó nada", "válido: 1 pedidos", "importados 1 pedidos"),
    ("C", "unknown format 'xml': use csv or jsonl", ["Should be a whole number", "order 'o9' already exists"],
     "2 problem(s) in 3 order(s): nothing was imported", "valid: 1 orders", "imported 1 orders"),
])
def test_the_import_reports_in_the_operators_language(env, monkeypatch, lang, unreadable, why, rejected, valid, imported):
    """B4's command: a file it cannot read, each rejected row's message (the API's own for the same error) and the
    summary lines (rejected, --dry-run, imported) come from the catalogs like the rest of the CLI."""
    _locale(monkeypatch, lang)
    assert invoke("migrate").exit_code == 0
    header, row = _import_shop()
    bad = env / "bad.csv"
    bad.write_text("\n".join([header, row.format(n=1, qty=1), row.format(n=2, qty="two"), row.format(n=9, qty=1)]) + "\n")
    taken = env / "taken.csv"
    taken.write_text("\n".join([header, row.format(n=9, qty=1)]) + "\n")
    assert invoke("import", "orders", str(taken)).exit_code == 0  # o9 is taken now
    result = invoke("import", "orders", str(bad))
    flat = "".join(line.strip("│ ") for line in result.output.splitlines())  # the table may wrap a message
    assert result.exit_code == 1 and rejected in flat and all(w in flat for w in why), result.output
    good = env / "good.csv"
    good.write_text("\n".join([header, row.format(n=1, qty=1)]) + "\n")
    result = invoke("import", "orders", "--format", "xml", str(good))
    assert result.exit_code == 2 and unreadable in result.output.replace("\n", ""), result.output
    result = invoke("import", "orders", "--dry-run", str(good))
    assert result.exit_code == 0 and valid in result.output.replace("\n", ""), result.output
    result = invoke("import", "orders", str(good))
    assert result.exit_code == 0 and imported in result.output.replace("\n", ""), result.output


@pytest.mark.parametrize(("env_vars", "expected"), [
    ({"LANG": "zh_CN.UTF-8"}, "密码至少需要 10 个字符"),
    ({"LANG": "C.UTF-8", "LC_ALL": "es_ES.UTF-8"}, "una contraseña necesita al menos 10 caracteres"),
    ({"LANGUAGE": "en_GB:zh_CN", "LANG": "zh_CN.UTF-8"}, "a password needs at least 10 characters"),
    ({"LANG": "C"}, "a password needs at least 10 characters"),
])
def test_a_refusal_is_printed_in_the_operators_language(env, monkeypatch, env_vars, expected):
    """The CLI explains a service's refusal through the catalogs, in the language of the operator's locale."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env_vars.items():
        monkeypatch.setenv(name, value)
    assert invoke("migrate").exit_code == 0
    short = invoke("users", "create", "--username", "bob", "--role", "platform_agent", "--password", "short")
    assert short.exit_code == 1 and expected in short.output.replace("\n", "")


def _locale(monkeypatch, lang: str | None) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    if lang is not None:
        monkeypatch.setenv("LANG", lang)


@pytest.mark.parametrize(("lang", "help_text", "header", "option_help"), [
    ("zh_CN.UTF-8", "列出 API 密钥", "参数", "不列出已吊销的密钥"),
    ("es_ES.UTF-8", "Lista las claves de API", "parámetro", "Omite las claves revocadas"),
    ("C", "List API keys", "parameter", "Leave revoked keys out"),
])
def test_help_and_table_headers_are_in_the_operators_language(env, monkeypatch, lang, help_text, header, option_help):
    """Help texts (commands, options, Typer's panels) and table headers go through the catalogs, in the language the
    operator's locale names at the time the command runs, as the refusals do."""
    _locale(monkeypatch, lang)
    shown = invoke("keys", "list", "--help")
    assert shown.exit_code == 0, shown.output
    flat = " ".join(shown.output.split())
    assert help_text in flat and option_help in flat
    groups = " ".join(invoke("--help").output.split())
    assert cli.i18n.translate("Workbench users and buyers' portal links.", lang.split(".")[0])[:12] in groups
    table = invoke("policy", "show")
    assert table.exit_code == 0 and header in table.output
    assert "no_reason_days" in table.output  # parameter names are the file's, never translated


def test_machine_readable_output_does_not_change_with_the_language(env, monkeypatch):
    assert invoke("migrate").exit_code == 0
    assert invoke("keys", "create", "--role", "platform", "--label", "ops desk").exit_code == 0
    outputs = {}
    for lang in ("C", "zh_CN.UTF-8", "es_ES.UTF-8"):
        _locale(monkeypatch, lang)
        outputs[lang] = (invoke("policy", "show", "--json").stdout, invoke("keys", "list", "--json").stdout)
    assert outputs["C"] == outputs["zh_CN.UTF-8"] == outputs["es_ES.UTF-8"]
    assert json.loads(outputs["C"][0])["no_reason_days"] == 7
    assert "ops desk" in outputs["C"][1] and '"role": "platform"' in outputs["C"][1]


@pytest.mark.parametrize(("lang", "usage", "status", "audit"), [
    ("zh_CN.UTF-8", "用法：", "数据库已是最新版本", "账本平衡（D2）"),
    ("es_ES.UTF-8", "Uso: ", "base de datos al día", "el libro mayor cuadra (D2)"),
    ("C", "Usage: ", "database at head", "the ledger balances (D2)"),
])
def test_status_lines_and_usage_errors_are_in_the_operators_language(env, monkeypatch, lang, usage, status, audit):
    """What a command says when it succeeds, and the usage line of a mistyped command, in the operator's language."""
    _locale(monkeypatch, lang)
    migrated = invoke("migrate")
    assert migrated.exit_code == 0 and status in migrated.output
    balanced = invoke("ledger", "audit")
    assert balanced.exit_code == 0 and audit in balanced.output
    mistyped = invoke("policy", "check")  # FILE missing: Click's usage error
    assert mistyped.exit_code == 2 and usage in mistyped.output


def test_a_command_on_a_database_that_is_not_migrated_says_what_to_do(env, monkeypatch):
    """No traceback: the revision the database is at, the one the code needs, and the command that fixes it; nothing
    is created (the worker, the audit and `users create` do not migrate on their own)."""
    _locale(monkeypatch, "C")
    for args in (("ledger", "audit"), ("worker", "--once"),
                 ("users", "create", "--username", "ann", "--role", "platform_agent", "--password", "long enough pw")):
        refused = invoke(*args)
        assert refused.exit_code == 2, refused.output
        assert "run `aftersales migrate` first" in " ".join(refused.output.split()) and "Traceback" not in refused.output
    assert invoke("migrate").exit_code == 0
    assert invoke("ledger", "audit").exit_code == 0
