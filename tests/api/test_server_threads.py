"""AFTERSALES_SERVER_THREADS caps the requests a server process handles at once (issue 7, B1: beyond a few, the
threads only fight over the GIL and the database)."""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from aftersales.api import server
from aftersales.store.db import make_engine
from aftersales.store.migrate import upgrade


def test_the_server_runs_its_endpoints_on_the_configured_number_of_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    monkeypatch.setenv("AFTERSALES_DATABASE_URL", url)
    monkeypatch.setenv("AFTERSALES_WORKER_IN_PROCESS", "false")
    monkeypatch.setenv("AFTERSALES_SERVER_THREADS", "3")
    with TestClient(server.app()) as client:
        assert client.get("/healthz").status_code == 200
        assert client.portal is not None
        assert client.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().total_tokens) == 3


def test_a_thread_count_below_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from aftersales.config import Settings

    monkeypatch.setenv("AFTERSALES_SERVER_THREADS", "0")
    with pytest.raises(ValidationError):
        Settings()
