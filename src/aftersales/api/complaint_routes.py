"""Complaints (K1, K2): the published channels, filing, the platform's and the merchant's acts, reads."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints

from aftersales import i18n
from aftersales.domain import complaints as dc
from aftersales.service import complaints as service

from . import problems
from .app import CtxDep, IdempotencyKey, IfMatch, Who
from .schemas import ID_PATTERN, NO_NUL, Fen, Id, Problem, Strict

router = APIRouter(tags=["complaints"])
P = {"model": Problem}
ERRORS: dict[int | str, dict[str, Any]] = {401: P, 403: P, 404: P, 409: P, 413: P, 422: P}
PathId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
Cursor = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]*$")]
Limit = Annotated[int, Query(ge=1, le=200)]
Words = Annotated[str, StringConstraints(min_length=1, max_length=dc.MAX_TEXT, pattern=NO_NUL)]


# --- requests ---------------------------------------------------------------------------------------------
class ComplaintIn(Strict):
    """K2: about an order, a case or a shop (at least one; the shop is derived from the order or case)."""

    order_id: Id | None = None
    case_id: Id | None = None
    merchant_id: Id | None = None
    #: K1: a platform agent recording a complaint for a buyer names it only when no order or case does (the buyer of
    #: the order or case named is taken; a different one is refused, 422).
    buyer_id: Id | None = None
    channel: dc.Channel
    category: dc.Category
    description: Words


class AcceptIn(Strict):
    pass


class RejectIn(Strict):
    reason: Words


class RespondIn(Strict):
    answer: Words


class RemedyIn(Strict):
    type: dc.RemedyType
    amount_fen: Fen


class ResolveIn(Strict):
    outcome: dc.Outcome
    rationale: Words
    remedies: Annotated[list[RemedyIn], Field(max_length=len(dc.RemedyType))] = []


BODIES: dict[dc.Verb, type[Strict]] = {dc.Verb.ACCEPT: AcceptIn, dc.Verb.REJECT: RejectIn,
                                       dc.Verb.RESPOND: RespondIn, dc.Verb.RESOLVE: ResolveIn}


# --- responses --------------------------------------------------------------------------------------------
class PhoneHoursOut(BaseModel):
    opens: str
    closes: str
    timezone: str
    open_now: bool
    closes_at: str | None
    next_opening_at: str


class ChannelOut(BaseModel):
    code: dc.Channel
    name: str
    recorded_by: str
    always_open: bool
    hours: PhoneHoursOut | None


class ChannelsOut(BaseModel):
    channels: list[ChannelOut]
    timezone: str
    now: str
    rule: str


class FlagOut(BaseModel):
    rule: str
    kind: str
    at: str


class RemedyOut(BaseModel):
    type: dc.RemedyType
    amount_fen: int


class ComplaintDeadline(BaseModel):
    action: dc.Verb
    by: str
    due_at: str
    rule: str
    overdue: bool


class ComplaintOut(BaseModel):
    id: str
    status: dc.ComplaintStatus
    channel: dc.Channel
    category: dc.Category
    description: str
    order_id: str | None
    case_id: str | None
    merchant_id: str
    buyer_id: str
    filed_by: str
    created_at: str
    accepted_at: str | None
    answered_at: str | None
    closed_at: str | None
    response: str | None
    outcome: dc.Outcome | None
    rationale: str | None
    remedies: list[RemedyOut]
    flags: list[FlagOut]
    flagged: bool
    deadline: ComplaintDeadline | None
    allowed_actions: list[dc.Verb]
    version: int


class ComplaintPage(BaseModel):
    items: list[ComplaintOut]
    next_cursor: str | None


class ComplaintEventOut(BaseModel):
    id: int
    complaint_id: str
    kind: str
    actor: str
    at: str
    rules: list[str]
    data: dict[str, Any]


class ComplaintEventPage(BaseModel):
    items: list[ComplaintEventOut]
    next_cursor: str | None


class PhoneClosedProblem(Problem):
    next_opening_at: str | None = None
    phone_hours: dict[str, str] | None = None


# --- routes -----------------------------------------------------------------------------------------------
@router.get("/v1/complaint-channels", response_model=ChannelsOut, responses={500: P})
def complaint_channels(ctx: CtxDep) -> Any:
    """K1 (public, no key): the channels and the phone line's hours, whether it answers now, when it next opens."""
    return service.channels(ctx)


