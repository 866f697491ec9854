"""More of the platform console, on SQLite and PostgreSQL: a shop's deposit with top-up and close-shop behind a
confirmation (D1, P2), staff users (create, disable/enable, password reset), the intervention queue's search and
filters (P1), complaint ↔ order/case links and the order page (K2), and the ledger's CSV by account and local days (D2)."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from sqlalchemy import func, select
from webhelpers import PASSWORD, browser, csrf_of, make_user, sign_in

from aftersales.store import tables as t

PAID_AT = "2026-03-01T01:00:00+00:00"


def agent(api: Any, username: str = "pat", role: str = "platform_agent", merchant: str | None = None) -> Any:
    make_user(api, username, role=role, merchant=merchant)
    web = browser(api)
    assert sign_in(web, username).status_code == 303
    return web


def ledger_rows(ctx: Any) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.ledger_transactions)).scalar_one())


# --- D2: the ledger as CSV, by account and local days ---------------------------------------------------------------
def _csv(r: Any) -> list[dict[str, str]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    return list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))


def test_D2_ledger_csv_by_account_and_local_days(api: Any) -> None:
    # The clock starts at 2026-03-01 10:00 in Asia/Shanghai: one top-up of mA on 1 March, one of mA and one of mB
    # on 2 March (local days).
    assert api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": 11_111}).status_code == 201
    api.advance(24 * 3600)
    assert api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": 22_222}).status_code == 201
    assert api.post("/v1/merchants/mB/deposit/top-ups", {"amount_fen": 33_333}).status_code == 201
    web = agent(api)
    every = _csv(web.get("/app/platform/ledger.csv"))
    assert {r["credit_fen"] for r in every if r["credit_fen"] != "0"} == {"11111", "22222", "33333"}
    mine = _csv(web.get("/app/platform/ledger.csv", params={"account": "merchant:mA:deposit"}))
    assert sorted(int(r["credit_fen"]) for r in mine if r["account"] == "merchant:mA:deposit") == [11_111, 22_222]
    assert all(r["account"] != "merchant:mB:deposit" for r in mine)
    second_day = _csv(web.get("/app/platform/ledger.csv", params={"account": "merchant:mA:deposit", "from": "2026-03-02",
                                                                   "to": "2026-03-02"}))
    assert [int(r["credit_fen"]) for r in second_day if r["account"] == "merchant:mA:deposit"] == [22_222]
    first_day = _csv(web.get("/app/platform/ledger.csv", params={"to": "2026-03-01"}))
    assert {r["credit_fen"] for r in first_day if r["credit_fen"] != "0"} == {"11111"}
    assert _csv(web.get("/app/platform/ledger.csv", params={"from": "2026-03-03"})) == []
    # the page shows the same period and links to the same CSV
    page = web.get("/app/platform/ledger", params={"account": "merchant:mA:deposit", "from": "2026-03-02"})
    assert page.status_code == 200 and "222.22" in page.text and "111.11" not in page.text
    assert 'href="/app/platform/ledger.csv?account=merchant%3AmA%3Adeposit&amp;from=2026-03-02"' in page.text


def test_D2_ledger_csv_refuses_bad_dates_with_422(api: Any) -> None:
    web = agent(api)
    for params in ({"from": "2026-13-01"}, {"to": "yesterday"}, {"from": "2026-3-1"},
                   {"from": "2026-03-02", "to": "2026-03-01"}, {"account": "nope"}):
        r = web.get("/app/platform/ledger.csv", params=params)
        assert r.status_code == 422, params
        page = web.get("/app/platform/ledger", params=params)
        assert page.status_code == 422, params
    r = web.get("/app/platform/ledger.csv", params={"from": "2026-03-02", "to": "2026-03-01"})
    assert "[D2]" in r.text and "start before it ends" in r.text
    assert "[D2]" in web.get("/app/platform/ledger.csv", params={"to": "yesterday"}).text


# --- staff users -------------------------------------------------------------------------------------------------
def user_id(ctx: Any, username: str) -> str:
    with ctx.engine.connect() as conn:
        return str(conn.execute(select(t.users.c.id).where(t.users.c.username == username)).scalar_one())


def test_users_page_lists_creates_and_is_in_the_nav(api: Any, ctx: Any) -> None:
    make_user(api, "mia", role="merchant_agent", merchant="mA")
    web = agent(api)
    page = web.get("/app/platform/users")
    assert page.status_code == 200 and 'href="/app/platform/users" aria-current="page"' in page.text
    assert "mia" in page.text and "merchant agent" in page.text and "mA" in page.text
    assert "argon2" not in page.text
    token = csrf_of(page.text)
    assert web.post("/app/platform/users", data={"username": "nora", "role": "merchant_admin", "merchant_id": "mB"},
                    follow_redirects=False).status_code == 403  # no CSRF token: nothing done
    drawn = web.post("/app/platform/users", data={"csrf_token": token, "username": "nora", "role": "merchant_admin",
                                                  "merchant_id": "mB", "display_name": "Nora"})
    assert drawn.status_code == 200 and drawn.headers["cache-control"] == "no-store"
    password = re.search(r'<code id="new-password">([^<]+)</code>', drawn.text).group(1)  # type: ignore[union-attr]
    assert sign_in(browser(api), "nora", password).status_code == 303
    assert password not in web.get("/app/platform/users").text  # shown once
    typed = web.post("/app/platform/users", data={"csrf_token": token, "username": "omar", "role": "platform_agent",
                                                  "password": PASSWORD}, follow_redirects=False)
    assert typed.status_code == 303 and sign_in(browser(api), "omar").status_code == 303
    bad = web.post("/app/platform/users", data={"csrf_token": token, "username": "x y", "role": "merchant_agent",
                                                "merchant_id": "mA"})
    assert bad.status_code == 422 and 'value="x y"' in bad.text
    taken = web.post("/app/platform/users", data={"csrf_token": token, "username": "mia", "role": "merchant_agent",
                                                  "merchant_id": "mA"})
    assert taken.status_code == 409
    no_shop = web.post("/app/platform/users", data={"csrf_token": token, "username": "pia", "role": "merchant_agent"})
    assert no_shop.status_code == 422
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.users)).scalar_one() == 4  # mia, pat, nora, omar


def test_a_disabled_user_cannot_sign_in_nor_use_a_session_until_enabled(api: Any, ctx: Any) -> None:
    victim = agent(api, "mia", role="merchant_agent", merchant="mA")
    assert victim.get("/app/queue", follow_redirects=False).status_code == 200
    web = agent(api)
    token = csrf_of(web.get("/app/platform/users").text)
    mia = user_id(ctx, "mia")
    r = web.post(f"/app/platform/users/{mia}/disable", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert "disabled" in web.get("/app/platform/users").text
    assert victim.get("/app/queue", follow_redirects=False).status_code == 303  # the session no longer works
    refused = sign_in(browser(api), "mia")
    assert refused.status_code == 401 and "Wrong username or password." in refused.text  # the same answer as a typo
    r = web.post(f"/app/platform/users/{mia}/enable", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert sign_in(browser(api), "mia").status_code == 303
    # nobody disables their own account; an unknown user is the 404 page
    me = user_id(ctx, "pat")
    assert web.post(f"/app/platform/users/{me}/disable", data={"csrf_token": token}).status_code == 422
    assert web.get("/app/platform", follow_redirects=False).status_code == 200
    assert web.post("/app/platform/users/u_nope/disable", data={"csrf_token": token}).status_code == 404


def test_a_password_reset_shows_the_new_one_once_and_signs_the_user_out(api: Any, ctx: Any) -> None:
    victim = agent(api, "mia", role="merchant_agent", merchant="mA")
    web = agent(api)
    token = csrf_of(web.get("/app/platform/users").text)
    r = web.post(f"/app/platform/users/{user_id(ctx, 'mia')}/reset-password", data={"csrf_token": token})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    password = re.search(r'<code id="new-password">([^<]+)</code>', r.text).group(1)  # type: ignore[union-attr]
    assert victim.get("/app/queue", follow_redirects=False).status_code == 303
    assert sign_in(browser(api), "mia").status_code == 401  # the old password no longer works
    assert sign_in(browser(api), "mia", password).status_code == 303
    assert password not in web.get("/app/platform/users").text


def test_T2_merchant_staff_cannot_manage_users(api: Any, ctx: Any) -> None:
    web = agent(api, "mia", role="merchant_admin", merchant="mA")
    assert web.get("/app/platform/users").status_code == 404
    token = csrf_of(web.get("/app/queue").text)
    r = web.post(f"/app/platform/users/{user_id(ctx, 'mia')}/reset-password", data={"csrf_token": token})
    assert r.status_code == 404
    assert sign_in(browser(api), "mia").status_code == 303


# --- D1 / P2: a shop's deposit, top-up and closing, each confirmed first ---------------------------------------------
def order(api: Any, oid: str, *, merchant: str = "mA", price: int = 10000) -> None:
    body = {"id": oid, "merchant_id": merchant, "buyer_id": "bX", "paid_at": PAID_AT, "shipping_fee_fen": 800,
            "items": [{"sku": "s1", "title": "Teapot", "category": "apparel", "quantity": 1, "unit_price_fen": price}]}
    assert api.post("/v1/orders", body).status_code == 201
    who = {"mA": "merchant_a", "mB": "merchant_b"}[merchant]
    assert api.post(f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": f"SF{oid}"}, who=who).status_code == 200
    assert api.post(f"/v1/orders/{oid}/deliver", {}, who=who).status_code == 200


def escalated(api: Any, oid: str, *, merchant: str = "mA") -> str:
    order(api, oid, merchant=merchant)
    r = api.post("/v1/cases", {"order_id": oid, "type": "refund_only", "reason": "quality_problem"}, who="buyer_x")
    assert r.status_code == 201, r.text
    cid = str(r.json()["id"])
    who = {"mA": "merchant_a", "mB": "merchant_b"}[merchant]
    assert api.post(f"/v1/cases/{cid}/reject", {"reason": "no defect visible"}, who=who).status_code == 200
    assert api.post(f"/v1/cases/{cid}/escalate", {"reason": "the spout leaks"}, who="buyer_x").status_code == 200
    return cid


def ruled(api: Any, oid: str, refund_fen: int, *, merchant: str = "mA") -> str:
    """A refund ruling the shop has not paid yet (P2 pending)."""
    cid = escalated(api, oid, merchant=merchant)
    r = api.post(f"/v1/cases/{cid}/rule", {"outcome": "refund", "refund_fen": refund_fen, "rationale": "leak shown"})
    assert r.status_code == 200, r.text
    return cid


def test_D1_top_up_from_the_shop_page_after_a_confirmation(api: Any, ctx: Any) -> None:
    web = agent(api)
    listing = web.get("/app/platform/deposits").text
    assert 'href="/app/platform/deposits/mA"' in listing
    page = web.get("/app/platform/deposits/mA")
    assert page.status_code == 200 and 'action="/app/platform/deposits/mA/top-up"' in page.text
    token = csrf_of(page.text)
    before = ledger_rows(ctx)
    confirm = web.post("/app/platform/deposits/mA/top-up", data={"csrf_token": token, "amount": "1500"})
    assert confirm.status_code == 200
    assert "1,500.00" in confirm.text and "goes into the deposit" in confirm.text
    assert "The restriction is lifted." in confirm.text and 'name="confirmed" value="1"' in confirm.text
    assert ledger_rows(ctx) == before  # nothing moved yet
    assert api.get("/v1/merchants/mA/deposit").json()["balance_fen"] == 0
    r = web.post("/app/platform/deposits/mA/top-up", data={"csrf_token": token, "amount": "1500", "confirmed": "1"},
                 follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/app/platform/deposits/mA"
    dep = api.get("/v1/merchants/mA/deposit").json()
    assert dep["balance_fen"] == 150_000 and not dep["restricted"]
    assert ledger_rows(ctx) == before + 1
    assert "Top-up of" in web.get("/app/platform/deposits/mA").text


def test_D1_a_top_up_confirmation_says_what_settles_the_debt(api: Any) -> None:
    ruled(api, "o1", 10000)
    web = agent(api)
    token = csrf_of(web.get("/app/platform/deposits/mA").text)
    # the platform pays the ruling (P2) and recovers it: the empty deposit leaves a 100.00 debt
    assert web.post("/app/platform/deposits/mA/close", data={"csrf_token": token, "reason": "merchant_unreachable",
                                                              "confirmed": "1"}, follow_redirects=False).status_code == 303
    assert api.get("/v1/merchants/mA/deposit").json()["debt_fen"] == 10000
    confirm = web.post("/app/platform/deposits/mA/top-up", data={"csrf_token": token, "amount": "30"})
    assert "30.00 settles the shop&#39;s debt." in confirm.text
    assert "goes into the deposit" not in confirm.text and "stays restricted" in confirm.text


def test_D1_a_bad_top_up_amount_is_refused_and_moves_nothing(api: Any, ctx: Any) -> None:
    web = agent(api)
    token = csrf_of(web.get("/app/platform/deposits/mA").text)
    before = ledger_rows(ctx)
    for amount in ("", "0", "-5", "12.345", "abc"):
        for confirmed in ("", "1"):
            r = web.post("/app/platform/deposits/mA/top-up", data={"csrf_token": token, "amount": amount,
                                                                    "confirmed": confirmed})
            assert r.status_code == 422, (amount, confirmed)
    assert ledger_rows(ctx) == before
    assert web.post("/app/platform/deposits/mA/top-up", data={"amount": "10", "confirmed": "1"}).status_code == 403
    assert web.post("/app/platform/deposits/m_nope/top-up", data={"csrf_token": token, "amount": "10"}).status_code == 404
    assert web.get("/app/platform/deposits/m_nope").status_code == 404
    assert ledger_rows(ctx) == before


def test_P2_closing_a_shop_states_the_rulings_paid_and_the_recovery_then_pays_them(api: Any) -> None:
    cid = ruled(api, "o1", 6000)
    assert api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": 2500}).status_code == 201
    web = agent(api)
    page = web.get("/app/platform/deposits/mA").text
    assert 'action="/app/platform/deposits/mA/close"' in page
    token = csrf_of(page)
    confirm = web.post("/app/platform/deposits/mA/close", data={"csrf_token": token, "reason": "shop_closed"})
    assert confirm.status_code == 200
    assert f'href="/app/platform/cases/{cid}"' in confirm.text and "60.00" in confirm.text
    assert "Recovered from the deposit: CN¥25.00; beyond it, the shop&#39;s debt: CN¥35.00." in confirm.text
    assert api.get("/v1/merchants/mA/deposit").json()["shop_closed"] is False  # nothing done yet
    assert api.get(f"/v1/cases/{cid}").json()["ruling"]["paid_by"] is None
    r = web.post("/app/platform/deposits/mA/close", data={"csrf_token": token, "reason": "shop_closed", "confirmed": "1"},
                 follow_redirects=False)
    assert r.status_code == 303
    dep = api.get("/v1/merchants/mA/deposit").json()
    assert dep["shop_closed"] and dep["balance_fen"] == 0 and dep["debt_fen"] == 3500
    assert api.get(f"/v1/cases/{cid}").json()["ruling"]["paid_by"] == "platform"
    after = web.get("/app/platform/deposits/mA").text
    assert "1 ruling(s) paid by the platform" in after and 'action="/app/platform/deposits/mA/close"' not in after
    bad = web.post("/app/platform/deposits/mB/close", data={"csrf_token": token, "reason": "bored", "confirmed": "1"})
    assert bad.status_code == 422 and api.get("/v1/merchants/mB/deposit").json()["shop_closed"] is False


def test_T2_merchants_cannot_open_a_shops_deposit_in_the_console(api: Any) -> None:
    web = agent(api, "mia", role="merchant_admin", merchant="mA")
    assert web.get("/app/platform/deposits/mA").status_code == 404
    token = csrf_of(web.get("/app/queue").text)
    r = web.post("/app/platform/deposits/mA/top-up", data={"csrf_token": token, "amount": "10", "confirmed": "1"})
    assert r.status_code == 404 and api.get("/v1/merchants/mA/deposit").json()["balance_fen"] == 0


# --- P1: the intervention queue's search and filters -----------------------------------------------------------------
def queue_rows(web: Any, **params: str) -> list[str]:
    r = web.get("/app/platform", params=params)
    assert r.status_code == 200, r.text
    return re.findall(r'class="case-link" href="/app/platform/cases/([^"]+)"', r.text)


def test_P1_queue_search_by_id_prefix_shop_status_and_rule(api: Any) -> None:
    a = escalated(api, "ord-apple")
    b = ruled(api, "ord-banana", 5000, merchant="mB")
    order(api, "x-cherry")
    c = api.post("/v1/cases", {"order_id": "x-cherry", "type": "refund_only", "reason": "quality_problem"},
                 who="buyer_x").json()["id"]  # awaiting the shop: not the platform's by default
    web = agent(api)
    assert sorted(queue_rows(web)) == sorted([a, b])
    assert queue_rows(web, q="ORD-APP") == [a]  # order id prefix, any case
    assert queue_rows(web, q=a[:-3]) == [a]  # case id prefix
    assert queue_rows(web, q="ord-%") == [] and queue_rows(web, q="ord_") == []  # wildcards are literal
    assert queue_rows(web, merchant="mB") == [b]
    assert queue_rows(web, rule="P2") == [b]  # a refund ruling awaiting the shop's payment
    assert queue_rows(web, rule="P1") == [a]  # awaiting the platform's ruling
    assert queue_rows(web, status="awaiting_merchant") == [c]
    assert queue_rows(web, status="any", q="x-") == [c]
    assert queue_rows(web, status="any", rule="M1") == [c]
    assert queue_rows(web, merchant="mA", rule="P2") == []
    assert "No case matches these filters." in web.get("/app/platform", params={"merchant": "mA", "rule": "P2"}).text
    for bad in ({"status": "sleeping"}, {"rule": "Z9"}):
        r = web.get("/app/platform", params=bad)
        assert r.status_code == 422 and "case-link" not in r.text, bad
    # the filters are kept on the next page
    for n in range(3):
        escalated(api, f"ord-more{n}")
    page = web.get("/app/platform", params={"q": "ord-", "rule": "P1"})
    assert page.status_code == 200 and len(queue_rows(web, q="ord-", rule="P1")) == 4


def test_P1_queue_pages_keep_the_filters(api: Any, monkeypatch: Any) -> None:
    from aftersales.web import platform

    monkeypatch.setattr(platform, "PAGE_SIZE", 1)
    first, second = escalated(api, "ord-1"), escalated(api, "ord-2")
    escalated(api, "zzz-3")
    web = agent(api)
    page = web.get("/app/platform", params={"q": "ord-", "merchant": "mA"}).text
    nxt = re.search(r'href="(/app/platform\?[^"]*cursor=[^"]+)"', page)
    assert nxt and "q=ord-" in nxt.group(1) and "merchant=mA" in nxt.group(1)
    rows = re.findall(r'class="case-link" href="/app/platform/cases/([^"]+)"', page)
    more = web.get(nxt.group(1).replace("&amp;", "&")).text
    rows += re.findall(r'class="case-link" href="/app/platform/cases/([^"]+)"', more)
    assert sorted(rows) == sorted([first, second])


# --- K2: complaint ↔ order/case links, and the order page -------------------------------------------------------------
def test_K2_the_complaint_links_to_its_order_and_case_and_the_order_page_lists_both(api: Any) -> None:
    cid = escalated(api, "o1")
    r = api.post("/v1/complaints", {"order_id": "o1", "case_id": cid, "channel": "in_app_chat",
                                    "category": "unfair_refusal", "description": "Refused without looking."}, who="buyer_x")
    assert r.status_code == 201, r.text
    cpid = r.json()["id"]
    order(api, "o2")
    web = agent(api)
    page = web.get(f"/app/platform/complaints/{cpid}").text
    assert 'href="/app/platform/orders/o1"' in page and f'href="/app/platform/cases/{cid}"' in page
    o = web.get("/app/platform/orders/o1")
    assert o.status_code == 200
    assert f'href="/app/platform/cases/{cid}"' in o.text and f'href="/app/platform/complaints/{cpid}"' in o.text
    assert "Teapot" in o.text and "108.00" in o.text  # the item and what was paid (100.00 + 8.00 shipping)
    assert "unfair refusal" in o.text
    bare = web.get("/app/platform/orders/o2").text
    assert "No case on this order." in bare and "No complaint about this order." in bare
    assert 'href="/app/platform/orders/o1"' in web.get("/app/platform").text  # the queue links the order too
    assert web.get("/app/platform/orders/o_nope").status_code == 404
    shop = agent(api, "mia", role="merchant_agent", merchant="mA")
    assert shop.get("/app/platform/orders/o1").status_code == 404
