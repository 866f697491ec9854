"""The platform policy: every RULEBOOK parameter, loaded from TOML and validated before use."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, fields
from datetime import time
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from .errors import PolicyError
from .messages import N_
from .timeutil import zone

#: CRPL art. 25 / 7DM: the refund for a returned item is due within 7 days of receiving it (M6).
LAW_REFUND_BOUND_HOURS = 7 * 24
#: CRPL art. 25: the no-reason return window is at least 7 days (E4).
LAW_NO_REASON_MIN_DAYS = 7


@dataclass(frozen=True, slots=True)
class Policy:
    """The parameters of RULEBOOK.md; defaults are those of the shipped ``default.toml``."""

    timezone: str = "Asia/Shanghai"
    group_wait_hours: int = 24
    no_reason_days: int = 7
    after_sales_days: int = 15
    warranty_days: int = 0
    max_buyer_cancellations: int = 3
    merchant_response_hours: int = 48
    merchant_reminder_hours: tuple[int, ...] = (12, 2)
    buyer_response_days: int = 7
    return_shipping_cap_fen: int = 2000
    buyer_return_days: int = 7
    merchant_confirm_hours: int = 48
    return_auto_refund_days: int = 10
    merchant_ship_hours: int = 48
    buyer_confirm_days: int = 7
    platform_accept_hours: int = 24
    merchant_pay_hours: int = 24
    phone_hours: str = "09:00-20:00"
    complaint_accept_hours: int = 24
    merchant_complaint_hours: int = 48
    deposit_required_fen: int = 100000
    deposit_withdrawal_hold_days: int = 90

    @property
    def phone_open(self) -> tuple[time, time]:
        """K1: opening and closing time of the phone channel."""
        start, end = self.phone_hours.split("-")
        return time.fromisoformat(start), time.fromisoformat(end)

    def as_dict(self) -> dict[str, Any]:
        """The parameters as plain values (for `policy show` and the API)."""
        data = {name: getattr(self, name) for name in _NAMES}  # every value a scalar but this one (asdict's deep copy: 12 µs)
        data["merchant_reminder_hours"] = list(self.merchant_reminder_hours)
        return data


_NAMES = tuple(f.name for f in fields(Policy))


#: What each parameter means, with the RULEBOOK id it belongs to (one line each, translated where shown: the console's
#: policy page).
MEANINGS: dict[str, tuple[str, str]] = {
    "timezone": ("T0", N_("Time zone in which day-counted windows are counted.")),
    "group_wait_hours": ("G1", N_("Hours a group waits for its members before it fails.")),
    "no_reason_days": ("E4", N_("Days after delivery for a return without a reason (by law at least 7).")),
    "after_sales_days": ("E5", N_("Days after delivery for after-sales requests (categories may set their own).")),
    "warranty_days": ("E6", N_("Days of warranty after delivery (categories may set their own).")),
    "max_buyer_cancellations": ("E8", N_("How many times a buyer may cancel after-sales cases on one order.")),
    "merchant_response_hours": ("M1", N_("Hours the merchant has to answer a new case before the system agrees.")),
    "merchant_reminder_hours": ("M1", N_("Reminders to the merchant, hours before that deadline.")),
    "buyer_response_days": ("M2", N_("Days the buyer has to modify, escalate or accept after a refusal.")),
    "return_shipping_cap_fen": ("M3", N_("Most that merchant-paid return shipping reimburses, in fen.")),
    "buyer_return_days": ("M5", N_("Days the buyer has to ship an approved return.")),
    "merchant_confirm_hours": ("M6", N_("Hours the merchant has to confirm or reject a delivered return.")),
    "return_auto_refund_days": ("M6", N_("Without a delivery record, days after the buyer shipped until the system refunds.")),
    "merchant_ship_hours": ("M7", N_("Hours the merchant has to ship a replacement, missing items or a repair.")),
    "buyer_confirm_days": ("M7", N_("Days after delivery of a replacement until the case closes as done.")),
    "platform_accept_hours": ("P1", N_("Hours for a platform agent to take an escalated case.")),
    "merchant_pay_hours": ("P1", N_("Hours for the merchant to pay a refund the platform ruled.")),
    "phone_hours": ("K1", N_("Hours during which the phone channel answers, platform time.")),
    "complaint_accept_hours": ("K2", N_("Hours to accept or reject a complaint.")),
    "merchant_complaint_hours": ("K2", N_("Hours for the merchant to answer an accepted complaint.")),
    "deposit_required_fen": ("D1", N_("Consumer-rights deposit required of a shop, in fen.")),
    "deposit_withdrawal_hold_days": ("D1", N_("Days a deposit withdrawal is held before it is paid.")),
}

_POSITIVE = {
    "group_wait_hours": "G1",
    "no_reason_days": "E4",
    "after_sales_days": "E5",
    "merchant_response_hours": "M1",
    "buyer_response_days": "M2",
    "buyer_return_days": "M5",
    "merchant_confirm_hours": "M6",
    "return_auto_refund_days": "M6",
    "merchant_ship_hours": "M7",
    "buyer_confirm_days": "M7",
    "platform_accept_hours": "P1",
    "merchant_pay_hours": "P1",
    "complaint_accept_hours": "K2",
    "merchant_complaint_hours": "K2",
}
_NON_NEGATIVE = {
    "warranty_days": "E6",
    "max_buyer_cancellations": "E8",
    "return_shipping_cap_fen": "M3",
    "deposit_required_fen": "D1",
    "deposit_withdrawal_hold_days": "D1",
}


def validate(raw: dict[str, Any]) -> Policy:
    """Build a :class:`Policy` from ``raw`` or raise :class:`PolicyError` listing every problem."""
    problems: list[str] = []
    known = {f.name for f in fields(Policy)}
    for key in sorted(set(raw) - known):
        problems.append(f"unknown parameter {key!r}")
    values = {k: v for k, v in raw.items() if k in known}
    for key, rule in {**_POSITIVE, **_NON_NEGATIVE}.items():
        if key not in values:
            continue
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{key} ({rule}) must be an integer, got {value!r}")
        elif key in _POSITIVE and value <= 0:
            problems.append(f"{key} ({rule}) must be positive, got {value}")
        elif value < 0:
            problems.append(f"{key} ({rule}) must not be negative, got {value}")
    if "timezone" in values:
        try:
            zone(str(values["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"timezone (T0) {values['timezone']!r} is not a known IANA time zone")
    if "merchant_reminder_hours" in values:
        hours = values["merchant_reminder_hours"]
        if not isinstance(hours, list) or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hours):
            problems.append("merchant_reminder_hours (M1) must be a list of positive integers")
        else:
            values["merchant_reminder_hours"] = tuple(sorted(set(hours), reverse=True))
    if "phone_hours" in values:
        try:
            start, end = str(values["phone_hours"]).split("-")
            if not time.fromisoformat(start) < time.fromisoformat(end):
                raise ValueError
        except ValueError:
            problems.append(f"phone_hours (K1) must look like '09:00-20:00' with start before end, got {values['phone_hours']!r}")
    # Keep going so that one answer lists every problem: the checks across parameters below use only the
    # parameters that are valid on their own (each problem above starts with its parameter's name).
    bad = {k for k in values if any(p.startswith(f"{k} (") for p in problems)}
    policy = Policy(**{k: v for k, v in values.items() if k not in bad})

    def ok(*keys: str) -> bool:
        return not bad.intersection(keys)

    if ok("merchant_confirm_hours") and policy.merchant_confirm_hours > LAW_REFUND_BOUND_HOURS:
        problems.append(
            f"merchant_confirm_hours (M6) = {policy.merchant_confirm_hours} breaks the law's bound: a return must be "
            f"refunded within 7 days ({LAW_REFUND_BOUND_HOURS} h) of receiving the goods (CRPL art. 25)"
        )
    if ok("no_reason_days") and policy.no_reason_days < LAW_NO_REASON_MIN_DAYS:
        problems.append(
            f"no_reason_days (E4) = {policy.no_reason_days} is shorter than the 7 days the law grants (CRPL art. 25)"
        )
    if ok("after_sales_days", "no_reason_days") and policy.after_sales_days < policy.no_reason_days:
        problems.append(
            f"after_sales_days (E5) = {policy.after_sales_days} must not end before no_reason_days (E4) = {policy.no_reason_days}"
        )
    if ok("merchant_reminder_hours", "merchant_response_hours") and any(
        h >= policy.merchant_response_hours for h in policy.merchant_reminder_hours
    ):
        problems.append("merchant_reminder_hours (M1) must all be shorter than merchant_response_hours")
    if problems:
        raise PolicyError(problems)
    return policy


def load(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file; ``None`` loads the shipped default."""
    if path is None:
        text = resources.files("aftersales.policy").joinpath("default.toml").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([f"not valid TOML: {exc}"]) from exc
    return validate(raw)


