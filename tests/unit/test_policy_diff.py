"""T0: `aftersales policy diff FILE` names, parameter by parameter, how FILE differs from the policy in force."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersales import cli
from aftersales.domain import policy as policy_mod


def test_T0_policy_diff_lists_each_changed_parameter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFTERSALES_POLICY_FILE", raising=False)
    path = tmp_path / "p.toml"
    path.write_text("after_sales_days = 20\nmerchant_response_hours = 36\n", "utf-8")
    result = CliRunner().invoke(cli.app, ["policy", "diff", str(path)], terminal_width=200)
    assert result.exit_code == 3, result.output
    assert "after_sales_days" in result.output and "merchant_response_hours" in result.output
    assert "no_reason_days" not in result.output
    assert policy_mod.version_id(policy_mod.load(path)) in result.output

    monkeypatch.setenv("AFTERSALES_POLICY_FILE", str(path))
    same = CliRunner().invoke(cli.app, ["policy", "diff", str(path)], terminal_width=200)
    assert same.exit_code == 0 and "same version" in same.output

    path.write_text("after_sales_days = 3\n", "utf-8")  # shorter than the no-reason window: invalid
    assert CliRunner().invoke(cli.app, ["policy", "diff", str(path)]).exit_code == 1


def test_T0_policy_version_id_ignores_comments_and_spelled_out_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("# only a comment\nafter_sales_days = 15\n", "utf-8")
    assert policy_mod.version_id(policy_mod.load(path)) == policy_mod.version_id(policy_mod.load())
    path.write_text("after_sales_days = 16\n", "utf-8")
    assert policy_mod.version_id(policy_mod.load(path)) != policy_mod.version_id(policy_mod.load())
