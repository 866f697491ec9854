"""Helpers for the workbench tests: users, signing in through the login form, and the CSRF token of a page."""

from __future__ import annotations

import re
from typing import Any

PASSWORD = "correct horse battery"


def make_user(api: Any, username: str, role: str = "merchant_agent", merchant: str | None = "mA") -> None:
    body = {"username": username, "password": PASSWORD, "role": role}
    if role != "platform_agent":
        body["merchant_id"] = merchant
    r = api.post("/v1/users", body)
    assert r.status_code == 201, r.text


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def sign_in(client: Any, username: str, password: str = PASSWORD) -> Any:
    """Sign ``client`` in through the form; returns the final response (after redirects)."""
    client.cookies.clear()
    page = client.get("/app/login")
    r = client.post("/app/login", data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
                    follow_redirects=False)
    return r


def browser(api: Any) -> Any:
    """A second client on the same app, without the API key headers (a browser)."""
    from fastapi.testclient import TestClient

    return TestClient(api.client.app, raise_server_exceptions=False)
