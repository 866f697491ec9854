"""`aftersales verify FILE` (D3): exit 0 when a record is intact, 1 saying where it was changed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersales import cli
from aftersales.domain import record

runner = CliRunner()
SECRET = "cli-test-record-secret-" + "z" * 16


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AFTERSALES_"):
            monkeypatch.delenv(name)


def write_record(path: Path) -> Path:
    items = [("order", {"id": "o1"}), ("case", {"id": "cs_1", "status": "closed"}),
             ("event", {"kind": "approved", "at": "2026-03-01T03:00:00+00:00", "actor": "merchant"})]
    header = {"subject": {"kind": "case", "id": "cs_1"}, "exported_at": "2026-03-02T00:00:00+00:00"}
    path.write_bytes(record.serialise(record.build(header, items, SECRET)))
    return path


def test_D3_verify_an_intact_record_with_and_without_the_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = write_record(tmp_path / "record.json")
    result = runner.invoke(cli.app, ["verify", str(file)])
    assert result.exit_code == 0, result.output
    assert "intact" in result.output and "3 links" in result.output
    assert "signature not checked (AFTERSALES_RECORD_SECRET is not set)" in result.output
    monkeypatch.setenv("AFTERSALES_RECORD_SECRET", SECRET)
    result = runner.invoke(cli.app, ["verify", str(file)])
    assert result.exit_code == 0 and "signature valid" in result.output, result.output


def test_D3_verify_names_the_changed_link_and_exits_1(tmp_path: Path) -> None:
    file = write_record(tmp_path / "record.json")
    doc = json.loads(file.read_bytes())
    doc["links"][2]["item"]["actor"] = "platform"
    file.write_bytes(record.serialise(doc))
    result = runner.invoke(cli.app, ["verify", str(file)])
    assert result.exit_code == 1, result.output
    assert "NOT intact" in result.output
    assert "link 2 (event 'approved' at 2026-03-01T03:00:00+00:00) was changed" in result.output


def test_D3_verify_says_where_a_file_is_not_json_or_not_canonical(tmp_path: Path) -> None:
    file = write_record(tmp_path / "record.json")
    data = file.read_bytes()
    file.write_bytes(data.replace(b'"head": ', b'"head" ', 1))
    result = runner.invoke(cli.app, ["verify", str(file)])
    assert result.exit_code == 1 and "not valid JSON at byte 10 (line 2, column 9)" in result.output, result.output
    file.write_bytes(data.replace(b'\n "header"', b'\n  "header"', 1))
    result = runner.invoke(cli.app, ["verify", str(file)])
    assert result.exit_code == 1 and "not in its canonical form" in result.output, result.output


def test_D3_verify_with_the_secret_refuses_a_re_signed_forgery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = write_record(tmp_path / "record.json")
    doc = json.loads(file.read_bytes())
    items = [(link["kind"], link["item"]) for link in doc["links"]]
    items[1][1]["status"] = "awaiting_merchant"
    header = {k: v for k, v in doc["header"].items() if k not in ("format", "version")}
    file.write_bytes(record.serialise(record.build(header, items, "forger")))
    monkeypatch.setenv("AFTERSALES_RECORD_SECRET", SECRET)
    result = runner.invoke(cli.app, ["verify", str(file)])
    assert result.exit_code == 1 and "signature INVALID" in result.output and "signature does not match" in result.output
