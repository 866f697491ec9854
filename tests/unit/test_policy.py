"""The platform policy: the shipped default, validation (every problem listed), and `aftersales policy ...`."""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersales.cli import app
from aftersales.domain.errors import PolicyError
from aftersales.domain.policy import LAW_REFUND_BOUND_HOURS, Policy, load, validate

#: RULEBOOK defaults, parameter by parameter.
RULEBOOK_DEFAULTS = {
    "timezone": "Asia/Shanghai",  # T0
    "group_wait_hours": 24,  # G1
    "no_reason_days": 7,  # E4
    "after_sales_days": 15,  # E5
    "warranty_days": 0,  # E6
    "max_buyer_cancellations": 3,  # E8
    "merchant_response_hours": 48,  # M1
    "merchant_reminder_hours": [12, 2],  # M1
    "buyer_response_days": 7,  # M2
    "return_shipping_cap_fen": 2000,  # M3
    "buyer_return_days": 7,  # M5
    "merchant_confirm_hours": 48,  # M6
    "return_auto_refund_days": 10,  # M6
    "merchant_ship_hours": 48,  # M7
    "buyer_confirm_days": 7,  # M7
    "platform_accept_hours": 24,  # P1
    "merchant_pay_hours": 24,  # P1
    "phone_hours": "09:00-20:00",  # K1
    "complaint_accept_hours": 24,  # K2
    "merchant_complaint_hours": 48,  # K2
    "deposit_required_fen": 100000,  # D1
    "deposit_withdrawal_hold_days": 90,  # D1
}

runner = CliRunner()


def problems_of(raw: dict[str, object]) -> list[str]:
    with pytest.raises(PolicyError) as exc:
        validate(raw)
    assert str(exc.value).startswith("invalid policy:")
    for problem in exc.value.problems:
        assert problem in str(exc.value)
    return exc.value.problems


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def flat(text: str) -> str:
    """Terminal output with Rich's line wrapping undone."""
    return " ".join(text.split())


# --- the shipped default --------------------------------------------------------------------------------
def test_policy_shipped_default_loads_with_the_rulebook_defaults() -> None:
    policy = load()
    assert policy == Policy()
    assert policy.as_dict() == RULEBOOK_DEFAULTS


def test_policy_shipped_file_names_every_parameter() -> None:
    raw = tomllib.loads(resources.files("aftersales.policy").joinpath("default.toml").read_text("utf-8"))
    assert raw == RULEBOOK_DEFAULTS


def test_policy_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    policy = load(write(tmp_path, 'timezone = "Europe/Madrid"\nno_reason_days = 14\nafter_sales_days = 30\n'))
    assert (policy.timezone, policy.no_reason_days, policy.after_sales_days) == ("Europe/Madrid", 14, 30)
    assert policy.merchant_response_hours == 48
    assert load(write(tmp_path, "merchant_reminder_hours = [2, 24, 12, 2]\n", "r.toml")).merchant_reminder_hours == (24, 12, 2)


# --- refusals -------------------------------------------------------------------------------------------
def test_M6_policy_breaking_the_laws_7_day_refund_bound_is_refused() -> None:
    (problem,) = problems_of({"merchant_confirm_hours": LAW_REFUND_BOUND_HOURS + 1})
    assert problem.startswith("merchant_confirm_hours (M6) = 169 breaks the law's bound")
    assert "7 days" in problem and "CRPL art. 25" in problem
    assert validate({"merchant_confirm_hours": LAW_REFUND_BOUND_HOURS}).merchant_confirm_hours == 168


def test_E4_policy_with_a_no_reason_window_shorter_than_the_law_is_refused() -> None:
    problems = problems_of({"no_reason_days": 6})
    assert problems == ["no_reason_days (E4) = 6 is shorter than the 7 days the law grants (CRPL art. 25)"]


def test_E5_after_sales_window_must_not_end_before_the_no_reason_window() -> None:
    (problem,) = problems_of({"no_reason_days": 10, "after_sales_days": 9})
    assert "after_sales_days (E5) = 9" in problem and "no_reason_days (E4) = 10" in problem


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("after_sales_days", -3, "after_sales_days (E5) must be positive, got -3"),
        ("buyer_return_days", 0, "buyer_return_days (M5) must be positive, got 0"),
        ("warranty_days", -1, "warranty_days (E6) must not be negative, got -1"),
        ("return_shipping_cap_fen", -2000, "return_shipping_cap_fen (M3) must not be negative, got -2000"),
        ("group_wait_hours", 24.5, "group_wait_hours (G1) must be an integer, got 24.5"),
        ("max_buyer_cancellations", True, "max_buyer_cancellations (E8) must be an integer, got True"),
    ],
)
def test_policy_negative_or_non_integer_windows_are_refused(key: str, value: object, expected: str) -> None:
    assert problems_of({key: value}) == [expected]


