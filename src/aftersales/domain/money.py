"""T1: money is integer fen. Never floats, never silently capped."""

from __future__ import annotations

from .errors import InvalidInput
from .messages import N_

#: Largest amount the system accepts for any single figure (fits a signed 64-bit column with margin).
MAX_FEN = 10**15


def require_fen(value: object, field: str, *, positive: bool = True) -> int:
    """Validate an amount in fen: an ``int`` (not bool), positive (or non-negative), bounded."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("T1", N_("{field} must be an integer number of fen."), field=field)
    if positive and value <= 0:
        raise InvalidInput("T1", N_("{field} must be a positive amount of fen."), field=field)
    if value < 0:
        raise InvalidInput("T1", N_("{field} must not be negative."), field=field)
    if value > MAX_FEN:
        raise InvalidInput("T1", N_("{field} is larger than any amount this system accepts."), field=field)
    return value


def split_proportionally(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` fen over ``weights`` proportionally, exactly (largest remainder), never above a weight."""
    base = sum(weights)
    if total > base:
        raise ValueError("cannot split more than the weights hold")
    if base == 0:
        return [0] * len(weights)
    shares = [total * w // base for w in weights]
    rest = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % base), i))
    for i in order:
        if rest == 0:
            break
        if shares[i] < weights[i]:
            shares[i] += 1
            rest -= 1
    return shares
