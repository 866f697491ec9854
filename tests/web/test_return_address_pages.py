"""M1, M5 in the workbench: the shop's return-address page, the approve-return form that asks which address (with a
confirmation), the buyer's case page that shows where to send the return, and the suggested reply that names it."""

from __future__ import annotations

import re
from typing import Any

from test_buyer_pages import buyer
from test_merchant_pages import agent, case, get_case, order, post_action
from test_merchant_workbench import confirm_form
from webhelpers import csrf_of


def addresses(api: Any, merchant: str = "mA", who: str = "merchant_a") -> list[dict[str, Any]]:
    return list(api.get(f"/v1/merchants/{merchant}/return-addresses", who=who).json()["items"])


def add_on_page(web: Any, **fields: str) -> Any:
    page = web.get("/app/shop/addresses").text
    return web.post("/app/shop/addresses", data={"csrf_token": csrf_of(page), **fields}, follow_redirects=False)


def test_M5_the_shop_adds_edits_makes_default_and_archives_addresses(api: Any) -> None:
    web = agent(api)
    page = web.get("/app/shop/addresses")
    assert page.status_code == 200 and "1 Return Rd" in page.text and 'href="/app/shop/addresses" aria-current="page"' in page.text
    r = add_on_page(web, label="Hangzhou warehouse", contact_name="Li Lei", phone="0571 8888 0000",
                    address="12 Wensan Rd\nHangzhou", is_default="1")
    assert r.status_code == 303
    book = addresses(api)
    assert book[0]["label"] == "Hangzhou warehouse" and book[0]["is_default"]
    assert "Return address added." in web.get(r.headers["location"]).text
    # a bad phone: the form comes back with the rule and what was typed, nothing added
    bad = add_on_page(web, label="X", phone="call me", address="Somewhere")
    assert bad.status_code == 422 and "M5" in bad.text and 'value="call me"' in bad.text
    assert len(addresses(api)) == 2
    # edit, then make the old one the default again, then archive the new one (asked first)
    new, old = book
    page = web.get("/app/shop/addresses").text
    r = web.post(f"/app/shop/addresses/{new['id']}", data={"csrf_token": csrf_of(page), "version": str(new["version"]),
                                                            "label": "HZ", "contact_name": "Li Lei", "phone": "0571 8888 0000",
                                                            "address": "12 Wensan Rd\nHangzhou"}, follow_redirects=False)
    assert r.status_code == 303 and addresses(api)[0]["label"] == "HZ"
    page = web.get("/app/shop/addresses").text
    r = web.post(f"/app/shop/addresses/{old['id']}/default", data={"csrf_token": csrf_of(page), "version": str(old["version"])},
                 follow_redirects=False)
    assert r.status_code == 303 and addresses(api)[0]["id"] == old["id"]
    page = web.get("/app/shop/addresses").text
    ask = web.post(f"/app/shop/addresses/{new['id']}/archive", data={"csrf_token": csrf_of(page), "version": "3"})
    assert ask.status_code == 200 and "Archive this return address?" in ask.text
    assert len(addresses(api)) == 2  # nothing archived yet
    r = web.post(f"/app/shop/addresses/{new['id']}/archive", data={"csrf_token": csrf_of(ask.text), "version": "3",
                                                                    "confirmed": "1"}, follow_redirects=False)
    assert r.status_code == 303 and [a["id"] for a in addresses(api)] == [old["id"]]


def test_M5_approve_asks_which_address_confirms_and_the_buyer_sees_it(api: Any) -> None:
    warehouse = api.post("/v1/merchants/mA/return-addresses", {"label": "Warehouse", "address": "9 Dock St\nNingbo"},
                         who="merchant_a").json()
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    web = agent(api)
    desk = web.get(f"/app/cases/{c['id']}").text
    select = re.search(r'<select id="approve-return_address_id" name="return_address_id">(.*?)</select>', desk, re.S)
    assert select, "no address choice on the approve form"
    assert re.search(r'<option value="ra_\w+" selected>\s*Return address \(default\)', select.group(1))
    assert warehouse["id"] in select.group(1)
    first = post_action(web, c["id"], "approve", return_address_id=warehouse["id"])
    assert first.status_code == 200 and "9 Dock St" in first.text and "M5" in first.text
    assert get_case(api, c["id"])["status"] == "awaiting_merchant"  # nothing happened yet
    fields = confirm_form(first.text)
    assert fields["return_address_id"] == warehouse["id"] and fields["confirmed"] == "1"
    assert web.post(f"/app/cases/{c['id']}/act/approve", data=fields, follow_redirects=False).status_code == 303
    after = get_case(api, c["id"])
    assert after["status"] == "awaiting_return_shipment" and after["return_address"]["id"] == warehouse["id"]
    # the shop's desk: the address in the facts and in the suggested reply (no empty promise)
    desk = web.get(f"/app/cases/{c['id']}").text
    assert "Return address: 9 Dock St, Ningbo." in desk
    # the buyer: where to send it, copy-friendly, in their language
    b = buyer(api)
    page = b.get(f"/app/buyer/cases/{c['id']}").text
    assert re.search(r'<p class="address-text" id="return-address">9 Dock St\nNingbo</p>', page)
    assert 'data-copy="return-address"' in page
    b.cookies.set("as_lang", "zh_CN")
    assert "退货寄往" in b.get(f"/app/buyer/cases/{c['id']}").text


def test_M1_a_shop_without_an_address_is_told_so_before_and_after_approving(api: Any) -> None:
    (only,) = addresses(api)
    assert api.post(f"/v1/merchants/mA/return-addresses/{only['id']}/archive", who="merchant_a").status_code == 200
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    web = agent(api)
    assert "Your shop has no return address yet" in web.get(f"/app/cases/{c['id']}").text
    first = post_action(web, c["id"], "approve")
    assert first.status_code == 200 and "Your shop has no return address" in first.text
    r = web.post(f"/app/cases/{c['id']}/act/approve", data=confirm_form(first.text), follow_redirects=False)
    assert r.status_code == 303
    assert "tell the buyer in a message where to send the goods" in web.get(r.headers["location"]).text
    page = buyer(api).get(f"/app/buyer/cases/{c['id']}").text
    assert "The shop has not given a return address yet." in page


def test_T2_another_shops_agent_cannot_see_or_change_the_book(api: Any) -> None:
    (theirs,) = addresses(api, "mB", who="merchant_b")
    web = agent(api)
    page = web.get("/app/shop/addresses").text
    assert theirs["id"] not in page
    r = web.post(f"/app/shop/addresses/{theirs['id']}/default", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 404
    r = web.post(f"/app/shop/addresses/{theirs['id']}", data={"csrf_token": csrf_of(page), "address": "hijacked"},
                 follow_redirects=False)
    assert r.status_code == 404 and addresses(api, "mB", who="merchant_b")[0]["address"] == "1 Return Rd"
