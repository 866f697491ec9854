"""Webhook subscriptions and their delivery log (issue: deadlines and effects)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, StringConstraints

from aftersales.service import webhooks
from aftersales.service.errors import Invalid

from .app import CtxDep, IdempotencyKey, Who
from .schemas import ID_PATTERN, NO_NUL, Id, Problem, Strict

router = APIRouter(tags=["webhooks"])
P = {"model": Problem}
ERRORS: dict[int | str, dict[str, Any]] = {401: P, 403: P, 404: P, 409: P, 413: P, 422: P}
EventType = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"^(case|order|group)\.([a-z_]+|\*)$")]


class WebhookIn(Strict):
    url: Annotated[str, StringConstraints(min_length=8, max_length=2000, pattern=NO_NUL)]
    #: e.g. ["case.opened", "case.closed", "group.*"]; empty: every event.
    event_types: list[EventType] = []
    #: Platform keys: subscribe to one merchant's events, or (null) to every merchant's.
    merchant_id: Id | None = None


class WebhookOut(BaseModel):
    id: str
    merchant_id: str | None
    url: str
    event_types: list[str]
    active: bool
    secret: str
    created_at: str


class Attempt(BaseModel):
    at: str
    status_code: int | None
    error: str | None
    duration_ms: int


class Delivery(BaseModel):
    id: int
    event_id: int
    event_type: str
    status: str
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None
    log: list[Attempt]


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None


@router.post("/v1/webhooks", status_code=201, response_model=WebhookOut, responses=ERRORS)
def create_webhook(body: WebhookIn, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """Subscribe; the signing secret (Standard Webhooks, ``whsec_…``) is shown once."""
    return webhooks.create_subscription(ctx, who, url=body.url, event_types=body.event_types, merchant_id=body.merchant_id)


@router.get("/v1/webhooks/{webhook_id}/deliveries", response_model=DeliveryPage, responses=ERRORS)
def webhook_deliveries(webhook_id: Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)], ctx: CtxDep, who: Who,
                       cursor: Annotated[str | None, Query(max_length=20)] = None,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Any:
    """Every delivery of the subscription, newest first, with each attempt's status code or error."""
    if cursor is not None and not cursor.isdigit():
        raise Invalid("cursor is not one this server issued")
    return webhooks.deliveries(ctx, who, webhook_id, after=int(cursor) if cursor else None, limit=limit)
