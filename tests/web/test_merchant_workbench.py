"""The merchant's workbench for a day of work: complaints about the shop (K2), the deposit (D1), the search (S1)
and the confirm step before money moves (F1, M8). Every state change goes through the service, read back by the API."""

from __future__ import annotations

import re
from typing import Any

from test_merchant_pages import PNG, agent, case, order
from webhelpers import csrf_of


def complaint(api: Any, oid: str, *, accept: bool = True) -> str:
    r = api.post("/v1/complaints", {"order_id": oid, "channel": "in_app_chat", "category": "unfair_refusal",
                                    "description": "The shop refused <b>without</b> looking."}, who="buyer_x")
    assert r.status_code == 201, r.text
    cpid = str(r.json()["id"])
    if accept:
        assert api.post(f"/v1/complaints/{cpid}/accept", {}).status_code == 200
    return cpid


# --- K2: complaints about the shop -------------------------------------------------------------------------------
def test_K2_the_inbox_lists_accepted_complaints_nearest_limit_first_with_the_nav_count(api: Any) -> None:
    order(api, "o1")
    order(api, "o2")
    order(api, "o3")
    first = complaint(api, "o1")
    api.advance(3600)
    second = complaint(api, "o2")
    hidden = complaint(api, "o3", accept=False)  # not accepted: the shop does not see it (T2)
    web = agent(api)
    page = web.get("/app/shop/complaints")
    assert page.status_code == 200
    ids = re.findall(r'class="complaint-link" href="/app/shop/complaints/([^"]+)"', page.text)
    assert ids == [first, second]
    assert hidden not in page.text
    due = api.get(f"/v1/complaints/{first}").json()["deadline"]["due_at"]
    assert f'data-countdown="{due}"' in page.text
    # the nav on every merchant page counts what waits for the shop
    queue = web.get("/app/queue").text
    assert re.search(r'href="/app/shop/complaints"[^>]*>Complaints <span class="badge warn"[^>]*>2</span>', queue)
    assert web.get(f"/app/shop/complaints/{hidden}").status_code == 404


def test_K2_the_shop_answers_a_complaint_with_evidence_and_the_form_goes_away(api: Any) -> None:
    order(api, "o1")
    cpid = complaint(api, "o1")
    web = agent(api)
    page = web.get(f"/app/shop/complaints/{cpid}")
    assert page.status_code == 200
    assert "&lt;b&gt;without&lt;/b&gt;" in page.text  # the buyer's words are inert
    assert f'action="/app/shop/complaints/{cpid}/respond"' in page.text
    token = csrf_of(page.text)
    r = web.post(f"/app/shop/complaints/{cpid}/evidence", data={"csrf_token": token, "note": "chat log"},
                 files={"file": ("chat.png", PNG, "image/png")}, follow_redirects=False)
    assert r.status_code == 303
    r = web.post(f"/app/shop/complaints/{cpid}/respond", data={"csrf_token": token, "answer": "  "}, follow_redirects=False)
    assert r.status_code == 422 and "Write something first." in r.text
    assert api.get(f"/v1/complaints/{cpid}").json()["status"] == "accepted"
    r = web.post(f"/app/shop/complaints/{cpid}/respond", data={"csrf_token": token, "answer": "We refunded it.",
                                                               "version": "999"}, follow_redirects=False)
    assert r.status_code == 409 and "This complaint changed while you were looking at it" in r.text  # changes nothing
    r = web.post(f"/app/shop/complaints/{cpid}/respond", data={"csrf_token": token, "answer": "We refunded it."},
                 follow_redirects=False)
    assert r.status_code == 303
    c = api.get(f"/v1/complaints/{cpid}").json()
    assert c["status"] == "answered" and c["response"] == "We refunded it."
    ev = api.get(f"/v1/complaints/{cpid}/evidence").json()["items"]
    assert [e["filename"] for e in ev] == ["chat.png"]
    page = web.get(f"/app/shop/complaints/{cpid}").text
    assert f'action="/app/shop/complaints/{cpid}/respond"' not in page  # answered: nothing left for the shop
    assert "Nothing for the shop to do on this complaint right now." in page
    download = web.get(f"/app/shop/complaints/{cpid}/evidence/{ev[0]['id']}")
    assert download.status_code == 200 and download.content == PNG
    # answering twice is refused by the complaint's rules, not by the page
    r = web.post(f"/app/shop/complaints/{cpid}/respond", data={"csrf_token": token, "answer": "Again"}, follow_redirects=False)
    assert r.status_code == 409 and "[K2]" in r.text
    assert not re.search(r'href="/app/shop/complaints"[^>]*>Complaints <span', page)


