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
    hints = _hints(cls)
    fields = tuple((name, _encoder(hints[name])) for name in _field_names(cls))

    def encode_instance(obj: Any) -> Any:
        return {name: conv(getattr(obj, name)) for name, conv in fields}

    return encode_instance


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
        return tp
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
def _field_decoders(cls: type) -> dict[str, Conv]:
    return {name: _decoder(tp) for name, tp in _hints(cls).items()}


def from_dict(cls: type, data: dict[str, Any], **extra: Any) -> Any:
    convs = _field_decoders(cls)
    kwargs = {name: (v if v is None or conv is _identity else conv(v))
              for name, v in data.items() if (conv := convs.get(name)) is not None}
    kwargs.update(extra)
    return cls(**kwargs)
