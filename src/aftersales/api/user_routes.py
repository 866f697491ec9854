"""Workbench accounts through the API: staff users (platform only) and buyers' portal links."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, StringConstraints

from aftersales.service import users

from .app import CtxDep, IdempotencyKey, Who
from .schemas import Id, Problem, ShortText, Strict

router = APIRouter(tags=["workbench"])
P = {"model": Problem}
ERRORS: dict[int | str, dict[str, Any]] = {401: P, 403: P, 404: P, 409: P, 422: P}


class UserIn(Strict):
    username: Annotated[str, StringConstraints(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
    password: Annotated[str, StringConstraints(min_length=10, max_length=200)]
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


@router.post("/v1/buyer-links", status_code=201, response_model=BuyerLinkOut, responses=ERRORS)
def buyer_link(body: BuyerLinkIn, request: Request, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """The operator's app asks for a signed link that takes a buyer into their portal."""
    return users.create_buyer_link(ctx, who, request.app.state.settings.secret_key, body.buyer_id)
