"""Routes of API.md. Each one authenticates, validates and calls one service function — no rule lives here."""


from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from aftersales.domain.cases import CaseStatus
from aftersales.service import cases as case_service
from aftersales.service import deadlines, orders, publishing, replay_jobs, setup, terms
from aftersales.service.context import read
from aftersales.service.errors import NotFound
from aftersales.service.replay import CSV_COLUMNS

from . import schemas as s
from .app import CtxDep, IdempotencyKey, IfMatch, Lang, Who
from .downloads import csv_response, record_response
from .responses import lean

router = APIRouter()

P = {"model": s.Problem}
ERRORS: dict[int | str, dict[str, Any]] = {401: P, 403: P, 404: P, 409: P, 413: P, 422: P}
PathId = Annotated[str, Path(min_length=1, max_length=64, pattern=s.ID_PATTERN)]
Cursor = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]*$")]


@router.get("/healthz", tags=["ops"], responses={500: P})
@lean(dict[str, str])
async def healthz(ctx: CtxDep) -> dict[str, str]:
    """Liveness: `ok` when the service answers (and, with the manual clock, its database too). No key needed."""
    if ctx.clock.manual:  # the manual clock lives in the database: read it (a database that answers), off the loop
        await run_in_threadpool(ctx.now)
    return {"status": "ok"}


