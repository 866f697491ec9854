"""Browser tests: Playwright driving Debian's Chromium (headless) against a real server on a free port.

Each test runs twice, on SQLite and on PostgreSQL (the ``database`` fixture of tests/conftest.py: a fresh migrated
database, PostgreSQL's in a schema of its own from AFTERSALES_TEST_DATABASE_URL; under CI=true a missing PostgreSQL
fails the run, elsewhere that half is skipped). Each gets a server on the manual clock (uvicorn in a thread, the
worker's work done by the clock), merchants mA/mB, API keys, and workbench users. Screenshots go to
``docs/screenshots/`` (each run writes them; the pages are the same). Under CI=true a missing Chromium fails the run;
elsewhere the tests are skipped (``make browser`` installs it). A test that needs one database only says so with
``@pytest.mark.parametrize("database", ["sqlite"], indirect=True)`` (the accessibility sweep: see its test).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from e2ehelpers import PAGE_TIMEOUT_MS, Live

from aftersales.api.app import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
PLATFORM_KEY = "e2e-platform-key-" + "y" * 24
START = "2026-03-01T02:00:00+00:00"  # 10:00 in Asia/Shanghai
#: A request of the live server slower than this is logged (method, path, seconds): a browser test that times out
#: then shows whether the server was slow, and on what.
SLOW_REQUEST_S = 3.0
LOG = logging.getLogger("aftersales.e2e")


def _timed(app: Any) -> Any:
    """The app, logging each HTTP request that took over SLOW_REQUEST_S to answer completely."""
    async def timed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        started = time.monotonic()
        try:
            await app(scope, receive, send)
        finally:
            took = time.monotonic() - started
            if took > SLOW_REQUEST_S:
                LOG.warning("slow request: %s %s took %.1f s", scope["method"], scope["path"], took)
    return timed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path, database: Any) -> Iterator[Live]:
    settings = database.settings(clock_start=START, bootstrap_platform_key=PLATFORM_KEY, worker_in_process=False,
                                 data_dir=str(tmp_path / "data"))
    port = _free_port()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(_timed(app), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    client = httpx.Client(base_url=base, timeout=30)
    live = Live(base, client, {"platform": PLATFORM_KEY}, settings=settings)
    for mid in ("mA", "mB"):
        live.call("POST", "/v1/merchants", {"id": mid, "name": f"Shop {mid}", "return_address": "1 Return Rd"}, status=201)
    live.call("PUT", "/v1/categories/apparel", {"name": "Apparel", "no_reason_return": True}, status=201)  # E4
    for name, role, subject in (("merchant_a", "merchant", "mA"), ("merchant_b", "merchant", "mB"),
                                ("buyer_x", "buyer", "bX"), ("buyer_y", "buyer", "bY")):
        live.keys[name] = live.call("POST", "/v1/api-keys", {"role": role, "subject_id": subject}, status=201)["key"]
    try:
        yield live
    finally:
        client.close()
        server.should_exit = True
        thread.join(10)
        app.state.ctx.engine.dispose()  # its connections closed before the database fixture drops the schema


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
    pg.set_default_timeout(PAGE_TIMEOUT_MS)
    yield pg
    context.close()


@pytest.fixture
def phone(chromium: Any) -> Iterator[Any]:
    """A phone-sized page (buyers use the portal on their phones)."""
    context = chromium.new_context(viewport={"width": 390, "height": 844}, locale="en-US", is_mobile=True, has_touch=True)
    pg = context.new_page()
    pg.set_default_timeout(PAGE_TIMEOUT_MS)
    yield pg
    context.close()


