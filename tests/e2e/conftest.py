"""Browser tests: Playwright driving Debian's Chromium (headless) against a real server on a free port.

Each test gets a fresh SQLite database on the manual clock, a server (uvicorn in a thread, the worker's work done
by the clock), merchants mA/mB, API keys, and workbench users. Screenshots go to ``docs/screenshots/``.
Under CI=true a missing Chromium fails the run; elsewhere the tests are skipped (``make browser`` installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from aftersales.api.app import create_app
from aftersales.config import Settings
from aftersales.store.db import make_engine
from aftersales.store.migrate import upgrade

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PLATFORM_KEY = "e2e-platform-key-" + "y" * 24
PASSWORD = "correct horse battery"
START = "2026-03-01T02:00:00+00:00"  # 10:00 in Asia/Shanghai


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    """The running server: its URL, an API client with the platform key, and keys of the usual cast."""

    url: str
    api: httpx.Client
    keys: dict[str, str] = field(default_factory=dict)

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


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    url = f"sqlite:///{tmp_path}/e2e.db"
    upgrade(make_engine(url))
    settings = Settings(env="test", database_url=url, clock="manual", clock_start=START,
                        bootstrap_platform_key=PLATFORM_KEY, worker_in_process=False, data_dir=str(tmp_path / "data"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    client = httpx.Client(base_url=base, timeout=30)
    live = Live(base, client, {"platform": PLATFORM_KEY})
    for mid in ("mA", "mB"):
        live.call("POST", "/v1/merchants", {"id": mid, "name": f"Shop {mid}", "return_address": "1 Return Rd"}, status=201)
    for name, role, subject in (("merchant_a", "merchant", "mA"), ("merchant_b", "merchant", "mB"),
                                ("buyer_x", "buyer", "bX"), ("buyer_y", "buyer", "bY")):
        live.keys[name] = live.call("POST", "/v1/api-keys", {"role": role, "subject_id": subject}, status=201)["key"]
    try:
        yield live
    finally:
        client.close()
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium is required under CI=true ({CHROMIUM}); run `make browser`")
        pytest.skip("Chromium not installed (make browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


@pytest.fixture
def phone(chromium: Any) -> Iterator[Any]:
    """A phone-sized page (buyers use the portal on their phones)."""
    context = chromium.new_context(viewport={"width": 390, "height": 844}, locale="en-US", is_mobile=True, has_touch=True)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def sign_in(page: Any, live: Live, username: str) -> None:
    page.goto(live.url + "/app/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
