"""E4–E6, T0 through HTTP: the terms in force when the buyer paid are that order's terms, on SQLite and PostgreSQL.

A change of a category's terms is a new version, effective from the change; orders paid before it keep the version
they were paid under for ever, and the options answer names the versions that judged them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from helpers import (
    advance_to,
    create_order,
    delivered_order,
    iso,
    item,
    local,
    option,
    options,
    put_category,
)

AFTER_SALES_15 = local(2026, 3, 17)  # delivered on local day 1 March: D+15
NO_REASON_END = local(2026, 3, 9)  # D+7


def test_E4_E5_order_paid_under_version_A_keeps_A_windows_after_B(api):
    a = put_category(api, "fruitbox", after_sales_days=15, no_reason_return=True)
    assert a["version"] == 1
    # The buyer confirmed the shop's exclusion at purchase: it binds only if the category excludes no-reason returns.
    delivered_order(api, "old", items=[item("s1", category="fruitbox", exclusion_confirmed=True)])
    before = options(api, "old")
    assert before["terms_versions"] == {"fruitbox": 1}

    advance_to(api, local(2026, 3, 2, 12))
    b = put_category(api, "fruitbox", after_sales_days=8, no_reason_return=False)
    assert b["version"] == 2

    # The old order keeps version A: 15-day window, no-reason return, deadlines unchanged.
    after = options(api, "old")
    assert after == before
    assert after["terms_versions"] == {"fruitbox": 1}
    ret = option(after, "return_refund")
    assert ret["allowed"] is True and ret["rule"] == "E4"
    assert "no_reason" in ret["reasons"]
    assert ret["reason_deadlines"]["no_reason"] == iso(NO_REASON_END)
    assert ret["deadline"] == iso(AFTER_SALES_15)
    assert option(after, "refund_only")["deadline"] == iso(AFTER_SALES_15)
    assert option(after, "exchange")["deadline"] == iso(AFTER_SALES_15)

    # A new order, paid under version B, gets B: an 8-day window and the confirmed exclusion binds (E4).
    delivered_order(api, "new", paid_at=api.now(), items=[item("s1", category="fruitbox", exclusion_confirmed=True)])
    new = options(api, "new")
    assert new["terms_versions"] == {"fruitbox": 2}
    assert new["policy_version"] == after["policy_version"] is not None
    ret = option(new, "return_refund")
    assert "no_reason" not in ret["reasons"]
    assert "no_reason" not in ret["reason_deadlines"]
    assert option(new, "refund_only")["deadline"] == iso(local(2026, 3, 11))  # end of local day D+8 (2 March + 8)

    # Still true at the end of B's window for the old order: its own window is open until D+15.
    advance_to(api, local(2026, 3, 11))
    assert option(options(api, "old"), "refund_only")["allowed"] is True
    assert option(options(api, "new"), "refund_only")["allowed"] is False


def test_E4_E6_category_versions_are_kept_and_only_a_change_of_terms_makes_one(api):
    put_category(api, "kettle", warranty_days=365)
    advance_to(api, api.now() + timedelta(hours=1))
    # Renaming is not a change of terms: no new version.
    assert put_category(api, "kettle", name="Electric kettles", warranty_days=365)["version"] == 1
    assert put_category(api, "kettle", warranty_days=730)["version"] == 2
    r = api.get("/v1/categories/kettle/versions")
    assert r.status_code == 200, r.text
    versions = r.json()
    assert [(v["version"], v["warranty_days"]) for v in versions] == [(1, 365), (2, 730)]
    assert versions[0]["effective_at"] < versions[1]["effective_at"]
    assert api.get("/v1/categories/nosuch/versions").status_code == 404


def test_T0_policy_in_force_has_a_version_and_orders_name_it(api):
    r = api.get("/v1/policy")
    assert r.status_code == 200, r.text
    policy = r.json()
    assert policy["version"].startswith("p-") and policy["effective_at"]
    assert policy["after_sales_days"] == 15  # the parameters are still all there
    create_order(api, "o1")
    assert options(api, "o1")["policy_version"] == policy["version"]
    assert options(api, "o1")["terms_versions"] == {"apparel": 1}  # the version in force when it was paid (E4: created first)
    # T0: the file's version judged o1, so it was in force when o1 was paid: its "since" moves back to that payment
    # (never forward), and nothing else changes; asking again changes nothing.
    paid_at = api.get("/v1/orders/o1").json()["paid_at"]
    now = api.get("/v1/policy").json()
    assert datetime.fromisoformat(now["effective_at"]) == min(datetime.fromisoformat(policy["effective_at"]),
                                                               datetime.fromisoformat(paid_at))
    assert {**now, "effective_at": None} == {**policy, "effective_at": None}
    assert api.get("/v1/policy").json() == now