@lru_cache(maxsize=64)
def version_id(policy: Policy) -> str:
    """The id of a policy version: a hash of its parameters in canonical JSON (sorted keys, no spaces).

    The same parameters always give the same id, whatever the file's comments, order or spelling of defaults; an order
    records the id of the policy in force when it was paid, and its windows follow those parameters for ever."""
    canonical = json.dumps(policy.as_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "p-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def override(policy: Policy, changes: dict[str, Any]) -> Policy:
    """``policy`` with some parameters changed (a draft for the what-if replay), checked like a file."""
    return validate({**policy.as_dict(), **changes})


def from_parameters(raw: dict[str, Any]) -> Policy:
    """A stored policy version's parameters (``as_dict`` form) back into a :class:`Policy`, checked like a file."""
    return validate(dict(raw))


def difference(in_force: Policy, other: Policy) -> list[dict[str, Any]]:
    """T0: the parameters whose value differs, each as ``{name, in_force, draft}`` (in the parameters' order)."""
    a, b = in_force.as_dict(), other.as_dict()
    return [{"name": k, "in_force": a[k], "draft": b[k]} for k in a if a[k] != b[k]]


def problem_parameter(problem: str) -> str | None:
    """The parameter a problem of :func:`validate` is about (each names it first), None for a file-level one."""
    if problem.startswith("unknown parameter "):
        return problem[len("unknown parameter "):].strip("'\"")
    head = problem.split(" ", 1)[0]
    return head if head in {f.name for f in fields(Policy)} else None


def problem_rule(problem: str) -> str | None:
    """The RULEBOOK id a problem cites (``name (E4) ...``), if any."""
    if " (" in problem and ")" in problem:
        rule = problem.split(" (", 1)[1].split(")", 1)[0]
        return rule if rule.isalnum() and len(rule) <= 3 else None
    return None
