"""Lean JSON answers: a route whose service already builds the answer as plain JSON data (the views of
``service/``) sends it serialised once, with orjson — no second validation of what the code just built, and no
second thread hop (FastAPI validates a synchronous route's result against its ``response_model`` in the thread
pool). The ``response_model`` stays on the route: it is the OpenAPI contract (API.md), and the test suite checks
every lean answer against it (:func:`checking`): the same JSON as FastAPI's own serialisation would send.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from fastapi import Response
from pydantic import TypeAdapter

F = TypeVar("F", bound=Callable[..., Any])
#: Set (to 1) by the test suite: each lean answer is also validated and serialised by its response model, and a
#: difference is an error (500) — so a view that drifts from its schema fails the tests, not a client.
CHECK_ENV = "AFTERSALES_CHECK_RESPONSES"


def checking() -> bool:
    return os.environ.get(CHECK_ENV) == "1"


class Lean:
    """How a route answers with its result: ``status`` and the JSON of the result as it stands."""

    def __init__(self, model: Any, status: int) -> None:
        self.model, self.status = model, status
        self._adapter: TypeAdapter[Any] | None = None

    def dumps(self, content: Any) -> bytes:
        body = orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        if checking():
            self.check(content, body)
        return body

    def check(self, content: Any, body: bytes) -> None:
        if self._adapter is None:
            self._adapter = TypeAdapter(self.model)
        expected = orjson.loads(self._adapter.dump_json(self._adapter.validate_python(content), by_alias=True))
        if expected != orjson.loads(body):
            raise AssertionError(f"lean answer differs from its response model {self.model!r}:\n{body!r}\n{expected!r}")

    def response(self, content: Any) -> Response:
        return Response(self.dumps(content), self.status, media_type="application/json")


def lean(model: Any, status: int = 200) -> Callable[[F], F]:
    """Decorate a route whose result is JSON data shaped as ``model`` (its ``response_model``): it answers ``status``
    with that data serialised once. The endpoint keeps its signature (FastAPI reads the parameters through
    ``__wrapped__``) and carries ``lean`` for the Idempotency-Key record (``middleware.route_answer``); an ``async``
    route stays ``async``. A lean route is also served by the dispatch table of the hot routes (``api/hot.py``)."""
    how = Lean(model, status)

    def wrap(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def endpoint(*args: Any, **kwargs: Any) -> Any:
                result = await fn(*args, **kwargs)
                return result if isinstance(result, Response) else how.response(result)
        else:

            @functools.wraps(fn)
            def endpoint(*args: Any, **kwargs: Any) -> Any:
                result = fn(*args, **kwargs)
                return result if isinstance(result, Response) else how.response(result)

        endpoint.lean = how  # type: ignore[attr-defined]
        return endpoint  # type: ignore[return-value]

    return wrap
