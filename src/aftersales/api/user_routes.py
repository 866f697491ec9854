"""Workbench accounts through the API: staff users (created, listed, disabled and enabled by the platform; a merchant
lists its own shop's), their passwords (reset by the platform or their shop; changed by themselves) and buyers'
portal links."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, StringConstraints

from aftersales.service import users

from .app import CtxDep, IdempotencyKey, Who
from .schemas import ID_PATTERN, Id, Problem, ShortText, Strict

router = APIRouter(tags=["workbench"])
P = {"model": Problem}
ERRORS: dict[int | str, dict[str, Any]] = {401: P, 403: P, 404: P, 409: P, 422: P}
#: A password a person chooses: the bounds service/users.py enforces for every caller (the CLI too).
NewPassword = Annotated[str, StringConstraints(min_length=users.PASSWORD_LENGTH[0], max_length=users.PASSWORD_LENGTH[1])]


class UserIn(Strict):
    username: Annotated[str, StringConstraints(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
    password: NewPassword
    role: Literal["merchant_agent", "merchant_admin", "platform_agent"]
    merchant_id: Id | None = None
    display_name: ShortText | None = None


class UserOut(BaseModel):
    id: str
    username: str
    display_name: str
    role: str
    merchant_id: str | None
    created_at: str
    #: Set while the user is disabled: they cannot sign in, and their sessions ended when they were disabled.
    disabled_at: str | None = None


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None


UserId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]


class UserPasswordOut(UserOut):
    #: The new password, shown on this answer only (only its argon2id hash is kept). Never stored with an
    #: Idempotency-Key: a replay has it null, with `redacted` (README "HTTP API").
    password: str | None


class PasswordChangeIn(Strict):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=users.PASSWORD_LENGTH[1])]
    new_password: NewPassword


class BuyerLinkIn(Strict):
    buyer_id: Id


class BuyerLinkOut(BaseModel):
    buyer_id: str
    #: Relative to this server: the buyer opens it to reach their portal (signed, expires).
    path: str
    expires_at: str


@router.post("/v1/users", status_code=201, response_model=UserOut, responses=ERRORS)
def create_user(body: UserIn, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """A staff user of the workbench: a merchant's agent or admin, or a platform agent (password hashed, argon2id)."""
    return users.create_user(ctx, who, username=body.username, password=body.password, role=body.role,
                             merchant_id=body.merchant_id, display_name=body.display_name)


@router.get("/v1/users", response_model=UserPage, responses=ERRORS)
def list_users(ctx: CtxDep, who: Who, merchant_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
               cursor: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.@-]*$")] = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Any:
    """Staff users by username, never their passwords: the platform's every user (or one shop's, `merchant_id`); a
    merchant's its own shop's staff (the ids `POST /v1/cases/{id}/assignee` takes; another shop: an empty page)."""
    return users.list_users(ctx, who, cursor=cursor or None, limit=limit, merchant_id=merchant_id)


@router.post("/v1/users/{user_id}/disable", response_model=UserOut, responses=ERRORS)
def disable_user(user_id: UserId, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """Platform: the user can no longer sign in, and every session of theirs ends now (their next request is signed
    out). Disabling a disabled user changes nothing."""
    return users.set_disabled(ctx, who, user_id, disabled=True)


@router.post("/v1/users/{user_id}/enable", response_model=UserOut, responses=ERRORS)
def enable_user(user_id: UserId, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """Platform: a disabled user may sign in again (with their password; the ended sessions stay ended)."""
    return users.set_disabled(ctx, who, user_id, disabled=False)


@router.post("/v1/users/{user_id}/reset-password", response_model=UserPasswordOut, responses=ERRORS)
def reset_password(user_id: UserId, response: Response, ctx: CtxDep, who: Who,
                   idempotency_key: IdempotencyKey = None) -> Any:
    """Platform (any staff user), or a merchant (its own shop's staff; another shop's user: 404): a new random
    password, returned once in `password`, and every session of the user ends now. The same service as the
    console's Users page. With Idempotency-Key, a replay answers `password: null` (it was never stored)."""
    response.headers["cache-control"] = "no-store"
    return users.reset_password(ctx, who, user_id)


@router.post("/v1/password-changes", response_model=UserOut, responses={401: P, 422: P})
def change_password(body: PasswordChangeIn, request: Request, ctx: CtxDep) -> Any:
    """A staff user changes their own password, proven by the current one (no API key: the password is the
    credential). Checked as the workbench's sign-in is: the same throttle per address and username, and one answer
    (401) for a wrong name, a wrong password or a disabled user. Every session of theirs ends. Refuses
    `Idempotency-Key` (422): the request carries passwords, which no record keeps, not even as a digest."""
    address = request.client.host if request.client is not None else "unknown"
    return users.change_password(ctx, body.username, body.current_password, body.new_password, address)


@router.post("/v1/buyer-links", status_code=201, response_model=BuyerLinkOut, responses=ERRORS)
def buyer_link(body: BuyerLinkIn, request: Request, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """The operator's app asks for a signed link that takes a buyer into their portal."""
    return users.create_buyer_link(ctx, who, request.app.state.settings.secret_key, body.buyer_id)
