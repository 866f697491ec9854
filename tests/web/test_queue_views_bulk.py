"""S1, the queue at work in the workbench: the views (needs my action, mine, unassigned, all), the claim button, the
rows' buyer and goods, the bulk approval of the cases the shop cannot refuse (M2) with its confirmation page, and
the fragment the queue polls for new cases."""

from __future__ import annotations

import re
from typing import Any

from test_merchant_pages import agent, case, get_case, order, rows_of
from webhelpers import csrf_of


def claim(web: Any, cid: str) -> Any:
    page = web.get("/app/queue?view=all")
    assert f'action="/app/cases/{cid}/claim"' in page.text
    return web.post(f"/app/cases/{cid}/claim", data={"csrf_token": csrf_of(page.text), "back": "/app/queue?view=mine"},
                    follow_redirects=False)


def test_S1_the_views_split_the_queue_by_whose_move_and_who_handles_it(api: Any) -> None:
    order(api, "o1")
    order(api, "o2")
    order(api, "o3")
    waiting = case(api, "o1", "return_refund", "quality_problem")
    mine = case(api, "o2", "return_refund", "quality_problem")
    buyers_turn = case(api, "o3", "return_refund", "no_reason")
    assert api.post(f"/v1/cases/{buyers_turn['id']}/approve", {}, who="merchant_a").status_code == 200
    web = agent(api)
    # The default view: what waits for the shop; the approved return waits for the buyer's parcel (M5).
    page = web.get("/app/queue")
    assert rows_of(page.text) == [waiting["id"], mine["id"]]
    assert 'aria-current="page">Needs my action' in page.text
    assert "Teapot o1" in page.text and "bX" in page.text and "s1" in page.text  # buyer and goods, not only the id
    assert rows_of(web.get("/app/queue?view=all").text) == [waiting["id"], mine["id"], buyers_turn["id"]]
    r = claim(web, mine["id"])
    assert r.status_code == 303 and r.headers["location"] == "/app/queue?view=mine"
    assert get_case(api, mine["id"])["assignee_id"] is not None
    mine_page = web.get("/app/queue?view=mine").text
    assert rows_of(mine_page) == [mine["id"]] and "<strong>You</strong>" in mine_page
    assert rows_of(web.get("/app/queue?view=unassigned").text) == [waiting["id"], buyers_turn["id"]]
    # Someone else claiming the same case is told it is taken; the case stays with the first.
    bob = agent(api, "bob")
    page = bob.get("/app/queue?view=all").text
    assert f'action="/app/cases/{mine["id"]}/claim"' not in page  # taken: no claim button, the name instead
    taken = bob.post(f"/app/cases/{mine['id']}/claim", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert taken.status_code == 303
    assert rows_of(bob.get("/app/queue?view=mine").text) == []
    assert rows_of(web.get("/app/queue?view=mine").text) == [mine["id"]]
    # The timeline of the case desk says who took it.
    desk = web.get(f"/app/cases/{mine['id']}").text
    assert "case assigned" in desk


def test_S1_an_agent_gives_a_case_to_a_colleague_from_the_case_page_and_back_to_nobody(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    web = agent(api)
    bob = agent(api, "bob")  # a colleague of the same shop
    bob_id = re.search(r'<option value="([^"]+)"[^>]*>bob', web.get(f"/app/cases/{c['id']}").text)
    assert bob_id, "the colleague is offered"
    page = web.get(f"/app/cases/{c['id']}").text
    assert "Nobody yet" in page
    r = web.post(f"/app/cases/{c['id']}/assign", data={"csrf_token": csrf_of(page), "assignee": bob_id.group(1)},
                 follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("#handler")
    assert get_case(api, c["id"])["assignee_id"] == bob_id.group(1)
    assert rows_of(bob.get("/app/queue?view=mine").text) == [c["id"]]
    # a user of another shop is refused with the rule, nothing changes
    refused = web.post(f"/app/cases/{c['id']}/assign", data={"csrf_token": csrf_of(page), "assignee": "u-elsewhere"},
                       follow_redirects=False)
    assert refused.status_code == 303 and get_case(api, c["id"])["assignee_id"] == bob_id.group(1)
    back = web.post(f"/app/cases/{c['id']}/assign", data={"csrf_token": csrf_of(page), "assignee": ""},
                    follow_redirects=False)
    assert back.status_code == 303 and get_case(api, c["id"])["assignee_id"] is None


def test_T2_a_shop_cannot_claim_another_shops_case_from_the_page(api: Any) -> None:
    order(api, "oB", merchant="mB", buyer="bY")
    theirs = case(api, "oB", "refund_only", "other", buyer="buyer_y")
    web = agent(api)
    token = csrf_of(web.get("/app/queue").text)
    assert web.post(f"/app/cases/{theirs['id']}/claim", data={"csrf_token": token}).status_code == 404
    assert web.post(f"/app/cases/{theirs['id']}/assign", data={"csrf_token": token, "assignee": ""}).status_code == 404
    assert web.post(f"/app/cases/{theirs['id']}/claim", data={"csrf_token": "nope"}).status_code in (403, 400)
    assert get_case(api, theirs["id"])["assignee_id"] is None


def test_S1_M2_bulk_approval_confirms_each_case_and_amount_then_shows_per_row_results(api: Any) -> None:
    order(api, "o1", state="paid", price=2500)
    order(api, "o2")
    order(api, "o3")
    before_shipment = case(api, "o1", "refund_only", "other")  # M2: cannot be refused → approvable together
    no_reason = case(api, "o2", "return_refund", "no_reason")  # M2: a valid no-reason return cannot be refused
    quality = case(api, "o3", "refund_only", "quality_problem")  # refusable: the shop decides it on its own
    web = agent(api)
    page = web.get("/app/queue").text
    boxes = re.findall(r'type="checkbox" form="bulk" name="case_id" value="([^"]+)"', page)
    assert boxes == [before_shipment["id"], no_reason["id"]]
    token = csrf_of(page)
    confirm = web.post("/app/queue/bulk", data={"csrf_token": token, "case_id": [before_shipment["id"], no_reason["id"]]})
    assert confirm.status_code == 200, confirm.text
    assert "Nothing has happened yet." in confirm.text
    assert "The buyer is refunded CN¥33.00 now, and the case closes." in confirm.text  # 25.00 + 8.00 shipping (E2)
    assert "The buyer sends the goods back; you check them when they arrive (M6), then CN¥100.00 is refunded." in confirm.text
    assert "Yes, approve these 2 cases" in confirm.text
    assert get_case(api, before_shipment["id"])["status"] == "awaiting_merchant"  # the confirmation changed nothing
    # A case changed meanwhile (the buyer cancelled it) is refused on its row, with its rule; the other is approved.
    assert api.post(f"/v1/cases/{no_reason['id']}/cancel", {}, who="buyer_x").status_code == 200
    done = web.post("/app/queue/bulk", data={"csrf_token": csrf_of(confirm.text), "confirmed": "1",
                                             "case_id": [before_shipment["id"], no_reason["id"]]})
    assert done.status_code == 200, done.text
    assert "Approved: 1. Refused: 1." in done.text
    assert re.search(r'badge bad">Refused</span> <span class="rule">C1</span>', done.text)
    assert get_case(api, before_shipment["id"])["status"] in ("refund_pending", "closed")
    assert get_case(api, before_shipment["id"])["refunded_fen"] == 3300
    assert get_case(api, quality["id"])["status"] == "awaiting_merchant"


def test_T2_bulk_approval_of_another_shops_case_is_not_found_and_changes_nothing(api: Any) -> None:
    order(api, "o1", state="paid")
    order(api, "oB", merchant="mB", buyer="bY", state="paid")
    mine = case(api, "o1", "refund_only", "other")
    theirs = case(api, "oB", "refund_only", "other", buyer="buyer_y")
    web = agent(api)
    token = csrf_of(web.get("/app/queue").text)
    r = web.post("/app/queue/bulk", data={"csrf_token": token, "confirmed": "1", "case_id": [mine["id"], theirs["id"]]})
    assert r.status_code == 404
    assert get_case(api, mine["id"])["status"] == "awaiting_merchant"
    assert get_case(api, theirs["id"])["status"] == "awaiting_merchant"
    assert web.post("/app/queue/bulk", data={"case_id": [mine["id"]], "confirmed": "1"}).status_code in (400, 403)
    assert get_case(api, mine["id"])["status"] == "awaiting_merchant"


def test_S1_the_queue_polls_for_new_cases(api: Any) -> None:
    order(api, "o1")
    order(api, "o2")
    web = agent(api)
    page = web.get("/app/queue?view=all").text
    poll = re.search(r'hx-get="([^"]+)" hx-trigger="every 20s"', page)
    assert poll, "the queue does not poll"
    url = poll.group(1).replace("&amp;", "&")
    assert "New cases" not in web.get(url).text
    api.advance(60)
    case(api, "o1", "refund_only", "quality_problem")
    case(api, "o2", "refund_only", "quality_problem")
    fragment = web.get(url).text
    assert "New cases arrived since this page was shown: 2." in fragment
    assert 'href="/app/queue?view=all"' in fragment and "<html" not in fragment
    assert web.get("/app/queue/arrivals?since=nonsense").status_code == 204
    assert web.get("/app/queue/arrivals?since=2026-01-01T00:00:00%2B00:00&back=https://evil.example").status_code == 422
