"""The deadline path's faster storage codec (store/codec.py compiled encoders, store/db.py orjson) must write and
read exactly what the plain implementations did: same JSON documents, same values back."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from enum import Enum
from typing import Any

import pytest
from factories import DAY_3, approved_return, delivered_order, group_with_orders, hours, new_case, paid_order, policy

from aftersales.domain.cases import Action, act
from aftersales.domain.catalog import CaseType, Reason
from aftersales.domain.events import Actor
from aftersales.domain.orders import Order
from aftersales.store.codec import _field_names, encode, from_dict
from aftersales.store.db import json_dumps_bytes, json_dumps_str, json_loads


def reference_encode(obj: Any) -> Any:
    """The codec's encoder as first written: every value examined at run time."""
    if obj is None or type(obj) in (bool, int, str, float):
        return obj
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {str(k): reference_encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [reference_encode(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted((reference_encode(v) for v in obj), key=repr)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {name: reference_encode(getattr(obj, name)) for name in _field_names(type(obj))}
    if isinstance(obj, bool | int | str | float):
        return obj
    raise TypeError(type(obj).__name__)


def _orders() -> list[Order]:
    pol = policy()
    unshipped = paid_order("o-unshipped")
    new_case(unshipped, CaseType.REFUND_ONLY, Reason.NO_REASON, DAY_3 - hours(60), pol=pol)
    refunded = paid_order("o-refunded")
    case = new_case(refunded, CaseType.REFUND_ONLY, Reason.NO_REASON, DAY_3 - hours(60), pol=pol)
    act(refunded, case.id, Action.APPROVE, Actor.MERCHANT, DAY_3 - hours(59), pol)
    returning = delivered_order("o-return")
    approved_return(returning, pol=pol)
    _, members = group_with_orders("g-codec", members=2)
    return [unshipped, refunded, returning, *members]


def test_compiled_encoder_writes_what_the_reference_wrote():
    orders = _orders()
    assert any(o.refunds for o in orders) and any(c.fired or c.reminders for o in orders for c in o.cases)
    for order in orders:
        for obj in [order, *order.cases, *order.refunds, *order.pending_events]:
            assert encode(obj) == reference_encode(obj)
            assert json.dumps(encode(obj)) == json.dumps(reference_encode(obj))  # same types, same key order


def test_values_not_of_the_hinted_type_are_encoded_as_before():
    order = paid_order("o-odd")
    case = new_case(order, CaseType.REFUND_ONLY, Reason.NO_REASON, DAY_3, pol=policy())
    case.description = Reason.NO_REASON  # type: ignore[assignment]  # a StrEnum where a str is hinted
    case.items = [("sku-a", 1)]  # type: ignore[assignment]  # a list where a dict is hinted
    case.fired = frozenset({(0, "x"), (1, "y")})  # type: ignore[assignment]
    case.reminders = [DAY_3]  # type: ignore[assignment]
    encoded = encode(case)
    assert encoded == reference_encode(case)
    assert type(encoded["description"]) is str and encoded["items"] == [["sku-a", 1]]


def test_decoded_orders_encode_back_to_the_same_document():
    for order in _orders():
        state = json.loads(json.dumps(encode(order)))
        cases = [from_dict(type(c), json.loads(json.dumps(encode(c)))) for c in order.cases]
        back = from_dict(Order, state, cases=cases)
        assert encode(back) == encode(order)
        assert [encode(c) for c in back.cases] == [encode(c) for c in order.cases]


@pytest.mark.parametrize("value", [
    {"state": "awaiting", "amount_fen": 12_345, "nested": [1, 2.5, None, True, {"a": "b"}]},
    {"text": "退款 ¿qué? \u2028 \U0001f600", "empty": {}, "list": []},
    {"big": 2**70, "negative_big": -(2**64) - 1, "max": 2**63 - 1},
    {1: "integer key", "x": 1},
    [0.1, 1e16, -0.0, 123456789.123456789],
    {"lone": "\ud800"},
    "plain", 0, None,
])
def test_json_columns_read_back_as_the_standard_library_reads_them(value):
    for text in (json_dumps_str(value), json_dumps_bytes(value).decode()):
        assert json_loads(text) == json.loads(json.dumps(value))
        assert json_loads(text.encode("utf-8", "surrogatepass")) == json.loads(json.dumps(value))
        assert json.loads(text) == json.loads(json.dumps(value))


def test_long_integers_stored_by_anyone_read_back_exactly():
    # orjson alone would read these as floats (losing digits); they must come back as the integers written.
    for text in ('{"a": 123456789012345678901234567890}', "[9223372036854775808]", '{"id": "x", "n": 1234567890123456789}'):
        assert json_loads(text) == json.loads(text)
        assert json_loads(text.encode()) == json.loads(text)
    assert type(json_loads("[12345678901234567890]")[0]) is int


def test_constants_only_the_standard_library_accepts_still_read():
    assert str(json_loads("[NaN, Infinity]")) == str(json.loads("[NaN, Infinity]"))


def test_frozen_values_encode_as_the_reference_every_time():
    """A frozen dataclass (an order's category terms) is encoded once per distinct value and shared (B4): equal values
    give the reference's document, different values their own."""
    from aftersales.domain.catalog import Category

    cats = [Category("c", "C", True, None, 7, 365, 1), Category("c", "C", True, None, 7, 365, 1),
            Category("c", "C", False, None, 7, 365, 2), Category("d", "D", True, None, None, None, None)]
    for _ in range(2):
        for cat in cats:
            order = paid_order()
            order.terms = {cat.code: cat, "x": cats[0]}
            assert encode(order) == reference_encode(order)
            assert json.dumps(encode(order)) == json.dumps(reference_encode(order))


def reference_from_dict(cls: type, data: dict[str, Any], **extra: Any) -> Any:
    """The decoder as written before the generated one: each of the document's keys that is a field, converted by the
    field's converter (None kept), the rest ignored, then ``extra``."""
    from aftersales.store.codec import _decoder, _hints

    convs = {name: _decoder(tp) for name, tp in _hints(cls).items()}
    kwargs = {name: (v if v is None else convs[name](v)) for name, v in data.items() if name in convs}
    return cls(**{**kwargs, **extra})


def test_generated_decoder_builds_what_the_reference_built():
    from aftersales.domain.cases import Case

    for order in _orders():
        for case in order.cases:
            doc = json.loads(json.dumps(encode(case)))
            assert encode(from_dict(Case, doc)) == encode(reference_from_dict(Case, doc)) == doc
            assert from_dict(Case, doc) == reference_from_dict(Case, doc)
        state = json.loads(json.dumps(encode(order)))
        assert from_dict(Order, state, cases=[]) == reference_from_dict(Order, state, cases=[])


def test_generated_decoder_ignores_unknown_keys_defaults_missing_ones_and_refuses_a_bad_enum_value():
    from aftersales.domain.cases import Case

    order = paid_order("o-dec")
    case = new_case(order, CaseType.REFUND_ONLY, Reason.NO_REASON, DAY_3, pol=policy())
    doc = json.loads(json.dumps(encode(case)))
    extra_keys = {**doc, "a_field_from_the_future": 1}
    assert from_dict(Case, extra_keys) == from_dict(Case, doc)
    without_optional = {k: v for k, v in doc.items() if k != "rejection_reason"}
    assert from_dict(Case, without_optional).rejection_reason is None  # the field's default
    assert from_dict(Case, {**doc, "closed_at": None}).closed_at is None
    with pytest.raises(ValueError):
        from_dict(Case, {**doc, "status": "no_such_status"})  # as CaseStatus("no_such_status") refuses it
    with pytest.raises(ValueError):
        from_dict(Case, {**doc, "status": ["unhashable"]})
