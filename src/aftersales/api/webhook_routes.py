"""Webhook subscriptions and their delivery log (issue: deadlines and effects; SEC1/SEC2: where and how much)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field, StringConstraints

from aftersales.service import webhooks
from aftersales.service.cases import numeric_cursor

from .app import CtxDep, IdempotencyKey, Who
from .schemas import ID_PATTERN, NO_NUL, Id, Problem, Strict

router = APIRouter(tags=["webhooks"])
P = {"model": Problem}
ERRORS: dict[int | str, dict[str, Any]] = {401: P, 403: P, 404: P, 409: P, 413: P, 422: P}
EventType = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"^(case|order|group)\.([a-z_]+|\*)$")]
WebhookId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]


class WebhookIn(Strict):
    #: SEC1: http(s); its host must resolve to public addresses only (https only in production).
    url: Annotated[str, StringConstraints(min_length=8, max_length=2000, pattern=NO_NUL)]
    #: e.g. ["case.opened", "case.closed", "group.*"]; empty: every event. SEC2: known types only, each once.
    event_types: list[EventType] = Field(default=[], max_length=len(webhooks.EVENT_TYPES))
    #: Platform keys: subscribe to one merchant's events, or (null) to every merchant's.
    merchant_id: Id | None = None


class WebhookView(BaseModel):
    id: str
    merchant_id: str | None
    url: str
    event_types: list[str]
    #: False once disabled: its deliveries failed through the whole retry schedule (``disabled_reason:
    #: delivery_failed``); ``POST /v1/webhooks/{id}/enable`` resumes it.
    active: bool
    created_at: str
    disabled_at: str | None = None
    disabled_reason: str | None = None


class WebhookOut(WebhookView):
    #: Shown once, when the subscription is created.
    secret: str


class WebhookPage(BaseModel):
    items: list[WebhookView]
    next_cursor: str | None


class EventTypes(BaseModel):
    items: list[str]


class Attempt(BaseModel):
    at: str
    status_code: int | None
    #: timeout, connection_error, tls_error, http_3xx, http_4xx, http_5xx, http_other or refused_address (SEC1).
    error: str | None
    duration_ms: int


class Delivery(BaseModel):
    id: int
    event_id: int
    event_type: str
    #: pending, delivered, or failed (the retry schedule ran out).
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
    """Subscribe; the signing secret (Standard Webhooks, ``whsec_…``) is shown once. 422 rule SEC1 for a URL whose
    host resolves to a loopback, private, link-local or metadata address; SEC2 beyond the subscriptions a merchant may
    keep, or for an unknown or repeated event type."""
    return webhooks.create_subscription(ctx, who, url=body.url, event_types=body.event_types, merchant_id=body.merchant_id)


@router.get("/v1/webhooks", response_model=WebhookPage, responses=ERRORS)
def list_webhooks(ctx: CtxDep, who: Who, cursor: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]*$")] = None,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Any:
    """The caller's subscriptions (the platform: all), with ``disabled_at`` / ``disabled_reason`` when stopped."""
    return webhooks.list_subscriptions(ctx, who, cursor=cursor, limit=limit)


@router.get("/v1/webhooks/event-types", response_model=EventTypes, responses=ERRORS)
def webhook_event_types(who: Who) -> Any:
    """The event types a subscription may name (SEC2)."""
    return {"items": sorted(webhooks.EVENT_TYPES)}


@router.get("/v1/webhooks/{webhook_id}", response_model=WebhookView, responses=ERRORS)
def get_webhook(webhook_id: WebhookId, ctx: CtxDep, who: Who) -> Any:
    """One webhook subscription and its state."""
    return webhooks.get_subscription(ctx, who, webhook_id)


@router.delete("/v1/webhooks/{webhook_id}", status_code=204, response_class=Response, responses=ERRORS)
def delete_webhook(webhook_id: WebhookId, ctx: CtxDep, who: Who) -> Response:
    """Stop the subscription for good (its delivery log stays); frees its place under the SEC2 limit."""
    webhooks.delete_subscription(ctx, who, webhook_id)
    return Response(status_code=204)


@router.post("/v1/webhooks/{webhook_id}/enable", response_model=WebhookView, responses=ERRORS)
def enable_webhook(webhook_id: WebhookId, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """Resume a subscription disabled after its deliveries failed (its URL is checked again, SEC1); 409 if active."""
    return webhooks.enable_subscription(ctx, who, webhook_id)


@router.get("/v1/webhooks/{webhook_id}/deliveries", response_model=DeliveryPage, responses=ERRORS)
def webhook_deliveries(webhook_id: WebhookId, ctx: CtxDep, who: Who,
                       cursor: Annotated[str | None, Query(max_length=20)] = None,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Any:
    """Every delivery of the subscription, newest first, with each attempt's status code or error class."""
    return webhooks.deliveries(ctx, who, webhook_id, after=numeric_cursor(cursor), limit=limit)
