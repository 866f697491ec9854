"""The login page in a real browser: labels, the session cookie, and the generic refusal."""

from __future__ import annotations

from typing import Any

from e2ehelpers import Live, sign_in


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
