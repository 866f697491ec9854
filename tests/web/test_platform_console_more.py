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
