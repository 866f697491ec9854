"""The hot routes without FastAPI's generic machinery: a dispatch table and a solver compiled once per route.

FastAPI 0.165 finds a route by trying the included routers' candidates one by one (twice: once to match, once to
handle; ~35 candidates before a case action), and solves a route's dependencies generically on every request
(a cache key per dependency, a ``Response`` for the sub-response, every kind of parameter looked up). For the lean
routes (``api/responses.py``) — the API's hot JSON routes — :class:`HotRoutes` does the same work the direct way:

- **routing**: the route's own ``path_regex`` among the few lean routes with this method and number of path
  segments (``_Table``), and the route is taken only if no route *before* it in FastAPI's order could answer the
  request too (:func:`_may_overlap` lists them once; each is tried at request time): the route FastAPI would pick;
- **dependencies and parameters**: a solver compiled from the route's own dependency tree (``_Solver``): the same
  dependency functions called in the same order with the same arguments, and the path, query, header and body
  parameters validated by FastAPI's own functions (``request_params_to_args``, ``request_body_to_args``) with the
  route's own fields; the body read and decoded as FastAPI reads it;
- the endpoint called as FastAPI calls it (a synchronous one in the thread pool), and its ``Response`` sent.

Anything else — a parameter or body that does not validate, a body that is not plain JSON, a content type other
than ``application/json``, a repeated header the solver reads, a ``root_path``, dependency overrides — goes to
FastAPI's own path with the request as it came (the body replayed): every error is FastAPI's, with its exact
problem+json. A route that needs what the solver does not do (a ``yield`` dependency, a synchronous dependency,
cookies, a ``Response`` parameter, background tasks, forms) is never in the table. The routes stay registered with
FastAPI as they are, so /openapi.json describes them exactly as before.

Exceptions raised by a dependency or the endpoint propagate as they would from FastAPI's route (the table sits
inside Starlette's ``ExceptionMiddleware``, whose handlers — ``api/problems.py`` — answer them).
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from collections.abc import Callable
from enum import Enum
from types import UnionType
from typing import Any, Literal, TypeGuard, Union, get_args, get_origin

from fastapi import params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args, request_params_to_args
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount

from .middleware import ASGIApp, Message, Receive, Scope, Send, replay_body


class _Fallback(Exception):
    """The request is not one the table answers as FastAPI would: FastAPI's own path takes it."""


_FALLBACK = _Fallback()
#: The body's media types read as JSON without asking ``email.message`` (FastAPI's test): any other goes to FastAPI.
JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8", b"application/json;charset=utf-8"})


def _is_async(call: Any) -> bool:
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


