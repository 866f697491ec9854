"""The merchant's workbench pages over HTTP: the queue (S1), the case desk (S2–S5) and their security (T2, CSRF,
inert markup). Every state change goes through the same service as the API, so the checks read the API back."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from webhelpers import browser, csrf_of, leaks, make_user, sign_in

from aftersales.store import tables as t

PAID_AT = "2026-03-01T01:00:00+00:00"
MARKUP = "<script>alert(1)</script><img src=x onerror=alert(1)>"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


# --- builders (through the API) ---------------------------------------------------------------------------------
def order(api: Any, oid: str, *, merchant: str = "mA", buyer: str = "bX", state: str = "delivered",
          price: int = 10000) -> None:
    body = {"id": oid, "merchant_id": merchant, "buyer_id": buyer, "paid_at": PAID_AT, "shipping_fee_fen": 800,
            "items": [{"sku": "s1", "title": f"Teapot {oid}", "category": "apparel", "quantity": 1, "unit_price_fen": price}]}
    assert api.post("/v1/orders", body).status_code == 201
    who = {"mA": "merchant_a", "mB": "merchant_b"}[merchant]
    if state in ("shipped", "delivered"):
        assert api.post(f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": f"SF{oid}"}, who=who).status_code == 200
    if state == "delivered":
        assert api.post(f"/v1/orders/{oid}/deliver", {}, who=who).status_code == 200


def case(api: Any, oid: str, case_type: str, reason: str, *, buyer: str = "buyer_x", **fields: Any) -> dict[str, Any]:
    r = api.post("/v1/cases", {"order_id": oid, "type": case_type, "reason": reason, **fields}, who=buyer)
    assert r.status_code == 201, r.text
    return dict(r.json())


def get_case(api: Any, cid: str) -> dict[str, Any]:
    return dict(api.get(f"/v1/cases/{cid}").json())


def agent(api: Any, username: str = "alice", merchant: str = "mA") -> Any:
    make_user(api, username, merchant=merchant)
    web = browser(api)
    assert sign_in(web, username).status_code == 303
    return web


def rows_of(html: str) -> list[str]:
    """The case ids of the queue's rows, top to bottom."""
    return re.findall(r'class="case-link" href="/app/cases/([^"]+)"', html)


def post_action(web: Any, cid: str, action: str, **fields: str) -> Any:
    page = web.get(f"/app/cases/{cid}")
    version = re.search(rf'action="/app/cases/{cid}/act/{action}".*?name="version" value="(\d+)"', page.text, re.S)
    assert version, f"no {action} form on the page"
    return web.post(f"/app/cases/{cid}/act/{action}", data={"csrf_token": csrf_of(page.text), "version": version.group(1),
                                                            **fields}, follow_redirects=False)


# --- S1: the queue --------------------------------------------------------------------------------------------
def test_S1_the_queue_lists_open_cases_nearest_deadline_first_with_counts(api: Any) -> None:
    order(api, "o1")
    order(api, "o2")
    order(api, "o3", state="paid")
    first = case(api, "o1", "return_refund", "no_reason")
    api.advance(3600)
    second = case(api, "o2", "return_refund", "quality_problem")
    third = case(api, "o3", "refund_only", "other")
    web = agent(api)
    page = web.get("/app/queue")
    assert page.status_code == 200
    # M1: all three wait 48 h for the shop, so the oldest is the most urgent
    assert rows_of(page.text) == [first["id"], second["id"], third["id"]]
    assert 'data-countdown="' + first["deadline"]["due_at"] + '"' in page.text
    assert re.search(r"All open\s*<strong>3</strong>", page.text)
    assert re.search(r"awaiting the shop&#39;s answer\s*<strong>3</strong>", page.text)


def test_S1_filters_by_type_reason_status_and_search(api: Any) -> None:
    order(api, "o1")
    order(api, "o2", state="paid")
    ret = case(api, "o1", "return_refund", "no_reason")
    ref = case(api, "o2", "refund_only", "other")
    web = agent(api)
    assert rows_of(web.get("/app/queue?type=refund_only").text) == [ref["id"]]
    assert rows_of(web.get("/app/queue?reason=no_reason").text) == [ret["id"]]
    assert rows_of(web.get("/app/queue?q=o2").text) == [ref["id"]]
    assert rows_of(web.get(f"/app/queue?q={ret['id']}").text) == [ret["id"]]
    assert rows_of(web.get("/app/queue?status=closed").text) == []
    assert "No open case matches these filters." in web.get("/app/queue?q=nothing").text
    # a filter value the page does not know is ignored rather than passed on
    assert rows_of(web.get("/app/queue?type=bogus").text) == [ret["id"], ref["id"]]


