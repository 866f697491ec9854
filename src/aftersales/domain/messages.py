"""Translatable messages.

The domain never renders text: it returns :class:`Msg` values whose ``text`` is an English gettext msgid
with ``{named}`` placeholders. ``aftersales.i18n`` translates and formats them per call (S2, S4).
Placeholders ending in ``_fen`` are money, ``datetime`` values are instants shown in the platform time zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def N_(text: str) -> str:
    """Mark ``text`` for extraction by ``pybabel extract`` without translating it here."""
    return text


@dataclass(frozen=True, slots=True)
class Msg:
    """A message id (English source text) and the values of its placeholders."""

    text: str
    params: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:  # params hold only hashable scalars in practice
        return hash((self.text, tuple(sorted(self.params.items()))))
