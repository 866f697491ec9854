"""Lean JSON answers (api/responses.py, issue 13): serialised once with orjson; under the test suite each is
checked against the route's response model, so a view that drifts from its schema fails loudly."""

from __future__ import annotations

import orjson
import pytest
from pydantic import BaseModel

from aftersales.api.responses import CHECK_ENV, Lean, lean


class Out(BaseModel):
    id: str
    n: int
    note: str | None = None


def test_a_lean_answer_is_the_json_of_the_result_with_the_route_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHECK_ENV, "1")
    response = Lean(Out, 201).response({"id": "a", "n": 1, "note": "中文"})
    assert response.status_code == 201 and response.media_type == "application/json"
    assert orjson.loads(response.body) == {"id": "a", "n": 1, "note": "中文"}


@pytest.mark.parametrize("content", [{"id": "a", "n": 1}, {"id": "a", "n": 1, "note": None, "extra": 2}, {"id": "a", "n": "1"}])
def test_the_check_refuses_what_the_response_model_would_send_otherwise(content: dict[str, object],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHECK_ENV, "1")
    with pytest.raises(AssertionError, match="differs from its response model"):
        Lean(Out, 200).dumps(content)
    monkeypatch.setenv(CHECK_ENV, "0")  # outside the tests: no second validation
    assert orjson.loads(Lean(Out, 200).dumps(content)) == content


def test_the_decorated_endpoint_keeps_its_signature_and_carries_how_it_answers() -> None:
    import inspect

    @lean(Out, 201)
    def endpoint(case_id: str, n: int = 1) -> object:
        return {"id": case_id, "n": n, "note": None}

    assert list(inspect.signature(endpoint).parameters) == ["case_id", "n"]
    assert endpoint.lean.status == 201  # type: ignore[attr-defined]
    assert orjson.loads(endpoint("x").body) == {"id": "x", "n": 1, "note": None}