def test_S1_due_within_filters_and_highlights_urgent_rows(api: Any) -> None:
    order(api, "o1")
    order(api, "o2")
    early = case(api, "o1", "return_refund", "no_reason")
    api.advance(40 * 3600)
    late = case(api, "o2", "return_refund", "no_reason")
    api.advance(5 * 3600)  # early is due in 3 h, late in 43 h
    web = agent(api)
    assert rows_of(web.get("/app/queue?due=4h").text) == [early["id"]]
    assert rows_of(web.get("/app/queue?due=24h").text) == [early["id"]]
    page = web.get("/app/queue").text
    assert rows_of(page) == [early["id"], late["id"]]
    assert re.search(rf'<tr class="urgent">\s*<td>[^<]*(<input[^>]*>)?</td>\s*<td><a class="case-link" href="/app/cases/{early["id"]}"',
                     page)


def test_S1_the_queue_pages_with_the_cursor(api: Any) -> None:
    ids = []
    for n in range(27):
        order(api, f"o{n}", state="paid")
        ids.append(case(api, f"o{n}", "refund_only", "other")["id"])
    web = agent(api)
    first = web.get("/app/queue?type=refund_only").text
    assert rows_of(first) == ids[:25]
    nxt = re.search(r'href="([^"]+)" rel="next"', first)
    assert nxt
    second = web.get(nxt.group(1).replace("&amp;", "&")).text
    assert rows_of(second) == ids[25:] and 'rel="next"' not in second
    assert web.get("/app/queue?cursor=%%%").status_code == 422


def test_T2_the_queue_never_lists_another_merchants_cases(api: Any) -> None:
    order(api, "oA")
    order(api, "oB", merchant="mB", buyer="bY")
    mine = case(api, "oA", "return_refund", "no_reason")
    theirs = case(api, "oB", "return_refund", "no_reason", buyer="buyer_y")
    page = agent(api).get("/app/queue").text
    assert rows_of(page) == [mine["id"]] and not leaks(page, theirs["id"]) and not leaks(page, "oB")
    searched = agent(api, "bob").get(f"/app/queue?q={theirs['id']}").text
    assert rows_of(searched) == [] and "<strong>1</strong>" in searched  # counts are the shop's own too


def test_the_queue_is_for_merchant_staff(api: Any) -> None:
    make_user(api, "pat", role="platform_agent")
    web = browser(api)
    sign_in(web, "pat")
    assert web.get("/app/queue").status_code == 404
    assert browser(api).get("/app/queue", follow_redirects=False).status_code == 303


