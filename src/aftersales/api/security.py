"""Safe defaults of the HTTP application (docs/SECURITY.md): the API documentation served from packaged files (no
CDN), a correct ``Allow`` on ``OPTIONS`` and 405 answers, and — in production — HSTS and Secure cookies."""

from __future__ import annotations

import logging
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aftersales.config import Settings

log = logging.getLogger("aftersales.security")
#: Swagger UI and ReDoc as the ``fastapi-offline`` package ships them (pinned in requirements.lock).
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_STATIC = "/docs-static"
#: The documentation pages run the packaged scripts (and FastAPI's small inline start-up script), fetch only
#: /openapi.json and load nothing from another origin.
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; worker-src 'self' blob:; font-src 'self' data:; base-uri 'none'; frame-ancestors 'none'")
#: Two years, subdomains included: what an HTTPS-only deployment sends (production only).
HSTS = "max-age=63072000; includeSubDomains"


def install(app: FastAPI, settings: Settings) -> None:
    """Documentation pages, the Allow header, production headers; and say out loud what is unsafe in ``settings``."""
    install_docs(app)
    for warning in settings.warnings():
        log.warning("insecure configuration: %s", warning)
    if settings.env == "production":
        app.add_middleware(ProductionHeaders)
    app.add_middleware(AllowHeader, app_routes=app)


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from the packaged files (the application is made with
    ``docs_url=None, redoc_url=None`` so that FastAPI's CDN pages are never served)."""
    app.mount(DOCS_STATIC, StaticFiles(directory=DOCS_ASSETS), name="docs-static")
    headers = {"Content-Security-Policy": DOCS_CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url=str(app.openapi_url), title=f"{app.title} - Swagger UI",
                                   swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js", swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_STATIC}/favicon.png")
        page.headers.update(headers)
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(openapi_url=str(app.openapi_url), title=f"{app.title} - ReDoc", redoc_js_url=f"{DOCS_STATIC}/redoc.standalone.js",
                              redoc_favicon_url=f"{DOCS_STATIC}/favicon.png", with_google_fonts=False)
        page.headers.update(headers)
        return page


PROBED = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: FastAPI, scope: Scope) -> set[str]:
    """Every method some route of ``app`` answers at this path (empty: no route has the path): each method is asked
    of the router as a request would be (routes of included routers match as a whole)."""
    methods: set[str] = set()
    for method in PROBED:
        probe = {**scope, "method": method}
        for route in app.router.routes:
            if route.matches(probe)[0] is Match.FULL:
                # A mount (static files) matches whatever the method and serves only GET and HEAD.
                methods |= {"GET", "HEAD"} if isinstance(route, Mount) else {method}
                break
    return methods


class AllowHeader:
    """``OPTIONS`` answers 204 with ``Allow`` listing every method of the path (RFC 9110 §9.3.7), and a 405 lists
    them all too — Starlette's 405 names only the methods of the first route that matched the path."""

    def __init__(self, app: ASGIApp, app_routes: FastAPI) -> None:
        self.app = app
        self.routes = app_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] == "OPTIONS":
            methods = allowed_methods(self.routes, scope)
            if methods:
                allow = ", ".join(sorted(methods | {"OPTIONS"})).encode()
                await send({"type": "http.response.start", "status": 204,
                            "headers": [(b"allow", allow), (b"cache-control", b"no-store"), (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return None

        request_scope = dict(scope)  # routing rewrites the scope (a mount's root_path): probe the request as it came

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allow = ", ".join(sorted(allowed_methods(self.routes, request_scope) | {"OPTIONS"})).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"] + [(b"allow", allow)]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_allow)


class ProductionHeaders:
    """Production only: ``Strict-Transport-Security`` on every answer, and every cookie ``Secure`` (the session, the
    CSRF and language cookies), whatever scheme the proxy in front reported."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = []
                for key, value in message.get("headers", []):
                    if key.lower() == b"set-cookie" and b"secure" not in [p.strip().lower() for p in value.split(b";")]:
                        value += b"; Secure"
                    if key.lower() != b"strict-transport-security":
                        headers.append((key, value))
                headers.append((b"strict-transport-security", HSTS.encode()))
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_secure)
