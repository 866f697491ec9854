"""The buyer's portal in a real browser on a phone-sized screen: a no-reason return from request to refund (E4, M5,
M6, F1), and a pending group's G2 answer with its expiry. Screenshots: buyer-order, buyer-order-desktop, buyer-case."""

from __future__ import annotations

from typing import Any

from e2ehelpers import PAGE_TIMEOUT_MS, Live, screenshot

PAID_AT = "2026-02-27T02:00:00+00:00"


def _order(live: Live, oid: str, *, delivered: bool = True, group: dict[str, Any] | None = None,
           paid_at: str = PAID_AT) -> None:
    body: dict[str, Any] = {"id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": paid_at, "shipping_fee_fen": 800,
                            "items": [{"sku": "tea-1", "title": "Celadon teapot", "category": "apparel", "quantity": 1,
                                       "unit_price_fen": 12900}]}
    if group:
        body["group"] = group
    live.call("POST", "/v1/orders", body, status=201)
    if delivered:
        live.call("POST", f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": "SF100200"}, who="merchant_a", status=200)
        live.call("POST", f"/v1/orders/{oid}/deliver", {}, who="merchant_a", status=200)


def test_E4_M5_a_buyer_opens_a_no_reason_return_ships_it_and_sees_the_refund(live: Live, phone: Any, page: Any) -> None:
    _order(live, "o-1001")
    phone.goto(live.buyer_link("bX"))
    phone.get_by_role("link", name="Celadon teapot").click()
    return_option = phone.get_by_role("article", name="return and refund")
    assert "Ask before" in return_option.inner_text()
    screenshot(phone, "buyer-order")
    page.goto(live.buyer_link("bX"))
    page.goto(live.url + "/app/orders/o-1001")
    screenshot(page, "buyer-order-desktop")

    return_option.get_by_text("Ask for this").click()
    return_option.get_by_label("Reason").select_option("no_reason")
    return_option.get_by_label("What happened").fill("The colour is not what I expected.")
    return_option.get_by_role("button", name="Send the request").click()
    phone.wait_for_load_state("networkidle")
    assert phone.get_by_role("status").inner_text() == "Your request was opened."
    case_id = phone.url.rsplit("/", 1)[1]
    assert "awaiting the shop" in phone.locator("h1 + .badge").inner_text()

    live.call("POST", f"/v1/cases/{case_id}/approve", {}, who="merchant_a", status=200)
    phone.reload()
    phone.get_by_label("Carrier").fill("SF Express")
    phone.get_by_label("Tracking number").fill("SF998877")
    phone.get_by_role("button", name="ship the return").click()
    phone.wait_for_load_state("networkidle")
    assert "return on its way" in phone.locator("h1 + .badge").inner_text()
    assert phone.locator("time[data-countdown]").first.is_visible()

    live.call("POST", f"/v1/cases/{case_id}/confirm_return", {}, who="merchant_a", status=200)
    phone.reload()
    badge = phone.locator("h1 + .badge").inner_text()
    assert "closed" in badge and "refunded" in badge
    refunded = live.call("GET", f"/v1/cases/{case_id}", who="buyer_x")["refunded_fen"]
    assert refunded > 0 and "Refunded" in phone.locator("section.deadline").inner_text()
    screenshot(phone, "buyer-case")


def test_G2_a_buyer_of_a_pending_group_sees_the_explanation_and_the_expiry(live: Live, phone: Any) -> None:
    _order(live, "o-2001", delivered=False, group={"id": "g-77", "size": 3}, paid_at="2026-03-01T01:30:00+00:00")
    expires = live.call("GET", "/v1/orders/o-2001", who="buyer_x")["group"]["expires_at"]
    phone.goto(live.buyer_link("bX"))
    phone.get_by_role("link", name="Celadon teapot").click()
    wait = phone.get_by_role("region", name="No request can be opened yet")
    text = wait.inner_text()
    assert "rule G2" in text and "The group expires at" in text
    countdown = wait.locator(f'time[data-countdown="{expires}"]')
    assert countdown.is_visible()
    # the live countdown runs on the server's (manual) clock: 23 h 30 min left, not overdue
    phone.wait_for_function("el => el.textContent.startsWith('23h')", arg=countdown.element_handle())
    assert "overdue" not in (countdown.get_attribute("class") or "")
    assert phone.get_by_role("button", name="Send the request").count() == 0
    screenshot(phone, "buyer-order-pending")


def test_M2_C1_E8_a_buyer_on_a_zh_phone_sees_action_needed_and_confirms_a_cancellation(live: Live, chromium: Any) -> None:
    _order(live, "o-3001")
    case = live.call("POST", "/v1/cases", {"order_id": "o-3001", "type": "return_refund", "reason": "quality_problem"},
                     who="buyer_x", status=201)
    live.call("POST", f"/v1/cases/{case['id']}/reject", {"reason": "Used"}, who="merchant_a", status=200)
    context = chromium.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True, has_touch=True)
    phone = context.new_page()
    phone.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        phone.goto(live.buyer_link("bX"))
        assert phone.get_by_role("status").inner_text() == "等待您回复的订单：1"
        screenshot(phone, "buyer-orders-action-needed-zh")
        phone.get_by_role("link", name="请在").click()
        phone.get_by_role("button", name="撤销").first.click()
        phone.wait_for_load_state("networkidle")
        assert "本次撤销后，此订单剩余可撤销次数：2" in phone.locator("h1 + p + p").inner_text()
        screenshot(phone, "buyer-cancel-confirm-zh")
        assert live.call("GET", f"/v1/cases/{case['id']}", who="buyer_x")["status"] != "closed"  # nothing yet
        phone.get_by_role("button", name="是的，撤销申请").click()
        phone.wait_for_load_state("networkidle")
        assert live.call("GET", f"/v1/cases/{case['id']}", who="buyer_x")["close_reason"] == "cancelled"
    finally:
        context.close()


def test_a_bad_link_shows_the_way_back(live: Live, page: Any) -> None:
    page.goto(live.buyer_link("bX").replace("token=", "token=x"))
    assert page.get_by_role("heading", name="This link does not open your orders").is_visible()
    assert page.get_by_role("heading", name="How to get a new link").is_visible()
    screenshot(page, "buyer-bad-link")


def test_K2_a_buyer_follows_a_complaint_and_writes_to_the_shop(live: Live, phone: Any) -> None:
    _order(live, "o-4001")
    kid = live.call("POST", "/v1/complaints", {"channel": "order_button", "category": "product_quality",
                                               "order_id": "o-4001", "description": "The lid arrived cracked."},
                    who="buyer_x", status=201)["id"]
    live.call("POST", f"/v1/complaints/{kid}/accept", None, status=200)
    live.call("POST", f"/v1/complaints/{kid}/respond", {"answer": "A new lid is on its way."}, who="merchant_a", status=200)
    phone.goto(live.buyer_link("bX"))
    phone.goto(live.url + "/app/complaints")
    phone.get_by_role("link", name="Messages, evidence and timeline").click()
    assert "A new lid is on its way." in phone.get_by_role("region", name="Your complaint").inner_text()
    phone.get_by_label("Write a message").fill("Thank you, I will wait.")
    phone.get_by_role("button", name="Send").click()
    phone.wait_for_load_state("networkidle")
    assert phone.get_by_role("status").inner_text() == "Message sent."
    assert "Thank you, I will wait." in phone.get_by_role("region", name="Messages with the shop and the platform").inner_text()
    phone.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top of the full-page shot
    screenshot(phone, "buyer-complaint")