# --- the case desk --------------------------------------------------------------------------------------------
def test_M1_the_case_page_shows_order_request_timeline_replies_and_only_allowed_actions(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem", description="The lid is cracked")
    page = agent(api).get(f"/app/cases/{c['id']}").text
    assert "Teapot o1" in page and "The lid is cracked" in page
    assert f'data-countdown="{c["deadline"]["due_at"]}"' in page
    assert "the system approves the request on the shop&#39;s behalf" in page  # what happens at the deadline (M1)
    assert "Merchant response" in page and "case opened" in page  # timeline with rule titles
    assert "product" in page  # S3 category of the reason
    actions = set(re.findall(r'action="/app/cases/[^/]+/act/([a-z_]+)"', page))
    as_merchant = api.get(f"/v1/cases/{c['id']}", who="merchant_a").json()["allowed_actions"]
    assert actions == set(as_merchant) == {"approve", "reject", "offer_exchange", "offer_partial_refund"}
    assert 'class="reply"' in page and "Use this reply" in page  # S2


def test_M3_approving_a_return_shows_the_recommended_payer_and_records_the_answer(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    web = agent(api)
    page = web.get(f"/app/cases/{c['id']}").text
    assert "Who pays the return shipping?" in page
    assert re.search(r'value="merchant" checked>\s*The shop bears the return shipping', page)
    r = post_action(web, c["id"], "approve", return_shipping_payer="buyer", confirmed="1")  # the shop declines to bear it
    assert r.status_code == 303
    after = get_case(api, c["id"])
    assert after["status"] == "awaiting_return_shipment"
    assert after["return_shipping_payer"] == "buyer" and after["return_shipping_proposed"] == "merchant"
    assert after["return_shipping_disputed"] is True
    assert "The request is approved." in web.get(r.headers["location"]).text and "Done:" not in web.get(r.headers["location"]).text


def test_F1_approving_a_refund_only_case_refunds_it(api: Any) -> None:
    order(api, "o1", state="paid")
    c = case(api, "o1", "refund_only", "other")
    web = agent(api)
    assert "Who pays the return shipping?" not in web.get(f"/app/cases/{c['id']}").text
    assert post_action(web, c["id"], "approve", confirmed="1").status_code == 303
    after = get_case(api, c["id"])
    assert after["status"] == "closed" and after["close_reason"] == "refunded" and after["refunded_fen"] == 10800


def test_M2_a_refusal_outside_the_rules_is_shown_with_its_rule_id(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "no_reason")
    web = agent(api)
    page = web.get(f"/app/cases/{c['id']}").text
    assert f"/app/cases/{c['id']}/act/reject" not in page, "M2: the page does not offer a refusal the rules forbid"
    # Posted anyway (a hand-made or an old form): refused with the rule and its explanation.
    r = web.post(f"/app/cases/{c['id']}/act/reject", data={"csrf_token": csrf_of(page), "version": str(c["version"]),
                                                         "reason": "we do not want it back"}, follow_redirects=False)
    assert r.status_code == 422 and "[M2]" in r.text and "cannot be refused" in r.text
    assert get_case(api, c["id"])["status"] == "awaiting_merchant"


def test_M8_a_partial_refund_is_typed_in_yuan_and_kept_in_fen(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    web = agent(api)
    assert post_action(web, c["id"], "offer_partial_refund", refund_fen="12.5", confirmed="1").status_code == 303
    assert get_case(api, c["id"])["offer"]["refund_fen"] == 1250
    order(api, "o2")
    c2 = case(api, "o2", "return_refund", "quality_problem")
    bad = post_action(web, c2["id"], "offer_partial_refund", refund_fen="12.345")
    assert bad.status_code == 422 and "in yuan" in bad.text
    assert 'value="12.345"' in bad.text  # the form keeps what was typed


def test_T2_a_stale_page_gets_a_clear_conflict(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    web = agent(api)
    page = web.get(f"/app/cases/{c['id']}").text
    assert api.post(f"/v1/cases/{c['id']}/offer_exchange", {}, who="merchant_a").status_code == 200  # meanwhile
    r = web.post(f"/app/cases/{c['id']}/act/approve", data={"csrf_token": csrf_of(page), "version": str(c["version"])},
                 follow_redirects=False)
    assert r.status_code == 409
    assert "This case changed while you were looking at it — reload the page to see the latest." in r.text
    assert "If-Match" not in r.text
    assert get_case(api, c["id"])["status"] == "awaiting_buyer"
    web.cookies.set("as_lang", "zh_CN")
    page = web.get(f"/app/cases/{c['id']}").text
    assert api.post(f"/v1/cases/{c['id']}/decline_offer", {}, who="buyer_x").status_code == 200  # meanwhile again
    r = web.post(f"/app/cases/{c['id']}/act/approve", data={"csrf_token": csrf_of(page), "version": str(c["version"] + 1)},
                 follow_redirects=False)
    assert r.status_code == 409 and "您查看期间该售后单已有变化" in r.text and "If-Match" not in r.text


def test_S2_use_this_reply_fills_the_message_box_and_S5_notes_and_summary_stay_with_the_case(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    web = agent(api)
    page = web.get(f"/app/cases/{c['id']}?reply=0").text
    box = re.search(r'<textarea id="message-body"[^>]*>(.*?)</textarea>', page, re.S)
    assert box and box.group(1).strip()
    token = csrf_of(page)
    assert web.post(f"/app/cases/{c['id']}/messages", data={"csrf_token": token, "body": "Sorry, we check it today"},
                    follow_redirects=False).status_code == 303
    assert web.post(f"/app/cases/{c['id']}/messages", data={"csrf_token": token, "body": "Batch 7 lids", "internal": "1"},
                    follow_redirects=False).status_code == 303
    assert web.post(f"/app/cases/{c['id']}/summary", data={"csrf_token": token, "summary": "Cracked lid; exchanged"},
                    follow_redirects=False).status_code == 303
    seen_by_buyer = api.get(f"/v1/cases/{c['id']}/messages", who="buyer_x").json()["items"]
    assert [m["body"] for m in seen_by_buyer] == ["Sorry, we check it today"]
    desk = web.get(f"/app/cases/{c['id']}").text
    assert "Batch 7 lids" in desk and re.search(r'id="summary".*Cracked lid; exchanged', desk, re.S)
    empty = web.post(f"/app/cases/{c['id']}/messages", data={"csrf_token": token, "body": "  "}, follow_redirects=False)
    assert empty.status_code == 422


def test_D3_evidence_is_uploaded_and_downloaded_from_the_case_page(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    web = agent(api)
    token = csrf_of(web.get(f"/app/cases/{c['id']}").text)
    r = web.post(f"/app/cases/{c['id']}/evidence", data={"csrf_token": token, "note": "photo of the lid"},
                 files={"file": ("lid.png", PNG, "image/png")}, follow_redirects=False)
    assert r.status_code == 303
    page = web.get(f"/app/cases/{c['id']}").text
    link = re.search(rf'href="(/app/cases/{c["id"]}/evidence/[^"]+)">lid.png', page)
    assert link and "photo of the lid" in page
    got = web.get(link.group(1))
    assert got.status_code == 200 and got.content == PNG and got.headers["content-disposition"].startswith("attachment")
    bad = web.post(f"/app/cases/{c['id']}/evidence", data={"csrf_token": token}, files={"file": ("x.png", b"<html>", "image/png")},
                   follow_redirects=False)
    assert bad.status_code == 422 and "[D3]" in bad.text


# --- security -------------------------------------------------------------------------------------------------
def test_T2_a_buyers_markup_is_shown_inert_on_the_merchants_case_page(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem", description=MARKUP)
    assert api.post(f"/v1/cases/{c['id']}/messages", {"body": MARKUP}, who="buyer_x").status_code == 201
    page = agent(api).get(f"/app/cases/{c['id']}").text
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;") >= 2


def test_CSRF_an_action_without_a_valid_token_is_refused_and_changes_nothing(api: Any, ctx: Any) -> None:
    order(api, "o1", state="paid")
    c = case(api, "o1", "refund_only", "other")
    web = agent(api)
    with ctx.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(t.events)).scalar_one()
    for data in ({}, {"csrf_token": "forged"}):
        r = web.post(f"/app/cases/{c['id']}/act/approve", data={**data, "version": str(c["version"])}, follow_redirects=False)
        assert r.status_code == 403
        assert web.post(f"/app/cases/{c['id']}/messages", data={**data, "body": "hi"}, follow_redirects=False).status_code == 403
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.events)).scalar_one() == before
        assert conn.execute(select(func.count()).select_from(t.messages)).scalar_one() == 0
    assert get_case(api, c["id"])["status"] == "awaiting_merchant"


def test_T2_another_merchants_agent_cannot_open_or_act_on_a_case(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem", description="SecretDescriptionOfX")
    outsider = agent(api, "bob", merchant="mB")
    page = outsider.get(f"/app/cases/{c['id']}")
    unknown = outsider.get("/app/cases/cs_unknown")
    assert page.status_code == unknown.status_code == 404
    assert "SecretDescriptionOfX" not in page.text and "Teapot" not in page.text
    # The order id: anywhere but the random CSRF token, which may contain "o1" by chance.
    assert not leaks(page.text, "o1")
    # the same page an unknown id gets (the id only echoes the address the outsider typed, in the language switch)
    assert page.text.replace(c["id"], "ID") == unknown.text.replace("cs_unknown", "ID")
    token = csrf_of(page.text)
    r = outsider.post(f"/app/cases/{c['id']}/act/approve", data={"csrf_token": token, "version": str(c["version"])},
                      follow_redirects=False)
    assert r.status_code == 404 and "SecretDescriptionOfX" not in r.text
    assert outsider.post(f"/app/cases/{c['id']}/messages", data={"csrf_token": token, "body": "x"},
                         follow_redirects=False).status_code == 404
    assert outsider.get(f"/app/cases/{c['id']}/evidence/ev_x").status_code == 404
    assert get_case(api, c["id"])["status"] == "awaiting_merchant"


def test_T2_a_merchant_cannot_take_the_buyers_side_from_the_page(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    web = agent(api)
    token = csrf_of(web.get(f"/app/cases/{c['id']}").text)
    r = web.post(f"/app/cases/{c['id']}/act/cancel", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 403 and "[T2]" in r.text
    assert web.post(f"/app/cases/{c['id']}/act/nonsense", data={"csrf_token": token}, follow_redirects=False).status_code == 404


def test_the_case_page_speaks_the_agents_language(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    web = agent(api)
    en = web.get(f"/app/cases/{c['id']}").text
    zh = web.get(f"/app/cases/{c['id']}", headers={"Accept-Language": "zh-CN"}).text
    reply_en = re.search(r'class="reply">.*?</div>(.*?)</div>', en, re.S)
    reply_zh = re.search(r'class="reply">.*?</div>(.*?)</div>', zh, re.S)
    assert reply_en and reply_zh and reply_en.group(1) != reply_zh.group(1)  # S2 replies in the reader's language


def test_P1_a_platform_agent_may_read_the_case_desk_with_the_platforms_actions(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    assert api.post(f"/v1/cases/{c['id']}/reject", {"reason": "looks fine"}, who="merchant_a").status_code == 200
    assert api.post(f"/v1/cases/{c['id']}/escalate", {"reason": "it is cracked"}, who="buyer_x").status_code == 200
    make_user(api, "pat", role="platform_agent")
    web = browser(api)
    sign_in(web, "pat")
    page = web.get(f"/app/cases/{c['id']}").text
    assert set(re.findall(r'action="/app/cases/[^/]+/act/([a-z_]+)"', page)) == {"rule"}  # P2 only once a refund ruling is unpaid
    r = post_action(web, c["id"], "rule", outcome="refund", rationale="Photos show the crack", refund_fen="")
    assert r.status_code == 303
    after = get_case(api, c["id"])
    assert after["ruling"]["outcome"] == "refund" and after["ruling"]["rationale"] == "Photos show the crack"


def test_S4_the_timeline_shows_event_labels_not_codes(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    assert api.post(f"/v1/cases/{c['id']}/offer_exchange", {}, who="merchant_a").status_code == 200
    web = agent(api)
    page = web.get(f"/app/cases/{c['id']}").text
    timeline = page.split('id="timeline"', 1)[1]
    assert "<strong>case opened</strong>" in timeline and "<strong>exchange offered</strong>" in timeline
    assert "offer_exchange</strong>" not in timeline
    web.cookies.set("as_lang", "zh_CN")
    assert "<strong>已提出换货</strong>" in web.get(f"/app/cases/{c['id']}").text



def test_S2_suggested_replies_speak_in_the_shops_voice_on_the_shops_page_and_the_platforms_on_the_platforms(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    shop_page = agent(api).get(f"/app/cases/{c['id']}").text
    shop_reply = re.search(r'id="h-replies".*?</section>', shop_page, re.S)
    assert shop_reply
    # the shop's own agent: "we", never "the shop" (M1)
    assert "We have received your request and will answer by" in shop_reply.group(0)
    assert "passed to the shop" not in shop_reply.group(0) and "the shop&#39;s return address" not in shop_reply.group(0)
    make_user(api, "pat", role="platform_agent")
    web = browser(api)
    sign_in(web, "pat")
    for path in (f"/app/cases/{c['id']}", f"/app/platform/cases/{c['id']}"):
        platform_reply = re.search(r'id="h-replies".*?</section>', web.get(path).text, re.S)
        assert platform_reply, path
        assert "Your request has been passed to the shop, which must answer by" in platform_reply.group(0), path
        assert "We have received your request" not in platform_reply.group(0), path
    # the shop's voice is translated too
    zh = agent(api, "alice2").get(f"/app/cases/{c['id']}", headers={"Accept-Language": "zh-CN"}).text
    assert "我们已收到您的申请" in zh and "您的申请已提交给商家" not in zh
