"""Browser tests of the platform console and the shop insights (Chromium, headless, a live server on the manual clock):
a platform agent rules an escalated case from the intervention queue (P1); the reason chart shows the right figures
(S3). Screenshots: ``platform-queue``, ``platform-case`` and ``insights``."""

from __future__ import annotations

from typing import Any

from e2ehelpers import PAGE_TIMEOUT_MS, Live, screenshot, sign_in

PAID_AT = "2026-03-01T01:00:00+00:00"
DAY = 86400


def delivered(live: Live, oid: str, sku: str = "s1", *, merchant: str = "mA", title: str = "Teapot",
              quantity: int = 1) -> None:
    live.call("POST", "/v1/orders", {
        "id": oid, "merchant_id": merchant, "buyer_id": "bX", "paid_at": PAID_AT, "shipping_fee_fen": 800,
        "items": [{"sku": sku, "title": title, "category": "apparel", "quantity": quantity, "unit_price_fen": 12900}]},
        status=201)
    who = {"mA": "merchant_a", "mB": "merchant_b"}[merchant]
    live.call("POST", f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": f"SF{oid}"}, who=who, status=200)
    live.call("POST", f"/v1/orders/{oid}/deliver", {}, who=who, status=200)


def open_case(live: Live, oid: str, case_type: str, reason: str, description: str = "") -> str:
    body = {"order_id": oid, "type": case_type, "reason": reason, **({"description": description} if description else {})}
    return str(live.call("POST", "/v1/cases", body, who="buyer_x", status=201)["id"])


def escalated(live: Live, oid: str, merchant: str, why: str) -> str:
    delivered(live, oid, merchant=merchant)
    cid = open_case(live, oid, "refund_only", "quality_problem", "The lid cracked on the first use.")
    who = {"mA": "merchant_a", "mB": "merchant_b"}[merchant]
    live.call("POST", f"/v1/cases/{cid}/reject", {"reason": "The photos show no crack."}, who=who, status=200)
    live.call("POST", f"/v1/cases/{cid}/escalate", {"reason": why}, who="buyer_x", status=200)
    return cid


def test_P1_a_platform_agent_rules_an_escalated_case_from_the_queue(live: Live, page: Any) -> None:
    older = escalated(live, "o1", "mA", "The crack is visible in the second photo; the shop ignored it.")
    live.advance(26 * 3600)  # P1: the first case is now overdue for the platform
    newer = escalated(live, "o2", "mB", "Wrong colour delivered, the shop says it is the same.")
    live.user("pat", role="platform_agent", merchant=None)
    sign_in(page, live, "pat")
    assert page.url.endswith("/app/platform")
    rows = page.locator("table tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("a.case-link").inner_text() == older  # overdue first
    assert "overdue" in rows.nth(0).inner_text()
    assert rows.nth(1).locator("a.case-link").inner_text() == newer
    screenshot(page, "platform-queue")

    rows.nth(0).get_by_role("link", name=older).click()
    page.wait_for_load_state("networkidle")
    assert "The crack is visible in the second photo" in page.content()
    page.get_by_label("Outcome").select_option("refund")
    page.get_by_label("Refund in yuan (empty: everything still refundable)").fill("100")
    page.get_by_label("Rationale (both sides see it)").fill("The second photo shows the crack; partial refund.")
    screenshot(page, "platform-case")
    page.get_by_role("button", name="Record the ruling").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("status").inner_text() == "Ruling recorded."
    assert "The second photo shows the crack; partial refund." in page.content()
    assert page.get_by_role("button", name="Record the ruling").count() == 0
    case = live.call("GET", f"/v1/cases/{older}", status=200)
    assert case["ruling"]["outcome"] == "refund" and case["ruling"]["refund_fen"] == 10000
    # the shop pays the ruling; the queue then only holds the other case
    live.call("POST", f"/v1/cases/{older}/pay_ruling", {}, who="merchant_a", status=200)
    page.get_by_role("link", name="Interventions", exact=True).click()
    page.wait_for_load_state("networkidle")
    assert page.locator("table tbody tr").count() == 1


def test_S3_the_reason_chart_renders_the_shops_figures(live: Live, page: Any) -> None:
    # Three weeks of a shop's cases: 3 product, 2 logistics, 1 service, 1 buyer, 1 other.
    plan = [[("refund_only", "quality_problem"), ("refund_only", "damaged_in_transit"), ("return_refund", "no_reason")],
            [("refund_only", "quality_problem"), ("return_refund", "not_as_described"), ("refund_only", "service_attitude")],
            [("refund_only", "late_delivery"), ("refund_only", "other")]]
    n = 0
    for week, cases in enumerate(plan):
        for case_type, reason in cases:
            n += 1
            delivered(live, f"o{n}", f"s{n % 3}", title=["Teapot", "Cup set", "Tea tray"][n % 3], quantity=2)
            cid = open_case(live, f"o{n}", case_type, reason)
            if n % 2:
                live.advance(3 * 3600)
                live.call("POST", f"/v1/cases/{cid}/approve", {}, who="merchant_a", status=200)
        if week < len(plan) - 1:
            live.advance(7 * DAY)
    delivered(live, "b1", "sb", merchant="mB")
    open_case(live, "b1", "refund_only", "counterfeit")  # another shop: not in mA's figures
    live.user("alice")
    sign_in(page, live, "alice")
    page.get_by_role("link", name="Insights").click()
    page.wait_for_load_state("networkidle")
    page.get_by_label("Period").select_option("4")
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state("networkidle")
    chart = page.locator('svg[data-chart="reasons"]')
    assert chart.locator("text.label").all_text_contents() == ["product", "logistics", "service", "buyer's own reason", "other"]
    # S3 with its sample (issue 14): each share says of how many cases
    assert chart.locator("text.value").all_text_contents() == [
        "3 (37.5 % of 8 cases)", "2 (25.0 % of 8 cases)", "1 (12.5 % of 8 cases)", "1 (12.5 % of 8 cases)",
        "1 (12.5 % of 8 cases)"]
    assert chart.get_by_role("img").count() == 0 and chart.get_attribute("role") == "img"
    trend = page.locator('svg[data-chart="trend"]')
    assert trend.locator("rect.bar:not(.alt)").count() == 4
    with page.expect_download() as download:
        page.locator("#reasons").get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename.startswith("insights-reasons-mA-")
    screenshot(page, "insights")


def test_T0_D1_D2_the_console_publishes_a_policy_draft_and_shows_shops_users_and_orders(live: Live, page: Any,
                                                                                       chromium: Any) -> None:
    delivered(live, "o-7001")
    open_case(live, "o-7001", "return_refund", "no_reason")
    live.user("pat", role="platform_agent", merchant=None)
    sign_in(page, live, "pat")
    # T0, issue 15: a draft with its difference from the version in force, then scheduled after a confirmation
    page.goto(live.url + "/app/platform/policy")
    page.get_by_label("no_reason_days").fill("10")
    # E4–E6: the same draft gives apparel a 20-day after-sales window (the form's category terms)
    page.locator('form[action="/app/platform/policy/drafts"] details > summary').click()
    page.get_by_label("apparel: After-sales days").fill("20")
    page.get_by_label("Reason", exact=True).fill("Longer no-reason window for the winter sale.")
    page.get_by_role("button", name="Save the draft").click()
    page.wait_for_load_state("networkidle")
    drafts = live.call("GET", "/v1/policy/drafts")["items"]
    assert [(d["status"], d["reason"]) for d in drafts] == [("draft", "Longer no-reason window for the winter sale.")]
    assert {"name": "no_reason_days", "in_force": 7, "draft": 10} in drafts[0]["difference"]
    assert drafts[0]["category_difference"] == [
        {"category": "apparel", "name": "after_sales_days", "in_force": None, "draft": 20}]
    text = page.locator("main").inner_text()
    assert "no_reason_days" in text and "Days after delivery for a return without a reason" in text
    assert "After-sales days" in text
    screenshot(page, "platform-policy")
    # D1: a shop's deposit with its actions; D2: users; an order with its cases
    page.goto(live.url + "/app/platform/deposits/mA")
    assert page.get_by_role("button", name="Top up…").is_visible()
    screenshot(page, "platform-shop-deposit")
    page.goto(live.url + "/app/platform/users")
    assert page.get_by_role("cell", name="pat", exact=True).first.is_visible()
    screenshot(page, "platform-users")
    page.goto(live.url + "/app/platform/orders/o-7001")
    assert "Teapot" in page.locator("main").inner_text()
    screenshot(page, "platform-order")
    # the same pages in zh-CN on a phone: nothing wider than the screen
    context = chromium.new_context(viewport={"width": 390, "height": 844}, locale="en-US", is_mobile=True, has_touch=True)
    phone = context.new_page()
    phone.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        sign_in(phone, live, "pat")
        phone.goto(live.url + "/app/lang?to=zh_CN&next=/app/platform")
        for path in ("/app/platform/policy", "/app/platform/deposits/mA", "/app/platform/users", "/app/platform/orders/o-7001"):
            phone.goto(live.url + path)
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        phone.goto(live.url + "/app/platform/policy")
        screenshot(phone, "platform-policy-phone-zh")
    finally:
        context.close()


def test_T0_E4_a_replay_of_a_draft_reports_the_refusals_it_would_have_allowed(live: Live, page: Any) -> None:
    from aftersales.api.app import build_context
    from aftersales.service import replay_jobs

    delivered(live, "o-8001")
    live.advance(8 * DAY)  # day 8: outside the 7-day no-reason window (E4), inside a 10-day one
    refused = live.api.post("/v1/cases", json={"order_id": "o-8001", "type": "return_refund", "reason": "no_reason"},
                            headers={"Authorization": f"Bearer {live.keys['buyer_x']}"})
    assert refused.status_code == 422 and refused.json()["rule"] == "E4"
    live.user("pat", role="platform_agent", merchant=None)
    sign_in(page, live, "pat")
    page.goto(live.url + "/app/platform/policy")
    page.get_by_label("no_reason_days").fill("10")
    page.get_by_label("Reason", exact=True).fill("A 10-day no-reason window: what would it have changed?")
    page.get_by_role("button", name="Save the draft").click()
    page.wait_for_load_state("networkidle")
    page.get_by_text("Replay a period…").click()
    page.get_by_label("From (platform date)").fill("2026-01-01")
    page.get_by_label("To (platform date, excluded)").fill("2026-12-31")
    page.get_by_role("button", name="Replay", exact=True).click()
    page.wait_for_load_state("networkidle")
    assert "waiting for the worker" in page.locator("main").inner_text()
    ctx = build_context(live.settings)  # the worker's step, on the server's database (the test server runs none)
    try:
        assert replay_jobs.run_next(ctx) == 1
    finally:
        ctx.engine.dispose()
    page.reload()
    text = page.locator("main").inner_text()
    assert "eligibility changed" in text and "o-8001" in text and "E4" in text
    screenshot(page, "platform-replay-report")