class _Solver:
    """One dependant (a route or a dependency) compiled: its sub-dependencies (in order), its parameters, and the
    names under which it takes the request. ``solve`` returns its keyword arguments, or raises :class:`_Fallback`
    where FastAPI would report a validation error (FastAPI then reports it)."""

    def __init__(self, dependant: Dependant, seen: set[int], top: bool) -> None:
        if (dependant.cookie_params or dependant.background_tasks_param_name or dependant.response_param_name
                or dependant.security_scopes_param_name or dependant.websocket_param_name
                or getattr(dependant, "concurrency", None) is not None or (dependant.body_params and not top)):
            raise ValueError("not a lean dependant")
        self.subs: list[tuple[_Solver, Any, str | None]] = []
        for sub in dependant.dependencies:
            call = sub.call
            if call is None or not _is_async(call) or inspect.isasyncgenfunction(call) or id(call) in seen:
                raise ValueError(f"dependency {call!r} is not one the table solves")
            seen.add(id(call))  # each dependency once per request: FastAPI's cache would not change a thing
            self.subs.append((_Solver(sub, seen, top=False), call, sub.name))
        self.params = [_Params(fields, kind) for fields, kind in ((dependant.path_params, "path"),
                                                                 (dependant.query_params, "query"),
                                                                 (dependant.header_params, "header")) if fields]
        self.request_names = [n for n in (dependant.request_param_name, dependant.http_connection_param_name) if n]

    async def solve(self, request: Request, body: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for solver, call, name in self.subs:
            result = await call(**await solver.solve(request, body))
            if name is not None:
                values[name] = result
        for group in self.params:
            group.solve(request, values)
        for name in self.request_names:
            values[name] = request
        return values


#: Annotations whose parameter is one value (never a list, never a model): read with one ``get``, as FastAPI does.
_SCALARS = (str, int, float, bool)


def _scalar(annotation: Any) -> bool:
    if annotation in _SCALARS or (isinstance(annotation, type) and issubclass(annotation, Enum)):
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return True
    if origin in (Union, UnionType):
        return all(a is type(None) or _scalar(a) for a in get_args(annotation))
    return False


class _Params:
    """A dependant's path, query or header parameters. A scalar one without alias choices is read with one ``get``
    of the same mapping FastAPI reads and validated by its own field (``request_params_to_args``'s steps); any other
    takes ``request_params_to_args`` itself."""

    def __init__(self, fields: list[Any], kind: str) -> None:
        self.kind, self.fields = kind, fields
        simple = all(_scalar(f.field_info.annotation) and f.field_info.validation_alias in (None, f.alias)
                     and not getattr(f, "config", None) for f in fields)
        self.simple = [(f.name, f.alias, f, (kind, f.alias)) for f in fields] if simple else None

    def source(self, request: Request) -> Any:
        return (request.path_params if self.kind == "path" else request.query_params if self.kind == "query"
                else request.headers)

    def solve(self, request: Request, values: dict[str, Any]) -> None:
        source = self.source(request)
        if self.simple is None:
            found, errors = request_params_to_args(self.fields, source)
            if errors:
                raise _FALLBACK
            values.update(found)
            return
        for name, alias, field, loc in self.simple:
            value = source.get(alias, None)
            if value is None:  # absent: the default (FastAPI's ``_validate_value_with_model_field``)
                if field.field_info.is_required() or field.field_info.validate_default:
                    raise _FALLBACK
                values[name] = copy.deepcopy(field.default)
                continue
            value, errors = field.validate(value, values, loc=loc)
            if errors:
                raise _FALLBACK
            values[name] = value


class _Route:
    """A lean route as the table serves it."""

    def __init__(self, context: Any, original: APIRoute, shadows: list[tuple[re.Pattern[str], set[str] | None]]) -> None:
        dependant: Dependant = context.dependant
        if getattr(context, "max_body_size", None) is not None:  # FastAPI's own per-route body limit: its path
            raise ValueError("a route with its own body limit")
        self.solver = _Solver(dependant, set(), top=True)
        body = list(dependant.body_params)
        if len(body) > 1 or (body and (isinstance(body[0].field_info, params.Form) or _embedded(body[0].field_info))):
            raise ValueError("only a single JSON body is read here")
        self.body = body
        self.original, self.regex, self.convertors = original, context.path_regex, context.param_convertors
        assert dependant.call is not None
        self.endpoint: Callable[..., Any] = dependant.call
        self.is_async = _is_async(self.endpoint)
        self.shadows = shadows

    def match(self, method: str, path: str) -> dict[str, Any] | None:
        found = self.regex.match(path)
        if found is None:
            return None
        for regex, methods in self.shadows:  # a route FastAPI tries before this one answers too: FastAPI decides
            if (methods is None or method in methods) and regex.match(path):
                raise _FALLBACK
        return {k: self.convertors[k].convert(v) for k, v in found.groupdict().items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path_params: dict[str, Any],
                       content_type: bytes | None) -> None:
        body: Any = PydanticUndefined  # FastAPI's "no body"
        chunks: list[bytes] | None = None  # not read (a route without a body never reads it)
        if self.body:
            chunks = []  # read as FastAPI reads it (Request.body(), then Request.json() for a JSON content type)
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise _Replay(chunks, message)
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            raw = b"".join(chunks)
            if raw:
                if content_type is None or content_type.lower() not in JSON_TYPES:
                    raise _Replay(chunks, None)
                try:
                    body = json.loads(raw)
                except Exception:
                    raise _Replay(chunks, None) from None
            receive = replay_body(raw, receive)
        request = Request(scope, receive)
        scope["endpoint"], scope["route"], scope["path_params"] = self.original.endpoint, self.original, path_params
        try:
            values = await self.solver.solve(request, body)
            if self.body:
                found, errors = await request_body_to_args(self.body, body, False)
                if errors:
                    raise _FALLBACK
                values.update(found)
        except _Fallback:
            raise _Replay(chunks, None) from None
        if self.is_async:
            response = await self.endpoint(**values)
        else:
            response = await run_in_threadpool(self.endpoint, **values)
        if not isinstance(response, Response):  # a lean endpoint always answers a Response
            raise TypeError(f"{self.original.path}: a lean route answered {type(response).__name__}")
        await response(scope, receive, send)


class _Replay(Exception):
    """FastAPI's path takes the request, with the body read so far given back (and the message that ended it)."""

    def __init__(self, chunks: list[bytes] | None, last: Message | None) -> None:
        self.chunks, self.last = chunks, last


def _embedded(info: FieldInfo) -> bool:
    return bool(getattr(info, "embed", False))


def _segments(path: str) -> list[str]:
    return path.strip("/").split("/") if path.strip("/") else []


def _may_overlap(before: Any, route: Any) -> bool:
    """Could a path that ``route``'s template matches also match ``before``'s? False only when a literal segment of
    one differs from the other's at the same place (or the lengths differ, neither having a catch-all)."""
    template = getattr(before, "path", None)
    if not isinstance(template, str):
        return True
    mine, theirs = _segments(route.path), _segments(template)
    prefix_only = isinstance(before.original_route if hasattr(before, "original_route") else before, Mount)
    if any(":path}" in s for s in theirs):
        cut = next(i for i, s in enumerate(theirs) if ":path}" in s)
        theirs, prefix_only = theirs[:cut], True
    if not prefix_only and len(mine) != len(theirs):
        return False
    if prefix_only and len(mine) < len(theirs):
        return False
    return all("{" in a or "{" in b or a == b for a, b in zip(mine, theirs, strict=False))


class _Table:
    """The lean routes by method and number of path segments, each with the routes before it that could shadow it."""

    def __init__(self, app: Any) -> None:
        self.routes: dict[tuple[str, int], list[_Route]] = {}
        earlier: list[Any] = []
        for context in iter_route_contexts(_through_last_lean(app.routes)):
            original = context.original_route
            if _is_lean(original):
                try:
                    shadows = [(c.path_regex, getattr(c, "methods", None)) for c in earlier if _may_overlap(c, context)]
                    route = _Route(context, original, shadows)
                except (ValueError, AttributeError):
                    route = None
                if route is not None:
                    for method in context.methods or ():
                        self.routes.setdefault((method, len(_segments(str(context.path)))), []).append(route)
            earlier.append(context)

    def find(self, method: str, path: str) -> tuple[_Route, dict[str, Any]] | None:
        for route in self.routes.get((method, path.count("/") - path.endswith("/")), ()):
            path_params = route.match(method, path)
            if path_params is not None:
                return route, path_params
        return None


def _through_last_lean(routes: list[Any]) -> list[Any]:
    """The application's routes up to the last one that is, or includes, a lean route. Only a route before a lean
    one can shadow it, and FastAPI builds an included router's route contexts (each route's dependant and pydantic
    fields: ~0.6 ms a route) when they are first asked for: the workbench's and the other routers' after the API's are
    left to be built by FastAPI's router when a request first needs them (each new application — every test's —
    saved ~60 % of its table's ~0.2 s)."""
    last = -1
    for i, route in enumerate(routes):
        if _has_lean(route):
            last = i
    return routes[: last + 1]


def _has_lean(route: Any) -> bool:
    included = getattr(route, "original_router", None)  # FastAPI's included router
    if included is not None:
        return any(_has_lean(r) for r in included.routes)
    return _is_lean(route)


def _is_lean(route: Any) -> TypeGuard[APIRoute]:
    """A route the table serves: a FastAPI route whose endpoint answers through ``@lean``."""
    return isinstance(route, APIRoute) and hasattr(getattr(route, "endpoint", None), "lean")


class HotRoutes:
    """The dispatch table in front of FastAPI's router (inside its exception handling): a lean route is served
    here, everything else by ``app`` — the rest of FastAPI's stack — untouched."""

    def __init__(self, app: ASGIApp, fastapi_app: Any) -> None:
        self.app, self.fastapi_app = app, fastapi_app
        self._table: _Table | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("root_path") or self.fastapi_app.dependency_overrides:
            return await self.app(scope, receive, send)
        if self._table is None:
            self._table = _Table(self.fastapi_app)
        try:
            found = self._table.find(scope["method"], scope["path"])
        except _Fallback:
            found = None
        if found is None:
            return await self.app(scope, receive, send)
        route, path_params = found
        content_type = None
        seen: set[bytes] = set()
        for name, value in scope["headers"]:
            if name in _READ:
                if name in seen:  # a repeated header the route reads: which one counts is FastAPI's to say
                    return await self.app(scope, receive, send)
                seen.add(name)
                if name == b"content-type":
                    content_type = value
        try:
            await route(scope, receive, send, path_params, content_type)
        except _Replay as replay:
            await self.app(scope, _resend(replay, receive), send)


#: Headers a lean route or its dependencies read (``Headers.get`` takes the first of repeated ones; the solver
#: leaves a request that repeats one to FastAPI rather than assume).
_READ = frozenset({b"content-type", b"authorization", b"accept-language", b"if-match", b"idempotency-key"})


def _resend(replay: _Replay, receive: Receive) -> Receive:
    """The request's body as it was received, then the message that interrupted it (a disconnect), if any."""
    if replay.chunks is None:
        return receive
    pending: list[Message] = []
    if replay.last is None:
        pending.append({"type": "http.request", "body": b"".join(replay.chunks), "more_body": False})
    else:
        pending += [{"type": "http.request", "body": chunk, "more_body": True} for chunk in replay.chunks]
        pending.append(replay.last)

    async def again() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return again
