"""T2: the alphabet of every id a client chooses — merchants, buyers, orders, groups, skus, categories, API-key
subjects — checked when the thing is created (the API's models, the service functions, the importer).

ASCII letters and digits, then also ``.``, ``_`` and ``-``; 1 to 64 characters, starting with a letter or a digit.
No ``:`` (the separator of a ledger account's text form, ``merchant:<id>:sales``), no ``%``, no space, nothing a
pattern language reads as a wildcard but ``_`` and ``.`` — and ids are only ever matched by equality."""

from __future__ import annotations

import re

from .errors import InvalidInput
from .messages import N_

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_ID = re.compile(ID_PATTERN)


def valid_id(value: object) -> bool:
    """Whether ``value`` is an id of the documented alphabet (:data:`ID_PATTERN`)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def require_id(value: object, field: str) -> str:
    """``value`` as an id of the documented alphabet, or a refusal (T2, 422) naming ``field``."""
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise InvalidInput("T2", N_("{field} must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or a digit."),
                           field=field)
    return value