def test_K2_T2_another_shops_complaint_is_not_found_and_posts_need_csrf(api: Any) -> None:
    order(api, "o1")
    cpid = complaint(api, "o1")
    other = agent(api, "bob", merchant="mB")
    assert other.get(f"/app/shop/complaints/{cpid}").status_code == 404
    page = other.get("/app/shop/complaints").text
    assert cpid not in page
    r = other.post(f"/app/shop/complaints/{cpid}/respond", data={"csrf_token": csrf_of(page), "answer": "x"},
                   follow_redirects=False)
    assert r.status_code == 404
    web = agent(api)
    r = web.post(f"/app/shop/complaints/{cpid}/respond", data={"answer": "x"}, follow_redirects=False)
    assert r.status_code == 403
    assert api.get(f"/v1/complaints/{cpid}").json()["status"] == "accepted"


# --- D1: the deposit ----------------------------------------------------------------------------------------------
def test_D1_a_restricted_shop_sees_its_shortfall_on_the_deposit_page_and_a_banner_on_its_queue(api: Any) -> None:
    web = agent(api)
    page = web.get("/app/shop/deposit")
    assert page.status_code == 200
    assert "Restricted" in page.text and "1,000.00" in page.text  # required 100000 fen, nothing paid in
    assert "cannot withdraw" in page.text
    assert 'class="error restricted"' in web.get("/app/queue").text
    r = web.post("/app/shop/deposit/withdrawals", data={"csrf_token": csrf_of(page.text), "amount": "10"},
                 follow_redirects=False)
    assert r.status_code == 422 and "[D1]" in r.text
    assert api.get("/v1/merchants/mA/deposit/withdrawals", who="merchant_a").json()["items"] == []


def test_D1_a_shop_in_good_standing_asks_to_withdraw_and_cancels(api: Any) -> None:
    assert api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": 150000}).status_code == 201
    web = agent(api)
    page = web.get("/app/shop/deposit")
    assert "In good standing" in page.text and 'class="error restricted"' not in web.get("/app/queue").text
    token = csrf_of(page.text)
    r = web.post("/app/shop/deposit/withdrawals", data={"csrf_token": token, "amount": "abc"}, follow_redirects=False)
    assert r.status_code == 422 and "Give the amount in yuan" in r.text
    r = web.post("/app/shop/deposit/withdrawals", data={"csrf_token": token, "amount": "200.50"}, follow_redirects=False)
    assert r.status_code == 303
    items = api.get("/v1/merchants/mA/deposit/withdrawals", who="merchant_a").json()["items"]
    assert [(w["amount_fen"], w["status"]) for w in items] == [(20050, "pending")]
    page = web.get("/app/shop/deposit").text
    assert "200.50" in page
    r = web.post(f"/app/shop/deposit/withdrawals/{items[0]['id']}/cancel", data={"csrf_token": token},
                 follow_redirects=False)
    assert r.status_code == 303
    assert api.get("/v1/merchants/mA/deposit/withdrawals", who="merchant_a").json()["items"][0]["status"] == "cancelled"


