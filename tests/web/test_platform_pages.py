"""The platform console over HTTP: interventions and rulings (P1, P2), complaints (K2), deposits (D1), the ledger (D2)
and record exports (D3) — and who may not open it (T2) or post to it without a CSRF token."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import func, select
from webhelpers import browser, csrf_of, make_user, sign_in

from aftersales.store import tables as t

PAID_AT = "2026-03-01T01:00:00+00:00"


# --- builders (through the API) ---------------------------------------------------------------------------------
def order(api: Any, oid: str, *, merchant: str = "mA", price: int = 10000) -> None:
    body = {"id": oid, "merchant_id": merchant, "buyer_id": "bX", "paid_at": PAID_AT, "shipping_fee_fen": 800,
            "items": [{"sku": "s1", "title": "Teapot", "category": "apparel", "quantity": 1, "unit_price_fen": price}]}
    assert api.post("/v1/orders", body).status_code == 201
    who = {"mA": "merchant_a", "mB": "merchant_b"}[merchant]
    assert api.post(f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": f"SF{oid}"}, who=who).status_code == 200
    assert api.post(f"/v1/orders/{oid}/deliver", {}, who=who).status_code == 200


def escalated(api: Any, oid: str, *, merchant: str = "mA", why: str = "the spout leaks, see the video") -> str:
    """A refund-only case the shop refused and the buyer took to the platform (P1, M2)."""
    order(api, oid, merchant=merchant)
    r = api.post("/v1/cases", {"order_id": oid, "type": "refund_only", "reason": "quality_problem"}, who="buyer_x")
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    who = {"mA": "merchant_a", "mB": "merchant_b"}[merchant]
    assert api.post(f"/v1/cases/{cid}/reject", {"reason": "no defect visible"}, who=who).status_code == 200
    assert api.post(f"/v1/cases/{cid}/escalate", {"reason": why}, who="buyer_x").status_code == 200
    return str(cid)


def agent(api: Any, username: str = "pat", role: str = "platform_agent", merchant: str | None = None) -> Any:
    make_user(api, username, role=role, merchant=merchant)
    web = browser(api)
    assert sign_in(web, username).status_code == 303
    return web


def rows_of(html: str) -> list[str]:
    return re.findall(r'class="case-link" href="/app/platform/cases/([^"]+)"', html)


def version_of(html: str, action: str) -> str:
    m = re.search(rf'action="[^"]*/{action}".*?name="version" value="(\d+)"', html, re.S)
    assert m, f"no {action} form on the page"
    return m.group(1)


def case_of(api: Any, cid: str) -> dict[str, Any]:
    return dict(api.get(f"/v1/cases/{cid}").json())


# --- P1: the intervention queue and the ruling ----------------------------------------------------------------------
def test_P1_the_queue_lists_cases_under_review_overdue_first(api: Any) -> None:
    first = escalated(api, "o1")
    api.advance(25 * 3600)  # P1: past platform_accept_hours, the first case is flagged overdue
    second = escalated(api, "o2", merchant="mB")
    web = agent(api)
    page = web.get("/app/platform")
    assert page.status_code == 200
    assert rows_of(page.text) == [first, second]
    assert re.search(rf'<tr class="late">\s*<td><a class="case-link" href="/app/platform/cases/{first}"', page.text)
    assert "the spout leaks, see the video" in page.text
    assert 'data-countdown="' + case_of(api, second)["deadline"]["due_at"] + '"' in page.text
    assert "Under platform review: 2" in page.text


def test_P1_a_partial_refund_ruling_from_the_case_page(api: Any) -> None:
    cid = escalated(api, "o1")
    web = agent(api)
    page = web.get(f"/app/platform/cases/{cid}")
    assert page.status_code == 200
    assert "the spout leaks, see the video" in page.text and "no defect visible" in page.text
    assert f'action="/app/platform/cases/{cid}/rule"' in page.text
    assert "advance_compensate" not in page.text  # only what is allowed now
    r = web.post(f"/app/platform/cases/{cid}/rule", data={
        "csrf_token": csrf_of(page.text), "version": version_of(page.text, "rule"), "outcome": "refund",
        "amount": "40.50", "rationale": "The video shows the leak."}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/app/platform/cases/{cid}"
    case = case_of(api, cid)
    assert case["ruling"]["outcome"] == "refund" and case["ruling"]["refund_fen"] == 4050
    assert case["ruling"]["rationale"] == "The video shows the leak."
    after = web.get(f"/app/platform/cases/{cid}").text
    assert "Ruling recorded." in after and "The video shows the leak." in after
    assert f'action="/app/platform/cases/{cid}/rule"' not in after


def test_P1_a_ruling_without_rationale_or_above_the_paid_amount_is_refused_with_its_rule(api: Any) -> None:
    cid = escalated(api, "o1")
    web = agent(api)
    page = web.get(f"/app/platform/cases/{cid}").text
    base = {"csrf_token": csrf_of(page), "version": version_of(page, "rule"), "outcome": "refund"}
    r = web.post(f"/app/platform/cases/{cid}/rule", data={**base, "rationale": "  "})
    assert r.status_code == 422 and "[P1]" in r.text
    r = web.post(f"/app/platform/cases/{cid}/rule", data={**base, "amount": "999.00", "rationale": "too much"})
    assert r.status_code == 422 and "[E10]" in r.text and 'value="999.00"' in r.text
    r = web.post(f"/app/platform/cases/{cid}/rule", data={**base, "amount": "12.345", "rationale": "x"})
    assert r.status_code == 422
    assert case_of(api, cid)["ruling"] is None


def test_P1_reject_ruling_closes_the_case(api: Any) -> None:
    cid = escalated(api, "o1")
    web = agent(api)
    page = web.get(f"/app/platform/cases/{cid}").text
    r = web.post(f"/app/platform/cases/{cid}/rule", data={
        "csrf_token": csrf_of(page), "version": version_of(page, "rule"), "outcome": "reject",
        "rationale": "No defect in the photos."}, follow_redirects=False)
    assert r.status_code == 303
    case = case_of(api, cid)
    assert case["status"] == "closed" and case["close_reason"] == "platform_rejected"
    assert rows_of(web.get("/app/platform").text) == []


def test_P2_advance_compensation_when_the_shop_does_not_pay(api: Any) -> None:
    cid = escalated(api, "o1")
    web = agent(api)
    page = web.get(f"/app/platform/cases/{cid}").text
    web.post(f"/app/platform/cases/{cid}/rule", data={"csrf_token": csrf_of(page), "version": version_of(page, "rule"),
                                                      "outcome": "refund", "rationale": "Defect shown."})
    page = web.get(f"/app/platform/cases/{cid}").text
    assert f'action="/app/platform/cases/{cid}/advance"' in page
    r = web.post(f"/app/platform/cases/{cid}/advance", data={"csrf_token": csrf_of(page), "version": version_of(page, "advance"),
                                                             "reason": "merchant_unreachable"}, follow_redirects=False)
    assert r.status_code == 303
    case = case_of(api, cid)
    assert case["ruling"]["paid_by"] == "platform" and case["refunded_fen"] == case["ruling"]["refund_fen"] == 10000


def test_P1_a_stale_ruling_form_gets_a_conflict(api: Any) -> None:
    cid = escalated(api, "o1")
    web = agent(api)
    page = web.get(f"/app/platform/cases/{cid}").text
    assert api.post(f"/v1/cases/{cid}/messages", {"body": "hello"}, who="buyer_x").status_code in (200, 201)
    stale = str(int(version_of(page, "rule")) - 1)
    r = web.post(f"/app/platform/cases/{cid}/rule", data={"csrf_token": csrf_of(page), "version": stale,
                                                          "outcome": "reject", "rationale": "x"})
    assert r.status_code == 409
    assert case_of(api, cid)["ruling"] is None


def test_CSRF_a_ruling_without_a_valid_token_is_refused_and_changes_nothing(api: Any, ctx: Any) -> None:
    cid = escalated(api, "o1")
    web = agent(api)
    page = web.get(f"/app/platform/cases/{cid}").text
    data = {"version": version_of(page, "rule"), "outcome": "refund", "rationale": "x"}

    def events() -> int:
        with ctx.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.events)).scalar_one())

    before = events()
    for token in (None, "forged-token"):
        body = {**data, **({"csrf_token": token} if token else {})}
        r = web.post(f"/app/platform/cases/{cid}/rule", data=body)
        assert r.status_code == 403
    assert events() == before and case_of(api, cid)["ruling"] is None


# --- T2: who may open the console -------------------------------------------------------------------------------------
def test_T2_merchant_staff_cannot_open_the_platform_console(api: Any) -> None:
    cid = escalated(api, "o1")
    web = agent(api, "alice", role="merchant_agent", merchant="mA")
    for path in ("/app/platform", f"/app/platform/cases/{cid}", "/app/platform/complaints", "/app/platform/deposits",
                 "/app/platform/ledger", f"/app/platform/cases/{cid}/record"):
        r = web.get(path)
        assert r.status_code == 404, path
        assert "no defect visible" not in r.text
    page = web.get("/app/queue").text  # a valid token of the merchant's own session
    r = web.post(f"/app/platform/cases/{cid}/rule", data={"csrf_token": csrf_of(page), "outcome": "refund", "rationale": "x"})
    assert r.status_code == 404 and case_of(api, cid)["ruling"] is None


def test_T2_signed_out_visitors_are_sent_to_the_login(api: Any) -> None:
    r = browser(api).get("/app/platform/ledger", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/app/login?next=")


def test_T2_an_unknown_case_is_the_404_page(api: Any) -> None:
    web = agent(api)
    assert web.get("/app/platform/cases/cs_nope").status_code == 404
    assert web.get("/app/platform/complaints/cp_nope").status_code == 404


# --- D3: records ------------------------------------------------------------------------------------------------
def test_D3_the_case_record_downloads_from_the_console(api: Any) -> None:
    cid = escalated(api, "o1")
    web = agent(api)
    assert f'href="/app/platform/cases/{cid}/record"' in web.get(f"/app/platform/cases/{cid}").text
    r = web.get(f"/app/platform/cases/{cid}/record")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert "attachment" in r.headers["content-disposition"]
    doc = json.loads(r.content)
    assert doc["header"]["subject"] == {"kind": "case", "id": cid}


# --- K2: complaints ---------------------------------------------------------------------------------------------
def complaint(api: Any, oid: str) -> str:
    r = api.post("/v1/complaints", {"order_id": oid, "channel": "in_app_chat", "category": "unfair_refusal",
                                    "description": "The shop refused <b>without</b> looking."}, who="buyer_x")
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_K2_complaints_list_accept_and_resolve_with_remedies(api: Any) -> None:
    order(api, "o1")
    cpid = complaint(api, "o1")
    web = agent(api)
    listing = web.get("/app/platform/complaints").text
    assert f'href="/app/platform/complaints/{cpid}"' in listing and "unfair refusal" in listing
    assert "data-countdown=" in listing
    page = web.get(f"/app/platform/complaints/{cpid}").text
    assert "The shop refused &lt;b&gt;without&lt;/b&gt; looking." in page
    r = web.post(f"/app/platform/complaints/{cpid}/accept", data={"csrf_token": csrf_of(page),
                                                                   "version": version_of(page, "accept")},
                 follow_redirects=False)
    assert r.status_code == 303
    assert api.post(f"/v1/complaints/{cpid}/respond", {"answer": "We will look again."}, who="merchant_a").status_code == 200
    page = web.get(f"/app/platform/complaints/{cpid}").text
    r = web.post(f"/app/platform/complaints/{cpid}/resolve", data={
        "csrf_token": csrf_of(page), "version": version_of(page, "resolve"), "outcome": "upheld",
        "rationale": "The refusal ignored the photos.", "remedy_compensation": "5", "remedy_refund": ""},
        follow_redirects=False)
    assert r.status_code == 303, r.text
    c = api.get(f"/v1/complaints/{cpid}").json()
    assert c["status"] == "resolved" and c["remedies"] == [{"type": "compensation", "amount_fen": 500}]
    assert web.get("/app/platform/complaints?status=resolved").text.count(f'href="/app/platform/complaints/{cpid}"') == 1
    assert f'href="/app/platform/complaints/{cpid}"' not in web.get("/app/platform/complaints?status=submitted").text
    assert web.get(f"/app/platform/complaints/{cpid}/record").status_code == 200


def test_K2_a_rejection_needs_a_reason(api: Any) -> None:
    order(api, "o1")
    cpid = complaint(api, "o1")
    web = agent(api)
    page = web.get(f"/app/platform/complaints/{cpid}").text
    r = web.post(f"/app/platform/complaints/{cpid}/reject", data={"csrf_token": csrf_of(page), "reason": ""})
    assert r.status_code == 422
    assert api.get(f"/v1/complaints/{cpid}").json()["status"] == "submitted"


# --- D1 and D2 -------------------------------------------------------------------------------------------------
def test_D1_deposits_show_every_merchant_with_restriction_and_D2_the_ledger_filters_by_account(api: Any) -> None:
    assert api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": 150000}).status_code == 201
    web = agent(api)
    page = web.get("/app/platform/deposits").text
    rows = re.findall(r"<tr class=\"(late)?\">\s*<td>Shop (m[AB])", page)
    assert [m for _, m in rows] == ["mB", "mA"]  # restricted first
    assert rows[0][0] == "late" and rows[1][0] == ""
    assert "1,500.00" in page
    ledger = web.get("/app/platform/ledger?account=merchant:mA:deposit")
    assert ledger.status_code == 200 and "1,500.00" in ledger.text and "Balance of merchant:mA:deposit" in ledger.text
    assert "<td>deposit top-up <span" in ledger.text and "deposit_top_up" not in ledger.text  # S4: a label, not the code
    assert web.get("/app/platform/ledger?account=not-an-account").status_code == 422
    assert web.get("/app/platform/ledger").status_code == 200


# --- DESIGN "Guards": the console offers exactly the allowed_actions ----------------------------------------------
def test_K2_resolve_is_not_offered_before_the_merchants_deadline(api: Any) -> None:
    order(api, "o1")
    cpid = complaint(api, "o1")
    assert api.post(f"/v1/complaints/{cpid}/accept", {}, who="platform").status_code == 200
    web = agent(api)
    page = web.get(f"/app/platform/complaints/{cpid}").text
    assert f"/app/platform/complaints/{cpid}/resolve" not in page
    assert "Nothing for the platform to do on this complaint right now." in page
    api.advance(48 * 3600)
    web = browser(api)  # the session of two days ago has expired: sign in again
    assert sign_in(web, "pat").status_code == 303
    page = web.get(f"/app/platform/complaints/{cpid}").text
    assert f"/app/platform/complaints/{cpid}/resolve" in page


def test_M6_the_platform_records_a_returns_delivery_when_the_case_lists_it(api: Any) -> None:
    order(api, "o1")
    r = api.post("/v1/cases", {"order_id": "o1", "type": "return_refund", "reason": "quality_problem"}, who="buyer_x")
    cid = r.json()["id"]
    assert api.post(f"/v1/cases/{cid}/approve", {}, who="merchant_a").status_code == 200
    web = agent(api)
    assert f"/app/platform/cases/{cid}/act/mark_return_delivered" not in web.get(f"/app/platform/cases/{cid}").text
    assert api.post(f"/v1/cases/{cid}/ship_return", {"carrier": "SF", "tracking_no": "SF1"}, who="buyer_x").status_code == 200
    page = web.get(f"/app/platform/cases/{cid}").text
    assert case_of(api, cid)["allowed_actions"] == ["mark_return_delivered"]
    r = web.post(f"/app/platform/cases/{cid}/act/mark_return_delivered",
                 data={"csrf_token": csrf_of(page), "version": version_of(page, "mark_return_delivered")},
                 follow_redirects=False)
    assert r.status_code == 303, r.text
    assert case_of(api, cid)["status"] == "awaiting_merchant_receipt"
    bogus = web.post(f"/app/platform/cases/{cid}/act/approve", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert bogus.status_code == 404
