"""The login page in a real browser: labels, the session cookie, and the generic refusal."""

from __future__ import annotations

from typing import Any

from e2ehelpers import PASSWORD, Live, screenshot, sign_in


def test_a_merchant_agent_signs_in_and_a_wrong_password_is_refused_generically(live: Live, page: Any) -> None:
    live.user("alice")
    page.goto(live.url + "/app/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wrong password!")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong username or password."
    sign_in(page, live, "alice")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["as_session"]["httpOnly"] and cookies["as_session"]["sameSite"] == "Lax"


def test_an_agent_changes_their_password_from_the_header_and_signs_in_again(live: Live, page: Any, phone: Any) -> None:
    live.user("alice")
    sign_in(page, live, "alice")
    page.get_by_role("link", name="alice — Change your password").click()  # the header's name
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill("a brand new passphrase")
    page.get_by_label("New password again").fill("a different passphrase")
    page.get_by_role("button", name="Change the password").click()
    assert "differ" in page.get_by_role("alert").inner_text()  # nothing changed: still on the form, signed in
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill("a brand new passphrase")
    page.get_by_label("New password again").fill("a brand new passphrase")
    screenshot(page, "account-password")
    page.get_by_role("button", name="Change the password").click()
    assert page.url.endswith("/app/login") and "signed out everywhere" in page.get_by_role("status").inner_text()
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("a brand new passphrase")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/app/queue")

    live.user("bob")
    phone.goto(f"{live.url}/app/lang?to=zh_CN&next=/app/login")
    phone.get_by_label("用户名").fill("bob")
    phone.get_by_label("密码").fill(PASSWORD)
    phone.get_by_role("button", name="登录").click()
    phone.get_by_role("link", name="bob — 修改您的密码").click()
    phone.wait_for_url("**/app/account/password")
    assert phone.get_by_role("heading", level=1).inner_text() == "修改您的密码"
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no horizontal scroll
    screenshot(phone, "account-password-phone-zh")