def test_D1_T2_the_deposit_pages_are_the_signed_in_shops_only(api: Any) -> None:
    assert api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": 150000}).status_code == 201
    api_wd = api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 100}, who="merchant_a")
    assert api_wd.status_code == 201, api_wd.text
    other = agent(api, "bob", merchant="mB")
    page = other.get("/app/shop/deposit").text
    assert api_wd.json()["id"] not in page
    r = other.post(f"/app/shop/deposit/withdrawals/{api_wd.json()['id']}/cancel", data={"csrf_token": csrf_of(page)},
                   follow_redirects=False)
    assert r.status_code == 404
    assert api.get("/v1/merchants/mA/deposit/withdrawals", who="merchant_a").json()["items"][0]["status"] == "pending"


def test_K2_a_case_link_on_the_complaint_page_points_at_the_case_desk(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "no_reason")
    r = api.post("/v1/complaints", {"case_id": c["id"], "channel": "in_app_chat", "category": "after_sales_not_handled",
                                    "description": "no answer"}, who="buyer_x")
    assert r.status_code == 201, r.text
    assert api.post(f"/v1/complaints/{r.json()['id']}/accept", {}).status_code == 200
    web = agent(api)
    assert f'href="/app/cases/{c["id"]}"' in web.get(f"/app/shop/complaints/{r.json()['id']}").text


# --- S1: needs my action, and the search -------------------------------------------------------------------------
def search_ids(web: Any, q: str = "") -> list[str]:
    page = web.get("/app/search", params={"q": q} if q else None)
    assert page.status_code == 200, page.text
    return re.findall(r'class="case-link" href="/app/cases/([^"]+)"', page.text)


def test_S1_needs_my_action_lists_only_cases_whose_next_step_is_the_shops(api: Any) -> None:
    order(api, "o1")
    order(api, "o2")
    waiting = case(api, "o1", "return_refund", "no_reason")
    buyers_turn = case(api, "o2", "return_refund", "no_reason")
    assert api.post(f"/v1/cases/{buyers_turn['id']}/approve", {}, who="merchant_a").status_code == 200
    web = agent(api)
    assert search_ids(web) == [waiting["id"]]  # the approved return waits for the buyer's parcel
    page = web.get("/app/search").text
    assert "Teapot o1" in page and "bX" in page  # buyer and product on the row


def test_S1_search_finds_open_and_closed_cases_by_prefix_case_insensitively(api: Any) -> None:
    order(api, "ord-100")
    order(api, "ord-200", buyer="bY")
    order(api, "zz-300", state="paid")
    a = case(api, "ord-100", "return_refund", "no_reason")
    b = case(api, "ord-200", "return_refund", "no_reason", buyer="buyer_y")
    closed = case(api, "zz-300", "refund_only", "other")
    assert api.post(f"/v1/cases/{closed['id']}/approve", {}, who="merchant_a").status_code == 200
    assert get_status(api, closed["id"]) == "closed"
    other_shop = "o-b"
    order(api, other_shop, merchant="mB")
    case(api, other_shop, "return_refund", "no_reason")
    web = agent(api)
    assert set(search_ids(web, "ORD-")) == {a["id"], b["id"]}  # order id prefix, any case
    assert search_ids(web, "ord-2") == [b["id"]]
    assert search_ids(web, "by") == [b["id"]]  # buyer id
    assert search_ids(web, "zz") == [closed["id"]]  # a closed case is found too
    assert search_ids(web, "teapot ord-1") == [a["id"]]  # the title's prefix
    assert search_ids(web, "sford-100") == [a["id"]]  # the tracking number
    assert search_ids(web, "S1") == [closed["id"], b["id"], a["id"]]  # the SKU, newest first
    assert search_ids(web, "eapot") == []  # a prefix, not a substring
    assert search_ids(web, "o-b") == []  # another shop's case is never found (T2)
    assert search_ids(web, "%") == [] and search_ids(web, "_") == []  # LIKE wildcards are literal
    assert search_ids(web, a["id"].upper()) == [a["id"]]


