"""Helpers of the browser tests (the fixtures are in conftest.py): the live server's handle, signing in, screenshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "correct horse battery"
#: Every page's default timeout (actions, and the navigations they start). Twice in CI runs a navigation that takes
#: well under a second on a quiet machine outlasted 15 s (the sign-in once, a buyer's order page once) while the
#: other test process and PostgreSQL shared the 2 cores; a slow page is logged by the live server (conftest:
#: ``SLOW_REQUEST_S``), so a failure still shows where the time went.
PAGE_TIMEOUT_MS = 60_000


@dataclass
class Live:
    """The running server: its URL, an API client with the platform key, and keys of the usual cast."""

    url: str
    api: httpx.Client
    keys: dict[str, str] = field(default_factory=dict)
    #: The server's settings (its database): for a test that plays the worker's part (the server runs none).
    settings: Any = None

    def call(self, method: str, path: str, body: Any = None, who: str = "platform", status: int | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        r = self.api.request(method, path, json=body, headers=headers)
        if status is not None:
            assert r.status_code == status, r.text
        return r.json() if r.content else None

    def advance(self, seconds: int) -> None:
        self.call("POST", "/v1/clock/advance", {"seconds": seconds}, status=200)

    def user(self, username: str, role: str = "merchant_agent", merchant: str | None = "mA") -> None:
        body: dict[str, Any] = {"username": username, "password": PASSWORD, "role": role}
        if role != "platform_agent":
            body["merchant_id"] = merchant
        self.call("POST", "/v1/users", body, status=201)

    def buyer_link(self, buyer_id: str) -> str:
        return self.url + self.call("POST", "/v1/buyer-links", {"buyer_id": buyer_id}, status=201)["path"]


def sign_in(page: Any, live: Live, username: str) -> None:
    page.goto(live.url + "/app/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    # The sign-in verifies an argon2id hash and renders the first page: on a loaded 2-core CI machine (two browser
    # tests side by side) that navigation has taken longer than the 15 s default once; give it 60 s, not a retry.
    with page.expect_navigation(timeout=PAGE_TIMEOUT_MS):
        page.get_by_role("button", name="Sign in").click(no_wait_after=True)
    page.wait_for_load_state("networkidle", timeout=PAGE_TIMEOUT_MS)


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
