"""The CSV fast path of the importer accepts only what the API's model (OrderIn) accepts, with the same values:
thousands of random rows, valid and not, go through both; whatever the fast path declines takes the general path."""

from __future__ import annotations

import random
from typing import Any

from aftersales import importer
from aftersales.importer import CSV_COLUMNS, _csv_order, _validate_shape

VALUES: dict[str, list[str]] = {
    "id": ["o1", " o-2 ", "o.3:x_y", "", "-bad", "o 1", "x" * 64, "x" * 65, "中"],
    "merchant_id": ["mA", "", "m A", " mB"],
    "buyer_id": ["bX", "", "b/1"],
    "paid_at": ["2026-03-01T01:00:00+00:00", "2026-03-01T09:00:00+08:00", "2026-03-01T01:00:00Z", "2026-03-01T01:00:00.123456-05:30",
                "2026-03-01T01:00:00", "2026-02-30T01:00:00+00:00", "1969-12-31T23:00:00+00:00", "0001-01-01T00:30:00+01:00",
                "2026-03-01 01:00:00+00:00", "2026-03-01T01:00:00.12+00:00", "2026-03-01T24:00:00+00:00", "1772326800", ""],
    "shipping_fee_fen": ["0", "500", "007", "+5", "-1", "1.5", "", "x", "9" * 18, "٣"],
    "return_shipping_insured": ["", "yes", "no", "TRUE", " f ", "maybe", "1", "0"],
    "sku": ["s1", "", "s 1", "s-2"],
    "title": ["Shirt", "", " padded ", "Tab\there", "x" * 200, "x" * 201, "nul\x00", "中文"],
    "category": ["apparel", "", "a b"],
    "quantity": ["1", "0", "100000", "100001", "2", "", "-1", "1e3"],
    "unit_price_fen": ["1999", "0", "1", "", "99999999999", "9" * 19],
    "exclusion_confirmed": ["", "true", "n", "x"],
    "group_id": ["", "", "g1", "g 1"],
    "group_size": ["", "2", "1000", "1", "1001", "x"],
    "group_auto_complete": ["", "", "yes", "nope"],
}


def model_values(model: Any) -> Any:
    items = [(i.sku, i.title, i.category, i.quantity, i.unit_price_fen, i.exclusion_confirmed) for i in model.items]
    group = (model.group.id, model.group.size, model.group.auto_complete) if model.group else None
    return (model.id, model.merchant_id, model.buyer_id, model.paid_at, model.paid_at.utcoffset(), model.paid_at.isoformat(),
            model.shipping_fee_fen, model.return_shipping_insured, items, group)


def test_the_fast_path_agrees_with_the_api_model_on_random_rows():
    rng = random.Random(42)
    header = list(CSV_COLUMNS)
    rng.shuffle(header)  # columns may come in any order
    at = {col: header.index(col) for col in CSV_COLUMNS}
    fast_taken = general_ok = 0
    for _ in range(6000):
        base = {col: (rng.choice(VALUES[col]) if rng.random() < 0.12 else VALUES[col][0]) for col in CSV_COLUMNS}
        lines = [(2, [base[c] for c in header])]
        for n in range(rng.choice((0, 0, 1, 2))):  # further lines: item columns, order columns mostly empty
            more = {col: "" for col in CSV_COLUMNS}
            more["id"] = base["id"]
            for col in ("sku", "title", "category", "quantity", "unit_price_fen", "exclusion_confirmed"):
                more[col] = rng.choice(VALUES[col]) if rng.random() < 0.2 else VALUES[col][0]
            more["sku"] = f"k{n}" if more["sku"] == "s1" else more["sku"]
            if rng.random() < 0.1:
                more["shipping_fee_fen"] = rng.choice(VALUES["shipping_fee_fen"])
            lines.append((3 + n, [more[c] for c in header]))
        fast = importer._fast_csv_order(lines, at)
        general = _csv_order_general(lines, header)
        if fast is None:
            continue
        fast_taken += 1
        assert not general.errors, (lines, general.errors)
        assert general.model is not None
        assert model_values(fast.model) == model_values(general.model), lines
        assert fast.item_lines == general.item_lines and fast.line == general.line
        general_ok += 1
    assert fast_taken > 1000 and general_ok == fast_taken  # the fast path is taken often enough for this test to mean something


def _csv_order_general(lines, header):
    (line, cells), *more = lines
    parsed = importer._start_order(dict(zip(header, cells, strict=True)), line)
    for n, c in more:
        importer._continue_order(parsed, dict(zip(header, c, strict=True)), n)
    _validate_shape(parsed, "csv")
    return parsed


def test_the_reader_takes_the_fast_path_only_when_it_can():
    at = {col: i for i, col in enumerate(CSV_COLUMNS)}
    good = ["o1", "mA", "bX", "2026-03-01T01:00:00+00:00", "500", "", "s1", "Shirt", "apparel", "1", "1999", "", "", "", ""]
    assert isinstance(_csv_order([(2, good)], list(CSV_COLUMNS), at).model, importer._FastOrder)
    bad = list(good)
    bad[9] = "abc"
    parsed = _csv_order([(2, bad)], list(CSV_COLUMNS), at)
    assert parsed.model is None and parsed.data is not None
    _validate_shape(parsed, "csv")
    assert [(r.line, r.field) for r in parsed.errors] == [(2, "quantity")]
