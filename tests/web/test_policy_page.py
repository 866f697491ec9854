"""The platform console's policy page (T0, D3; issue 15): the version in force, drafts with their difference, a form
for a new draft, schedule and withdraw after a confirmation — CSRF on every form, platform agents only."""

from __future__ import annotations

import html
import json
from typing import Any

from webhelpers import browser, csrf_of, make_user, sign_in

from aftersales.service.publishing import PARAMETERS


def agent(api: Any, username: str = "pat", role: str = "platform_agent", merchant: str | None = None) -> Any:
    make_user(api, username, role=role, merchant=merchant)
    web = browser(api)
    assert sign_in(web, username).status_code == 303
    return web


def form_of(api: Any, token: str, **changes: Any) -> dict[str, str]:
    current = api.get("/v1/policy").json()
    data = {k: ", ".join(map(str, current[k])) if isinstance(current[k], list) else str(current[k]) for k in PARAMETERS}
    return {**data, "csrf_token": token, "reason": "winter sales", "effective_at": "", **changes}


def test_T0_page_drafts_shows_the_difference_and_schedules_after_confirmation(api: Any) -> None:
    web = agent(api)
    page = web.get("/app/platform/policy")
    assert page.status_code == 200
    version = api.get("/v1/policy").json()["version"]
    assert version in page.text and 'href="/app/platform/policy"' in page.text
    token = csrf_of(page.text)

    assert web.post("/app/platform/policy/drafts", data=form_of(api, "", after_sales_days="20"),
                    follow_redirects=False).status_code == 403  # no CSRF token: nothing saved
    assert api.get("/v1/policy/drafts").json()["items"] == []

    r = web.post("/app/platform/policy/drafts", data=form_of(api, token, after_sales_days="20",
                                                             effective_at="2026-03-02T10:00"), follow_redirects=False)
    assert r.status_code == 303, r.text
    [d] = api.get("/v1/policy/drafts").json()["items"]
    assert d["difference"] == [{"name": "after_sales_days", "in_force": 15, "draft": 20}]
    assert d["effective_at"] == "2026-03-02T02:00:00+00:00"  # 10:00 platform time (Asia/Shanghai)
    assert d["created_by"] == "user:pat"
    page = web.get("/app/platform/policy").text
    assert d["id"] in page and "<strong>20</strong>" in page

    confirm = web.get(f"/app/platform/policy?confirm=schedule&draft={d['id']}")
    assert confirm.status_code == 200 and f"/app/platform/policy/drafts/{d['id']}/schedule" in confirm.text
    assert api.get(f"/v1/policy/drafts/{d['id']}").json()["status"] == "draft"  # asking is not doing
    r = web.post(f"/app/platform/policy/drafts/{d['id']}/schedule", data={"csrf_token": token, "reason": "approved"},
                 follow_redirects=False)
    assert r.status_code == 303
    assert api.get(f"/v1/policy/drafts/{d['id']}").json()["status"] == "scheduled"

    # Withdrawn before it takes effect; the record keeps both steps with who and why.
    r = web.post(f"/app/platform/policy/drafts/{d['id']}/withdraw", data={"csrf_token": token, "reason": "postponed"},
                 follow_redirects=False)
    assert r.status_code == 303
    assert api.get(f"/v1/policy/drafts/{d['id']}").json()["status"] == "withdrawn"
    rec = web.get("/app/platform/policy/record")
    assert rec.status_code == 200
    evs = [link["item"] for link in json.loads(rec.content)["links"]]
    assert [(e["kind"], e["actor_id"], e["reason"]) for e in evs] == [
        ("policy_drafted", "user:pat", "winter sales"), ("policy_scheduled", "user:pat", "approved"),
        ("policy_withdrawn", "user:pat", "postponed")]


