"""Helpers for the workbench tests: users, signing in through the login form, and the CSRF token of a page."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
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


class _Visible(HTMLParser):
    """The text content and the attribute values of a page, without its random per-session secrets (the CSRF
    token of the hidden fields and of the body's ``hx-headers``), which may contain any short id by chance."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, value in attrs:
            if value is None:
                continue
            if tag == "input" and name == "value" and named.get("name") == "csrf_token":
                continue
            if name == "hx-headers":
                try:
                    headers = json.loads(value)
                except ValueError:
                    headers = None
                if isinstance(headers, dict):
                    value = json.dumps({k: v for k, v in headers.items() if k.lower() != "x-csrf-token"})
            self.parts.append(value)

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible(html: str) -> list[str]:
    """Every text node and attribute value of ``html`` but the CSRF token (see :class:`_Visible`)."""
    parser = _Visible()
    parser.feed(html)
    parser.close()
    return parser.parts


def leaks(html: str, secret: str) -> bool:
    """True when ``secret`` shows anywhere on the page a person or a script could read it — its text or an
    attribute value (a link, a hidden field, a data- attribute) — except inside the random CSRF token. Use it
    instead of ``secret not in html`` for short ids ("o1"), which a random token contains now and then."""
    return any(secret in part for part in visible(html))


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
