"""The buyer's portal over HTTP: orders and their options (E1–E10, G2), opening a case with evidence, the buyer's
actions on a case, messages, complaints (K1/K2), and security (T2 tenancy, CSRF, inert markup). Every state change
goes through the same service as the API, so the checks read the API back."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from webhelpers import browser, csrf_of, leaks

from aftersales.store import tables as t

PAID_AT = "2026-03-01T01:00:00+00:00"
MARKUP = "<script>alert(1)</script><img src=x onerror=alert(1)>"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


# --- builders (through the API) ---------------------------------------------------------------------------------
def order(api: Any, oid: str, *, buyer: str = "bX", state: str = "delivered", group: dict[str, Any] | None = None,
          price: int = 10000) -> None:
    body: dict[str, Any] = {"id": oid, "merchant_id": "mA", "buyer_id": buyer, "paid_at": PAID_AT, "shipping_fee_fen": 800,
                            "items": [{"sku": "s1", "title": f"Teapot {oid}", "category": "apparel", "quantity": 1,
                                       "unit_price_fen": price}]}
    if group:
        body["group"] = group
    assert api.post("/v1/orders", body).status_code == 201
    if state in ("shipped", "delivered"):
        assert api.post(f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": f"SF{oid}"}, who="merchant_a").status_code == 200
    if state == "delivered":
        assert api.post(f"/v1/orders/{oid}/deliver", {}, who="merchant_a").status_code == 200


def case(api: Any, oid: str, case_type: str, reason: str, *, who: str = "buyer_x", **fields: Any) -> dict[str, Any]:
    r = api.post("/v1/cases", {"order_id": oid, "type": case_type, "reason": reason, **fields}, who=who)
    assert r.status_code == 201, r.text
    return dict(r.json())


def get_case(api: Any, cid: str) -> dict[str, Any]:
    return dict(api.get(f"/v1/cases/{cid}").json())


def buyer(api: Any, buyer_id: str = "bX") -> Any:
    """A browser signed in as ``buyer_id`` through their signed link."""
    web = browser(api)
    link = api.post("/v1/buyer-links", {"buyer_id": buyer_id}).json()
    assert web.get(link["path"], follow_redirects=False).status_code == 303
    return web


def act(web: Any, cid: str, action: str, **fields: str) -> Any:
    page = web.get(f"/app/buyer/cases/{cid}")
    version = re.search(rf'action="/app/buyer/cases/{cid}/act/{action}".*?name="version" value="(\d+)"', page.text, re.S)
    assert version, f"no {action} form on the page"
    return web.post(f"/app/buyer/cases/{cid}/act/{action}",
                    data={"csrf_token": csrf_of(page.text), "version": version.group(1), **fields}, follow_redirects=False)


def open_form(web: Any, oid: str, files: dict[str, Any] | None = None, **fields: str) -> Any:
    page = web.get(f"/app/orders/{oid}")
    return web.post(f"/app/orders/{oid}/cases", data={"csrf_token": csrf_of(page.text), **fields}, files=files,
                    follow_redirects=False)


def count(api: Any, table: Any) -> int:
    engine = api.client.app.state.ctx.engine
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# --- orders and options ---------------------------------------------------------------------------------------
def test_T2_a_buyer_sees_only_their_own_orders(api: Any) -> None:
    order(api, "ox1")
    order(api, "oy1", buyer="bY")
    web = buyer(api, "bX")
    page = web.get("/app/orders")
    assert page.status_code == 200
    assert 'href="/app/orders/ox1"' in page.text and not leaks(page.text, "oy1")
    other, unknown = web.get("/app/orders/oy1"), web.get("/app/orders/nowhere")
    assert other.status_code == unknown.status_code == 404
    assert "Teapot oy1" not in other.text


def test_E4_the_order_page_shows_each_option_with_rule_deadline_and_maximum(api: Any) -> None:
    order(api, "o1")
    options = api.get("/v1/orders/o1/after-sales-options", who="buyer_x").json()
    page = buyer(api).get("/app/orders/o1")
    assert page.status_code == 200
    no_reason = next(o for o in options["options"] if o["type"] == "return_refund")
    assert no_reason["allowed"]
    assert 'data-countdown="' + no_reason["deadline"] + '"' in page.text
    assert '<span class="rule">' + no_reason["rule"] + "</span>" in page.text
    assert "Cancellations left on this order: " + str(options["cancellations_left"]) in page.text
    # every refused type is shown with its rule and explanation, and has no form
    for o in options["options"]:
        assert o["explanation"].replace("'", "&#39;") in page.text
    assert page.text.count('action="/app/orders/o1/cases"') == sum(o["allowed"] for o in options["options"])


def test_G2_a_pending_group_shows_the_explanation_and_its_expiry(api: Any) -> None:
    order(api, "og", state="paid", group={"id": "g1", "size": 3})
    expires = api.get("/v1/orders/og", who="buyer_x").json()["group"]["expires_at"]
    page = buyer(api).get("/app/orders/og")
    assert page.status_code == 200
    assert "rule G2" in page.text and "The group expires at" in page.text
    assert 'data-countdown="' + expires + '"' in page.text
    assert 'action="/app/orders/og/cases"' not in page.text  # nothing can be opened (E1)
    assert buyer(api).get("/app/orders").text.count('data-countdown="' + expires + '"') == 1


# --- opening a case -------------------------------------------------------------------------------------------
def test_E4_a_buyer_opens_a_no_reason_return_with_a_photo(api: Any) -> None:
    order(api, "o1")
    web = buyer(api)
    r = open_form(web, "o1", type="return_refund", reason="no_reason", description="Too small",
                  files={"evidence": ("shoe.png", PNG, "image/png")})
    assert r.status_code == 303, r.text
    cid = r.headers["location"].rsplit("/", 1)[1]
    c = get_case(api, cid)
    assert (c["type"], c["reason"], c["description"]) == ("return_refund", "no_reason", "Too small")
    files = api.get(f"/v1/cases/{cid}/evidence").json()["items"]
    assert [f["filename"] for f in files] == ["shoe.png"]
    page = web.get(r.headers["location"])
    assert "Your request was opened." in page.text
    assert 'data-countdown="' + c["deadline"]["due_at"] + '"' in page.text
    assert "shoe.png" in page.text and "cancel" in page.text
    assert web.get(f"/app/buyer/cases/{cid}/evidence/{files[0]['id']}").content == PNG


def test_E10_a_refused_request_shows_the_rule_and_explanation_and_opens_nothing(api: Any) -> None:
    order(api, "o1", state="paid")
    web = buyer(api)
    r = open_form(web, "o1", type="refund_only", reason="other", refund="999999")
    assert r.status_code == 422
    assert "[E10]" in r.text
    assert count(api, t.cases) == 0


def test_D3_a_file_that_is_not_an_image_is_refused_but_the_case_stays_open(api: Any) -> None:
    order(api, "o1")
    web = buyer(api)
    r = open_form(web, "o1", type="return_refund", reason="no_reason",
                  files={"evidence": ("x.png", b"MZ not an image", "image/png")})
    assert r.status_code == 303
    page = web.get(r.headers["location"])
    assert "the file was not attached" in page.text and "[D3]" in page.text and "Attach it again below" in page.text
    assert r.headers["location"].endswith("#evidence")
    # a warning (role=alert), not the green success notice
    assert re.search(r'<p class="warning" role="alert">[^<]*the file was not attached', page.text), page.text
    assert 'class="notice" role="status"' not in page.text
    assert count(api, t.evidence) == 0 and count(api, t.cases) == 1


# --- acting on a case -----------------------------------------------------------------------------------------
def test_M5_a_buyer_ships_the_return_and_sees_the_refund_after_the_shop_confirms(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "no_reason")
    assert api.post(f"/v1/cases/{c['id']}/approve", {}, who="merchant_a").status_code == 200
    web = buyer(api)
    r = act(web, c["id"], "ship_return", carrier="SF", tracking_no="SF123", shipping_fee_fen="8.50")
    assert r.status_code == 303, r.text
    got = get_case(api, c["id"])
    assert got["status"] == "return_in_transit" and got["return_shipment"]["tracking_no"] == "SF123"
    assert got["return_shipping_fee_fen"] == 850
    assert api.post(f"/v1/cases/{c['id']}/confirm_return", {}, who="merchant_a").status_code == 200
    page = web.get(f"/app/buyer/cases/{c['id']}")
    assert get_case(api, c["id"])["refunded_fen"] > 0
    assert "Refunded" in page.text and "refund paid" in page.text


def test_C1_E8_cancelling_says_it_counts_and_how_many_are_left(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "no_reason")
    web = buyer(api)
    page = web.get(f"/app/buyer/cases/{c['id']}")
    assert f"you have {c['cancellations_left']} cancellations left" in page.text
    confirm = act(web, c["id"], "cancel")  # C1/E8: a confirmation first, nothing changed yet
    assert confirm.status_code == 200
    assert f"Cancellations left on this order after this one: {c['cancellations_left'] - 1}" in confirm.text
    assert get_case(api, c["id"])["status"] == "awaiting_merchant"
    fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', confirm.text))
    assert fields["confirmed"] == "1"
    done = web.post(f"/app/buyer/cases/{c['id']}/act/cancel", data=fields, follow_redirects=False)
    assert done.status_code == 303
    assert get_case(api, c["id"])["close_reason"] == "cancelled"
    options = web.get("/app/orders/o1")
    assert f"Cancellations left on this order: {c['cancellations_left'] - 1}" in options.text


def test_E8_the_last_cancellation_is_called_the_last(api: Any) -> None:
    order(api, "o1")
    web = buyer(api)
    for _ in range(2):  # E8: max_buyer_cancellations = 3 by default; spend two through the API
        c = case(api, "o1", "refund_only", "other")
        assert api.post(f"/v1/cases/{c['id']}/cancel", {}, who="buyer_x").status_code == 200
    c = case(api, "o1", "refund_only", "other")
    confirm = act(web, c["id"], "cancel")
    assert "Cancellations left on this order after this one: 0" in confirm.text
    assert "This is your last cancellation" in confirm.text
    assert get_case(api, c["id"])["status"] != "closed"


def test_M2_an_order_whose_case_awaits_the_buyer_is_marked_action_needed(api: Any) -> None:
    order(api, "o1")
    order(api, "o2")
    waiting = case(api, "o1", "return_refund", "quality_problem")
    case(api, "o2", "return_refund", "quality_problem")  # awaits the shop (M1): no mark
    web = buyer(api)
    assert "Action needed" not in web.get("/app/orders").text
    assert api.post(f"/v1/cases/{waiting['id']}/reject", {"reason": "Used"}, who="merchant_a").status_code == 200
    page = web.get("/app/orders").text
    assert page.count("Action needed") == 1 and "Orders waiting for your answer: 1" in page
    marked = page.split("Action needed")[1].split("</li>")[0]
    assert f"/app/buyer/cases/{waiting['id']}" in marked


def test_M8_a_buyer_accepts_a_partial_refund_offer(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    assert api.post(f"/v1/cases/{c['id']}/offer_partial_refund", {"refund_fen": 2000}, who="merchant_a").status_code == 200
    web = buyer(api)
    page = web.get(f"/app/buyer/cases/{c['id']}")
    assert "a partial refund; you keep the goods" in page.text
    assert act(web, c["id"], "accept_offer").status_code == 303
    assert get_case(api, c["id"])["refunded_fen"] == 2000


def test_P1_a_refused_buyer_escalates_to_the_platform_with_a_reason(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    assert api.post(f"/v1/cases/{c['id']}/reject", {"reason": "Used"}, who="merchant_a").status_code == 200
    web = buyer(api)
    page = web.get(f"/app/buyer/cases/{c['id']}")
    for action in ("resubmit", "accept_rejection", "escalate", "cancel"):
        assert f"/act/{action}" in page.text
    assert "/act/approve" not in page.text  # only the buyer's actions, from allowed_actions
    assert act(web, c["id"], "escalate", reason="It was broken on arrival").status_code == 303
    got = get_case(api, c["id"])
    assert got["status"] == "platform_review" and got["escalation_reason"] == "It was broken on arrival"


def test_M2_a_refused_action_shows_the_rule_and_changes_nothing(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "no_reason")
    web = buyer(api)
    page = web.get(f"/app/buyer/cases/{c['id']}")
    r = web.post(f"/app/buyer/cases/{c['id']}/act/escalate", data={"csrf_token": csrf_of(page.text), "reason": "now"})
    assert r.status_code == 409 and "[M1]" in r.text
    assert get_case(api, c["id"])["status"] == "awaiting_merchant"


def test_S5_messages_with_the_shop_and_markup_stays_inert(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "no_reason")
    assert api.post(f"/v1/cases/{c['id']}/messages", {"body": MARKUP}, who="merchant_a").status_code == 201
    assert api.post(f"/v1/cases/{c['id']}/messages", {"body": "internal only", "internal": True},
                    who="merchant_a").status_code == 201
    web = buyer(api)
    page = web.get(f"/app/buyer/cases/{c['id']}")
    assert MARKUP not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "internal only" not in page.text
    r = web.post(f"/app/buyer/cases/{c['id']}/messages", data={"csrf_token": csrf_of(page.text), "body": "Thanks"},
                 follow_redirects=False)
    assert r.status_code == 303
    bodies = [m["body"] for m in api.get(f"/v1/cases/{c['id']}/messages", who="merchant_a").json()["items"]]
    assert bodies[-1] == "Thanks"


# --- security ---------------------------------------------------------------------------------------------------
def test_T2_another_buyer_cannot_see_or_act_on_a_case(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "no_reason")
    intruder = buyer(api, "bY")
    token = csrf_of(intruder.get("/app/complaints").text)
    assert intruder.get(f"/app/buyer/cases/{c['id']}").status_code == 404
    for path, data in ((f"/app/buyer/cases/{c['id']}/act/cancel", {}), (f"/app/buyer/cases/{c['id']}/messages", {"body": "x"}),
                       ("/app/orders/o1/cases", {"type": "return_refund", "reason": "no_reason"})):
        r = intruder.post(path, data={"csrf_token": token, **data}, follow_redirects=False)
        assert r.status_code == 404, path
    assert get_case(api, c["id"])["status"] == "awaiting_merchant" and count(api, t.messages) == 0
    assert count(api, t.cases) == 1


def test_CSRF_a_form_post_without_the_token_is_refused(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "no_reason")
    web = buyer(api)
    for path, data in ((f"/app/buyer/cases/{c['id']}/act/cancel", {}), (f"/app/buyer/cases/{c['id']}/messages", {"body": "x"}),
                       ("/app/orders/o1/cases", {"type": "refund_only", "reason": "other"}),
                       ("/app/complaints", {"channel": "order_button", "category": "other", "order_id": "o1",
                                            "description": "x"})):
        assert web.post(path, data=data).status_code == 403, path
        assert web.post(path, data={**data, "csrf_token": "forged"}).status_code == 403, path
    assert get_case(api, c["id"])["status"] == "awaiting_merchant"
    assert count(api, t.messages) == 0 and count(api, t.cases) == 1 and count(api, t.complaints) == 0


def test_T2_staff_and_strangers_do_not_get_the_buyer_pages(api: Any) -> None:
    assert browser(api).get("/app/orders", follow_redirects=False).status_code == 401


# --- complaints -------------------------------------------------------------------------------------------------
def test_K2_a_buyer_complains_through_a_published_channel_and_sees_its_status(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "no_reason")
    web = buyer(api)
    page = web.get(f"/app/complaints?order_id=o1&case_id={c['id']}")
    assert page.status_code == 200
    assert 'value="phone"' not in page.text  # K1: the phone line is recorded by an agent, not filed by the buyer
    assert "Customer service phone line" in page.text
    r = web.post("/app/complaints", data={"csrf_token": csrf_of(page.text), "channel": "order_button",
                                         "category": "after_sales_not_handled", "order_id": "o1", "case_id": c["id"],
                                         "description": "No answer"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    mine = api.get("/v1/complaints", who="buyer_x").json()["items"]
    assert [(k["channel"], k["case_id"], k["status"]) for k in mine] == [("order_button", c["id"], "submitted")]
    listing = web.get("/app/complaints")
    assert "received, being screened" in listing.text and "No answer" in listing.text


def test_K2_a_buyer_follows_a_complaint_on_its_page_with_messages_and_evidence(api: Any) -> None:
    order(api, "o1")
    filed = api.post("/v1/complaints", {"channel": "order_button", "category": "product_quality", "order_id": "o1",
                                        "description": "Cracked lid"}, who="buyer_x")
    assert filed.status_code == 201, filed.text
    kid = filed.json()["id"]
    assert api.post(f"/v1/complaints/{kid}/accept", None).status_code == 200
    assert api.post(f"/v1/complaints/{kid}/respond", {"answer": "We will send a new lid."},
                    who="merchant_a").status_code == 200
    web = buyer(api)
    assert f'href="/app/complaints/{kid}"' in web.get("/app/complaints").text
    page = web.get(f"/app/complaints/{kid}")
    assert page.status_code == 200
    assert "Cracked lid" in page.text and "We will send a new lid." in page.text and "answered by the shop" in page.text
    token = csrf_of(page.text)
    sent = web.post(f"/app/complaints/{kid}/messages", data={"csrf_token": token, "body": "Thanks, waiting."},
                    follow_redirects=False)
    assert sent.status_code == 303
    attached = web.post(f"/app/complaints/{kid}/evidence", data={"csrf_token": token},
                        files={"evidence": ("lid.png", PNG, "image/png")}, follow_redirects=False)
    assert attached.status_code == 303, attached.text
    files = api.get(f"/v1/complaints/{kid}/evidence", who="platform").json()["items"]
    assert [f["filename"] for f in files] == ["lid.png"]
    again = web.get(f"/app/complaints/{kid}").text
    assert "Thanks, waiting." in again and f'<img src="/app/complaints/{kid}/evidence/{files[0]["id"]}"' in again
    download = web.get(f"/app/complaints/{kid}/evidence/{files[0]['id']}")
    assert download.status_code == 200 and download.content == PNG
    shop_sees = api.get(f"/v1/complaints/{kid}/messages", who="merchant_a").json()["items"]
    assert [m["body"] for m in shop_sees] == ["Thanks, waiting."]


def test_T2_another_buyers_complaint_page_is_a_404(api: Any) -> None:
    order(api, "o1")
    kid = api.post("/v1/complaints", {"channel": "order_button", "category": "other", "order_id": "o1",
                                      "description": "x"}, who="buyer_x").json()["id"]
    intruder = buyer(api, "bY")
    token = csrf_of(intruder.get("/app/complaints").text)
    assert intruder.get(f"/app/complaints/{kid}").status_code == 404
    r = intruder.post(f"/app/complaints/{kid}/messages", data={"csrf_token": token, "body": "x"}, follow_redirects=False)
    assert r.status_code == 404
    assert count(api, t.messages) == 0


def test_K2_a_complaint_about_another_buyers_order_is_refused_like_an_unknown_one(api: Any) -> None:
    order(api, "oy", buyer="bY")
    web = buyer(api)
    page = web.get("/app/complaints")
    r = web.post("/app/complaints", data={"csrf_token": csrf_of(page.text), "channel": "order_button",
                                         "category": "other", "order_id": "oy", "description": "x"})
    assert r.status_code == 404 and "Teapot oy" not in r.text
    assert count(api, t.complaints) == 0


# --- DESIGN "Guards": the page offers exactly the case's allowed_actions ------------------------------------------
def test_M8_after_a_refusal_the_page_offers_no_offer_answers(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    assert api.post(f"/v1/cases/{c['id']}/reject", {"reason": "Used"}, who="merchant_a").status_code == 200
    page = buyer(api).get(f"/app/buyer/cases/{c['id']}").text
    assert "/act/accept_offer" not in page and "/act/decline_offer" not in page
    assert set(re.findall(r'/act/([a-z_]+)"', page)) == set(api.get(f"/v1/cases/{c['id']}", who="buyer_x").json()["allowed_actions"])


def test_M2_after_a_partial_offer_the_page_offers_no_refusal_answers(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    assert api.post(f"/v1/cases/{c['id']}/offer_partial_refund", {"refund_fen": 2000}, who="merchant_a").status_code == 200
    page = buyer(api).get(f"/app/buyer/cases/{c['id']}").text
    assert set(re.findall(r'/act/([a-z_]+)"', page)) == {"accept_offer", "decline_offer", "cancel"}
    assert "/act/accept_rejection" not in page and "/act/resubmit" not in page


def test_M3_a_return_shipping_cost_above_the_cap_is_reimbursed_up_to_it_and_the_page_says_so(api: Any) -> None:
    order(api, "o1")
    c = case(api, "o1", "return_refund", "quality_problem")
    assert api.post(f"/v1/cases/{c['id']}/approve", {}, who="merchant_a").status_code == 200
    web = buyer(api)
    assert act(web, c["id"], "ship_return", carrier="SF", tracking_no="SF123", shipping_fee_fen="26").status_code == 303
    got = get_case(api, c["id"])
    assert (got["return_shipping_fee_fen"], got["return_shipping_reimbursable_fen"]) == (2600, 2000)
    page = web.get(f"/app/buyer/cases/{c['id']}").text
    assert re.search(r'26\.00.*?→ <strong class="reimbursed">[^<]*20\.00</strong>', page), "the page states the capped amount"
