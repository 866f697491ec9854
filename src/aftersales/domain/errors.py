"""Typed refusals. Each carries the RULEBOOK id that refused and a translatable explanation (S4)."""

from __future__ import annotations

from typing import Any

from .messages import Msg


class DomainError(Exception):
    """Base of every refusal raised by the domain."""

    #: HTTP-ish category used by the API layer: 422 rule refusal, 409 state conflict, 403 not allowed.
    status = 422
    kind = "rule-violation"

    def __init__(self, rule: str, text: str, **params: Any) -> None:
        self.rule = rule
        self.msg = Msg(text, params)
        super().__init__(f"[{rule}] " + _safe_format(text, params))


def _safe_format(text: str, params: dict[str, Any]) -> str:
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError):
        return text


class RuleViolation(DomainError):
    """A business rule refuses the request (ineligible, over the refundable amount, …)."""


class InvalidInput(DomainError):
    """The request itself is malformed for the rule it invokes (T1: non-positive amount, unknown sku, …)."""

    kind = "invalid-input"


class StateConflict(DomainError):
    """The action is not allowed in the current status of the aggregate."""

    status = 409
    kind = "state-conflict"


class NotPermitted(DomainError):
    """The actor may not perform this action (T2)."""

    status = 403
    kind = "not-permitted"


class PolicyError(ValueError):
    """A policy file that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid policy:\n- " + "\n- ".join(problems))
