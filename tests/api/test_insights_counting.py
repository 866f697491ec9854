"""S1/S5: what the insights count — resolution time only of cases a person resolved, and return rates only over a
sample large enough to mean something."""

from __future__ import annotations

from typing import Any

from helpers import act, create_order, delivered_order, hours, open_case

from aftersales.service import insights as svc
from aftersales.service.context import Principal


def _measure(ctx: Any, name: str) -> dict[str, Any]:
    out = svc.insights(ctx, Principal("platform"), merchant_id="mA", weeks=4, only="times")
    return next(m for m in out["times"]["measures"] if m["measure"] == name)


def test_S1_resolution_time_counts_only_cases_a_person_resolved(api: Any, ctx: Any) -> None:
    delivered_order(api, "o1")
    delivered_order(api, "o2")
    resolved = open_case(api, "o1", "refund_only", "quality_problem")
    withdrawn = open_case(api, "o2", "refund_only", "quality_problem")
    api.advance(hours(1))
    act(api, withdrawn["id"], "cancel", who="buyer_x")  # the buyer withdrew: no one's resolution
    api.advance(hours(1))
    act(api, resolved["id"], "approve")
    create_order(api, "o3")  # not shipped: the whole-order refund before shipment (E2)
    open_case(api, "o3", "refund_only", "no_reason")
    resolution = _measure(ctx, "resolution")
    assert resolution["cases"] == 1 and resolution["p50_seconds"] == resolution["p90_seconds"] == hours(2)


def test_S5_return_rates_are_hidden_below_the_minimum_sample(api: Any, ctx: Any) -> None:
    from helpers import item

    delivered_order(api, "o1", items=[item("few", quantity=svc.MIN_SAMPLE_UNITS - 1), item("many", quantity=svc.MIN_SAMPLE_UNITS)])
    open_case(api, "o1", "return_refund", "no_reason", items=[{"sku": "few", "quantity": 1}])
    open_case_many = api.post("/v1/cases", {"order_id": "o1", "type": "return_refund", "reason": "no_reason",
                                            "items": [{"sku": "many", "quantity": 1}]}, headers=None, who="buyer_x")
    rows = {i["sku"]: i for i in svc.insights(ctx, Principal("platform"), merchant_id="mA", weeks=4,
                                                only="returns")["returns"]["items"]}
    assert rows["few"]["units_sold"] == svc.MIN_SAMPLE_UNITS - 1 and rows["few"]["rate_permille"] is None
    assert rows["few"]["return_cases"] == 1  # the counts stay visible: only the rate is withheld
    if open_case_many.status_code == 201:  # one open case per order (E9) may refuse the second
        assert rows["many"]["rate_permille"] == 1000 // svc.MIN_SAMPLE_UNITS
    assert rows["many"]["units_sold"] == svc.MIN_SAMPLE_UNITS
