"""Insights of a shop (S1, S3, S5) over HTTP: the figures of a known set of cases, in the page's SVG charts and in
the CSV exports, and who sees which shop (T2)."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from webhelpers import browser, make_user, sign_in

PAID_AT = "2026-03-01T01:00:00+00:00"
HOUR = 3600


def order(api: Any, oid: str, sku: str, quantity: int = 1, *, merchant: str = "mA", title: str = "Teapot") -> None:
    body = {"id": oid, "merchant_id": merchant, "buyer_id": "bX", "paid_at": PAID_AT, "shipping_fee_fen": 800,
            "items": [{"sku": sku, "title": title, "category": "apparel", "quantity": quantity, "unit_price_fen": 5000}]}
    assert api.post("/v1/orders", body).status_code == 201
    who = {"mA": "merchant_a", "mB": "merchant_b"}[merchant]
    assert api.post(f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": f"SF{oid}"}, who=who).status_code == 200
    assert api.post(f"/v1/orders/{oid}/deliver", {}, who=who).status_code == 200


def case(api: Any, oid: str, case_type: str, reason: str) -> str:
    r = api.post("/v1/cases", {"order_id": oid, "type": case_type, "reason": reason}, who="buyer_x")
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def act(api: Any, cid: str, action: str, body: dict[str, Any], who: str) -> None:
    r = api.post(f"/v1/cases/{cid}/{action}", body, who=who)
    assert r.status_code == 200, r.text


def known_cases(api: Any) -> None:
    """Shop mA: three cases on Sunday 1 March (Asia/Shanghai), one on Monday 2 March; shop mB: one case.

    First responses after 2 h and 4 h; one case closed 5 h after opening; s1 sold 2 units (one return case),
    s2 sold 4 units (one return case), s3 sold 1 unit (no return)."""
    order(api, "o1", "s1")
    order(api, "o2", "s1")
    order(api, "o3", "s2", 4, title="=HYPERLINK(\"x\")")
    order(api, "o4", "s3")
    order(api, "o9", "s9", merchant="mB")
    a = case(api, "o1", "return_refund", "no_reason")
    b = case(api, "o2", "refund_only", "quality_problem")
    case(api, "o3", "return_refund", "not_as_described")
    case(api, "o9", "refund_only", "quality_problem")
    api.advance(2 * HOUR)
    act(api, a, "approve", {}, "merchant_a")
    api.advance(2 * HOUR)
    act(api, b, "reject", {"reason": "no defect visible"}, "merchant_a")
    api.advance(HOUR)
    act(api, b, "accept_rejection", {}, "buyer_x")
    api.advance(20 * HOUR)  # Monday 2 March, 11:00 in Asia/Shanghai: a new week
    case(api, "o4", "refund_only", "quality_problem")


def staff(api: Any, username: str, role: str = "merchant_agent", merchant: str | None = "mA") -> Any:
    make_user(api, username, role=role, merchant=merchant)
    web = browser(api)
    assert sign_in(web, username).status_code == 303
    return web


def table(web: Any, path: str) -> list[list[str]]:
    r = web.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    return list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))


def test_S3_S1_S5_csv_exports_carry_the_figures_of_the_known_cases(api: Any) -> None:
    known_cases(api)
    web = staff(api, "alice")
    reasons = table(web, "/app/insights/reasons.csv?weeks=4")
    assert reasons[0] == ["level", "code", "category", "cases", "share_percent", "of_cases"]
    assert {r[5] for r in reasons[1:]} == {"4"}  # every share with its sample
    cats = {r[1]: (r[3], r[4]) for r in reasons[1:] if r[0] == "category"}
    assert cats == {"product": ("3", "75.0"), "logistics": ("0", "0.0"), "service": ("0", "0.0"),
                    "buyer": ("1", "25.0"), "other": ("0", "0.0")}
    per_reason = {r[1]: (r[2], r[3]) for r in reasons[1:] if r[0] == "reason" and r[3] != "0"}
    assert per_reason == {"no_reason": ("buyer", "1"), "quality_problem": ("product", "2"),
                          "not_as_described": ("product", "1")}

    times = table(web, "/app/insights/times.csv?weeks=4")
    assert times == [["measure", "cases", "p50_seconds", "p90_seconds"],
                     ["first_response", "2", str(2 * HOUR), str(4 * HOUR)],
                     ["resolution", "1", str(5 * HOUR), str(5 * HOUR)]]

    returns = table(web, "/app/insights/returns.csv?weeks=4")
    # S5: the export keeps the rate with its sample, and says when the sample is below the page's minimum.
    assert returns == [["sku", "title", "units_sold", "return_cases", "return_rate_percent", "sample_below_minimum"],
                       ["s1", "Teapot", "2", "1", "50.0", "yes"],
                       ["s2", "'=HYPERLINK(\"x\")", "4", "1", "25.0", "yes"],  # a formula is written inert
                       ["s3", "Teapot", "1", "0", "0.0", "yes"]]

    trend = table(web, "/app/insights/trend.csv?weeks=4")
    assert trend[0] == ["week_start", "opened", "closed"]
    assert trend[1:] == [["2026-02-09", "0", "0"], ["2026-02-16", "0", "0"], ["2026-02-23", "3", "1"], ["2026-03-02", "1", "0"]]


def test_S3_the_reason_chart_is_an_svg_with_the_figures(api: Any) -> None:
    known_cases(api)
    web = staff(api, "alice")
    page = web.get("/app/insights?weeks=4")
    assert page.status_code == 200
    svg = re.search(r'<svg class="chart h"[^>]*data-chart="reasons">(.*?)</svg>', page.text, re.S)
    assert svg, "no reason chart"
    labels = re.findall(r'class="label">([^<]+)</text>', svg.group(1))
    values = re.findall(r'class="value">([^<]+)</text>', svg.group(1))
    assert labels == ["product", "logistics", "service", "buyer&#39;s own reason", "other"]
    assert values == ["3 (75.0 % of 4 cases)", "0 (0.0 % of 4 cases)", "0 (0.0 % of 4 cases)", "1 (25.0 % of 4 cases)",
                      "0 (0.0 % of 4 cases)"]
    widths = re.findall(r'<rect class="bar" x="\d+" y="\d+" width="(\d+)"', svg.group(1))
    assert [int(w) for w in widths] == [250, 0, 0, 83, 0]  # proportional to the counts
    for name in ("reasons", "times", "returns", "trend"):
        assert f'href="/app/insights/{name}.csv?weeks=4"' in page.text
    assert "2 h 00 min" in page.text and "5 h 00 min" in page.text
    assert "<script" not in page.text.split("</head>")[1]  # no inline script (CSP)


def test_T2_merchant_staff_see_only_their_shop(api: Any) -> None:
    known_cases(api)
    bob = staff(api, "bob", merchant="mB")
    rows = table(bob, "/app/insights/reasons.csv?weeks=4")
    assert {r[1]: r[3] for r in rows[1:] if r[0] == "category"}["product"] == "1"
    assert sum(int(r[3]) for r in rows[1:] if r[0] == "category") == 1
    assert ["s9", "Teapot", "1", "0", "0.0", "yes"] in table(bob, "/app/insights/returns.csv?weeks=4")
    page = bob.get("/app/insights?weeks=4").text
    assert "Shop mB" in page and 'name="merchant"' not in page  # no shop picker for a shop's staff
    # another shop, asked for by id, is unknown
    assert bob.get("/app/insights?merchant=mA").status_code == 404
    assert bob.get("/app/insights/reasons.csv?merchant=mA").status_code == 404


def test_platform_agents_pick_any_shop_or_all(api: Any) -> None:
    known_cases(api)
    pat = staff(api, "pat", role="platform_agent", merchant=None)
    page = pat.get("/app/insights?weeks=4").text
    assert 'name="merchant"' in page and "all shops" in page
    total = {r[1]: r[3] for r in table(pat, "/app/insights/reasons.csv?weeks=4")[1:] if r[0] == "category"}
    assert total["product"] == "4" and total["buyer"] == "1"
    only_b = {r[1]: r[3] for r in table(pat, "/app/insights/reasons.csv?weeks=4&merchant=mB")[1:] if r[0] == "category"}
    assert only_b["product"] == "1" and only_b["buyer"] == "0"
    assert pat.get("/app/insights?merchant=nope").status_code == 404


def test_insights_need_a_signed_in_staff_member_and_a_known_figure(api: Any) -> None:
    r = browser(api).get("/app/insights", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/app/login")
    web = staff(api, "alice")
    assert web.get("/app/insights/secrets.csv").status_code in (404, 422)
    assert web.get("/app/insights?weeks=7").status_code == 200  # an unknown window falls back to 12 weeks
    assert web.get("/app/insights?weeks=abc").status_code == 422


def returns_chart(page: str) -> list[str]:
    svg = re.search(r'data-chart="returns">(.*?)</svg>', page, re.S)
    assert svg, "no return chart"
    return re.findall(r'class="value">([^<]+)</text>', svg.group(1))


def test_S5_a_return_rate_is_shown_with_its_sample_and_only_from_the_minimum_sample(api: Any) -> None:
    order(api, "o1", "big", 24)  # 24 units: enough to show a rate
    order(api, "o2", "small", 19)  # 19 units: one short of MIN_SAMPLE_UNITS
    case(api, "o1", "return_refund", "quality_problem")
    case(api, "o2", "return_refund", "quality_problem")
    web = staff(api, "alice")
    page = web.get("/app/insights?weeks=4").text
    assert returns_chart(page) == ["4.2 % of 24 units (1 cases)", "too few units sold to show a rate (19)"]
    assert "only from 20 units sold" in page
    rows = table(web, "/app/insights/returns.csv?weeks=4")
    assert rows[1:] == [["big", "Teapot", "24", "1", "4.2", "no"], ["small", "Teapot", "19", "1", "5.3", "yes"]]
    zh = web.get("/app/insights?weeks=4", headers={"Accept-Language": "zh-CN"}).text
    assert "4.2 % of" not in zh and "too few units" not in zh


def test_S1_resolution_counts_only_cases_a_person_resolved(api: Any) -> None:
    """A case the system approved when the shop's time ran out (M1) and a buyer's cancellation (C1) are not a
    resolution; a shop's approval is."""
    body = {"id": "o5", "merchant_id": "mA", "buyer_id": "bX", "paid_at": PAID_AT, "shipping_fee_fen": 800,
            "items": [{"sku": "s5", "title": "Cup", "category": "apparel", "quantity": 1, "unit_price_fen": 5000}]}
    assert api.post("/v1/orders", body).status_code == 201  # not shipped: E2
    order(api, "o1", "s1")
    order(api, "o2", "s2")
    timed_out = case(api, "o5", "refund_only", "no_reason")
    withdrawn = case(api, "o1", "refund_only", "quality_problem")
    resolved = case(api, "o2", "refund_only", "quality_problem")
    api.advance(HOUR)
    act(api, withdrawn, "cancel", {}, "buyer_x")
    api.advance(2 * HOUR)
    act(api, resolved, "approve", {}, "merchant_a")
    api.advance(7 * 24 * HOUR)  # the shop's time to answer runs out: the system approves and refunds (M1)
    states = {cid: api.get(f"/v1/cases/{cid}", who="merchant_a").json() for cid in (timed_out, withdrawn, resolved)}
    assert [states[c]["status"] for c in (timed_out, withdrawn, resolved)] == ["closed"] * 3
    assert [states[c]["close_reason"] for c in (timed_out, withdrawn, resolved)] == ["refunded", "cancelled", "refunded"]
    web = staff(api, "alice")
    times = table(web, "/app/insights/times.csv?weeks=4")
    assert times[2][:2] == ["resolution", "1"]  # only the shop's approval
    page = web.get("/app/insights?weeks=4").text
    assert 'id="times-counted"' in page and "Left out: cases the buyer cancelled" in page
