"""What every workbench page needs: templates in the reader's language, the signed-in user, CSRF, errors.

Pages call the same service functions as the API with the signed-in user's :class:`Principal`; they hold no rule
of their own. A domain refusal is shown with its rule id and its explanation in the reader's language.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from aftersales import i18n
from aftersales.config import Settings
from aftersales.domain.errors import DomainError
from aftersales.service import users
from aftersales.service.context import Context
from aftersales.service.errors import ServiceError, StaleVersion

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "as_session"
LOGIN_CSRF_COOKIE = "as_login_csrf"
LANG_COOKIE = "as_lang"
LANGS = (("zh_CN", "中文"), ("es", "Español"), ("en", "English"))

env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                  trim_blocks=True, lstrip_blocks=True)


class LoginRequired(Exception):
    """Raised by :func:`staff` / :func:`buyer` without a valid session: the app redirects to the login page."""

    def __init__(self, next_url: str, buyer: bool = False) -> None:
        self.next_url, self.buyer = next_url, buyer


class CsrfRejected(Exception):
    """A form post without the session's CSRF token: refused with 403, nothing done."""


class NotYours(Exception):
    """A page of another tenant or for another role: answered 404, like an unknown id (T2)."""


def ctx_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def lang_of(request: Request) -> str:
    """The reader's language: their choice (cookie), else the browser's (Accept-Language), else English."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in i18n.LANGUAGES:
        return chosen
    return i18n.negotiate(request.headers.get("accept-language"))


def current_user(request: Request) -> users.WebUser | None:
    if "web_user" in request.state._state:
        cached: users.WebUser | None = request.state.web_user
        return cached
    user = users.session(ctx_of(request), request.cookies.get(SESSION_COOKIE))
    request.state.web_user = user
    return user


def _next_url(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def staff(request: Request) -> users.WebUser:
    """A signed-in merchant or platform user."""
    user = current_user(request)
    if user is None or user.side == "buyer":
        raise LoginRequired(_next_url(request))
    return user


def merchant_staff(user: Annotated[users.WebUser, Depends(staff)]) -> users.WebUser:
    if user.side != "merchant":
        raise NotYours()
    return user


def platform_staff(user: Annotated[users.WebUser, Depends(staff)]) -> users.WebUser:
    if user.side != "platform":
        raise NotYours()
    return user


def buyer(request: Request) -> users.WebUser:
    """A buyer signed in through their link."""
    user = current_user(request)
    if user is None or user.side != "buyer":
        raise LoginRequired(_next_url(request), buyer=True)
    return user


async def csrf(request: Request) -> None:
    """Every state-changing request carries the session's CSRF token (form field ``csrf_token`` or the
    ``X-CSRF-Token`` header HTMX sends); without it the request is refused before anything runs."""
    user = current_user(request)
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if user is None or not sent or not hmac.compare_digest(sent, user.csrf_token):
        raise CsrfRejected()


Staff = Annotated[users.WebUser, Depends(staff)]
MerchantStaff = Annotated[users.WebUser, Depends(merchant_staff)]
PlatformStaff = Annotated[users.WebUser, Depends(platform_staff)]
Buyer = Annotated[users.WebUser, Depends(buyer)]
Csrf = Depends(csrf)


# --- rendering ------------------------------------------------------------------------------------------------
def helpers(request: Request) -> dict[str, Any]:
    """Template globals bound to the reader: ``_`` (gettext), money, instants, the user, the CSRF field."""
    lang = lang_of(request)
    tz = ctx_of(request).policy.timezone
    user = current_user(request)

    def _(text: str, **values: Any) -> str:
        out = i18n.translate(text, lang)
        return out.format(**values) if values else out

    def fen(value: int | None) -> str:
        return "—" if value is None else i18n.format_fen(int(value), lang)

    def when(value: str | datetime | None) -> str:
        if value is None:
            return "—"
        instant = datetime.fromisoformat(value) if isinstance(value, str) else value
        return i18n.format_instant(instant, lang, tz)

    def instants(text: str | None) -> str:
        """A text with instants in it (a replay's differences), each in the platform zone and the reader's language."""
        return i18n.format_instants(text or "", lang, tz)

    def csrf_field() -> Markup:
        token = user.csrf_token if user is not None else request.cookies.get(LOGIN_CSRF_COOKIE, "")
        return Markup('<input type="hidden" name="csrf_token" value="{}">').format(token)

    def shop_complaints() -> int:
        """K2: the complaints waiting for the signed-in shop's answer (the merchant's nav shows the count)."""
        from aftersales.service import shop_desk

        return shop_desk.complaints_awaiting(ctx_of(request), user.principal) if user is not None else 0

    return {"server_now": ctx_of(request).now().isoformat(), "_": _, "shop_complaints": shop_complaints, "fen": fen, "when": when,
            "instants": instants, "csrf_field": csrf_field,
            "user": user, "lang": lang, "langs": LANGS,
            "tz": tz, "request": request, "path": request.url.path, "quote": quote,
            "label": lambda kind, code: i18n.translate(i18n.LABELS[kind].get(code, code), lang) if code else "—"}


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page; a one-off notice left by :func:`see_other` is shown once."""
    flash = request.cookies.get("as_flash")
    context.setdefault("flash", unquote(flash) if flash else None)
    context.setdefault("flash_warning", bool(flash) and request.cookies.get("as_flash_kind") == "warning")
    html = env.get_template(template).render(**helpers(request), **context)
    response = HTMLResponse(html, status_code=status_code)
    if flash:
        response.delete_cookie("as_flash", path="/app")
        response.delete_cookie("as_flash_kind", path="/app")
    return response


def explain(request: Request, exc: Exception) -> str:
    """A refusal as the reader should see it: the rule id and the explanation in their language (S4)."""
    lang = lang_of(request)
    if isinstance(exc, DomainError):
        return f"[{exc.rule}] {i18n.render_error(exc, lang, ctx_of(request).policy.timezone)}"
    if isinstance(exc, StaleVersion):  # the page was out of date: plain words, not the API's If-Match text
        return exc.page_text(lang)
    if isinstance(exc, ServiceError):
        rule = f"[{exc.rule}] " if exc.rule else ""
        return rule + exc.detail_in(lang, ctx_of(request).policy.timezone)
    raise exc


def see_other(url: str, *, flash: str | None = None, warning: bool = False) -> RedirectResponse:
    """Post/Redirect/Get: after a successful form, back to a page (with a one-off notice; ``warning`` when what was
    asked was only partly done and the reader has something left to do)."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        response.set_cookie("as_flash", quote(flash), max_age=30, httponly=True, samesite="lax", path="/app")
        if warning:
            response.set_cookie("as_flash_kind", "warning", max_age=30, httponly=True, samesite="lax", path="/app")
    return response


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)