@router.post("/v1/complaints", status_code=201, response_model=ComplaintOut,
             responses={**ERRORS, 422: {"model": PhoneClosedProblem}})
def file_complaint(body: ComplaintIn, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """K1/K2: a buyer files (chat, order button, WeChat); a platform agent records a phone complaint for a buyer,
    only during the phone hours (outside: 422, rule K1, with ``next_opening_at``)."""
    return service.file(ctx, who, body.model_dump())


@router.get("/v1/complaints", response_model=ComplaintPage, responses=ERRORS)
def list_complaints(
    ctx: CtxDep, who: Who,
    status: Annotated[dc.ComplaintStatus | None, Query()] = None,
    merchant_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
    order_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
    flagged: Annotated[bool | None, Query(description="Only complaints with (true) or without (false) a missed K2 limit.")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Any:
    """The complaints the caller may see (T2), filtered and paged."""
    return service.list_complaints(ctx, who, status=status.value if status else None, merchant_id=merchant_id,
                                   order_id=order_id, flagged=flagged, cursor=cursor, limit=limit)


@router.get("/v1/complaints/{complaint_id}", response_model=ComplaintOut, responses=ERRORS)
def get_complaint(complaint_id: PathId, ctx: CtxDep, who: Who) -> Any:
    """A complaint with its status and handling deadlines (K2)."""
    return service.get(ctx, who, complaint_id)


@router.get("/v1/complaints/{complaint_id}/events", response_model=ComplaintEventPage, responses=ERRORS)
def complaint_events(complaint_id: PathId, ctx: CtxDep, who: Who, cursor: Cursor = None, limit: Limit = 200) -> Any:
    """The events of a complaint in order, paged by an opaque cursor."""
    return service.events(ctx, who, complaint_id, cursor=cursor, limit=limit)


#: What each complaint verb does (K2), the description of its operation.
VERB_DOCS = {
    "accept": "Platform: take the complaint up; the merchant's limit to answer starts now (K2).",
    "reject": "Platform: decline the complaint, with its reason (shown to the buyer) (K2).",
    "respond": "Merchant: answer an accepted complaint (a late answer is taken, and marked late) (K2).",
    "resolve": "Platform: decide — `upheld` with at least one remedy, or `not_upheld` — with a rationale shown to both "
               "sides; an unanswered complaint only once the merchant's limit has passed (K2).",
}


def _verb_route(verb: dc.Verb, model: type[Strict]) -> None:
    def handler(complaint_id: PathId, ctx: CtxDep, who: Who, if_match: IfMatch,
                body: Annotated[model | None, Body()] = None,  # type: ignore[valid-type]
                idempotency_key: IdempotencyKey = None) -> Any:
        params: dict[str, Any] = body.model_dump(mode="json", exclude_none=True) if body is not None else {}
        return service.act(ctx, who, complaint_id, verb.value, params, if_match=if_match)

    handler.__name__ = f"complaint_{verb.value}"
    router.add_api_route(f"/v1/complaints/{{complaint_id}}/{verb.value}", handler, methods=["POST"],
                         response_model=ComplaintOut, responses=ERRORS, name=f"complaint_{verb.value}",
                         summary=f"{verb.value.capitalize()} a complaint (K2)", description=VERB_DOCS[verb.value])


for _verb, _model in BODIES.items():
    _verb_route(_verb, _model)


def install(app: FastAPI) -> None:
    """K1: a phone complaint outside the hours is the usual rule problem plus ``next_opening_at``."""

    @app.exception_handler(dc.PhoneClosed)
    async def _phone_closed(request: Request, exc: dc.PhoneClosed) -> JSONResponse:
        tz, lang = request.app.state.ctx.policy.timezone, problems.lang_of(request)
        response = problems.problem(exc.status, problems.domain_title(exc, lang),
                                    i18n.render(exc.msg, lang, tz), kind=exc.kind, rule=exc.rule)
        body = {**json.loads(bytes(response.body)), **exc.extra}
        return JSONResponse(body, status_code=exc.status, media_type=problems.PROBLEM)
