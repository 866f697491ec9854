"""When the database cannot be reached (a PostgreSQL restart, SQLite's lock timeout) the API answers 503 with
Retry-After, not 500 — found by the fault soak (issue 7): clients retry with the same Idempotency-Key."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from aftersales.service import orders as orders_service


def _raise(exc: Exception) -> Any:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise exc
    return boom


def test_unreachable_database_is_503_with_retry_after(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    before = api.get("/v1/orders/o1").status_code
    monkeypatch.setattr(orders_service, "get_order", _raise(OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))))
    r = api.get("/v1/orders/o1")
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "2"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/unavailable")
    monkeypatch.undo()
    assert api.get("/v1/orders/o1").status_code == before  # and the service answers as before once it is back


def test_other_database_errors_stay_500(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orders_service, "get_order", _raise(ProgrammingError("SELECT nope", {}, Exception("syntax error"))))
    r = api.get("/v1/orders/o1")
    assert r.status_code == 500
    assert "retry-after" not in r.headers
