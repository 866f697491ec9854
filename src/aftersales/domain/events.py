"""Events recorded by aggregates for every change (T2: actor, instant, rule ids)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Actor(StrEnum):
    """T2: who acts."""

    BUYER = "buyer"
    MERCHANT = "merchant"
    PLATFORM = "platform"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Event:
    """One change to an order, group or case."""

    kind: str
    actor: Actor
    at: datetime
    rules: tuple[str, ...]
    order_id: str | None = None
    case_id: str | None = None
    group_id: str | None = None
    from_status: str | None = None
    to_status: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