def test_policy_unknown_parameter_is_refused() -> None:
    assert problems_of({"no_reason_dayz": 7}) == ["unknown parameter 'no_reason_dayz'"]


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "Asia", "", "+08:00", "../etc/passwd"])
def test_T0_policy_with_an_unknown_time_zone_is_refused(tz: str) -> None:
    assert problems_of({"timezone": tz}) == [f"timezone (T0) {tz!r} is not a known IANA time zone"]


def test_M1_reminders_must_be_positive_and_before_the_deadline() -> None:
    assert problems_of({"merchant_reminder_hours": [48, 2]}) == [
        "merchant_reminder_hours (M1) must all be shorter than merchant_response_hours"
    ]
    assert problems_of({"merchant_reminder_hours": [12, -2]}) == ["merchant_reminder_hours (M1) must be a list of positive integers"]
    assert problems_of({"merchant_reminder_hours": 12}) == ["merchant_reminder_hours (M1) must be a list of positive integers"]


def test_K1_phone_hours_must_be_an_opening_before_a_closing() -> None:
    assert "phone_hours (K1)" in problems_of({"phone_hours": "20:00-09:00"})[0]
    assert "phone_hours (K1)" in problems_of({"phone_hours": "all day"})[0]


def test_policy_refusal_lists_every_problem_at_once() -> None:
    problems = problems_of(
        {"bogus": 1, "no_reason_days": -1, "timezone": "Mars/Olympus_Mons", "merchant_confirm_hours": 200, "warranty_days": -5}
    )
    assert problems == [
        "unknown parameter 'bogus'",
        "no_reason_days (E4) must be positive, got -1",
        "warranty_days (E6) must not be negative, got -5",
        "timezone (T0) 'Mars/Olympus_Mons' is not a known IANA time zone",
        "merchant_confirm_hours (M6) = 200 breaks the law's bound: a return must be refunded within 7 days (168 h) "
        "of receiving the goods (CRPL art. 25)",
    ]


def test_policy_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as exc:
        load(write(tmp_path, "no_reason_days = = 7\n"))
    (problem,) = exc.value.problems
    assert problem.startswith("not valid TOML")


# --- the command line -----------------------------------------------------------------------------------
def test_cli_policy_check_accepts_a_valid_file(tmp_path: Path) -> None:
    path = write(tmp_path, "no_reason_days = 10\nafter_sales_days = 20\n")
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in flat(result.stdout) and "invalid" not in result.stdout


def test_cli_policy_check_accepts_the_shipped_default() -> None:
    with resources.as_file(resources.files("aftersales.policy").joinpath("default.toml")) as path:
        result = runner.invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 0, result.output


def test_cli_policy_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, 'bogus = 1\nno_reason_days = -1\ntimezone = "Mars/Olympus_Mons"\nmerchant_confirm_hours = 200\n')
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 1
    err = flat(result.stderr)
    assert "invalid policy" in err
    for expected in (
        "unknown parameter 'bogus'",
        "no_reason_days (E4) must be positive, got -1",
        "timezone (T0) 'Mars/Olympus_Mons' is not a known IANA time zone",
        "merchant_confirm_hours (M6) = 200 breaks the law's bound",
    ):
        assert expected in err, err
    assert err.count(" - ") == 4


def test_cli_policy_check_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["policy", "check", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2


def test_cli_policy_show_json_prints_the_policy_in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFTERSALES_POLICY_FILE", raising=False)
    result = runner.invoke(app, ["policy", "show", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == RULEBOOK_DEFAULTS


def test_cli_policy_show_json_of_a_given_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFTERSALES_POLICY_FILE", raising=False)
    path = write(tmp_path, "merchant_response_hours = 72\n")
    result = runner.invoke(app, ["policy", "show", "--json", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {**RULEBOOK_DEFAULTS, "merchant_response_hours": 72}
    monkeypatch.setenv("AFTERSALES_POLICY_FILE", str(path))
    result = runner.invoke(app, ["policy", "show", "--json"])
    assert json.loads(result.stdout)["merchant_response_hours"] == 72


def test_cli_policy_show_prints_a_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFTERSALES_POLICY_FILE", raising=False)
    result = runner.invoke(app, ["policy", "show"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "shipped default" in out
    for key in ("timezone", "no_reason_days", "merchant_confirm_hours", "return_shipping_cap_fen"):
        assert key in out
    assert "Asia/Shanghai" in out


def test_cli_policy_show_refuses_an_invalid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFTERSALES_POLICY_FILE", raising=False)
    path = write(tmp_path, "merchant_confirm_hours = 200\n")
    result = runner.invoke(app, ["policy", "show", "--file", str(path)])
    assert result.exit_code == 1
    assert "merchant_confirm_hours (M6)" in flat(result.stderr)


def test_T0_every_parameter_has_a_rule_id_and_a_meaning() -> None:
    from aftersales.domain.policy import MEANINGS, Policy

    assert list(MEANINGS) == list(Policy().as_dict())
    for name, (rule, meaning) in MEANINGS.items():
        assert rule[0] in "TGEMPKD" and rule[1:].isdigit(), name
        assert meaning.endswith(".") and "\n" not in meaning, name
