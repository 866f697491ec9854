"""E4–E6, T0, D3 (issue 15): category terms published like the policy, through HTTP, on SQLite and PostgreSQL.

``PUT /v1/policy`` with ``categories`` drafts new terms of existing categories (with or without policy parameters),
answers their difference from the terms in force, and schedules them for an instant: orders paid from that instant
are stamped with the new version, orders paid before keep theirs for ever. A scheduled change can be withdrawn until
it takes effect; every step is in the policy's tamper-evident record with who and why.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from helpers import advance_to, delivered_order, iso, item, local, option, options, problem, put_category

from aftersales.config import DEV_RECORD_SECRET
from aftersales.domain import record

AFTER_SALES_15 = local(2026, 3, 17)  # delivered on local day 1 March: D+15
FRUIT_15 = {"no_reason_return": True, "after_sales_days": 15}
FRUIT_8 = {"no_reason_return": False, "after_sales_days": 8}


def draft(api: Any, categories: dict[str, Any], reason: str = "shorter fruit window", **extra: Any) -> dict[str, Any]:
    r = api.put("/v1/policy", {"reason": reason, "categories": categories, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def schedule(api: Any, draft_id: str, reason: str | None = None) -> dict[str, Any]:
    r = api.post(f"/v1/policy/drafts/{draft_id}/schedule", {"reason": reason} if reason else None)
    assert r.status_code == 200, r.text
    return r.json()


def test_E4_E5_category_draft_answers_its_difference_and_changes_nothing(api):
    put_category(api, "fruitbox", **FRUIT_15)
    policy = api.get("/v1/policy").json()
    d = draft(api, {"fruitbox": FRUIT_8})
    assert d["status"] == "draft" and d["version"] is None and d["parameters"] is None and d["difference"] == []
    assert d["categories"] == {"fruitbox": {"no_reason_return": False, "statutory_exclusion": None,
                                            "after_sales_days": 8, "warranty_days": None}}
    assert d["category_difference"] == [
        {"category": "fruitbox", "name": "no_reason_return", "in_force": True, "draft": False},
        {"category": "fruitbox", "name": "after_sales_days", "in_force": 15, "draft": 8}]
    assert api.get("/v1/policy").json() == policy
    assert [v["version"] for v in api.get("/v1/categories/fruitbox/versions").json()] == [1]


def test_E4_E5_order_paid_under_category_terms_A_keeps_A_after_B_scheduled_is_in_force(api):
    put_category(api, "fruitbox", **FRUIT_15)
    delivered_order(api, "old", items=[item("s1", category="fruitbox", exclusion_confirmed=True)])
    before = options(api, "old")
    assert before["terms_versions"] == {"fruitbox": 1}

    effective = local(2026, 3, 2, 12)
    d = draft(api, {"fruitbox": FRUIT_8}, effective_at=iso(effective))
    s = schedule(api, d["id"], reason="board decision 7")
    assert s["status"] == "scheduled" and s["effective_at"] == iso(effective)
    versions = api.get("/v1/categories/fruitbox/versions").json()
    assert [(v["version"], v["draft_id"]) for v in versions] == [(1, None), (2, d["id"])]
    # Not before its instant: an order paid a second before is stamped with A, the list still shows A.
    advance_to(api, effective - timedelta(seconds=1))
    delivered_order(api, "just_before", paid_at=api.now(), items=[item("s1", category="fruitbox")])
    assert options(api, "just_before")["terms_versions"] == {"fruitbox": 1}
    cat = next(c for c in api.get("/v1/categories").json() if c["code"] == "fruitbox")
    assert (cat["no_reason_return"], cat["after_sales_days"]) == (True, 15)

    # At its instant: B is in force for orders paid from then on.
    advance_to(api, effective)
    assert api.get(f"/v1/policy/drafts/{d['id']}").json()["status"] == "in_force"
    cat = next(c for c in api.get("/v1/categories").json() if c["code"] == "fruitbox")
    assert (cat["no_reason_return"], cat["after_sales_days"]) == (False, 8)
    delivered_order(api, "new", paid_at=api.now(), items=[item("s1", category="fruitbox", exclusion_confirmed=True)])
    new = options(api, "new")
    assert new["terms_versions"] == {"fruitbox": 2}
    assert "no_reason" not in option(new, "return_refund")["reasons"]
    assert option(new, "refund_only")["deadline"] == iso(local(2026, 3, 11))  # B: delivered 2 March, D+8

    # The order paid under A keeps A's window and its no-reason return.
    after = options(api, "old")
    assert after == before
    assert option(after, "refund_only")["deadline"] == iso(AFTER_SALES_15)
    assert "no_reason" in option(after, "return_refund")["reasons"]
    # A version in force never changes.
    problem(api.post(f"/v1/policy/drafts/{d['id']}/withdraw"), 409)


def test_E4_scheduled_category_change_withdrawn_before_its_instant_never_takes_effect(api):
    put_category(api, "fruitbox", **FRUIT_15)
    effective = api.now() + timedelta(hours=2)
    d = draft(api, {"fruitbox": FRUIT_8}, effective_at=iso(effective))
    schedule(api, d["id"])
    r = api.post(f"/v1/policy/drafts/{d['id']}/withdraw", {"reason": "announced too late"})
    assert r.status_code == 200 and r.json()["status"] == "withdrawn", r.text
    assert [v["version"] for v in api.get("/v1/categories/fruitbox/versions").json()] == [1]
    advance_to(api, effective + timedelta(hours=1))
    delivered_order(api, "later", paid_at=api.now(), items=[item("s1", category="fruitbox")])
    assert options(api, "later")["terms_versions"] == {"fruitbox": 1}


def test_E4_put_category_stays_an_immediate_change_beside_a_scheduled_one(api):
    put_category(api, "fruitbox", **FRUIT_15)
    effective = api.now() + timedelta(days=1)
    d = schedule(api, draft(api, {"fruitbox": FRUIT_8}, effective_at=iso(effective))["id"])
    assert put_category(api, "fruitbox", no_reason_return=True, after_sales_days=20)["version"] == 3
    delivered_order(api, "now", paid_at=api.now(), items=[item("s1", category="fruitbox")])
    assert options(api, "now")["terms_versions"] == {"fruitbox": 3}
    advance_to(api, effective)
    delivered_order(api, "then", paid_at=api.now(), items=[item("s1", category="fruitbox")])
    assert options(api, "then")["terms_versions"] == {"fruitbox": 2}  # the scheduled version from its instant
    assert d["status"] == "scheduled"


def test_T0_one_draft_carries_parameters_and_category_terms(api):
    put_category(api, "fruitbox", **FRUIT_15)
    body = {k: v for k, v in api.get("/v1/policy").json().items() if k not in ("version", "effective_at", "draft_id")}
    d = draft(api, {"fruitbox": FRUIT_8}, **{**body, "merchant_response_hours": 36})
    assert d["difference"] == [{"name": "merchant_response_hours", "in_force": 48, "draft": 36}]
    assert [x["name"] for x in d["category_difference"]] == ["no_reason_return", "after_sales_days"]
    s = schedule(api, d["id"])
    assert s["status"] == "in_force"
    assert api.get("/v1/policy").json()["merchant_response_hours"] == 36
    assert [v["version"] for v in api.get("/v1/categories/fruitbox/versions").json()] == [1, 2]


def test_E4_E5_invalid_category_terms_are_422_naming_each_and_store_nothing(api):
    put_category(api, "fruitbox", **FRUIT_15)
    r = api.put("/v1/policy", {"reason": "x", "categories": {
        "fruitbox": {"no_reason_return": "yes", "after_sales_days": 3, "warranty_days": -1, "colour": "red"},
        "nosuch": {"no_reason_return": True}, "fresh": {"no_reason_return": True, "statutory_exclusion": "tasty"}}})
    body = problem(r, 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"categories.fruitbox.no_reason_return", "categories.fruitbox.after_sales_days",
            "categories.fruitbox.warranty_days", "categories.fruitbox.colour", "categories.nosuch"} <= fields
    problem(api.put("/v1/policy", {"reason": "x"}), 422)  # neither parameters nor categories
    problem(api.put("/v1/policy", {"reason": "x", "categories": {}}), 422)
    problem(api.put("/v1/policy", {"reason": "x", "categories": {"fruitbox": FRUIT_8}}, who="merchant_a"), 403)
    assert api.get("/v1/policy/drafts").json()["items"] == []


def test_D3_category_term_changes_are_in_the_policy_record_with_who_and_why(api):
    put_category(api, "fruitbox", **FRUIT_15)
    d1 = draft(api, {"fruitbox": FRUIT_8})
    schedule(api, d1["id"], reason="board decision 7")
    d2 = draft(api, {"fruitbox": {"no_reason_return": True, "after_sales_days": 30}},
               effective_at=iso(api.now() + timedelta(days=3)), reason="longer window")
    schedule(api, d2["id"])
    assert api.post(f"/v1/policy/drafts/{d2['id']}/withdraw", {"reason": "too generous"}).status_code == 200
    r = api.get("/v1/policy/record")
    verdict = record.verify(r.content, DEV_RECORD_SECRET)
    assert verdict.ok, verdict.problems
    evs = [link["item"] for link in json.loads(r.content)["links"]]
    assert [(e["kind"], e["draft_id"], e["reason"], e["actor"]) for e in evs] == [
        ("policy_drafted", d1["id"], "shorter fruit window", "platform"),
        ("policy_scheduled", d1["id"], "board decision 7", "platform"),
        ("policy_drafted", d2["id"], "longer window", "platform"),
        ("policy_scheduled", d2["id"], "longer window", "platform"),
        ("policy_withdrawn", d2["id"], "too generous", "platform"),
    ]
    assert evs[0]["data"]["category_difference"] == [
        {"category": "fruitbox", "name": "no_reason_return", "in_force": True, "draft": False},
        {"category": "fruitbox", "name": "after_sales_days", "in_force": 15, "draft": 8}]
    assert evs[1]["data"]["category_versions"] == {"fruitbox": 2}
    assert evs[3]["data"]["category_versions"] == {"fruitbox": 3}
    assert evs[4]["data"]["category_versions"] == {"fruitbox": 3}
    assert not record.verify(r.content.replace(b"board decision 7", b"board decision 8"), DEV_RECORD_SECRET).ok