def test_S1_search_finds_a_chinese_title_by_a_word_inside_it_and_a_return_parcel_by_its_tracking_number(api: Any) -> None:
    body = {"id": "cn-1", "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T02:00:00+00:00",
            "shipping_fee_fen": 0, "items": [{"sku": "tea-9", "title": "景德镇青瓷茶壶", "category": "apparel",
                                              "quantity": 1, "unit_price_fen": 9900}]}
    assert api.post("/v1/orders", body).status_code == 201
    assert api.post("/v1/orders/cn-1/ship", {"carrier": "SF", "tracking_no": "SF0001"}, who="merchant_a").status_code == 200
    assert api.post("/v1/orders/cn-1/deliver", {}, who="merchant_a").status_code == 200
    c = case(api, "cn-1", "return_refund", "no_reason")
    web = agent(api)
    assert search_ids(web, "茶壶") == [c["id"]] and search_ids(web, "景德镇") == [c["id"]]
    assert search_ids(web, "yt77") == []
    assert api.post(f"/v1/cases/{c['id']}/approve", {}, who="merchant_a").status_code == 200
    shipped = api.post(f"/v1/cases/{c['id']}/ship_return", {"carrier": "YTO", "tracking_no": "YT7788"}, who="buyer_x")
    assert shipped.status_code == 200, shipped.text
    assert search_ids(web, "yt77") == [c["id"]]  # the return parcel's number, findable from that commit on


def get_status(api: Any, cid: str) -> str:
    return str(api.get(f"/v1/cases/{cid}").json()["status"])


# --- F1, M8: a confirm step before money moves -------------------------------------------------------------------
def confirm_form(html: str) -> dict[str, str]:
    """The hidden fields of the confirmation page's form."""
    form = re.search(r'<form method="post" action="[^"]+/act/[a-z_]+">(.*?)</form>', html, re.S)
    assert form, "no confirmation form"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(1)))


def test_F1_approving_a_refund_asks_for_confirmation_with_the_amount_before_refunding(api: Any) -> None:
    from test_merchant_pages import post_action

    order(api, "o1", state="paid")
    c = case(api, "o1", "refund_only", "other")
    web = agent(api)
    first = post_action(web, c["id"], "approve")
    assert first.status_code == 200 and "108.00" in first.text and "refunded" in first.text
    assert api.get(f"/v1/cases/{c['id']}").json()["status"] == "awaiting_merchant"  # nothing moved yet
    fields = confirm_form(first.text)
    assert fields["confirmed"] == "1" and "version" in fields
    r = web.post(f"/app/cases/{c['id']}/act/approve", data=fields, follow_redirects=False)
    assert r.status_code == 303
    assert api.get(f"/v1/cases/{c['id']}").json()["refunded_fen"] == 10800


def test_M8_a_partial_refund_offer_states_the_offered_amount_before_it_is_made(api: Any) -> None:
    from test_merchant_pages import post_action

    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    web = agent(api)
    first = post_action(web, c["id"], "offer_partial_refund", refund_fen="30")
    assert first.status_code == 200 and "30.00" in first.text and "keeps the goods" in first.text
    assert api.get(f"/v1/cases/{c['id']}").json()["offer"] is None
    fields = confirm_form(first.text)
    assert fields["refund_fen"] == "30"
    assert web.post(f"/app/cases/{c['id']}/act/offer_partial_refund", data=fields, follow_redirects=False).status_code == 303
    assert api.get(f"/v1/cases/{c['id']}").json()["offer"]["refund_fen"] == 3000


def test_M1_an_action_that_moves_no_money_needs_no_confirmation(api: Any) -> None:
    from test_merchant_pages import post_action

    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    web = agent(api)
    assert post_action(web, c["id"], "offer_exchange").status_code == 303  # no money, nothing irreversible
    # approving a return moves no money but sends the buyer to an address: it is confirmed first (M5, the address
    # with it; see test_return_address_pages.py)
    order(api, "o2")
    c2 = case(api, "o2", "return_refund", "no_reason")
    first = post_action(web, c2["id"], "approve")
    assert first.status_code == 200 and "1 Return Rd" in first.text
