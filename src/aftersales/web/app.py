"""The workbench (issue 6): server-rendered pages under ``/app`` on the same service functions as the API.

Merchant staff work their queue and cases, platform agents their console, buyers their orders; each module adds its
routes to the application here. Security: HttpOnly SameSite session cookies, a CSRF token on every form, strict
security headers, tenant checks done by the service layer exactly as for the API (another tenant's page is 404).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aftersales import i18n
from aftersales.api.downloads import evidence_response, evidence_store
from aftersales.service import complaints, evidence, messages
from aftersales.service.context import Principal
from aftersales.service.errors import NotFound

from .deps import HERE, CsrfRejected, LoginRequired, NotYours, ctx_of, lang_of, render

#: Content-Security-Policy of every page: scripts and styles only from this server (HTMX is vendored).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def install(app: FastAPI) -> None:
    """Mount the static files, add the page routers and the handlers that turn refusals into pages."""
    from . import auth

    app.mount("/app/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(auth.router)

    @app.get("/", include_in_schema=False)
    def _root() -> Response:
        """The server's root leads to the workbench (which sends each user to their home, or to sign in)."""
        return RedirectResponse("/app", status_code=303)

    for module in _page_modules():
        app.include_router(module.router)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if exc.buyer:
            return render(request, "message.html", status_code=401, title=i18n.translate("Sign in", lang_of(request)),
                          message=i18n.translate("Open the link your marketplace app gave you to see your orders.",
                                                 lang_of(request)))
        return RedirectResponse(f"/app/login?next={quote(exc.next_url)}", status_code=303)

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, exc: CsrfRejected) -> Response:
        return render(request, "message.html", status_code=403, title=i18n.translate("Refused", lang_of(request)),
                      message=i18n.translate("This form is no longer valid (missing or wrong security token). "
                                             "Reload the page and try again.", lang_of(request)))

    @app.exception_handler(NotYours)
    async def _not_yours(request: Request, exc: NotYours) -> Response:
        return _not_found(request)

    app.add_middleware(PageHeaders)


class PageHeaders:
    """Security headers on the workbench's responses (pure ASGI: the API's requests pass straight through)."""

    HEADERS = ((b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
               (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"))

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/app"):
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.HEADERS if k not in present]
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if b"text/html" in content_type and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _not_found(request: Request) -> Response:
    return render(request, "message.html", status_code=404, title=i18n.translate("Not found", lang_of(request)),
                  message=i18n.translate("There is nothing here for you.", lang_of(request)))


def not_found_page(request: Request, exc: NotFound) -> Response:
    """Pages answer a service NotFound (unknown id, or another tenant's) with the same 404 page."""
    return _not_found(request)


def evidence_file(request: Request, principal: Principal, subject_id: str, evidence_id: str, *,
                  kind: str = "case") -> Response:
    """An evidence file of a case (or complaint) the signed-in user may see, as a download (the API's response); else
    the 404 page."""
    try:
        meta, data = evidence.download(ctx_of(request), evidence_store(request), principal, kind, subject_id, evidence_id)
    except NotFound as exc:
        return not_found_page(request, exc)
    return evidence_response(meta, data)


#: How much of a complaint's record its page shows, the same on every side's page.
COMPLAINT_EVENTS, COMPLAINT_MESSAGES, COMPLAINT_EVIDENCE = 200, 500, 200


def complaint_record(request: Request, principal: Principal, complaint_id: str) -> dict[str, Any]:
    """A complaint as ``principal`` may see it, for its page (buyer, shop or platform): the complaint, its timeline,
    messages and evidence. Raises NotFound when it is not theirs (each page answers with its 404 page)."""
    ctx = ctx_of(request)
    return {"complaint": complaints.get(ctx, principal, complaint_id),
            "events": complaints.events(ctx, principal, complaint_id, cursor=None, limit=COMPLAINT_EVENTS)["items"],
            "messages": messages.list_messages(ctx, principal, "complaint", complaint_id, cursor=None,
                                               limit=COMPLAINT_MESSAGES)["items"],
            "evidence": evidence.list_evidence(ctx, principal, "complaint", complaint_id, cursor=None,
                                               limit=COMPLAINT_EVIDENCE)["items"]}


def _page_modules() -> list[Any]:
    """The page modules, each with a ``router``."""
    from . import buyer, insights, merchant, platform

    return [merchant, buyer, platform, insights]
