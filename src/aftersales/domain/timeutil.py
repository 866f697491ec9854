"""T0: instants are aware UTC datetimes; day-counted windows count local days in the platform zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from .errors import InvalidInput
from .messages import N_


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` for ``name`` (cached: eligibility asks for it on every decision)."""
    return ZoneInfo(name)


def require_aware(instant: datetime, field: str = "instant") -> datetime:
    """Refuse naive datetimes (T0) and normalise to UTC."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InvalidInput("T0", N_("{field} must carry a time-zone offset (RFC 3339)."), field=field)
    return instant.astimezone(UTC)


def window_end(event: datetime, days: int, tz: str) -> datetime:
    """End (exclusive, UTC) of an N-day window after ``event`` (T0).

    The window starts on local day D+1 and ends at the end of local day D+N, i.e. at local midnight
    starting day D+N+1. Example: delivered 2026-03-01T23:30+08:00, 7 days → 2026-03-09T00:00+08:00.
    """
    return day_window_end(local_day(event, tz), days, tz)


def local_day(event: datetime, tz: str) -> date:
    """The platform-local calendar day of ``event`` (T0)."""
    return event.astimezone(zone(tz)).date()


@lru_cache(maxsize=4096)
def day_window_end(day: date, days: int, tz: str) -> datetime:
    """End (exclusive, UTC) of an N-day window after local day ``day``: local midnight starting day D+N+1.

    Cached: every order delivered on the same local day shares its window ends (eligibility, B3 benchmark).
    """
    end_day = day + timedelta(days=days + 1)
    return datetime.combine(end_day, time(0), zone(tz)).astimezone(UTC)


def after_hours(event: datetime, hours: int) -> datetime:
    """Hour-counted limits are exact durations (T0)."""
    return event + timedelta(hours=hours)


def period_bound(value: str, tz: str, field: str) -> datetime:
    """A bound of a period as people give it (the replay's ``from``/``to``, issue 15): a date (2026-12-01: local
    midnight in the platform zone, T0) or an RFC 3339 instant with its offset."""
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), zone(tz)).astimezone(UTC)
        at = datetime.fromisoformat(value)
        if at.tzinfo is not None:
            at.astimezone(UTC)
    except (ValueError, OverflowError):  # not a date, or out of range in UTC (0001-01-01 in UTC+8)
        raise InvalidInput("T0", N_("{field}: {value} is neither a date (2026-12-01) nor an RFC 3339 instant."),
                           field=field, value=value) from None
    return require_aware(at, field)


def period(start: str, end: str, tz: str) -> tuple[datetime, datetime]:
    """[start, end) from two bounds (:func:`period_bound`); the end must come after the start."""
    begin, finish = period_bound(start, tz, "from"), period_bound(end, tz, "to")
    if finish <= begin:
        raise InvalidInput("T0", N_("to must come after from."))
    return begin, finish
