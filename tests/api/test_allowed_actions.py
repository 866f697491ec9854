"""DESIGN "Guards" through HTTP: a case's ``allowed_actions`` are exactly the actions that succeed for its caller.

For a few reachable states, every action the case JSON lists for a caller succeeds (each on a fresh copy of the
state, built the same way), and every other action answers 409, 422 or 403 with a ``rule`` and changes nothing.
Complaints, withdrawals, orders and groups list their actions the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from helpers import (
    act,
    advance_to,
    create_order,
    delivered_order,
    get_case,
    group_order,
    hours,
    open_case,
    problem,
    try_act,
)

from aftersales.domain.cases import Action

CALLERS = ("buyer_x", "merchant_a", "platform")
TEXT = "As the photos show"
#: Valid parameters of each action (those that take any).
PARAMS: dict[str, dict[str, Any]] = {
    "reject": {"reason": TEXT}, "reject_return": {"reason": TEXT}, "escalate": {"reason": TEXT},
    "offer_partial_refund": {"refund_fen": 3000}, "ship_return": {"carrier": "YTO", "tracking_no": "YT1",
                                                                   "shipping_fee_fen": 900},
    "ship_replacement": {"carrier": "SF", "tracking_no": "SF1"}, "rule": {"outcome": "refund", "rationale": TEXT},
    "advance_compensate": {"reason": "merchant_unreachable"},
}


def refused_return(api: Any, oid: str) -> dict[str, Any]:
    delivered_order(api, oid)
    case = open_case(api, oid, "return_refund", "quality_problem")
    return act(api, case["id"], "reject", {"reason": "normal wear"})


def partial_offer(api: Any, oid: str) -> dict[str, Any]:
    delivered_order(api, oid)
    case = open_case(api, oid, "refund_only", "quality_problem")
    return act(api, case["id"], "offer_partial_refund", {"refund_fen": 3000})


def refund_before_shipment(api: Any, oid: str) -> dict[str, Any]:
    create_order(api, oid)
    return open_case(api, oid, "refund_only", "no_reason")


def disputed_return(api: Any, oid: str) -> dict[str, Any]:
    delivered_order(api, oid)
    case = open_case(api, oid, "return_refund", "quality_problem")
    return act(api, case["id"], "approve", {"return_shipping_payer": "buyer"})


def under_review(api: Any, oid: str) -> dict[str, Any]:
    case = refused_return(api, oid)
    return act(api, case["id"], "escalate", {"reason": "unfair"})


def refund_ruled(api: Any, oid: str) -> dict[str, Any]:
    case = under_review(api, oid)
    return act(api, case["id"], "rule", {"outcome": "refund", "rationale": TEXT, "refund_fen": 5000})


def replacement_shipped(api: Any, oid: str) -> dict[str, Any]:
    delivered_order(api, oid)
    case = open_case(api, oid, "reship", "missing_parts")
    act(api, case["id"], "approve")
    return act(api, case["id"], "ship_replacement", {"carrier": "SF", "tracking_no": "SF1"})


STATES: dict[str, Callable[[Any, str], dict[str, Any]]] = {
    "M2-refused": refused_return, "M8-partial-offer": partial_offer, "E2-before-shipment": refund_before_shipment,
    "M3-disputed": disputed_return, "P1-review": under_review, "P1-ruled": refund_ruled, "M7-replacement": replacement_shipped,
}


@pytest.mark.parametrize("state", list(STATES))
def test_T2_every_listed_action_succeeds_and_every_other_is_refused_with_a_rule(api: Any, state: str) -> None:
    build = STATES[state]
    case = build(api, "o1")
    listed = {who: get_case(api, case["id"], who=who)["allowed_actions"] for who in CALLERS}
    assert any(listed.values()), f"{state}: someone can act"
    version = get_case(api, case["id"])["version"]
    for who in CALLERS:
        for action in Action:
            if action.value in listed[who]:
                continue
            if action is Action.ACCEPT_OFFER and "accept_rejection" in listed[who]:
                continue  # M2: with a refusal and no offer, API.md's accept_offer is taken as accept_rejection (listed)
            r = try_act(api, case["id"], action.value, PARAMS.get(action.value), who=who)
            assert r.status_code in (403, 409, 422), f"{state}: unlisted {action} by {who}: {r.status_code} {r.text}"
            body = problem(r, r.status_code)
            assert body.get("rule"), f"{state}: {action} by {who} refused without a rule: {body}"
    assert get_case(api, case["id"])["version"] == version, "refusals changed nothing"
    n = 1
    for who in CALLERS:
        for action in listed[who]:
            n += 1
            fresh = build(api, f"o{n}")
            assert get_case(api, fresh["id"], who=who)["allowed_actions"] == listed[who]
            r = try_act(api, fresh["id"], action, PARAMS.get(action), who=who)
            assert r.status_code == 200, f"{state}: listed {action} by {who} was refused: {r.text}"


def test_K2_complaint_lists_resolve_only_once_the_merchant_was_heard(api: Any) -> None:
    delivered_order(api, "o1")
    r = api.post("/v1/complaints", {"channel": "in_app_chat", "category": "other", "description": "rude",
                                    "order_id": "o1"}, who="buyer_x")
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert r.json()["allowed_actions"] == []
    accepted = api.post(f"/v1/complaints/{cid}/accept", None, who="platform").json()
    assert accepted["allowed_actions"] == [], "K2: the merchant is heard first"
    problem(api.post(f"/v1/complaints/{cid}/resolve", {"outcome": "not_upheld", "rationale": "r"}, who="platform"), 422, "K2")
    assert api.get(f"/v1/complaints/{cid}", who="merchant_a").json()["allowed_actions"] == ["respond"]
    advance_to(api, api.now() + timedelta(seconds=hours(48)))
    assert api.get(f"/v1/complaints/{cid}", who="platform").json()["allowed_actions"] == ["resolve"]
    r = api.post(f"/v1/complaints/{cid}/resolve", {"outcome": "not_upheld", "rationale": "r"}, who="platform")
    assert r.status_code == 200 and r.json()["allowed_actions"] == [], r.text


def test_G5_E3_orders_and_groups_list_their_actions(api: Any) -> None:
    assert create_order(api, "o1")["allowed_actions"] == ["ship"], "the platform may ship too"
    assert api.get("/v1/orders/o1", who="merchant_a").json()["allowed_actions"] == ["ship"]
    assert api.get("/v1/orders/o1", who="buyer_x").json()["allowed_actions"] == []
    group_order(api, "o2", "g1", auto_complete=True)
    seen = api.get("/v1/orders/o2", who="merchant_a").json()
    assert seen["allowed_actions"] == [], "G2: a pending group's order does not ship"
    assert seen["group"]["allowed_actions"] == ["complete"]


def test_D1_a_withdrawal_lists_cancel_while_pending(api: Any) -> None:
    r = api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": 150000}, who="merchant_a")
    assert r.status_code == 201, r.text
    r = api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 1000}, who="merchant_a")
    assert r.status_code == 201, r.text
    w = r.json()
    assert w["allowed_actions"] == ["cancel"]
    done = api.post(f"/v1/merchants/mA/deposit/withdrawals/{w['id']}/cancel", None, who="merchant_a").json()
    assert done["allowed_actions"] == []
