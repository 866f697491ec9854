"""The validator's (pydantic's) errors as translatable messages: the API's 422 problems and the bulk import's
rejected rows say the same thing about the same field, in the reader's language. No web framework here: the import's
builder processes use it."""

from __future__ import annotations

from typing import Any

from aftersales.domain.messages import N_, Msg

#: The validator's error types (pydantic) as translatable templates over the error's context (``{min_length}`` …).
#: A type not listed keeps the validator's English message. ``type`` itself never changes with the language.
VALIDATION_MESSAGES: dict[str, str] = {
    "missing": N_("Field required"),
    "extra_forbidden": N_("Unknown field (not allowed here)"),
    "string_type": N_("Should be a text string"),
    "string_unicode": N_("Should be a text string"),
    "string_too_short": N_("Too short (minimum length {min_length})"),
    "string_too_long": N_("Too long (maximum length {max_length})"),
    "string_pattern_mismatch": N_("Does not match the expected format ({pattern})"),
    "too_short": N_("Too few items (at least {min_length}, not {actual_length})"),
    "too_long": N_("Too many items (at most {max_length}, not {actual_length})"),
    "int_type": N_("Should be a whole number"),
    "int_parsing": N_("Should be a whole number"),
    "int_parsing_size": N_("Should be a whole number"),
    "int_from_float": N_("Should be a whole number, without a fractional part"),
    "float_type": N_("Should be a number"),
    "float_parsing": N_("Should be a number"),
    "finite_number": N_("Should be a finite number"),
    "decimal_parsing": N_("Should be a number"),
    "bool_type": N_("Should be true or false"),
    "bool_parsing": N_("Should be true or false"),
    "greater_than": N_("Should be greater than {gt}"),
    "greater_than_equal": N_("Should be at least {ge}"),
    "less_than": N_("Should be less than {lt}"),
    "less_than_equal": N_("Should be at most {le}"),
    "multiple_of": N_("Should be a multiple of {multiple_of}"),
    "literal_error": N_("Should be one of: {expected}"),
    "enum": N_("Should be one of: {expected}"),
    "dict_type": N_("Should be a JSON object"),
    "model_type": N_("Should be a JSON object"),
    "model_attributes_type": N_("Should be a JSON object"),
    "list_type": N_("Should be a list"),
    "tuple_type": N_("Should be a list"),
    "set_type": N_("Should be a list"),
    "json_invalid": N_("Invalid JSON: {error}"),
    "date_type": N_("Should be a date (YYYY-MM-DD)"),
    "date_parsing": N_("Should be a date (YYYY-MM-DD)"),
    "date_from_datetime_parsing": N_("Should be a date (YYYY-MM-DD)"),
    "date_from_datetime_inexact": N_("Should be a date (YYYY-MM-DD)"),
    "datetime_type": N_("Should be an RFC 3339 instant with an offset, e.g. 2026-03-01T10:00:00+08:00"),
    "datetime_parsing": N_("Should be an RFC 3339 instant with an offset, e.g. 2026-03-01T10:00:00+08:00"),
    "datetime_from_date_parsing": N_("Should be an RFC 3339 instant with an offset, e.g. 2026-03-01T10:00:00+08:00"),
    "datetime_object_invalid": N_("Should be an RFC 3339 instant with an offset, e.g. 2026-03-01T10:00:00+08:00"),
    "timezone_aware": N_("Should have a time-zone offset (naive timestamps are rejected)"),
    "url_type": N_("Should be a valid URL"),
    "url_parsing": N_("Should be a valid URL"),
    "url_scheme": N_("Should be a valid URL"),
    "url_syntax_violation": N_("Should be a valid URL"),
    "url_too_long": N_("Too long (maximum length {max_length})"),
    "uuid_parsing": N_("Should be a valid UUID"),
    "uuid_type": N_("Should be a valid UUID"),
}


def validation_msg(e: Any) -> Msg:
    """One validation error (an item of ``ValidationError.errors()``) as a message: its template of
    :data:`VALIDATION_MESSAGES` over its context; a custom validator's own ``ValueError`` text (written with ``N_``);
    else the validator's English, as it is."""
    kind, ctx = str(e.get("type", "")), e.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return Msg(str(ctx["error"]))
    template = VALIDATION_MESSAGES.get(kind)
    if template is None:
        return Msg(str(e.get("msg", "")))
    params = {str(k): str(v) for k, v in ctx.items()}
    if "expected" in params:  # "'a', 'b' or 'c'": the English "or" is no part of the list
        params["expected"] = params["expected"].replace("' or '", "', '")
    return Msg(template, params)
