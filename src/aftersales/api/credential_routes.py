"""Credentials through the API: list, revoke and rotate API keys; list and revoke staff sessions (API.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel

from aftersales.service import credentials

from .app import CtxDep, IdempotencyKey, Who
from .schemas import ID_PATTERN, ApiKey, Problem

router = APIRouter(tags=["credentials"])
P = {"model": Problem}
ERRORS: dict[int | str, dict[str, Any]] = {401: P, 403: P, 404: P, 409: P, 422: P}
KeyId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
SessionId = Annotated[str, Path(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")]
Cursor = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")]
Limit = Annotated[int, Query(ge=1, le=200)]


class ApiKeyInfo(BaseModel):
    """A key as listed: never the key, nor its hash."""

    id: str
    role: str
    subject_id: str | None
    label: str | None
    created_at: str
    revoked_at: str | None
    revoked: bool


class ApiKeyPage(BaseModel):
    items: list[ApiKeyInfo]
    next_cursor: str | None


class RotatedKey(ApiKey):
    #: The key this one replaces, revoked in the same transaction.
    replaces: str


class SessionInfo(BaseModel):
    #: The sha256 of the session cookie, as the database keeps it (it signs nobody in).
    id: str
    user_id: str
    username: str
    role: str
    merchant_id: str | None
    created_at: str
    expires_at: str


class SessionPage(BaseModel):
    items: list[SessionInfo]
    next_cursor: str | None


@router.get("/v1/api-keys", response_model=ApiKeyPage, responses=ERRORS)
def list_api_keys(ctx: CtxDep, who: Who, role: Literal["platform", "merchant", "buyer"] | None = None,
                  subject_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
                  include_revoked: bool = True, cursor: Cursor = None, limit: Limit = 50) -> Any:
    """Keys by id (platform: every key; a merchant: its own). A revoked key stays listed with ``revoked_at``."""
    return credentials.list_api_keys(ctx, who, role=role, subject_id=subject_id, include_revoked=include_revoked,
                                     cursor=cursor, limit=limit)


@router.post("/v1/api-keys/{key_id}/revoke", response_model=ApiKeyInfo, responses=ERRORS)
def revoke_api_key(key_id: KeyId, ctx: CtxDep, who: Who, request: Request, idempotency_key: IdempotencyKey = None) -> Any:
    """Revoke a key (platform: any; a merchant: its own). This server refuses it at once, every other server process
    within 5 s (its key cache)."""
    try:
        return credentials.revoke_api_key(ctx, who, key_id)
    finally:
        request.app.state.principals.clear()  # this process forgets every key it resolved: the revoked one among them


@router.post("/v1/api-keys/{key_id}/rotate", status_code=201, response_model=RotatedKey, responses=ERRORS)
def rotate_api_key(key_id: KeyId, ctx: CtxDep, who: Who, request: Request, idempotency_key: IdempotencyKey = None) -> Any:
    """A new key (shown once) for the same role, subject and label; the old one is revoked at once (by every other
    server process within 5 s)."""
    try:
        return credentials.rotate_api_key(ctx, who, key_id)
    finally:
        request.app.state.principals.clear()


@router.get("/v1/sessions", response_model=SessionPage, responses=ERRORS)
def list_sessions(ctx: CtxDep, who: Who, user_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
                  cursor: Cursor = None, limit: Limit = 50) -> Any:
    """Unexpired workbench sessions of staff users (platform only)."""
    return credentials.list_sessions(ctx, who, user_id=user_id, cursor=cursor, limit=limit)


@router.post("/v1/sessions/{session_id}/revoke", status_code=204, response_class=Response, responses=ERRORS)
def revoke_session(session_id: SessionId, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Response:
    """Sign a staff session out now (platform only)."""
    credentials.revoke_session(ctx, who, session_id)
    return Response(status_code=204)

