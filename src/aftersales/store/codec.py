"""Turn domain dataclasses into JSON-able dicts and back, driven by their type hints.

Aggregates are stored as a JSON ``state`` next to the columns that queries need (status, owner, due time);
the columns are projections written from the same object, so they cannot disagree with the state.
The converters are compiled once per type (this runs for every aggregate loaded or saved).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Any

_SKIP = {"pending_events", "cases"}
Conv = Callable[[Any], Any]


@cache
def _hints(cls: type) -> dict[str, Any]:
    from aftersales.domain import cases  # forward references between the order and its cases

    return typing.get_type_hints(cls, localns={"Case": cases.Case})


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in _SKIP)


def encode(obj: Any) -> Any:
    """A JSON-able value for ``obj`` (dataclasses, enums, datetimes, sets, tuples, dicts, lists)."""
    if obj is None or type(obj) in (bool, int, str, float):
        return obj
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [encode(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted((encode(v) for v in obj), key=repr)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _class_encoder(type(obj))(obj)
    if isinstance(obj, bool | int | str | float):  # subclasses of the scalars
        return obj
    raise TypeError(f"cannot encode {type(obj).__name__}")


# Compiled encoders: one function per dataclass, with a converter per field chosen from its type hint. Each converter
# takes its shortcut only for a value of exactly the hinted type and hands anything else to :func:`encode`, so the
# result is always exactly what :func:`encode` would build by looking at every value (which it did before).
@cache
def _class_encoder(cls: type) -> Conv:
    """One generated function per dataclass: a dict display with each field's conversion written inline for the
    common hints (scalars, datetimes, enums and their optional forms) and a call of :func:`_encoder`'s converter
    for the rest — the same values, in the same key order, as calling the converters one by one (it did before),
    without a Python call per field."""
    hints = _hints(cls)
    namespace: dict[str, Any] = {"encode": encode, "datetime": datetime}
    entries = []
    for i, name in enumerate(_field_names(cls)):
        value = f"obj.{name}" if name.isidentifier() else f"getattr(obj, {name!r})"
        entries.append(f"{name!r}: {_inline_encoding(hints[name], value, f'_t{i}', f'_c{i}', namespace)}")
    source = "def encode_instance(obj):\n    return {" + ", ".join(entries) + "}\n"
    exec(compile(source, f"<codec encoder of {cls.__qualname__}>", "exec"), namespace)  # noqa: S102
    encoder: Conv = namespace["encode_instance"]
    return encoder


def _optional(tp: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``, ``(tp, False)`` otherwise (a union of several types: ``(tp, False)``)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _inline_encoding(tp: Any, value: str, type_name: str, conv_name: str, namespace: dict[str, Any]) -> str:
    """An expression equal to ``_encoder(tp)(<value>)``, inline for a scalar, a datetime or an enum (optional or not)."""
    inner, optional = _optional(tp)
    if inner in (str, int, bool, float) or inner is datetime or (isinstance(inner, type) and issubclass(inner, Enum)):
        namespace[type_name] = inner
        shortcut = "v" if inner in (str, int, bool, float) else "v.isoformat()" if inner is datetime else "v.value"
        if optional:
            return f"(None if (v := {value}) is None else {shortcut} if type(v) is {type_name} else encode(v))"
        return f"({shortcut} if type(v := {value}) is {type_name} else encode(v))"
    namespace[conv_name] = _encoder(tp)
    return f"{conv_name}({value})"


def _exactly(tp: type, shortcut: Conv) -> Conv:
    return lambda v: shortcut(v) if type(v) is tp else encode(v)


@cache
def _encoder(tp: Any) -> Conv:
    """A function equal to :func:`encode`, faster for values of type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            return encode
        inner = _encoder(args[0])
        return lambda v: None if v is None else inner(v)
    if tp in (str, int, bool, float):
        return _exactly(tp, _identity)
    if tp is datetime:
        return _exactly(datetime, datetime.isoformat)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return _exactly(tp, lambda v: v.value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            return _exactly(tp, _frozen_encoder(tp))
        return _exactly(tp, lambda v: _class_encoder(tp)(v))
    if origin is dict:
        vt = _encoder(typing.get_args(tp)[1])
        return _exactly(dict, lambda v: {str(k): vt(x) for k, x in v.items()})
    if origin is list:
        et = _encoder(typing.get_args(tp)[0])
        return _exactly(list, lambda v: [et(x) for x in v])
    if origin is tuple:
        targs = typing.get_args(tp)
        et = _encoder(targs[0]) if len(targs) == 2 and targs[1] is Ellipsis else encode
        return _exactly(tuple, lambda v: [et(x) for x in v])
    if origin in (set, frozenset):
        et = _encoder(typing.get_args(tp)[0])
        shortcut: Conv = lambda v: sorted((et(x) for x in v), key=repr)  # noqa: E731
        return lambda v: shortcut(v) if type(v) in (set, frozenset) else encode(v)
    return encode


#: Encoded values of frozen dataclasses kept per type (a category's terms are the same for thousands of orders).
FROZEN_MEMO = 4096


@cache
def _frozen_encoder(cls: type) -> Conv:
    """:func:`_class_encoder` of a frozen (immutable) dataclass, remembering what equal values encode to; the JSON-able
    value is shared by every caller, who only ever serialises it."""
    plain = _class_encoder(cls)
    memo: dict[Any, Any] = {}

    def encode_frozen(obj: Any) -> Any:
        try:
            found = memo.get(obj)
        except TypeError:  # a field that cannot be hashed
            return plain(obj)
        if found is None:
            if len(memo) >= FROZEN_MEMO:
                memo.clear()
            found = memo[obj] = plain(obj)
        return found

    return encode_frozen


def _identity(value: Any) -> Any:
    return value


@cache
def _decoder(tp: Any) -> Conv:
    """A function turning the JSON form of a ``tp`` back into a ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _decoder(args[0])
        if inner is _identity:
            return _identity
        return lambda v: None if v is None else inner(v)
    if tp is datetime:
        return datetime.fromisoformat
    if isinstance(tp, type) and issubclass(tp, Enum):
        return _enum_decoder(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return lambda v: from_dict(tp, v)
    if origin is dict:
        kt, vt = (_decoder(a) for a in typing.get_args(tp))
        return lambda v: {kt(k): vt(x) for k, x in v.items()}
    if origin is list:
        (et,) = (_decoder(a) for a in typing.get_args(tp))
        return lambda v: [et(x) for x in v]
    if origin is set:
        (et,) = (_decoder(a) for a in typing.get_args(tp))
        return lambda v: {et(x) for x in v}
    if origin is tuple:
        targs = typing.get_args(tp)
        if len(targs) == 2 and targs[1] is Ellipsis:
            et = _decoder(targs[0])
            return lambda v: tuple(et(x) for x in v)
        convs = [_decoder(a) for a in targs]
        return lambda v: tuple(c(x) for c, x in zip(convs, v, strict=True))
    return _identity


def decode(tp: Any, value: Any) -> Any:
    """The inverse of :func:`encode` for a value of type ``tp``."""
    return None if value is None else _decoder(tp)(value)


@cache
def _enum_decoder(tp: type[Enum]) -> Conv:
    """``tp(value)``, by the enum's own table of values first (``Enum.__call__`` is several times slower)."""
    members = tp._value2member_map_

    def member(value: Any) -> Any:
        try:
            return members[value]
        except (KeyError, TypeError):  # an alias, a _missing_ hook, an unhashable value: as the enum decides
            return tp(value)

    return member


@cache
def _class_decoder(cls: type) -> Callable[[dict[str, Any], dict[str, Any]], Any]:
    """One generated function per dataclass: for each field the document has, its value converted (None stays None;
    a datetime parsed inline); fields it lacks take their defaults; keys that are no field are ignored — as
    ``cls(**{name: convert(value) …})`` over the document's items did, without a lookup and a call per field."""
    namespace: dict[str, Any] = {"cls": cls, "MISSING": _MISSING, "fromisoformat": datetime.fromisoformat}
    lines = ["def from_document(data, extra):", "    kw = {}", "    get = data.get"]
    for i, (name, tp) in enumerate(_hints(cls).items()):
        conv = _decoder(tp)
        lines.append(f"    if (v := get({name!r}, MISSING)) is not MISSING:")
        if conv is _identity:
            lines.append(f"        kw[{name!r}] = v")
            continue
        inner, _ = _optional(tp)
        if inner is datetime:
            call = "fromisoformat(v)"
        else:
            namespace[f"_c{i}"] = _decoder(inner) if inner is not tp else conv
            call = f"_c{i}(v)"
        lines.append(f"        kw[{name!r}] = v if v is None else {call}")
    lines += ["    if extra:", "        kw.update(extra)", "    return cls(**kw)"]
    exec(compile("\n".join(lines) + "\n", f"<codec decoder of {cls.__qualname__}>", "exec"), namespace)  # noqa: S102
    decoder: Callable[[dict[str, Any], dict[str, Any]], Any] = namespace["from_document"]
    return decoder


_MISSING = object()


def from_dict(cls: type, data: dict[str, Any], **extra: Any) -> Any:
    """The ``cls`` a document of :func:`encode` describes; ``extra`` sets fields the document does not carry (an
    order's cases, stored in rows of their own)."""
    return _class_decoder(cls)(data, extra)
