"""Publishing a policy change (T0, D3; issue 15) through HTTP, on SQLite and PostgreSQL.

A draft changes nothing; scheduled, it becomes the version in force at its ``effective_at`` for orders paid from
then on, while orders paid before keep the version they were stamped with. Every draft, schedule and withdrawal is
in the policy's tamper-evident record with who and why.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from helpers import advance_to, create_order, delivered_order, iso, local, option, options, problem

from aftersales.config import DEV_RECORD_SECRET
from aftersales.domain import record


def in_force(api: Any) -> dict[str, Any]:
    r = api.get("/v1/policy")
    assert r.status_code == 200, r.text
    return r.json()


def draft_body(api: Any, reason: str = "longer after-sales window", **changes: Any) -> dict[str, Any]:
    body = {k: v for k, v in in_force(api).items() if k not in ("version", "effective_at", "draft_id")}
    return {**body, **changes, "reason": reason}


def draft(api: Any, **changes: Any) -> dict[str, Any]:
    r = api.put("/v1/policy", draft_body(api, **changes))
    assert r.status_code == 201, r.text
    return r.json()


def schedule(api: Any, draft_id: str, reason: str | None = None) -> dict[str, Any]:
    r = api.post(f"/v1/policy/drafts/{draft_id}/schedule", {"reason": reason} if reason else None)
    assert r.status_code == 200, r.text
    return r.json()


def test_T0_draft_answers_its_difference_and_changes_nothing(api):
    before = in_force(api)
    d = draft(api, after_sales_days=20, merchant_response_hours=36)
    assert d["status"] == "draft" and d["id"]
    assert d["in_force_version"] == before["version"] != d["version"]
    assert d["difference"] == [{"name": "after_sales_days", "in_force": 15, "draft": 20},
                               {"name": "merchant_response_hours", "in_force": 48, "draft": 36}]
    assert d["allowed_actions"] == ["schedule", "withdraw"]
    assert in_force(api) == before
    assert api.get(f"/v1/policy/drafts/{d['id']}").json() == d
    assert [x["id"] for x in api.get("/v1/policy/drafts").json()["items"]] == [d["id"]]
    assert api.get("/v1/policy/drafts", params={"status": "withdrawn"}).json()["items"] == []
    problem(api.get("/v1/policy/drafts/pd_nosuch"), 404)


def test_T0_order_paid_under_A_keeps_A_after_B_in_force(api):
    a = in_force(api)
    delivered_order(api, "old")
    before = options(api, "old")
    assert before["policy_version"] == a["version"]

    effective = api.now() + timedelta(days=1)
    d = draft(api, after_sales_days=20, effective_at=iso(effective))
    s = schedule(api, d["id"])
    assert s["status"] == "scheduled" and s["effective_at"] == iso(effective)
    assert s["allowed_actions"] == ["withdraw"]
    assert in_force(api)["version"] == a["version"]  # not yet

    # An order paid just before the effective instant is still judged by A.
    advance_to(api, effective - timedelta(seconds=1))
    create_order(api, "just_before", paid_at=api.now())
    advance_to(api, effective)
    b = in_force(api)
    assert b["version"] == d["version"] and b["after_sales_days"] == 20
    assert b["effective_at"] == iso(effective) and b["draft_id"] == d["id"]
    assert api.get(f"/v1/policy/drafts/{d['id']}").json()["status"] == "in_force"

    # Orders paid before keep A: same options, same window.
    assert options(api, "old") == before
    assert options(api, "just_before")["policy_version"] == a["version"]
    # An order paid from then on is stamped with B: a 20-day window from delivery.
    delivered_order(api, "new", paid_at=api.now())
    new = options(api, "new")
    assert new["policy_version"] == b["version"]
    assert option(before, "refund_only")["deadline"] == iso(local(2026, 3, 17))  # A: delivered 1 March, D+15
    assert option(new, "refund_only")["deadline"] == iso(local(2026, 3, 23))  # B: delivered 2 March, D+20

    # A version in force never changes.
    problem(api.post(f"/v1/policy/drafts/{d['id']}/withdraw"), 409)
    problem(api.post(f"/v1/policy/drafts/{d['id']}/schedule"), 409)


def test_T0_withdrawn_before_it_takes_effect_it_never_does(api):
    a = in_force(api)
    effective = api.now() + timedelta(hours=2)
    d = draft(api, merchant_response_hours=36, effective_at=iso(effective))
    schedule(api, d["id"])
    r = api.post(f"/v1/policy/drafts/{d['id']}/withdraw", {"reason": "announced too late"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "withdrawn" and r.json()["allowed_actions"] == []
    advance_to(api, effective + timedelta(hours=1))
    assert in_force(api)["version"] == a["version"]
    problem(api.post(f"/v1/policy/drafts/{d['id']}/schedule"), 409)
    problem(api.post(f"/v1/policy/drafts/{d['id']}/withdraw"), 409)


def test_T0_effective_at_in_the_past_means_now(api):
    now = api.now()
    d = draft(api, buyer_confirm_days=10, effective_at=iso(now - timedelta(days=3)))
    assert d["effective_at"] == iso(now)
    s = schedule(api, d["id"])
    assert s["effective_at"] == iso(api.now()) and s["status"] == "in_force"
    assert in_force(api)["buyer_confirm_days"] == 10


def test_T0_invalid_parameters_are_422_naming_them_and_store_nothing(api):
    r = api.put("/v1/policy", draft_body(api, no_reason_days=3, merchant_confirm_hours="48", bogus=1))
    body = problem(r, 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"no_reason_days", "merchant_confirm_hours", "bogus"} <= fields
    assert "no_reason_days (E4)" in body["detail"]
    missing = draft_body(api)
    del missing["timezone"]
    body = problem(api.put("/v1/policy", missing), 422)
    assert [e["field"] for e in body["errors"]] == ["timezone"]
    problem(api.put("/v1/policy", {k: v for k, v in draft_body(api).items() if k != "reason"}), 422)
    problem(api.put("/v1/policy", draft_body(api, effective_at="2026-03-05T00:00:00")), 422)  # naive instant
    assert api.get("/v1/policy/drafts").json()["items"] == []


def test_T0_only_the_platform_publishes(api):
    d = draft(api, after_sales_days=20)
    for who in ("merchant_a", "buyer_x"):
        problem(api.put("/v1/policy", draft_body(api), who=who), 403)
        problem(api.get("/v1/policy/drafts", who=who), 403)
        problem(api.post(f"/v1/policy/drafts/{d['id']}/schedule", who=who), 403)
        problem(api.get("/v1/policy/record", who=who), 403)


def test_D3_policy_record_lists_every_draft_schedule_and_withdrawal_with_who_and_why(api):
    d1 = draft(api, after_sales_days=20)
    schedule(api, d1["id"], reason="board decision 12")
    d2 = draft(api, after_sales_days=25)
    assert api.post(f"/v1/policy/drafts/{d2['id']}/withdraw", {"reason": "too generous"}).status_code == 200
    r = api.get("/v1/policy/record")
    assert r.status_code == 200, r.text
    assert "attachment" in r.headers["content-disposition"]
    verdict = record.verify(r.content, DEV_RECORD_SECRET)
    assert verdict.ok, verdict.problems
    doc = json.loads(r.content)
    assert doc["header"]["subject"] == {"kind": "policy", "id": "platform"}
    evs = [link["item"] for link in doc["links"]]
    assert [(e["kind"], e["draft_id"], e["reason"]) for e in evs] == [
        ("policy_drafted", d1["id"], "longer after-sales window"),
        ("policy_scheduled", d1["id"], "board decision 12"),
        ("policy_drafted", d2["id"], "longer after-sales window"),
        ("policy_withdrawn", d2["id"], "too generous"),
    ]
    assert all(e["actor"] == "platform" for e in evs)
    assert evs[0]["data"]["difference"] == [{"name": "after_sales_days", "in_force": 15, "draft": 20}]
    tampered = r.content.replace(b"too generous", b"too GENEROUS")
    assert not record.verify(tampered, DEV_RECORD_SECRET).ok
