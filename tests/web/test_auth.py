"""The workbench's accounts and sessions: argon2id passwords, a login that never says which part was wrong and
slows down repeated failures, HttpOnly SameSite session cookies, CSRF on every form, and buyers' signed links."""

from __future__ import annotations

from typing import Any

from webhelpers import PASSWORD, browser, csrf_of, make_user, sign_in

from aftersales.service.users import buyer_link_token


def test_a_merchant_agent_signs_in_and_lands_on_the_queue(api: Any) -> None:
    make_user(api, "alice")
    web = browser(api)
    r = sign_in(web, "alice")
    assert r.status_code == 303 and r.headers["location"] == "/app"
    cookie = r.headers["set-cookie"]
    assert "as_session=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert web.get("/app", follow_redirects=False).headers["location"] == "/app/queue"


def test_the_root_leads_to_the_workbench(api: Any) -> None:
    web = browser(api)
    r = web.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/app"
    assert web.get("/").url.path == "/app/login"  # signed out: on to the sign-in page
    make_user(api, "alice")
    sign_in(web, "alice")
    assert web.get("/").url.path == "/app/queue"  # signed in: the user's home


def test_the_password_is_stored_as_an_argon2id_hash(api: Any, ctx: Any) -> None:
    from sqlalchemy import select

    from aftersales.store import tables as t

    make_user(api, "alice")
    with ctx.engine.connect() as conn:
        stored = conn.execute(select(t.users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(api: Any) -> None:
    make_user(api, "alice")
    web = browser(api)
    wrong_password = sign_in(web, "alice", "not the password")
    unknown_user = sign_in(web, "mallory", PASSWORD)
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert "Wrong username or password." in wrong_password.text and "Wrong username or password." in unknown_user.text
    assert "as_session" not in wrong_password.headers.get("set-cookie", "")


def test_repeated_failures_slow_down_even_the_right_password(api: Any) -> None:
    make_user(api, "alice")
    web = browser(api)
    for _ in range(3):
        assert sign_in(web, "alice", "guess").status_code == 401
    locked = sign_in(web, "alice")  # the right password, but too soon after three failures
    assert locked.status_code == 401 and "try again in" in locked.text
    api.advance(5)
    assert sign_in(web, "alice").status_code == 303  # once the wait is over it works, and the count resets


def test_a_login_form_without_its_csrf_token_is_refused(api: Any) -> None:
    make_user(api, "alice")
    web = browser(api)
    web.get("/app/login")
    r = web.post("/app/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "forged"},
                 follow_redirects=False)
    assert r.status_code == 403 and "as_session" not in r.headers.get("set-cookie", "")


def test_a_form_post_without_a_valid_csrf_token_is_refused(api: Any) -> None:
    make_user(api, "alice")
    web = browser(api)
    sign_in(web, "alice")
    assert web.post("/app/logout", data={}, follow_redirects=False).status_code == 403
    assert web.post("/app/logout", data={"csrf_token": "nope"}, follow_redirects=False).status_code == 403
    assert web.get("/app", follow_redirects=False).headers["location"] == "/app/queue"  # still signed in
    token = csrf_of(web.get("/app/login").text)  # a signed-in page carries the session's token
    r = web.post("/app/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert web.get("/app", follow_redirects=False).headers["location"] == "/app/login"


def test_pages_need_a_session_and_never_redirect_off_site(api: Any) -> None:
    web = browser(api)
    r = web.get("/app/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/app/login?next=/app/queue"
    make_user(api, "alice")
    web.get("/app/login")
    r = sign_in(web, "alice")
    page = web.get("/app/login?next=https://evil.example/")
    assert "evil.example" not in page.text


def test_a_buyer_enters_through_a_signed_link_and_a_forged_one_is_refused(api: Any) -> None:
    link = api.post("/v1/buyer-links", {"buyer_id": "bX"}).json()
    web = browser(api)
    r = web.get(link["path"], follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/app/orders"
    forged = buyer_link_token("not the server secret", "bY", api.now())
    assert browser(api).get(f"/app/buyer/enter?token={forged}", follow_redirects=False).status_code == 401
    tampered = link["path"].replace("token=", "token=x")
    assert browser(api).get(tampered, follow_redirects=False).status_code == 401


def test_a_buyer_link_expires(api: Any) -> None:
    link = api.post("/v1/buyer-links", {"buyer_id": "bX"}).json()
    api.advance(8 * 86400)
    assert browser(api).get(link["path"], follow_redirects=False).status_code == 401


def test_a_bad_buyer_link_says_why_and_how_to_get_a_new_one_in_the_readers_language(api: Any) -> None:
    link = api.post("/v1/buyer-links", {"buyer_id": "bX"}).json()
    api.advance(8 * 86400)
    zh = browser(api).get(link["path"], headers={"Accept-Language": "zh-CN"}, follow_redirects=False)
    assert zh.status_code == 401
    assert "This link" not in zh.text and "链接" in zh.text  # the reason and the way back, in Chinese
    en = browser(api).get(link["path"].replace("token=", "token=x"), headers={"Accept-Language": "en"})
    assert "This link is not valid." in en.text and "How to get a new link" in en.text
    assert "Go to my orders" not in en.text  # no buyer session in this browser
    web = browser(api)
    fresh = api.post("/v1/buyer-links", {"buyer_id": "bX"}).json()
    assert web.get(fresh["path"], follow_redirects=False).status_code == 303
    again = web.get(link["path"], headers={"Accept-Language": "en"})
    assert again.status_code == 401 and 'href="/app/orders"' in again.text  # still signed in: straight back


def test_pages_carry_strict_security_headers(api: Any) -> None:
    r = browser(api).get("/app/login")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"


def test_the_login_page_speaks_the_browsers_language(api: Any) -> None:
    web = browser(api)
    r = web.get("/app/login", headers={"Accept-Language": "es-ES,es;q=0.9"})
    assert 'lang="es"' in r.text
    r = web.get("/app/lang?to=zh_CN&next=/app/login", follow_redirects=True)
    assert 'lang="zh-CN"' in r.text


def _change(web: Any, current: str, new: str, again: str | None = None, **headers: str) -> Any:
    token = csrf_of(web.get("/app/account/password", headers=headers).text)
    return web.post("/app/account/password", data={"csrf_token": token, "current": current, "new": new,
                                                   "again": new if again is None else again},
                    headers=headers, follow_redirects=False)


def test_an_agent_changes_their_own_password_and_every_session_ends(api: Any) -> None:
    make_user(api, "alice")
    web, other = browser(api), browser(api)
    sign_in(web, "alice")
    sign_in(other, "alice")  # a second device
    page = web.get("/app/account/password")
    assert page.status_code == 200 and 'autocomplete="current-password"' in page.text
    assert 'href="/app/account/password"' in web.get("/app/queue").text  # the header's name leads to it, on every page
    r = _change(web, PASSWORD, "a brand new passphrase")
    assert r.status_code == 303 and r.headers["location"] == "/app/login"
    assert "signed out everywhere" in web.get("/app/login").text
    assert other.get("/app/queue", follow_redirects=False).status_code in (302, 303, 307)  # the other device too
    assert sign_in(browser(api), "alice").status_code == 401  # the old password no longer works
    assert sign_in(browser(api), "alice", "a brand new passphrase").status_code == 303


def test_a_password_change_is_refused_with_a_clear_reason_and_changes_nothing(api: Any) -> None:
    make_user(api, "alice")
    web = browser(api)
    sign_in(web, "alice")
    mismatch = _change(web, PASSWORD, "a brand new passphrase", "a brand new passphrasf")
    assert mismatch.status_code == 422 and "differ" in mismatch.text
    wrong = _change(web, "not my password", "a brand new passphrase")
    assert wrong.status_code == 401 and "not right" in wrong.text
    short = _change(web, PASSWORD, "short")
    assert short.status_code == 422
    chinese = _change(web, PASSWORD, "a brand new passphrase", "something else entirely", **{"Accept-Language": "zh-CN"})
    assert "两次输入的新密码不一致" in chinese.text
    assert web.get("/app/queue", follow_redirects=False).status_code == 200  # still signed in
    assert sign_in(browser(api), "alice").status_code == 303  # the password is unchanged


def test_the_password_page_is_for_signed_in_staff_only(api: Any) -> None:
    web = browser(api)
    r = web.get("/app/account/password", follow_redirects=False)
    assert r.status_code in (302, 303, 307) and "/app/login" in r.headers["location"]
    make_user(api, "alice")
    sign_in(web, "alice")
    assert web.post("/app/account/password", data={"current": PASSWORD, "new": "x" * 12, "again": "x" * 12},
                    follow_redirects=False).status_code == 403  # no CSRF token