def test_T0_an_invalid_draft_is_refused_naming_the_parameter_and_keeps_what_was_typed(api: Any) -> None:
    web = agent(api)
    token = csrf_of(web.get("/app/platform/policy").text)
    r = web.post("/app/platform/policy/drafts", data=form_of(api, token, no_reason_days="3", reason="shorter"))
    assert r.status_code == 422
    text = html.unescape(r.text)
    assert "no_reason_days (E4)" in text and 'value="3"' in text and "shorter" in text
    assert api.get("/v1/policy/drafts").json()["items"] == []


def test_T0_the_page_is_for_platform_agents_only(api: Any) -> None:
    web = agent(api, "mia", role="merchant_agent", merchant="mA")
    assert web.get("/app/platform/policy").status_code == 404


def test_T0_the_page_speaks_the_readers_language(api: Any) -> None:
    web = agent(api)
    token = csrf_of(web.get("/app/platform/policy").text)
    assert web.post("/app/platform/policy/drafts", data=form_of(api, token, after_sales_days="20"),
                    follow_redirects=False).status_code == 303
    zh = web.get("/app/platform/policy", headers={"Accept-Language": "zh-CN"}).text
    assert "现行版本" in zh and "与现行版本的差异" in zh and "排期" in zh
    es = web.get("/app/platform/policy", headers={"Accept-Language": "es-ES"}).text
    assert "Versión en vigor" in html.unescape(es) and "Programar" in es


def test_E4_E5_the_page_drafts_category_terms_only_and_shows_their_difference(api: Any) -> None:
    r = api.put("/v1/categories/fruitbox", {"name": "Fruit boxes", "no_reason_return": True, "after_sales_days": 15})
    assert r.status_code == 201, r.text
    web = agent(api)
    page = web.get("/app/platform/policy").text
    assert 'name="c-fruitbox-after_sales_days" value="15"' in page
    token = csrf_of(page)
    r = web.post("/app/platform/policy/drafts", data=form_of(api, token, reason="fruit spoils", **{
        "c-fruitbox-no_reason_return": "false", "c-fruitbox-statutory_exclusion": "",
        "c-fruitbox-after_sales_days": "8", "c-fruitbox-warranty_days": ""}), follow_redirects=False)
    assert r.status_code == 303, r.text
    [d] = api.get("/v1/policy/drafts").json()["items"]
    assert d["version"] is None and d["difference"] == []  # the parameters were left as in force: policy unchanged
    assert d["category_difference"] == [
        {"category": "fruitbox", "name": "no_reason_return", "in_force": True, "draft": False},
        {"category": "fruitbox", "name": "after_sales_days", "in_force": 15, "draft": 8}]
    page = web.get("/app/platform/policy").text
    assert "category terms only" in page and "<strong>8</strong>" in page and "After-sales days" in page
    # A wrong term: 422 naming it, what was typed kept, nothing drafted.
    r = web.post("/app/platform/policy/drafts", data=form_of(api, token, reason="typo", **{
        "c-fruitbox-no_reason_return": "true", "c-fruitbox-after_sales_days": "3"}))
    assert r.status_code == 422
    text = html.unescape(r.text)
    assert "categories.fruitbox.after_sales_days (E5)" in text and 'name="c-fruitbox-after_sales_days" value="3"' in text
    assert len(api.get("/v1/policy/drafts").json()["items"]) == 1


def test_T0_each_parameter_is_explained_with_its_rule_in_the_readers_language(api: Any) -> None:
    web = agent(api)
    en = html.unescape(web.get("/app/platform/policy").text)
    assert "Days after delivery for a return without a reason (by law at least 7)." in en
    zh = html.unescape(web.get("/app/platform/policy", headers={"Accept-Language": "zh-CN"}).text)
    es = html.unescape(web.get("/app/platform/policy", headers={"Accept-Language": "es-ES"}).text)
    assert "Days after delivery for a return without a reason" not in zh + es
    assert 'id="m-no_reason_days"><span class="rule">E4</span>' in zh
