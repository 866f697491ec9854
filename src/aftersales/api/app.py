"""The FastAPI application, built by a factory (never at import time)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.telemetry import TelemetryConfig
from starlette.concurrency import run_in_threadpool
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp

from aftersales.config import Settings
from aftersales.service.context import Clock, Context, Principal
from aftersales.service.egress import Egress
from aftersales.service.setup import authenticate, hash_key
from aftersales.store.db import make_engine

from . import problems
from .hot import HotRoutes
from .middleware import UPLOAD_OVERHEAD, BodyLimit, Idempotency, bind_answer


def build_context(settings: Settings) -> Context:
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size, schema=settings.database_schema)
    return Context(engine=engine, policy=settings.load_policy(),
                   clock=Clock(settings.clock == "manual", settings.clock_start_utc if settings.clock == "manual" else None),
                   egress=Egress(allow_private=settings.webhook_allow_private, https_only=settings.env == "production",
                                 max_subscriptions=settings.webhook_max_subscriptions))


def telemetry() -> TelemetryConfig | None:
    """FastAPI's native OpenTelemetry: off (it looked up the global providers on every request, ~2 % of a request's
    CPU, for a service that configures none), unless FastAPI's own ``FASTAPI_OTEL_AUTO_CONFIGURE=true`` asks for it —
    then FastAPI's defaults (spans, metrics and logs to the configured or environment-made providers)."""
    if os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return None
    return {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


class Api(FastAPI):
    """FastAPI, with the dispatch table of the lean routes (:class:`HotRoutes`) between Starlette's exception
    handling and the router: a hot route's errors meet the same handlers, everything else FastAPI's path."""

    #: Off: every request takes FastAPI's own path (the tests compare both paths' answers).
    hot_routes = True

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if not self.hot_routes:
            return stack
        layer: Any = stack
        while layer is not None and not isinstance(layer, ExceptionMiddleware):
            layer = getattr(layer, "app", None)
        if layer is None:  # a FastAPI whose stack has no ExceptionMiddleware: no table (FastAPI's path is complete)
            return stack
        layer.app = HotRoutes(layer.app, self)
        return stack


def create_app(settings: Settings | None = None, ctx: Context | None = None) -> FastAPI:
    settings = settings or Settings()
    ctx = ctx or build_context(settings)
    app = Api(
        telemetry=telemetry(),
        title="aftersales",
        version="1.0.0",
        description="After-sales engine for group-buying marketplaces. Rule ids refer to RULEBOOK.md.",
        openapi_url="/openapi.json",
        docs_url=None,  # /docs and /redoc come from packaged files, never a CDN (api/security.py)
        redoc_url=None,
        dependencies=[Depends(bind_answer)],  # Idempotency-Key: a commit records the route's answer with its effect
    )
    app.state.ctx = ctx
    app.state.settings = settings
    app.state.principals = PrincipalCache()
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problems.document(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    problems.install(app, ctx.policy.timezone)
    from .address_routes import router as address_router
    from .automatic_action_routes import router as automatic_action_router
    from .complaint_routes import install as install_complaints
    from .complaint_routes import router as complaint_router
    from .deposit_routes import router as deposit_router
    from .ledger_routes import router as ledger_router
    from .record_routes import router as record_router
    from .routes import router
    from .webhook_routes import router as webhook_router

    app.include_router(router)
    app.include_router(webhook_router)
    app.include_router(ledger_router)
    app.include_router(record_router)
    app.include_router(deposit_router)
    app.include_router(address_router)
    app.include_router(automatic_action_router)
    from .user_routes import router as user_router

    app.include_router(user_router)
    from .credential_routes import router as credential_router

    app.include_router(credential_router)
    from aftersales.web.app import install as install_workbench

    install_workbench(app)
    app.include_router(complaint_router)
    install_complaints(app)  # K1: the phone-closed problem names the next opening
    upload_limit = settings.max_evidence_bytes + UPLOAD_OVERHEAD  # D3 evidence uploads only (see middleware)
    app.add_middleware(Idempotency, ctx=ctx, limit=settings.max_body_bytes, upload_limit=upload_limit, authenticate=resolve_key,
                       in_flight=timedelta(seconds=settings.idempotency_in_flight_seconds),
                       digest_key=settings.secret_key.encode())
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, upload_limit=upload_limit)
    from .security import install as install_security

    install_security(app, settings)  # outermost: OPTIONS/Allow, HSTS and Secure cookies in production
    return app


#: How long a worker process trusts an API key it has resolved: a key revoked in the database (``revoked_at``) is
#: refused by every process within this many seconds — at once by the process that revoked it (``clear``).
#: Unknown and revoked keys are never cached.
API_KEY_CACHE_SECONDS = 5.0


class PrincipalCache:
    """API key (by its SHA-256, as stored) → principal, per process, for ``ttl`` seconds: the key lookup is a
    database round trip (and a pool checkout) that every request would otherwise pay before its own transaction."""

    def __init__(self, ttl: float = API_KEY_CACHE_SECONDS, size: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, digest: str) -> Principal | None:
        hit = self._entries.get(digest)
        if hit is None:
            return None
        if hit[0] <= self.clock():
            self._entries.pop(digest, None)
            return None
        return hit[1]

    def put(self, digest: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[digest] = (self.clock() + self.ttl, principal)

    def clear(self) -> None:
        """Forget every key: a key was revoked through this process (the others see it within ``ttl``)."""
        self._entries.clear()


# The dependencies below are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in the thread pool,
# a thread hop per dependency per request; these do no I/O (but an uncached key lookup, sent to the pool).
async def get_ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


#: Declares the bearer scheme in /openapi.json (API.md: `Authorization: Bearer <api key>`); a missing or
#: non-bearer header gives ``None`` here and 401 from ``authenticate``, as a problem+json.
_bearer = HTTPBearer(auto_error=False, description="An API key: platform, merchant:<id> or buyer:<id>.")


async def resolve_key(state: Any, key: str | None) -> Principal:
    """The principal of an API key, through this process's cache (``state``: the application's); 401 otherwise.
    The one place a request's key is resolved: the routes (``Who``) and the Idempotency-Key middleware use it."""
    settings: Settings = state.settings
    ctx: Context = state.ctx
    if not key:
        return authenticate(ctx, key, settings.bootstrap_platform_key)  # 401, no I/O
    cache: PrincipalCache = state.principals
    digest = hash_key(key)
    principal = cache.get(digest)
    if principal is None:
        principal = await run_in_threadpool(authenticate, ctx, key, settings.bootstrap_platform_key)
        cache.put(digest, principal)
    return principal


async def get_principal(request: Request,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None) -> Principal:
    key = credentials.credentials.strip() if credentials is not None else None
    return await resolve_key(request.app.state, key)


async def get_lang(request: Request) -> str:
    return problems.lang_of(request)


IF_MATCH = r'^(W/)?"?[0-9]{1,12}"?$'


async def get_if_match(if_match: Annotated[str | None, Header(pattern=IF_MATCH, description="The resource's `version` (API.md); stale: 409.")] = None,
                 ) -> int | None:
    if if_match is None:
        return None
    value = if_match.strip().strip('"').removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 12:
        from aftersales.service.errors import Invalid

        raise Invalid("If-Match must be the integer version of the resource")
    return int(value)


CtxDep = Annotated[Context, Depends(get_ctx)]
Who = Annotated[Principal, Depends(get_principal)]
Lang = Annotated[str, Depends(get_lang)]
IfMatch = Annotated[int | None, Depends(get_if_match)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                              description="Same key + same body replays the first response (API.md).")]

__all__ = ["Any", "CtxDep", "IdempotencyKey", "IfMatch", "Lang", "Who", "create_app"]
