"""The shop's return addresses (M1, M5): where a buyer sends an approved return.

A shop keeps an address book; one active address is its default (M1: an automatic approval sends the return
there). When a return is approved the case keeps a copy of the chosen address (:class:`ReturnAddress`), so that a
later edit of the book never rewrites where an earlier return was sent.

Pure: standard library and the domain only.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from .errors import InvalidInput
from .messages import N_

MAX_LABEL = 60
MAX_CONTACT = 80
MAX_PHONE = 32
MAX_ADDRESS = 500
#: A phone number: digits with the usual separators and an optional leading +, at least 5 digits.
_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]*")


@dataclass(frozen=True, slots=True)
class ReturnAddress:
    """A copy of one address-book entry as it was when a return was approved to it (M5)."""

    id: str
    label: str
    contact_name: str
    phone: str
    address: str

    def lines(self) -> list[str]:
        """The address as a parcel label reads: who, phone, then the address lines."""
        head = " ".join(part for part in (self.contact_name, self.phone) if part)
        return [line for line in (head, *self.address.splitlines()) if line.strip()]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": "\n".join(self.lines())}


def _clean(value: object, field: str, most: int, *, required: bool, multiline: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput("M5", N_("{field} must be text."), field=field)
    lines = [line.strip() for line in value.replace("\r\n", "\n").split("\n")]
    text = "\n".join(line for line in lines if line) if multiline else value.strip()
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") and ch != "\n" for ch in text) or (
            "\n" in text and not multiline):
        raise InvalidInput("M5", N_("{field} contains characters that cannot be printed on a parcel label."), field=field)
    if required and not text:
        raise InvalidInput("M5", N_("{field} is required."), field=field)
    if len(text) > most:
        raise InvalidInput("M5", N_("{field} is longer than {max} characters."), field=field, max=most)
    return text


def clean_fields(values: dict[str, Any], *, partial: bool = False) -> dict[str, str]:
    """The address-book fields of ``values``, trimmed and checked (M5: a label a carrier can print).

    ``partial``: only the fields present are checked (an edit); otherwise ``address`` is required."""
    spec = {"label": (MAX_LABEL, False, False), "contact_name": (MAX_CONTACT, False, False),
            "phone": (MAX_PHONE, False, False), "address": (MAX_ADDRESS, True, True)}
    out: dict[str, str] = {}
    for field, (most, required, multiline) in spec.items():
        if partial and field not in values:
            continue
        out[field] = _clean(values.get(field), field, most, required=required, multiline=multiline)
    phone = out.get("phone")
    if phone and (not _PHONE.fullmatch(phone) or sum(ch.isdigit() for ch in phone) < 5):
        raise InvalidInput("M5", N_("{field} must be a phone number (digits, spaces, + - ( ) . /)."), field="phone")
    return out
