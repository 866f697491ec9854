"""A shop's agent in a real browser: the most urgent case from the top of the queue to a refund (S1, M1, F1)."""

from __future__ import annotations

import re
from typing import Any

from e2ehelpers import Live, screenshot, sign_in

PAID_AT = "2026-03-01T01:00:00+00:00"


def _order(live: Live, oid: str, *, title: str, price: int, merchant: str = "mA", buyer: str = "bX",
           delivered: bool = True) -> None:
    live.call("POST", "/v1/orders", {"id": oid, "merchant_id": merchant, "buyer_id": buyer, "paid_at": PAID_AT,
                                     "shipping_fee_fen": 600, "items": [{"sku": f"sku-{oid}", "title": title,
                                                                         "category": "apparel", "quantity": 1,
                                                                         "unit_price_fen": price}]}, status=201)
    if delivered:
        who = "merchant_a" if merchant == "mA" else "merchant_b"
        live.call("POST", f"/v1/orders/{oid}/ship", {"carrier": "SF Express", "tracking_no": f"SF{oid}"}, who=who, status=200)
        live.call("POST", f"/v1/orders/{oid}/deliver", {}, who=who, status=200)


def _case(live: Live, oid: str, case_type: str, reason: str, who: str = "buyer_x", **fields: Any) -> dict[str, Any]:
    body = {"order_id": oid, "type": case_type, "reason": reason, **fields}
    return dict(live.call("POST", "/v1/cases", body, who=who, status=201))


def test_S1_a_merchant_agent_takes_the_most_urgent_case_from_the_queue_to_a_refund(live: Live, page: Any) -> None:
    live.user("alice")
    # a morning's queue: cases opened at different times, so their M1 deadlines differ
    _order(live, "o-1001", title="Ceramic teapot", price=12900, delivered=False)
    urgent = _case(live, "o-1001", "refund_only", "other", description="Ordered twice by mistake, please cancel one.")
    live.call("POST", f"/v1/cases/{urgent['id']}/messages", {"body": "Hello, I paid twice for the same teapot."},
              who="buyer_x", status=201)
    live.advance(20 * 3600)
    _order(live, "o-1002", title="Linen shirt", price=8900)
    _case(live, "o-1002", "return_refund", "quality_problem", description="A seam is open on the left sleeve.")
    live.advance(6 * 3600)
    _order(live, "o-1003", title="Running shoes", price=39900)
    _case(live, "o-1003", "return_refund", "no_reason")
    _order(live, "o-1004", title="Desk lamp", price=15900)
    refused = _case(live, "o-1004", "exchange", "wrong_item", description="Received a floor lamp instead.")
    live.call("POST", f"/v1/cases/{refused['id']}/reject", {"reason": "Photos show the desk lamp we sent."},
              who="merchant_a", status=200)
    _order(live, "o-2001", title="Other shop's vase", price=5000, merchant="mB", buyer="bY")
    _case(live, "o-2001", "return_refund", "no_reason", who="buyer_y")
    live.advance(19 * 3600)  # the teapot's M1 deadline is now 3 hours away

    sign_in(page, live, "alice")
    assert page.url.endswith("/app/queue")
    rows = page.locator("table.queue tbody tr")
    # "Needs my action": the refused exchange waits for the buyer now (M2), the other shop's case is not here at all
    assert rows.count() == 3
    top = rows.first
    assert "urgent" in (top.get_attribute("class") or "")
    assert top.get_by_role("link").get_attribute("href") == f"/app/cases/{urgent['id']}"
    assert "Ceramic teapot" in top.inner_text() and "bX" in top.inner_text()  # who asks for what, not only an id
    assert re.fullmatch(r"2h 5\dm|3h 0m|2h 59m", top.locator("time[data-countdown]").inner_text()), \
        top.locator("time[data-countdown]").inner_text()  # counting down against the server's (manual) clock
    screenshot(page, "queue")
    page.get_by_role("link", name="All", exact=True).click()
    assert page.locator("table.queue tbody tr").count() == 4
    page.get_by_role("link", name="Needs my action").click()

    # S1: the agent claims the case before working on it
    page.locator("table.queue tbody tr").first.get_by_role("button", name="Claim").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("status").inner_text() == "The case is yours."
    assert page.locator("table.queue tbody tr").first.get_by_text("You", exact=True).is_visible()
    assert live.call("GET", f"/v1/cases/{urgent['id']}", who="merchant_a")["assignee_id"] is not None
    page.get_by_role("link", name="Mine").click()
    assert page.locator("table.queue tbody tr").count() == 1

    page.locator("table.queue tbody tr").first.get_by_role("link").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("heading", name="What you can do now").is_visible()
    assert page.get_by_text("Ordered twice by mistake, please cancel one.").is_visible()
    page.get_by_role("link", name="Use this reply").first.click()
    assert page.get_by_label("Message to the buyer, or a note").input_value().strip() != ""
    page.get_by_role("button", name="Send").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("status").inner_text() == "Message sent."
    page.goto(page.url.split("#")[0])  # from the top: the sticky header stays where it belongs in the screenshot
    screenshot(page, "case")

    page.get_by_role("button", name="approve").click()
    page.wait_for_load_state("networkidle")
    # F1: money moves only once the agent confirmed the amount and what happens next
    assert page.get_by_text("The buyer is refunded CN¥135.00 now, and the case closes.").is_visible()
    page.get_by_role("button", name="Yes, approve").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("status").inner_text() == "The request is approved."
    assert page.get_by_text("closed · refunded").is_visible()
    after = live.call("GET", f"/v1/cases/{urgent['id']}", who="merchant_a")
    assert after["status"] == "closed" and after["close_reason"] == "refunded" and after["refunded_fen"] == 13500
    page.get_by_role("link", name="Back to the queue").click()
    assert page.locator("table.queue tbody tr").count() == 2  # the refunded case left the queue
