"""D3 dispute paths (ECL art. 60): the ways a dispute may be pursued, and the dates that make sense for them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from .errors import RuleViolation, StateConflict
from .messages import N_


class DisputePath(StrEnum):
    """ECL art. 60: negotiation, mediation (consumer organisation, trade association), complaint to the
    authorities, arbitration, lawsuit."""

    NEGOTIATION = "negotiation"
    MEDIATION = "mediation"
    AUTHORITY_COMPLAINT = "authority_complaint"
    ARBITRATION = "arbitration"
    LAWSUIT = "lawsuit"


def check_start(started_at: datetime, now: datetime) -> None:
    """A path is recorded once it has started: its start may not lie in the future."""
    if started_at > now:
        raise RuleViolation("D3", N_("A dispute path cannot start in the future ({started_at})."), started_at=started_at)


def check_end(started_at: datetime, ended_at: datetime, now: datetime, *, has_outcome: bool) -> None:
    """An outcome is recorded once, after the start and not in the future."""
    if has_outcome:
        raise StateConflict("D3", N_("The outcome of this dispute path is already recorded."))
    if ended_at < started_at:
        raise RuleViolation("D3", N_("A dispute path cannot end ({ended_at}) before it started ({started_at})."),
                            ended_at=ended_at, started_at=started_at)
    if ended_at > now:
        raise RuleViolation("D3", N_("A dispute path cannot end in the future ({ended_at})."), ended_at=ended_at)
