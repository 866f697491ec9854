"""RFC 9457 problem+json for every error, with the RULEBOOK id and an explanation in the caller's language."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from aftersales import i18n
from aftersales.domain.errors import DomainError
from aftersales.domain.messages import N_, Msg
from aftersales.service.errors import ServiceError

from .validation_messages import validation_msg

log = logging.getLogger("aftersales.api")
PROBLEM = "application/problem+json"
#: Seconds a client is asked to wait when the database cannot be reached (a restart takes a few seconds).
RETRY_AFTER_SECONDS = 2


def database_unavailable(exc: Exception) -> bool:
    """The database could not be reached or dropped the connection (a restart, a failover, SQLite's lock timeout):
    a temporary condition, not a bug. Everything else stays a 500."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def problem(status: int, title: str, detail: str, *, kind: str, rule: str | None = None,
            errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": f"https://aftersales.dev/problems/{kind}", "title": title, "status": status, "detail": detail}
    if rule is not None:
        body["rule"] = rule
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def lang_of(request: Request) -> str:
    return i18n.negotiate(request.headers.get("accept-language"))


def _message(e: Any, lang: str) -> str:
    """One validation error's message in ``lang`` (:func:`~aftersales.api.validation_messages.validation_msg`)."""
    return i18n.render(validation_msg(e), lang)


def _clean(errors: list[Any], lang: str = i18n.DEFAULT) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ())]
        out.append({"field": ".".join(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc),
                    "in": loc[0] if loc else None, "message": _message(e, lang), "type": str(e.get("type", ""))})
    return out


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """Make /openapi.json say what the handlers below send: errors are ``application/problem+json``, and an
    operation that takes a body may answer 400 when the body cannot even be decoded (invalid UTF-8)."""
    problem_ref = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "requestBody" in operation and "400" not in responses:
                responses["400"] = {"description": "Bad Request", "content": {PROBLEM: dict(problem_ref)}}
            for code, response in responses.items():
                content = response.get("content")
                if code[:1] in ("4", "5") and content and "application/json" in content:
                    content[PROBLEM] = content.pop("application/json")
    return spec


#: The titles of the domain's refusals by status (``title`` is translated; ``type`` and ``rule`` are not).
_DOMAIN_TITLES = {422: N_("Refused by rule {rule}"), 409: N_("Not possible now"), 403: N_("Not your action")}


def domain_title(exc: DomainError, lang: str) -> str:
    return i18n.render(Msg(_DOMAIN_TITLES.get(exc.status, N_("Refused")), {"rule": exc.rule}), lang)


def install(app: FastAPI, tz: str) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        lang = lang_of(request)
        return problem(exc.status, domain_title(exc, lang), i18n.render(exc.msg, lang, tz), kind=exc.kind, rule=exc.rule)

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        # ``title`` and ``detail`` in the caller's language; ``type`` (from the English title) and ``rule`` never change.
        lang = lang_of(request)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem(exc.status, exc.title_in(lang), exc.detail_in(lang, tz), kind=exc.title.lower().replace(" ", "-"),
                       rule=exc.rule, headers=headers, errors=getattr(exc, "errors", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The title and each field's message in the reader's language; ``field``, ``in`` and ``type`` never change.
        lang = lang_of(request)
        errors = _clean(list(exc.errors()), lang)
        detail = "; ".join(f"{e['field'] or e['in']}: {e['message']}" for e in errors)[:1000]
        return problem(422, i18n.translate(N_("Invalid request"), lang), detail or i18n.translate(N_("Invalid request"), lang),
                       kind="validation", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # An unknown route or method: Starlette's own short text, translated where it is the plain 404.
        text = i18n.translate(N_("Not found"), lang_of(request)) if exc.status_code == 404 else str(exc.detail)
        return problem(exc.status_code, text, text, kind=f"http-{exc.status_code}", headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        if database_unavailable(exc):
            # The transaction did not commit or its outcome is unknown: the client retries with the same
            # Idempotency-Key, which applies a write at most once (API.md).
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path, str(exc).splitlines()[0])
            lang = lang_of(request)
            return problem(503, i18n.translate(N_("Service unavailable"), lang),
                           i18n.translate(N_("the database cannot be reached right now; retry with the same Idempotency-Key"), lang),
                           kind="unavailable", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        lang = lang_of(request)
        return problem(500, i18n.translate(N_("Internal error"), lang),
                       i18n.translate(N_("the server failed; nothing was changed by this request"), lang), kind="internal")
