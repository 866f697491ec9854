"""Signing in and out, the buyers' signed links, the language switch, and the home page of each role."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aftersales import i18n
from aftersales.domain.messages import N_
from aftersales.service import users
from aftersales.service.errors import ServiceError, Unauthorized

from .deps import (
    LANG_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Csrf,
    Staff,
    ctx_of,
    current_user,
    explain,
    lang_of,
    new_login_csrf,
    render,
    see_other,
    settings_of,
)

router = APIRouter(prefix="/app", include_in_schema=False)
HOME = {"merchant": "/app/queue", "platform": "/app/platform", "buyer": "/app/orders"}
#: Said after every failed login, whatever the cause, so that it reveals none.
LOGIN_HINT = N_("Repeated failures make the next attempt wait longer: if you were refused several times, try again in a few minutes.")


def client_address(request: Request) -> str:
    """The client's address as the server sees it (behind a proxy, run uvicorn with --proxy-headers and
    --forwarded-allow-ips so that this is the client's, not the proxy's): logins are throttled per address."""
    return request.client.host if request.client is not None else "unknown"


def _safe_next(value: str | None) -> str | None:
    """Only paths of this workbench: never an open redirect."""
    if value and value.startswith("/app/") and not value.startswith("//") and "\\" not in value:
        return value
    return None


def _session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", path="/",
                        secure=request.url.scheme == "https", max_age=int(users.SESSION_TTL.total_seconds()))


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    user = current_user(request)
    if user is None:
        return RedirectResponse("/app/login", status_code=303)
    return RedirectResponse(HOME[user.side], status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_csrf()
    request.cookies[LOGIN_CSRF_COOKIE] = token  # so the form renders the same token the cookie carries
    response = render(request, "login.html", next=_safe_next(next))
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/app/login")
    return response


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, username: Annotated[str, Form(max_length=64)], password: Annotated[str, Form(max_length=200)],
          csrf_token: Annotated[str, Form(max_length=100)] = "", next: Annotated[str | None, Form(max_length=500)] = None) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or csrf_token != expected:
        return render(request, "login.html", status_code=403, next=_safe_next(next),
                      error=i18n.translate("The form expired; please try again.", lang_of(request)))
    try:
        token = users.login(ctx_of(request), username.strip(), password, client_address(request))
    except Unauthorized:
        # One answer for an unknown name, a wrong password and an attempt during a delay (service/users.py).
        lang = lang_of(request)
        return render(request, "login.html", status_code=401, next=_safe_next(next), username=username,
                      error=i18n.translate(users.GENERIC_LOGIN_ERROR, lang), hint=i18n.translate(LOGIN_HINT, lang))
    response = RedirectResponse(_safe_next(next) or "/app", status_code=303)
    _session_cookie(request, response, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/app/login")
    return response


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request) -> Response:
    users.logout(ctx_of(request), request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/app/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/account/password", response_class=HTMLResponse)
def password_page(request: Request, user: Staff) -> Response:
    """A staff user's own password: the current one, and the new one twice."""
    return render(request, "password.html", min_length=users.PASSWORD_LENGTH[0], max_length=users.PASSWORD_LENGTH[1])


@router.post("/account/password", response_class=HTMLResponse, dependencies=[Csrf])
def change_password(request: Request, user: Staff, current: Annotated[str, Form(max_length=200)],
                    new: Annotated[str, Form(max_length=200)], again: Annotated[str, Form(max_length=200)]) -> Response:
    """Checked as the sign-in is (users.change_password: the same throttles and the one refusal). Every session of
    the user ends, this one too: back to the sign-in, which says why."""
    lang = lang_of(request)

    def refused(status: int, error: str) -> Response:
        return render(request, "password.html", status_code=status, error=error,
                      min_length=users.PASSWORD_LENGTH[0], max_length=users.PASSWORD_LENGTH[1])

    if new != again:
        return refused(422, i18n.translate("The two new passwords differ; type the same one twice.", lang))
    try:
        users.change_own_password(ctx_of(request), user.id or "", current, new, client_address(request))
    except Unauthorized:
        return refused(401, i18n.translate("The current password is not right (or there were too many attempts: "
                                           "try again in a few minutes).", lang))
    except ServiceError as exc:
        return refused(exc.status, explain(request, exc))
    response = see_other("/app/login", flash=i18n.translate("Your password was changed and you were signed out "
                                                            "everywhere. Sign in with the new password.", lang))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/buyer/enter", response_class=HTMLResponse)
def buyer_enter(request: Request, token: Annotated[str, Query(max_length=500)]) -> Response:
    """The buyer's signed link: a session for that buyer, then their orders."""
    try:
        session = users.buyer_login(ctx_of(request), settings_of(request).secret_key, token)
    except Unauthorized as exc:
        # A way back from a bad link, in the reader's language: why, how to get a new one, and their orders if a
        # buyer session is still open in this browser.
        user = current_user(request)
        return render(request, "buyer/bad_link.html", status_code=401, reason=exc.detail_in(lang_of(request)),
                      days=users.BUYER_LINK_TTL.days, signed_in=user is not None and user.role == "buyer")
    response = RedirectResponse("/app/orders", status_code=303)
    _session_cookie(request, response, session)
    return response


@router.get("/lang")
def switch_language(request: Request, to: Annotated[str, Query(max_length=10)],
                    next: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    """Remember the reader's language (a preference cookie; nothing on the server changes)."""
    response = RedirectResponse(_safe_next(next) or "/app", status_code=303)
    if to in i18n.LANGUAGES:
        response.set_cookie(LANG_COOKIE, to, samesite="lax", path="/", max_age=365 * 86400)
    return response