# --- set-up -----------------------------------------------------------------------------------------------
@router.post("/v1/merchants", status_code=201, response_model=s.Merchant, tags=["set-up"], responses=ERRORS)
def create_merchant(body: s.MerchantIn, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """Platform: register a merchant (shop) with its return address."""
    return setup.create_merchant(ctx, who, id=body.id, name=body.name, return_address=body.return_address)


@router.get("/v1/merchants/{merchant_id}", response_model=s.Merchant, tags=["set-up"], responses=ERRORS)
def get_merchant(merchant_id: PathId, ctx: CtxDep, who: Who) -> Any:
    """A merchant's record: the platform, or that merchant itself (T2)."""
    return setup.get_merchant(ctx, who, merchant_id)


@router.post("/v1/api-keys", status_code=201, response_model=s.ApiKey, tags=["set-up"], responses=ERRORS)
def create_api_key(body: s.ApiKeyIn, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """Platform: issue an API key for a role (`platform`, `merchant`, `buyer`) and its subject; the key is shown once."""
    return setup.create_api_key(ctx, who, role=body.role, subject_id=body.subject_id, label=body.label)


@router.put("/v1/categories/{code}", response_model=s.Category, tags=["set-up"], responses={**ERRORS, 201: {"model": s.Category}})
def put_category(code: PathId, body: s.CategoryIn, ctx: CtxDep, who: Who, response: Response) -> Any:
    """Platform: create (201) or replace (200) a product category with its E4 statutory exclusion, no-reason-return flag and E6 windows."""
    category, created = setup.put_category(ctx, who, code=code, name=body.name, no_reason_return=body.no_reason_return,
                                           statutory_exclusion=body.statutory_exclusion,
                                           after_sales_days=body.after_sales_days, warranty_days=body.warranty_days)
    response.status_code = 201 if created else 200
    return category


@router.get("/v1/categories", response_model=list[s.Category], tags=["set-up"], responses=ERRORS)
def list_categories(ctx: CtxDep, who: Who) -> Any:
    """Every product category, with its E4 exclusion and after-sales windows."""
    return setup.list_categories(ctx)


@router.get("/v1/categories/{code}/versions", response_model=list[s.CategoryVersion], tags=["set-up"], responses=ERRORS)
def category_versions(code: PathId, ctx: CtxDep, who: Who) -> Any:
    """E4–E6: every version of the category's terms, oldest first; each order keeps the one in force when it was paid."""
    return terms.category_versions(ctx, who, code)


@router.get("/v1/policy", response_model=s.PolicyOut, tags=["set-up"], responses=ERRORS)
def get_policy(ctx: CtxDep, who: Who) -> Any:
    """The platform policy in force, with its version id and the instant it first took effect (T0)."""
    return terms.policy_in_force(ctx, who)


DraftId = Annotated[str, Path(min_length=1, max_length=40, pattern=s.ID_PATTERN)]
_RECORD: dict[int | str, dict[str, Any]] = {200: {
    "description": "The record file (format aftersales-record 1; check it with `aftersales verify FILE`).",
    "content": {"application/json": {"schema": {"type": "object"}}}}}


@router.put("/v1/policy", status_code=201, response_model=s.PolicyDraftOut, tags=["set-up"], responses=ERRORS)
def put_policy(body: s.PolicyDraftIn, ctx: CtxDep, who: Who) -> Any:
    """Platform: draft a new policy version (every parameter, `reason`, `effective_at` — default now) and/or new terms
    of categories (`categories`, E4–E6). Nothing changes until it is scheduled; the answer lists, per parameter and
    per category term that differs, its value in force and in the draft (T0). An invalid parameter or term is 422
    naming it (the checks of `aftersales policy check`)."""
    return publishing.create_draft(ctx, who, dict(body.model_extra or {}) or None, reason=body.reason,
                                   effective_at=body.effective_at, categories=body.categories)


@router.get("/v1/policy/drafts", response_model=s.PolicyDraftPage, tags=["set-up"], responses=ERRORS)
def list_policy_drafts(ctx: CtxDep, who: Who,
                       status: Literal["draft", "scheduled", "withdrawn"] | None = None) -> Any:
    """Platform: the policy drafts, newest first, each with its difference from the version in force."""
    return publishing.list_drafts(ctx, who, status)


@router.get("/v1/policy/drafts/{draft_id}", response_model=s.PolicyDraftOut, tags=["set-up"], responses=ERRORS)
def get_policy_draft(draft_id: DraftId, ctx: CtxDep, who: Who) -> Any:
    """Platform: one policy draft with its difference from the version in force."""
    return publishing.get_draft(ctx, who, draft_id)


@router.post("/v1/policy/drafts/{draft_id}/schedule", response_model=s.PolicyDraftOut, tags=["set-up"], responses=ERRORS)
def schedule_policy_draft(draft_id: DraftId, ctx: CtxDep, who: Who,
                          body: Annotated[s.PolicyActionIn | None, Body()] = None,
                          idempotency_key: IdempotencyKey = None) -> Any:
    """Platform: make the draft the version in force from its `effective_at` (now if past) for orders paid from
    then on; orders paid before keep theirs (T0). It never changes once in force."""
    return publishing.schedule(ctx, who, draft_id, reason=body.reason if body else None)


@router.post("/v1/policy/drafts/{draft_id}/withdraw", response_model=s.PolicyDraftOut, tags=["set-up"], responses=ERRORS)
def withdraw_policy_draft(draft_id: DraftId, ctx: CtxDep, who: Who,
                          body: Annotated[s.PolicyActionIn | None, Body()] = None,
                          idempotency_key: IdempotencyKey = None) -> Any:
    """Platform: withdraw a draft, or a scheduled version before it takes effect (409 once in force)."""
    return publishing.withdraw(ctx, who, draft_id, reason=body.reason if body else None)


@router.post("/v1/policy/drafts/{draft_id}/replays", status_code=202, response_model=s.ReplayJobOut,
             response_model_by_alias=True, tags=["set-up"], responses=ERRORS)
def start_policy_replay(draft_id: DraftId, body: s.ReplayIn, ctx: CtxDep, who: Who) -> Any:
    """Platform: a what-if replay of the draft over [from, to) (issue 15), run in the background by the worker:
    every order with something in the period, under the version it was paid under and under the draft (T0). Reads
    a snapshot and writes nothing but the job; follow it at `GET /v1/policy/replays/{id}`."""
    return replay_jobs.start(ctx, who, draft_id, body.from_, body.to, workers=body.workers)


@router.get("/v1/policy/replays/{replay_id}", response_model=s.ReplayJobOut, response_model_by_alias=True,
            tags=["set-up"], responses=ERRORS)
def get_policy_replay(replay_id: DraftId, ctx: CtxDep, who: Who) -> Any:
    """Platform: a replay's status, progress (orders done of total) and, when done, its report."""
    return replay_jobs.get(ctx, who, replay_id)


_CSV: dict[int | str, dict[str, Any]] = {200: {
    "description": "One line per difference: " + ", ".join(CSV_COLUMNS) + " (as `aftersales policy replay --csv`).",
    "content": {"text/csv": {"schema": {"type": "string"}}}}}


@router.get("/v1/policy/replays/{replay_id}/report.csv", response_class=Response, tags=["set-up"],
            responses={**ERRORS, **_CSV})
def policy_replay_csv(replay_id: DraftId, ctx: CtxDep, who: Who) -> Response:
    """Platform: the replay's differences as CSV (the header alone until it is done)."""
    return csv_response(*replay_jobs.report_csv(ctx, who, replay_id))


@router.get("/v1/policy/record", response_class=Response, tags=["set-up"], responses={**ERRORS, **_RECORD})
def policy_record(ctx: CtxDep, who: Who, request: Request) -> Response:
    """Platform: the tamper-evident record (D3) of every policy draft, schedule and withdrawal, with who and why."""
    return record_response(*publishing.record(ctx, who, secret=request.app.state.settings.record_secret))


# --- orders and groups ------------------------------------------------------------------------------------
@router.post("/v1/orders", status_code=201, response_model=s.OrderOut, tags=["orders"], responses=ERRORS)
@lean(s.OrderOut, 201)
def create_order(body: s.OrderIn, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """Record a paid order (platform or its merchant); a group order opens its group or joins it (G1, G3). Unknown categories are refused (E4)."""
    return orders.create_order(ctx, who, body.model_dump())


@router.get("/v1/orders", response_model=s.OrderPage, tags=["orders"], responses=ERRORS, summary="List orders")
@lean(s.OrderPage)
def list_orders(
    ctx: CtxDep, who: Who,
    merchant_id: Annotated[str | None, Query(max_length=64, pattern=s.ID_PATTERN)] = None,
    buyer_id: Annotated[str | None, Query(max_length=64, pattern=s.ID_PATTERN)] = None,
    status: Annotated[s.OrderStatusName | None, Query()] = None,
    paid_after: Annotated[s.Instant | None, Query(description="Inclusive; RFC 3339 with a UTC offset.")] = None,
    paid_before: Annotated[s.Instant | None, Query(description="Exclusive; RFC 3339 with a UTC offset.")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    """The orders the caller may see (T2): a merchant its own, a buyer theirs, the platform all — a filter naming
    another tenant matches nothing. Newest paid first (`paid_at`, then `id`, descending); each item as
    `GET /v1/orders/{id}` shows it; `next_cursor` is opaque."""
    return orders.list_orders(ctx, who, merchant_id=merchant_id, buyer_id=buyer_id, status=status,
                              paid_after=paid_after, paid_before=paid_before, cursor=cursor, limit=limit)


@router.get("/v1/orders/{order_id}", response_model=s.OrderOut, tags=["orders"], responses=ERRORS)
@lean(s.OrderOut)
def get_order(order_id: PathId, ctx: CtxDep, who: Who) -> Any:
    """An order with its items, status, group, refunds and case ids (T2: the platform, its merchant, its buyer)."""
    return orders.get_order(ctx, who, order_id)


@router.post("/v1/orders/{order_id}/ship", response_model=s.OrderOut, tags=["orders"], responses=ERRORS)
@lean(s.OrderOut)
def ship_order(order_id: PathId, body: s.ShipIn, ctx: CtxDep, who: Who, if_match: IfMatch,
               idempotency_key: IdempotencyKey = None) -> Any:
    """The merchant ships the order (carrier and tracking number). `If-Match: <version>`: only the order as last
    read (409 otherwise)."""
    return orders.ship_order(ctx, who, order_id, body.carrier, body.tracking_no, if_match=if_match)


@router.post("/v1/orders/{order_id}/deliver", response_model=s.OrderOut, tags=["orders"], responses=ERRORS)
@lean(s.OrderOut)
def deliver_order(order_id: PathId, ctx: CtxDep, who: Who, if_match: IfMatch,
                  body: Annotated[s.DeliverIn | None, Body()] = None, idempotency_key: IdempotencyKey = None) -> Any:
    """Record the delivery of a shipped order (at `at`, or now); after-sales windows start from it (E1).
    `If-Match: <version>`: only the order as last read (409 otherwise)."""
    return orders.deliver_order(ctx, who, order_id, body.at if body else None, if_match=if_match)


@router.get("/v1/orders/{order_id}/after-sales-options", response_model=s.OptionsOut, tags=["orders"], responses=ERRORS)
@lean(s.OptionsOut)
def after_sales_options(order_id: PathId, ctx: CtxDep, who: Who, lang: Lang) -> Any:
    """E1–E10: which after-sales types the caller may open on the order now, with the rule, the reasons, the deadline and the largest refund."""
    return orders.options(ctx, who, order_id, lang=lang)


@router.post("/v1/groups/{group_id}/complete", response_model=s.GroupOut, tags=["orders"], responses=ERRORS)
def complete_group(group_id: PathId, ctx: CtxDep, who: Who, if_match: IfMatch,
                   idempotency_key: IdempotencyKey = None) -> Any:
    """G5: complete a pending group early where the group allows automatic completion. `If-Match: <version>`: only
    the group as last read (409 otherwise)."""
    return orders.complete_group(ctx, who, group_id, if_match=if_match)


@router.get("/v1/groups/{group_id}", response_model=s.GroupOut, tags=["orders"], responses=ERRORS)
def get_group(group_id: PathId, ctx: CtxDep, who: Who) -> Any:
    """A group with its size, members, status and expiry (G1–G5); the platform or the group's merchant."""
    return orders.get_group(ctx, who, group_id)


# --- cases --------------------------------------------------------------------------------------------------
@router.post("/v1/cases", status_code=201, response_model=s.CaseOut, tags=["cases"], responses=ERRORS)
@lean(s.CaseOut, 201)
def open_case(body: s.CaseIn, ctx: CtxDep, who: Who, lang: Lang, idempotency_key: IdempotencyKey = None) -> Any:
    """Open an after-sales case: the buyer, or the merchant on the buyer's behalf with consent (E7). 422 with `rule` when not eligible."""
    return case_service.open_case(ctx, who, body.model_dump(), lang=lang)


@router.get("/v1/cases", response_model=s.CasePage, tags=["cases"], responses=ERRORS)
def list_cases(  # not lean: the queue's rows carry what the workbench shows (products, bulk_approvable), not the API
    ctx: CtxDep, who: Who, lang: Lang,
    status: Annotated[CaseStatus | None, Query(description="API.md's case statuses (and `refund_pending`); "
                                                            "another value is 422.")] = None,
    order_id: Annotated[str | None, Query(max_length=64, pattern=s.ID_PATTERN)] = None,
    merchant_id: Annotated[str | None, Query(max_length=64, pattern=s.ID_PATTERN)] = None,
    due_before: s.Instant | None = None,
    assignee: Annotated[str | None, Query(max_length=64, pattern=s.ID_PATTERN, description=(
        "S1: `none` (nobody handles the case), a user id of the shop, or `me` (the signed-in workbench user)."))] = None,
    awaiting: Annotated[Literal["merchant"] | None, Query(description=(
        "S1: `merchant` keeps the cases whose next move is the merchant's (the merchant has an allowed action)."))] = None,
    sort: Annotated[Literal["created", "deadline"], Query(
        description="`created` (default): oldest first. `deadline`: the queue order (P1 agents, S1 merchants) — "
                    "cases past their deadline without an automatic action (flagged) first, then the nearest deadline.")] = "created",
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    """The cases the caller may see (T2), filtered by status, order, merchant or deadline, paged by an opaque cursor;
    `sort=deadline` is the work queue (P1, S1)."""
    return case_service.list_cases(ctx, who, status=status.value if status else None, order_id=order_id, merchant_id=merchant_id,
                                   due_before=due_before, cursor=cursor, limit=limit, lang=lang, sort=sort,
                                   assignee=assignee, awaiting=awaiting)


@router.post("/v1/cases/bulk-actions", response_model=s.BulkActionOut, tags=["cases"], responses=ERRORS)
def bulk_actions(body: s.BulkActionIn, ctx: CtxDep, who: Who, lang: Lang, idempotency_key: IdempotencyKey = None) -> Any:
    """Merchant (S1): `approve` up to 100 of its cases; each row is checked by the rules and taken on its own, exactly
    as `POST /v1/cases/{id}/approve`, and answers `ok` or `refused` with the rule and its explanation. `dry_run`:
    what would happen, nothing changed. A case of another shop, or unknown: 404, nothing done."""
    return case_service.bulk_act(ctx, who, body.action, body.case_ids, dry_run=body.dry_run, lang=lang,
                                 tz=ctx.policy.timezone)


@router.post("/v1/cases/{case_id}/assignee", response_model=s.CaseOut, tags=["cases"], responses=ERRORS)
def assign_case(case_id: PathId, body: s.AssigneeIn, ctx: CtxDep, who: Who, lang: Lang,
                idempotency_key: IdempotencyKey = None) -> Any:
    """Merchant (S1): give the case to one of the shop's users, or to nobody (`null`); recorded as `assigned` in
    the case's events. `unassigned_only`: 409 if someone has it already. `"me"` is for the workbench's signed-in
    user: an API key names the user id."""
    return case_service.assign(ctx, who, case_id, assignee=body.assignee, me=None,
                               unassigned_only=body.unassigned_only, lang=lang)


@router.get("/v1/cases/{case_id}", response_model=s.CaseOut, tags=["cases"], responses=ERRORS)
@lean(s.CaseOut)
def get_case(case_id: PathId, ctx: CtxDep, who: Who, lang: Lang) -> Any:
    """A case with its status, deadline, refund and version (T2: the platform, its merchant, its buyer)."""
    return case_service.get_case(ctx, who, case_id, lang=lang)


@router.get("/v1/cases/{case_id}/events", response_model=s.EventPage, tags=["cases"], responses=ERRORS)
def case_events(case_id: PathId, ctx: CtxDep, who: Who, cursor: Cursor = None,
                limit: Annotated[int, Query(ge=1, le=200)] = 200) -> Any:
    """The events of a case in order (the audit trail), paged by an opaque cursor."""
    return case_service.case_events(ctx, who, case_id, cursor=cursor, limit=limit)


#: What each case action does and who takes it (API.md "Cases"), the description of its operation.
ACTION_DOCS = {
    "approve": "Merchant: approve the request (refund now, or ask for the goods back; `return_shipping_payer` per M3, "
               "`return_address_id`: which of the shop's return addresses the goods go to, else its default, M5).",
    "reject": "Merchant: reject the request with a reason; the buyer may resubmit, accept or escalate.",
    "offer_exchange": "Merchant: offer an exchange instead of a refund; the buyer accepts or declines.",
    "offer_partial_refund": "Merchant: offer a partial refund of `refund_fen`; the buyer accepts or declines.",
    "accept_offer": "Buyer: accept the merchant's offer.",
    "decline_offer": "Buyer: decline the merchant's offer.",
    "ship_return": "Buyer: send the goods back (carrier, tracking number, what the shipping cost, reimbursed up to M3's cap "
                   "when the merchant pays).",
    "mark_return_delivered": "Merchant or platform: the returned parcel has arrived.",
    "confirm_return": "Merchant: the returned goods are in order; the refund is paid (F1).",
    "reject_return": "Merchant: refuse the returned goods with a reason.",
    "ship_replacement": "Merchant: ship the replacement (carrier and tracking number).",
    "mark_replacement_delivered": "Merchant or platform: the replacement has arrived.",
    "confirm_received": "Buyer: the replacement or repaired goods were received; the case closes.",
    "resubmit": "Buyer: resubmit a rejected request, possibly with a new reason, amount or description.",
    "accept_rejection": "Buyer: accept the merchant's rejection; the case closes.",
    "cancel": "Buyer: withdraw the request (E8 counts the cancellations).",
    "escalate": "Buyer: ask the platform to decide (P1), with a reason.",
    "rule": "Platform: decide an escalated case (`refund` with an amount, or `reject`) with a rationale.",
    "pay_ruling": "Merchant: pay a refund ruling within P1's limit; otherwise the platform advances it (P2).",
    "advance_compensate": "Platform: pay the buyer in advance on the merchant's behalf (P2).",
}


def _action_route(action: str, model: type[s.Strict]) -> None:
    @lean(s.CaseOut)
    def handler(case_id: PathId, ctx: CtxDep, who: Who, lang: Lang, if_match: IfMatch,
                body: Annotated[model | None, Body()] = None,  # type: ignore[valid-type]
                idempotency_key: IdempotencyKey = None) -> Any:
        params: dict[str, Any] = body.model_dump(exclude_none=True) if body is not None else {}
        return case_service.act(ctx, who, case_id, action, params, if_match=if_match, lang=lang)

    handler.__name__ = f"case_{action}"
    router.add_api_route(f"/v1/cases/{{case_id}}/{action}", handler, methods=["POST"], response_model=s.CaseOut,
                         tags=["case actions"], responses=ERRORS, name=f"case_{action}",
                         summary=action.replace("_", " ").capitalize(),
                         description=ACTION_DOCS.get(action, "") + " Send `If-Match: <version>` to act only on the case as "
                                     "you last read it (409 otherwise).")


for _action, _model in s.ACTION_BODIES.items():
    _action_route(_action, _model)


# --- manual clock ---------------------------------------------------------------------------------------
def _manual(ctx: Any, who: Any) -> None:
    if not ctx.clock.manual or who.role != "platform":
        raise NotFound("resource", "clock")


@router.get("/v1/clock", response_model=s.ClockOut, tags=["clock"], responses=ERRORS)
def get_clock(ctx: CtxDep, who: Who) -> Any:
    """Platform, test deployments with the manual clock only: the current instant."""
    _manual(ctx, who)
    return {"now": read(ctx, lambda uow: uow.now).isoformat()}


@router.post("/v1/clock/advance", response_model=s.ClockAdvanceOut, tags=["clock"], responses=ERRORS)
def advance_clock(body: s.ClockAdvanceIn, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """Platform, manual clock only: move time forward and apply every automatic action that falls due (F2)."""
    _manual(ctx, who)
    now, done = deadlines.advance_clock(ctx, body.seconds)
    return {"now": now.isoformat(), "fired": done.fired, "failed": [f.view() for f in done.failed]}
