"""Automatic actions that could not apply (RULEBOOK F2): the platform lists the parked ones and sends one back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from aftersales.service import deadlines

from .app import CtxDep, IdempotencyKey, Who
from .schemas import Problem

router = APIRouter(tags=["automatic actions"])
P = {"model": Problem}
ERRORS: dict[int | str, dict[str, Any]] = {401: P, 403: P, 404: P, 422: P}
TimerId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The parked action's id (from the stuck list).")]


class StuckOut(BaseModel):
    id: int = Field(description="The timer's id: what the retry names.")
    subject: str = Field(description="What the action is about: case, group, complaint or withdrawal.")
    subject_id: str
    order_id: str | None
    case_id: str | None = Field(description="The case, for a case's action.")
    merchant_id: str | None = Field(description="The case's merchant, for a case's action.")
    case_status: str | None = Field(description="The case's status now, for a case's action.")
    action: str = Field(description="The automatic action, e.g. auto_approve, return_timeout, advance_compensation.")
    rule: str = Field(description="The rule that sets the action (M1, M6, M7, P2, G4, K2, D1 …).")
    due_at: str
    attempts: int = Field(description="How many times it was tried.")
    error: str | None = Field(description="Why the last try failed: the refusing rule and its message, or the class "
                                          "of an unexpected error.")
    stuck_at: str = Field(description="When it was parked after its last try.")


class StuckPage(BaseModel):
    items: list[StuckOut]
    next_cursor: str | None
    total: int = Field(description="How many automatic actions are parked now (the F2 metric).")


class RetryOut(BaseModel):
    id: int
    parked: bool
    next_try_at: str | None


@router.get("/v1/automatic-actions/stuck", response_model=StuckPage, responses=ERRORS,
            summary="Automatic actions parked after their last try (F2)")
def list_stuck(ctx: CtxDep, who: Who,
               cursor: Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]*$",
                                                   description="next_cursor of the previous page.")] = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Any:
    """RULEBOOK F2: an automatic action that cannot apply is retried a bounded number of times with a growing wait,
    then parked here for platform agents; it never delays another case's deadline. Platform key only. A case's
    action whose case has since moved on (another stage) is stale and not listed."""
    return deadlines.list_stuck(ctx, who, cursor=int(cursor) if cursor else None, limit=limit)


@router.post("/v1/automatic-actions/{timer_id}/retry", response_model=RetryOut, responses=ERRORS,
             summary="Send a parked automatic action back to the worker (F2)")
def retry_stuck(timer_id: TimerId, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """Un-park the action: the worker (or the next `POST /v1/clock/advance`) tries it on its next pass. Its tries
    are kept, so one more failure parks it again. Platform key only; an id that is not parked answers 404."""
    return deadlines.retry_stuck(ctx, who, timer_id)
