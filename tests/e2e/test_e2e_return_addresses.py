"""M1, M5 in a real browser: a shop's agent adds a return address, approves a return to it (asked which address,
then confirmed), and the buyer sees where to send the parcel — on a desktop in English and on a phone in Chinese."""

from __future__ import annotations

from typing import Any

import pytest
from e2ehelpers import PAGE_TIMEOUT_MS, Live, screenshot, sign_in

from aftersales import i18n

PAID_AT = "2026-03-01T01:00:00+00:00"
CASES = {"desktop-en": ({"width": 1280, "height": 860}, "en", False),
         "phone-zh": ({"width": 390, "height": 844}, "zh_CN", True)}


@pytest.mark.parametrize("setup", list(CASES))
def test_M5_add_an_address_approve_a_return_to_it_and_the_buyer_sees_it(live: Live, chromium: Any, setup: str) -> None:
    size, lang, phone = CASES[setup]
    _ = lambda text: i18n.translate(text, lang)  # noqa: E731  (the page's words in its language)
    live.user("alice")
    live.call("POST", "/v1/orders", {"id": "o-5001", "merchant_id": "mA", "buyer_id": "bX", "paid_at": PAID_AT,
                                     "shipping_fee_fen": 600, "items": [{"sku": "sku-5001", "title": "Linen shirt",
                                                                         "category": "apparel", "quantity": 1,
                                                                         "unit_price_fen": 8900}]}, status=201)
    live.call("POST", "/v1/orders/o-5001/ship", {"carrier": "SF Express", "tracking_no": "SF5001"}, who="merchant_a", status=200)
    live.call("POST", "/v1/orders/o-5001/deliver", {}, who="merchant_a", status=200)
    case = live.call("POST", "/v1/cases", {"order_id": "o-5001", "type": "return_refund", "reason": "quality_problem",
                                           "description": "A seam is open on the left sleeve."}, who="buyer_x", status=201)
    context = chromium.new_context(viewport=size, locale="en-US", is_mobile=phone, has_touch=phone)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        sign_in(page, live, "alice")
        page.goto(f"{live.url}/app/lang?to={lang}&next=/app/queue")
        # the shop's settings: its return addresses, reached from the navigation
        page.get_by_role("navigation").get_by_role("link", name=_("Return addresses")).click()
        page.wait_for_load_state("networkidle")
        add = page.locator("form[action='/app/shop/addresses']")
        add.get_by_label(_("Name of this address (e.g. Hangzhou warehouse)")).fill("Hangzhou warehouse")
        add.get_by_label(_("Contact name")).fill("Li Lei")
        add.get_by_label(_("Phone")).fill("0571 8888 0000")
        add.get_by_label(_("Address (as the parcel label reads)")).fill("12 Wensan Rd, Xihu\nHangzhou 310000")
        add.get_by_label(_("Make it the default")).check()
        add.get_by_role("button", name=_("Add address")).click()
        page.wait_for_load_state("networkidle")
        assert page.get_by_role("status").inner_text() == _("Return address added.")
        first = page.locator("section.address").first
        assert "Hangzhou warehouse" in first.inner_text() and _("default") in first.inner_text()
        if setup == "desktop-en":
            screenshot(page, "merchant-return-addresses")

        # the case desk: approving the return asks which address, the new default preselected
        page.goto(f"{live.url}/app/cases/{case['id']}")
        choice = page.locator("select[name='return_address_id']")
        assert "Hangzhou warehouse" in choice.locator("option:checked").inner_text()
        if setup == "desktop-en":
            screenshot(page, "merchant-approve-return-address")
        page.locator("form[action$='/act/approve']").get_by_role("button").click()
        page.wait_for_load_state("networkidle")
        # confirmed first: the address and what happens next; nothing changed yet
        assert "12 Wensan Rd, Xihu" in page.locator("#confirm-address").inner_text()
        assert live.call("GET", f"/v1/cases/{case['id']}", who="merchant_a")["status"] == "awaiting_merchant"
        page.locator("form[action$='/act/approve']").get_by_role("button").click()
        page.wait_for_load_state("networkidle")
        after = live.call("GET", f"/v1/cases/{case['id']}", who="merchant_a")
        assert after["status"] == "awaiting_return_shipment"
        assert after["return_address"]["text"] == "Li Lei 0571 8888 0000\n12 Wensan Rd, Xihu\nHangzhou 310000"
        # the M5 suggested reply names the address instead of promising one
        assert "12 Wensan Rd, Xihu, Hangzhou 310000" in page.locator("#replies").inner_text()
    finally:
        context.close()

    # the buyer, in the same language and on the same screen
    context = chromium.new_context(viewport=size, locale="zh-CN" if lang == "zh_CN" else "en-US", is_mobile=phone,
                                   has_touch=phone)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page.goto(live.buyer_link("bX"))
        page.goto(f"{live.url}/app/buyer/cases/{case['id']}")
        ship_to = page.locator("#ship-to")
        assert ship_to.get_by_role("heading", name=_("Send the return to")).is_visible()
        assert ship_to.locator("#return-address").inner_text() == "Li Lei 0571 8888 0000\n12 Wensan Rd, Xihu\nHangzhou 310000"
        assert ship_to.get_by_role("button", name=_("Copy address")).is_visible()
        no_scroll = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert no_scroll, "the page scrolls sideways"
        if setup == "phone-zh":
            screenshot(page, "buyer-return-address-zh")
    finally:
        context.close()
