"""The platform console (P1, P2, K2, D1–D3): interventions and rulings, complaints, deposits, the ledger, records.

Platform agents only (anyone else gets the 404 page). Every page calls the same service functions as the API with
the agent's principal: which forms a case or complaint shows comes from its view's ``allowed_actions``, and every
refusal is shown with its rule id and explanation (S4).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from aftersales import i18n
from aftersales.api.downloads import csv_response, record_response
from aftersales.domain import replay as dreplay
from aftersales.domain.cases import AUTO_RULES, CaseStatus
from aftersales.domain.errors import DomainError
from aftersales.domain.messages import N_
from aftersales.domain.policy import MEANINGS
from aftersales.domain.timeutil import zone
from aftersales.service import case_desk, console, credentials, deadlines, deposits, ledger, messages, publishing, records, replay_jobs, setup, terms, users
from aftersales.service import cases as case_service
from aftersales.service import complaints as complaint_service
from aftersales.service import orders as order_service
from aftersales.service.errors import Invalid, NotFound, ServiceError

from .app import complaint_record, evidence_file, not_found_page
from .deps import Csrf, PlatformStaff, ctx_of, explain, lang_of, render, see_other, settings_of
from .insights import csv_cell
from .merchant import CLOSE_LABELS, DUE_ACTIONS, RULE_TITLES, fen_of

router = APIRouter(prefix="/app", include_in_schema=False)

Id = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
PAGE_SIZE = 50
#: An order's cases and complaints shown on its page (the API pages through more).
MAX_LINKED = 200
MAX_TEXT = 2000
ACCOUNT = re.compile(r"^(merchant|buyer|platform):[A-Za-z0-9_.-]*:[a-z_]+$")

COMPLAINT_STATUS = {"submitted": N_("submitted"), "accepted": N_("accepted, awaiting the shop"),
                    "rejected": N_("rejected"), "answered": N_("answered by the shop"), "resolved": N_("resolved")}
COMPLAINT_CATEGORY = {"after_sales_not_handled": N_("after-sales not handled"), "unfair_refusal": N_("unfair refusal"),
                      "product_quality": N_("product quality"), "counterfeit": N_("counterfeit"),
                      "service_attitude": N_("service attitude"), "logistics": N_("logistics"), "other": N_("other")}
CHANNELS = {"in_app_chat": N_("in-app chat"), "order_button": N_("complaint button on the order"),
            "wechat_official_account": N_("official WeChat account"), "phone": N_("phone")}
COMPLAINT_ACTIONS = {"accept": N_("accept"), "reject": N_("reject"), "respond": N_("answer"), "resolve": N_("resolve")}
COMPLAINT_DUE = {"accept": N_("the platform accepts or rejects"), "respond": N_("the shop answers"),
                 "resolve": N_("the platform resolves"),
                 # missed-limit flags (K2)
                 "accept_overdue": N_("the platform did not accept or reject in time"),
                 "respond_overdue": N_("the shop did not answer in time")}
OUTCOMES = {"upheld": N_("upheld"), "not_upheld": N_("not upheld")}
REMEDIES = {"refund": N_("refund on the order"), "compensation": N_("compensation to the buyer"),
            "penalty": N_("penalty from the shop's deposit")}
ADVANCE_REASONS = {"merchant_unreachable": N_("The shop cannot be reached"), "shop_closed": N_("The shop is closed")}


def _t(request: Request, text: str, **values: Any) -> str:
    out = i18n.translate(text, lang_of(request))
    return out.format(**values) if values else out


def _text(value: str, name: str) -> str:
    text = value.strip()
    if len(text) > MAX_TEXT or "\x00" in text:
        raise Invalid("{field}: at most {limit} characters", field=name, limit=MAX_TEXT)
    return text


def _version(value: str) -> int | None:
    if not value:
        return None
    if not value.isdigit() or len(value) > 9:
        raise Invalid("the page's version is not a number: reload the page")
    return int(value)


# --- interventions (P1) -----------------------------------------------------------------------------------------
#: The queue's status filter: every case status, the platform's own first (default), or any.
QUEUE_STATUSES = ("platform_review", *(st.value for st in CaseStatus if st is not CaseStatus.PLATFORM_REVIEW), "any")
#: The rules of the automatic actions a case can wait for (its next deadline): P1, P2, M1 …
DUE_RULES = tuple(sorted(set(AUTO_RULES.values()), key=lambda r: (r[0] != "P", r)))
Term = Annotated[str, Query(max_length=64)]


@router.get("/platform", response_class=HTMLResponse)
def interventions(request: Request, user: PlatformStaff,
                  cursor: Annotated[str | None, Query(max_length=200)] = None, q: Term = "", merchant: Term = "",
                  status: Annotated[str, Query(max_length=40)] = "platform_review",
                  rule: Annotated[str, Query(max_length=4)] = "") -> Response:
    """P1: cases under platform review, flagged overdue first, then by nearest deadline. Search by a prefix of the
    case or order id; filter by shop, status (any status, to find any case) and the rule of the next deadline."""
    ctx, lang = ctx_of(request), lang_of(request)
    q, merchant = q.strip(), merchant.strip()
    error = None
    try:
        if status not in QUEUE_STATUSES:
            raise Invalid(N_("Choose a status from the list."))
        if rule and rule not in DUE_RULES:
            raise Invalid(N_("Choose a rule from the list."))
        page = case_service.list_cases(ctx, user.principal, status=None if status == "any" else status, order_id=None,
                                       merchant_id=merchant or None, due_before=None, cursor=cursor, limit=PAGE_SIZE,
                                       lang=lang, sort="deadline", id_prefix=q or None, due_rule=rule or None)
    except (DomainError, ServiceError) as exc:  # a filter off the lists, a tampered cursor
        page, error = {"items": [], "next_cursor": None}, explain(request, exc)
    counts = case_service.count_by_status(ctx, user.principal)
    filters = {k: v for k, v in {"q": q, "merchant": merchant, "rule": rule}.items() if v}
    if status != "platform_review":
        filters["status"] = status
    next_url = f"/app/platform?{urlencode({**filters, 'cursor': page['next_cursor']})}" if page["next_cursor"] else None
    return render(request, "platform/queue.html", status_code=422 if error else 200, error=error, rows=page["items"],
                  in_review=counts.get("platform_review", 0), next_url=next_url, first=cursor is None,
                  due_actions=DUE_ACTIONS, q=q, merchant=merchant, status=status, rule=rule, filtered=bool(filters),
                  statuses=QUEUE_STATUSES, rules=DUE_RULES, shops=console.shops(ctx, user.principal),
                  first_url=f"/app/platform?{urlencode(filters)}" if filters else "/app/platform",
                  rule_titles=RULE_TITLES)


def _case(request: Request, user: Any, case_id: str, *, status_code: int = 200, error: str | None = None,
          form: dict[str, Any] | None = None) -> Response:
    try:
        desk = case_desk.case_page(ctx_of(request), user.principal, case_id, lang=lang_of(request))
    except NotFound as exc:
        return not_found_page(request, exc)
    return render(request, "platform/case.html", status_code=status_code, error=error, d=desk, c=desk["case"],
                  o=desk["order"], form=form or {}, rule_titles=RULE_TITLES, due_actions=DUE_ACTIONS,
                  close_labels=CLOSE_LABELS, advance_reasons=ADVANCE_REASONS)


@router.get("/platform/cases/{case_id}", response_class=HTMLResponse)
def platform_case(request: Request, user: PlatformStaff, case_id: Id) -> Response:
    """The case as the platform sees it, with the ruling form when a ruling is due (P1) and P2 when allowed."""
    return _case(request, user, case_id)


@router.post("/platform/cases/{case_id}/rule", dependencies=[Csrf])
def rule(request: Request, user: PlatformStaff, case_id: Id,
         outcome: Annotated[str, Form(max_length=16)] = "", amount: Annotated[str, Form(max_length=20)] = "",
         rationale: Annotated[str, Form(max_length=4000)] = "", version: Annotated[str, Form(max_length=12)] = "") -> Response:
    """P1 ruling: refund (full, or the amount given in yuan) or reject, with the rationale both sides see."""
    form = {"outcome": outcome, "amount": amount, "rationale": rationale}
    try:
        params: dict[str, Any] = {"outcome": outcome, "rationale": _text(rationale, "rationale")}
        if amount.strip():
            params["refund_fen"] = fen_of(amount)
        case_service.act(ctx_of(request), user.principal, case_id, "rule", params, if_match=_version(version),
                         lang=lang_of(request))
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _case(request, user, case_id, status_code=exc.status, error=explain(request, exc), form=form)
    return see_other(f"/app/platform/cases/{case_id}", flash=_t(request, "Ruling recorded."))


@router.post("/platform/cases/{case_id}/advance", dependencies=[Csrf])
def advance(request: Request, user: PlatformStaff, case_id: Id, reason: Annotated[str, Form(max_length=40)] = "",
            version: Annotated[str, Form(max_length=12)] = "") -> Response:
    """P2: the platform pays the refund ruling now and recovers it from the shop's deposit."""
    try:
        case_service.act(ctx_of(request), user.principal, case_id, "advance_compensate", {"reason": reason},
                         if_match=_version(version), lang=lang_of(request))
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _case(request, user, case_id, status_code=exc.status, error=explain(request, exc))
    return see_other(f"/app/platform/cases/{case_id}", flash=_t(request, "The platform paid the ruling."))


#: The platform's case actions that take no parameter (recording a delivery the carrier feed missed, M6/M7); their
#: forms, like every other, are shown only when the case view lists them.
PLAIN_ACTIONS = frozenset({"mark_return_delivered", "mark_replacement_delivered"})


@router.post("/platform/cases/{case_id}/act/{action}", dependencies=[Csrf])
def plain_action(request: Request, user: PlatformStaff, case_id: Id,
                 action: Annotated[str, Path(max_length=40, pattern=r"^[a-z_]+$")],
                 version: Annotated[str, Form(max_length=12)] = "") -> Response:
    """A parameterless action the case lists for the platform (M6/M7 delivery records), at the version shown."""
    if action not in PLAIN_ACTIONS:
        return not_found_page(request, NotFound("action", action))
    try:
        case_service.act(ctx_of(request), user.principal, case_id, action, {}, if_match=_version(version),
                         lang=lang_of(request))
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _case(request, user, case_id, status_code=exc.status, error=explain(request, exc))
    return see_other(f"/app/platform/cases/{case_id}", flash=i18n.done_notice(action, lang_of(request)))


@router.post("/platform/{kind}/{subject_id}/messages", dependencies=[Csrf])
def message(request: Request, user: PlatformStaff, kind: Annotated[str, Path(pattern=r"^(cases|complaints)$")],
            subject_id: Id, body: Annotated[str, Form(max_length=4000)] = "",
            internal: Annotated[str | None, Form(max_length=8)] = None) -> Response:
    """A message to both parties, or an internal note only the platform sees (S5)."""
    back = f"/app/platform/{kind}/{subject_id}"
    try:
        text = _text(body, "body")
        if not text:
            raise Invalid("Write something first.")
        messages.post(ctx_of(request), user.principal, kind[:-1], subject_id, body=text, internal=internal is not None)
    except NotFound as exc:
        return not_found_page(request, exc)
    except ServiceError as exc:
        if kind == "cases":
            return _case(request, user, subject_id, status_code=exc.status, error=explain(request, exc))
        return _complaint(request, user, subject_id, status_code=exc.status, error=explain(request, exc))
    return see_other(back + "#messages", flash=_t(request, "Note saved." if internal is not None else "Message sent."))


@router.get("/platform/cases/{case_id}/evidence/{evidence_id}")
def case_evidence(request: Request, user: PlatformStaff, case_id: Id, evidence_id: Id) -> Response:
    """An evidence file of the case, as a download (never rendered inline by this origin)."""
    return evidence_file(request, user.principal, case_id, evidence_id)


@router.get("/platform/{kind}/{subject_id}/record")
def record(request: Request, user: PlatformStaff, kind: Annotated[str, Path(pattern=r"^(cases|complaints)$")],
           subject_id: Id) -> Response:
    """D3: the complete, tamper-evident record of a case or complaint, downloaded (``aftersales verify`` checks it)."""
    export = records.case_record if kind == "cases" else records.complaint_record
    try:
        data, name = export(ctx_of(request), user.principal, subject_id, secret=settings_of(request).record_secret,
                            lang=lang_of(request))
    except NotFound as exc:
        return not_found_page(request, exc)
    return record_response(data, name)


# --- orders: the order with its cases and complaints -----------------------------------------------------------
@router.get("/platform/orders/{order_id}", response_class=HTMLResponse)
def platform_order(request: Request, user: PlatformStaff, order_id: Id) -> Response:
    """An order as the platform sees it — items, money, shipment, group, refunds — with its cases and the complaints
    about it (K2), each linked to its page."""
    ctx, lang = ctx_of(request), lang_of(request)
    try:
        o = order_service.get_order(ctx, user.principal, order_id)
    except NotFound as exc:
        return not_found_page(request, exc)
    cases = case_service.list_cases(ctx, user.principal, status=None, order_id=order_id, merchant_id=None,
                                    due_before=None, cursor=None, limit=MAX_LINKED, lang=lang)["items"]
    found = complaint_service.list_complaints(ctx, user.principal, status=None, merchant_id=None, order_id=order_id,
                                             flagged=None, cursor=None, limit=MAX_LINKED)
    return render(request, "platform/order.html", o=o, cases=cases, complaints=found["items"],
                  more_complaints=found["next_cursor"] is not None, statuses=COMPLAINT_STATUS,
                  categories=COMPLAINT_CATEGORY, close_labels=CLOSE_LABELS, due_actions=DUE_ACTIONS)


# --- complaints (K2) --------------------------------------------------------------------------------------------
@router.get("/platform/complaints", response_class=HTMLResponse)
def complaints(request: Request, user: PlatformStaff,
               status: Annotated[str, Query(max_length=16)] = "", flagged: Annotated[str, Query(max_length=4)] = "",
               cursor: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """K2: complaints in filing order, with their next limit and missed-limit flags; filter by status or flag."""
    status = status if status in COMPLAINT_STATUS else ""
    flag = {"yes": True, "no": False}.get(flagged)
    error = None
    try:
        page = complaint_service.list_complaints(ctx_of(request), user.principal, status=status or None, merchant_id=None,
                                                 order_id=None, flagged=flag, cursor=cursor, limit=PAGE_SIZE)
    except ServiceError as exc:
        page, error = {"items": [], "next_cursor": None}, explain(request, exc)
    active = {k: v for k, v in {"status": status, "flagged": flagged if flag is not None else ""}.items() if v}
    next_url = (f"/app/platform/complaints?{urlencode({**active, 'cursor': page['next_cursor']})}"
                if page["next_cursor"] else None)
    return render(request, "platform/complaints.html", status_code=422 if error else 200, error=error,
                  rows=page["items"], next_url=next_url, status=status, flagged=flagged if flag is not None else "",
                  statuses=COMPLAINT_STATUS, categories=COMPLAINT_CATEGORY, due_labels=COMPLAINT_DUE)


def _complaint(request: Request, user: Any, complaint_id: str, *, status_code: int = 200, error: str | None = None,
               form: dict[str, Any] | None = None) -> Response:
    try:
        record = complaint_record(request, user.principal, complaint_id)
    except NotFound as exc:
        return not_found_page(request, exc)
    return render(request, "platform/complaint.html", status_code=status_code, error=error, c=record["complaint"],
                  events=record["events"], notes=record["messages"], form=form or {}, statuses=COMPLAINT_STATUS, categories=COMPLAINT_CATEGORY,
                  channels=CHANNELS, actions=COMPLAINT_ACTIONS, due_labels=COMPLAINT_DUE, outcomes=OUTCOMES,
                  remedies=REMEDIES, rule_titles=RULE_TITLES)


@router.get("/platform/complaints/{complaint_id}", response_class=HTMLResponse)
def complaint(request: Request, user: PlatformStaff, complaint_id: Id) -> Response:
    return _complaint(request, user, complaint_id)


@router.post("/platform/complaints/{complaint_id}/{verb}", dependencies=[Csrf])
async def complaint_action(request: Request, user: PlatformStaff, complaint_id: Id,
                           verb: Annotated[str, Path(pattern=r"^(accept|reject|resolve)$")]) -> Response:
    """K2: accept, reject (with the reason) or resolve (outcome, rationale, remedies in yuan)."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        params: dict[str, Any] = {}
        if verb == "reject":
            params["reason"] = _text(form.get("reason", ""), "reason")
        elif verb == "resolve":
            params = {"outcome": form.get("outcome", ""), "rationale": _text(form.get("rationale", ""), "rationale"),
                      "remedies": [{"type": kind, "amount_fen": fen_of(form[f"remedy_{kind}"])}
                                   for kind in REMEDIES if form.get(f"remedy_{kind}", "").strip()]}
            if params["outcome"] not in OUTCOMES:
                raise Invalid("Choose an outcome.")
        complaint_service.act(ctx_of(request), user.principal, complaint_id, verb, params,
                              if_match=_version(form.get("version", "")))
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _complaint(request, user, complaint_id, status_code=exc.status, error=explain(request, exc),
                          form={**form, "verb": verb})
    return see_other(f"/app/platform/complaints/{complaint_id}", flash=i18n.done_notice(verb, lang_of(request), "complaint"))


# --- automatic actions that could not apply (F2) ---------------------------------------------------------------
@router.get("/platform/automatic-actions", response_class=HTMLResponse)
def stuck_actions(request: Request, user: PlatformStaff,
                  cursor: Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]*$")] = None) -> Response:
    """F2: automatic actions parked after their last try, with why they failed, each with a Retry button."""
    page = deadlines.list_stuck(ctx_of(request), user.principal, cursor=int(cursor) if cursor else None, limit=PAGE_SIZE)
    next_url = f"/app/platform/automatic-actions?{urlencode({'cursor': page['next_cursor']})}" if page["next_cursor"] else None
    return render(request, "platform/stuck.html", page=page, next_url=next_url, due_actions=DUE_ACTIONS)


@router.post("/platform/automatic-actions/{timer_id}/retry", dependencies=[Csrf])
def retry_stuck_action(request: Request, user: PlatformStaff,
                       timer_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> Response:
    """F2: send a parked action back to the worker; it is tried on its next pass."""
    try:
        deadlines.retry_stuck(ctx_of(request), user.principal, timer_id)
    except NotFound as exc:
        return not_found_page(request, exc)
    return see_other("/app/platform/automatic-actions",
                     flash=_t(request, "The automatic action will be tried again on the next pass."))


# --- deposits (D1) and the ledger (D2) --------------------------------------------------------------------------
@router.get("/platform/deposits", response_class=HTMLResponse)
def deposits_page(request: Request, user: PlatformStaff) -> Response:
    """D1: every merchant's deposit, restricted ones first."""
    return render(request, "platform/deposits.html", rows=console.deposits_overview(ctx_of(request), user.principal))


def _shop_deposit(request: Request, user: Any, merchant_id: str, *, status_code: int = 200, error: str | None = None,
                  form: dict[str, str] | None = None) -> Response:
    ctx = ctx_of(request)
    try:
        dep = deposits.get_deposit(ctx, user.principal, merchant_id)
        withdrawals = deposits.list_withdrawals(ctx, user.principal, merchant_id)["items"]
    except NotFound as exc:
        return not_found_page(request, exc)
    return render(request, "platform/shop_deposit.html", status_code=status_code, error=error, dep=dep,
                  withdrawals=withdrawals, form=form or {}, advance_reasons=ADVANCE_REASONS,
                  name=dict(console.shops(ctx, user.principal)).get(merchant_id, merchant_id))


@router.get("/platform/deposits/{merchant_id}", response_class=HTMLResponse)
def shop_deposit(request: Request, user: PlatformStaff, merchant_id: Id) -> Response:
    """D1: one shop's deposit and withdrawals, with a top-up and the closing of the shop (P2), each confirmed first."""
    return _shop_deposit(request, user, merchant_id)


@router.post("/platform/deposits/{merchant_id}/top-up", dependencies=[Csrf])
def shop_top_up(request: Request, user: PlatformStaff, merchant_id: Id, amount: Annotated[str, Form(max_length=20)] = "",
                confirmed: Annotated[str, Form(max_length=2)] = "") -> Response:
    """D1: first the confirmation page (the amount, what settles the debt, what fills the deposit, the deposit
    afterwards); then, confirmed, the top-up itself — the service's one posting."""
    ctx = ctx_of(request)
    try:
        amount_fen = fen_of(amount)
        if confirmed != "1":
            preview = deposits.top_up_preview(ctx, user.principal, merchant_id, amount_fen)
            return render(request, "platform/confirm_deposit.html", action="top_up", merchant_id=merchant_id,
                          p=preview, hidden={"amount": amount})
        deposits.top_up(ctx, user.principal, merchant_id, amount_fen)
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _shop_deposit(request, user, merchant_id, status_code=exc.status, error=explain(request, exc),
                             form={"amount": amount})
    return see_other(f"/app/platform/deposits/{merchant_id}",
                     flash=_t(request, N_("Top-up of {amount} recorded."), amount=i18n.format_fen(amount_fen, lang_of(request))))


@router.post("/platform/deposits/{merchant_id}/close", dependencies=[Csrf])
def shop_close(request: Request, user: PlatformStaff, merchant_id: Id, reason: Annotated[str, Form(max_length=40)] = "",
               confirmed: Annotated[str, Form(max_length=2)] = "") -> Response:
    """P2: first the confirmation page (the rulings the platform pays at once, their total, what the deposit covers
    and what becomes debt); then, confirmed, the closure — the service's own."""
    ctx = ctx_of(request)
    try:
        if reason not in ADVANCE_REASONS:
            raise Invalid(N_("Choose why the shop is closed."))
        if confirmed != "1":
            preview = deposits.close_shop_preview(ctx, user.principal, merchant_id)
            return render(request, "platform/confirm_deposit.html", action="close", merchant_id=merchant_id,
                          p=preview, reason=reason, advance_reasons=ADVANCE_REASONS, hidden={"reason": reason})
        done = deposits.close_shop(ctx, user.principal, merchant_id, reason)
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _shop_deposit(request, user, merchant_id, status_code=exc.status, error=explain(request, exc))
    return see_other(f"/app/platform/deposits/{merchant_id}",
                     flash=_t(request, N_("Shop closed; {n} ruling(s) paid by the platform."), n=done["rulings_advanced"]))


def _ledger_query(request: Request, account: str, first_day: str, last_day: str) -> tuple[str, Any, Any]:
    """The ledger's filters as the service takes them: an account (checked) and local days (T0) as instants."""
    account = account.strip()
    if account and not ACCOUNT.match(account):
        raise Invalid("An account looks like merchant:<id>:deposit or platform::compensation_fund.")
    at_after, at_before = ledger.local_period(first_day, last_day, ctx_of(request).policy.timezone)
    return account, at_after, at_before


@router.get("/platform/ledger", response_class=HTMLResponse)
def ledger_page(request: Request, user: PlatformStaff, account: Annotated[str, Query(max_length=120)] = "",
                cursor: Annotated[str | None, Query(max_length=20)] = None,
                first_day: Annotated[str, Query(alias="from", max_length=10)] = "",
                last_day: Annotated[str, Query(alias="to", max_length=10)] = "") -> Response:
    """D2: transactions newest first with their entries; filtered by an account, with its balance, and by local
    days (``from``/``to``, both included); the same filters export as CSV."""
    account = account.strip()
    error = None
    page: dict[str, Any] = {"items": [], "next_cursor": None}
    try:
        account, at_after, at_before = _ledger_query(request, account, first_day, last_day)
        page = ledger.transactions(ctx_of(request), user.principal, account=account or None, cursor=cursor,
                                   limit=PAGE_SIZE, at_after=at_after, at_before=at_before)
    except (ServiceError, DomainError) as exc:
        error = explain(request, exc)
    query = {k: v for k, v in {"account": account, "from": first_day.strip(), "to": last_day.strip()}.items() if v}
    next_url = f"/app/platform/ledger?{urlencode({**query, 'cursor': page['next_cursor']})}" if page["next_cursor"] else None
    csv_url = f"/app/platform/ledger.csv?{urlencode(query)}" if not error else None
    return render(request, "platform/ledger.html", status_code=422 if error else 200, error=error, account=account,
                  first_day=first_day.strip(), last_day=last_day.strip(), page=page, next_url=next_url, csv_url=csv_url)


LEDGER_CSV_HEADER = ("transaction_id", "at", "kind", "rule", "order_id", "case_id", "key", "account", "debit_fen",
                     "credit_fen")


@router.get("/platform/ledger.csv")
def ledger_csv(request: Request, user: PlatformStaff, account: Annotated[str, Query(max_length=120)] = "",
               first_day: Annotated[str, Query(alias="from", max_length=10)] = "",
               last_day: Annotated[str, Query(alias="to", max_length=10)] = "") -> Response:
    """D2: the ledger's transactions of an account and/or local days as CSV, one line per entry, newest first (the
    page's filters; every matching transaction, never a truncated file). Bad filters: 422 with the rule."""
    try:
        account, at_after, at_before = _ledger_query(request, account, first_day, last_day)
        items = ledger.export_entries(ctx_of(request), user.principal, account=account or None, at_after=at_after,
                                      at_before=at_before)
    except (ServiceError, DomainError) as exc:
        return Response(explain(request, exc) + "\n", status_code=422, media_type="text/plain; charset=utf-8")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(LEDGER_CSV_HEADER)
    for tx in items:
        for e in tx["entries"]:
            writer.writerow([csv_cell(v) for v in (tx["id"], tx["at"], tx["kind"], tx["rule"] or "", tx["order_id"] or "",
                                                   tx["case_id"] or "", tx["key"], e["account"], e["debit_fen"],
                                                   e["credit_fen"])])
    name = "-".join(p for p in ("ledger", re.sub(r"[^A-Za-z0-9_.-]", "_", account), first_day.strip(), last_day.strip()) if p)
    return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "content-disposition": f'attachment; filename="{name}.csv"', "x-content-type-options": "nosniff",
        "cache-control": "no-store"})


# --- credentials: API keys and staff sessions -------------------------------------------------------------------
KeyId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
SessionId = Annotated[str, Path(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")]


def _credentials(request: Request, user: Any, *, cursor: str | None = None, status_code: int = 200,
                 error: str | None = None, new_key: dict[str, Any] | None = None) -> Response:
    ctx = ctx_of(request)
    keys = credentials.list_api_keys(ctx, user.principal, cursor=cursor, limit=PAGE_SIZE)
    sessions = credentials.list_sessions(ctx, user.principal, limit=credentials.MAX_PAGE)
    next_url = f"/app/platform/credentials?{urlencode({'cursor': keys['next_cursor']})}" if keys["next_cursor"] else None
    response = render(request, "platform/credentials.html", status_code=status_code, error=error, keys=keys["items"],
                      sessions=sessions["items"], next_url=next_url, new_key=new_key)
    if new_key is not None:  # a secret on the page: never kept by a cache
        response.headers["cache-control"] = "no-store"
    return response


@router.get("/platform/credentials", response_class=HTMLResponse)
def credentials_page(request: Request, user: PlatformStaff,
                     cursor: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")] = None) -> Response:
    """API keys (never the keys: id, role, subject, label, created, revoked) and signed-in staff."""
    return _credentials(request, user, cursor=cursor or None)


@router.post("/platform/credentials/keys/{key_id}/{verb}", dependencies=[Csrf])
def key_action(request: Request, user: PlatformStaff, key_id: KeyId,
               verb: Annotated[str, Path(pattern=r"^(revoke|rotate)$")]) -> Response:
    """Revoke a key, or rotate it: the new key is shown on this answer only (not in a redirect, nor a cookie)."""
    try:
        if verb == "rotate":
            return _credentials(request, user, new_key=credentials.rotate_api_key(ctx_of(request), user.principal, key_id))
        credentials.revoke_api_key(ctx_of(request), user.principal, key_id)
    except ServiceError as exc:
        return _credentials(request, user, status_code=exc.status, error=explain(request, exc))
    return see_other("/app/platform/credentials", flash=_t(request, N_("Key {id} revoked."), id=key_id))


@router.post("/platform/credentials/sessions/{session_id}/revoke", dependencies=[Csrf])
def session_revoke(request: Request, user: PlatformStaff, session_id: SessionId) -> Response:
    """Sign a staff member out everywhere that session was used."""
    try:
        credentials.revoke_session(ctx_of(request), user.principal, session_id)
    except ServiceError as exc:
        return _credentials(request, user, status_code=exc.status, error=explain(request, exc))
    return see_other("/app/platform/credentials", flash=_t(request, N_("Session signed out.")))


# --- publishing a policy change (T0, D3; issue 15) ---------------------------------------------------------------
DraftId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
POLICY_STATUSES = {"draft": N_("draft"), "scheduled": N_("scheduled"), "in_force": N_("in force"),
                   "superseded": N_("superseded"), "withdrawn": N_("withdrawn")}
POLICY_VERBS = {"schedule": N_("Schedule"), "withdraw": N_("Withdraw")}


#: E4–E6: the labels of a category's terms (the policy page's category table and form).
TERM_LABELS = {"no_reason_return": N_("No-reason return"), "statutory_exclusion": N_("Statutory exclusion"),
               "after_sales_days": N_("After-sales days"), "warranty_days": N_("Warranty days")}
EXCLUSION_LABELS = {"custom_made": N_("custom-made"), "perishable": N_("perishable"), "digital": N_("digital"),
                    "periodical": N_("periodical")}


def _term_field(code: str, term: str) -> str:
    return f"c-{code}-{term}"


def _term_text(value: Any) -> str:
    return "" if value is None else ("true" if value is True else "false" if value is False else str(value))


def _policy_page(request: Request, user: Any, *, status_code: int = 200, error: str | None = None,
                 form: dict[str, str] | None = None, confirm: tuple[str, str] | None = None) -> Response:
    ctx = ctx_of(request)
    current = terms.policy_in_force(ctx, user.principal)
    drafts = publishing.list_drafts(ctx, user.principal)["items"]
    parameters = {k: current[k] for k in publishing.PARAMETERS}
    categories = setup.list_categories(ctx)
    typed = form or {}
    form = {k: ", ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in parameters.items()}
    form |= {_term_field(c["code"], t): _term_text(c[t]) for c in categories for t in publishing.TERMS}
    form |= typed  # what was typed, when the draft was refused
    pending = None
    if confirm is not None:
        pending = next((d for d in drafts if d["id"] == confirm[1] and confirm[0] in d["allowed_actions"]), None)
        if pending is None:
            error = error or _t(request, N_("This draft cannot be scheduled or withdrawn any more: reload the page."))
    return render(request, "platform/policy.html", status_code=status_code, error=error, current=current,
                  parameters=parameters, drafts=drafts, form=form, statuses=POLICY_STATUSES, verbs=POLICY_VERBS,
                  confirm_verb=confirm[0] if confirm and pending else None, pending=pending, meanings=MEANINGS,
                  categories=categories, term_labels=TERM_LABELS, exclusions=EXCLUSION_LABELS, term_field=_term_field)


@router.get("/platform/policy", response_class=HTMLResponse)
def policy_page(request: Request, user: PlatformStaff,
                confirm: Annotated[str | None, Query(pattern=r"^(schedule|withdraw)$")] = None,
                draft: Annotated[str | None, Query(max_length=40, pattern=r"^[A-Za-z0-9_-]+$")] = None) -> Response:
    """T0: the version in force, the drafts with their difference, a form for a new draft; a schedule or withdrawal
    is asked for confirmation first (``?confirm=schedule&draft=ID``)."""
    return _policy_page(request, user, confirm=(confirm, draft) if confirm and draft else None)


def _form_value(default: Any, raw: str) -> Any:
    """A form field as the parameter's type when it reads as one; otherwise as typed (the checks name it)."""
    text = raw.strip()
    if isinstance(default, list):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        return [int(p) if re.fullmatch(r"-?\d{1,9}", p) else p for p in parts]
    if isinstance(default, int) and re.fullmatch(r"-?\d{1,12}", text):
        return int(text)
    return text


def _term_value(raw: str) -> Any:
    """A category term as typed: empty is none (the policy's window), true/false, a whole number, else the text (the
    checks name it)."""
    text = raw.strip()
    if not text:
        return None
    if text in ("true", "false"):
        return text == "true"
    return int(text) if re.fullmatch(r"\d{1,9}", text) else text


def _drafted_terms(form: dict[str, str], categories: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The categories whose terms the form changes (those sent and differing from the terms in force)."""
    out: dict[str, Any] = {}
    for c in categories:
        names = {t: _term_field(c["code"], t) for t in publishing.TERMS}
        if not any(n in form for n in names.values()):
            continue
        terms_ = {t: _term_value(form.get(n, "")) for t, n in names.items()}
        if any(terms_[t] != c[t] for t in publishing.TERMS):
            out[c["code"]] = terms_
    return out or None


@router.post("/platform/policy/drafts", dependencies=[Csrf])
async def policy_draft(request: Request, user: PlatformStaff) -> Response:
    """Create a draft from the form: the parameters and the category terms that differ from those in force, the
    reason and the local date and time it takes effect."""
    data = await request.form()
    ctx = ctx_of(request)
    categories = await run_in_threadpool(setup.list_categories, ctx)
    fields = [_term_field(c["code"], t) for c in categories for t in publishing.TERMS]
    form = {k: str(data.get(k, ""))[:200] for k in (*publishing.PARAMETERS, "reason", "effective_at")}
    form |= {k: str(data[k])[:200] for k in fields if k in data}
    defaults = ctx.policy.as_dict()
    try:
        effective = None
        if form["effective_at"]:
            try:
                naive = datetime.fromisoformat(form["effective_at"])
            except ValueError:
                raise Invalid("effective_at: give a date and time") from None
            effective = naive.replace(tzinfo=zone(ctx.policy.timezone)) if naive.tzinfo is None else naive
        params: dict[str, Any] | None = {k: _form_value(defaults[k], form[k]) for k in publishing.PARAMETERS}
        drafted = _drafted_terms(form, categories)
        in_force = await run_in_threadpool(terms.policy_in_force, ctx, user.principal)
        if drafted and params == {k: in_force[k] for k in publishing.PARAMETERS}:
            params = None  # the form changes category terms only: the policy stays as it is
        d = await run_in_threadpool(publishing.create_draft, ctx, user.principal, params,
                                    reason=_text(str(data.get("reason", "")), "reason"), effective_at=effective,
                                    categories=drafted, by=f"user:{user.name}")
    except ServiceError as exc:
        detail = explain(request, exc)
        return await run_in_threadpool(_policy_page, request, user, status_code=exc.status, error=detail, form=form)
    return see_other("/app/platform/policy", flash=_t(request, N_("Draft {id} saved: nothing changes until it is scheduled."),
                                                      id=d["id"]))


@router.post("/platform/policy/drafts/{draft_id}/{verb}", dependencies=[Csrf])
def policy_draft_action(request: Request, user: PlatformStaff, draft_id: DraftId,
                        verb: Annotated[str, Path(pattern=r"^(schedule|withdraw)$")],
                        reason: Annotated[str, Form(max_length=MAX_TEXT)] = "") -> Response:
    """Schedule or withdraw a draft (after the page's confirmation)."""
    fn = publishing.schedule if verb == "schedule" else publishing.withdraw
    try:
        fn(ctx_of(request), user.principal, draft_id, reason=_text(reason, "reason") or None, by=f"user:{user.name}")
    except NotFound as exc:
        return not_found_page(request, exc)
    except ServiceError as exc:
        return _policy_page(request, user, status_code=exc.status, error=explain(request, exc))
    done = N_("Draft {id} scheduled.") if verb == "schedule" else N_("Draft {id} withdrawn.")
    return see_other("/app/platform/policy", flash=_t(request, done, id=draft_id))


# --- what-if replay of a draft over a period (issue 15) -------------------------------------------------------------
ReplayId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
REPLAY_STATUSES = {"queued": N_("waiting for the worker"), "running": N_("running"), "done": N_("done"),
                   "failed": N_("failed")}
REPLAY_KINDS = {dreplay.ELIGIBILITY: N_("eligibility changed"), dreplay.DEADLINES: N_("deadlines changed"),
                dreplay.AUTOMATIC: N_("automatic actions changed"), dreplay.OUTCOME: N_("outcome changed"),
                dreplay.REFUND: N_("refund amount changed")}
#: How often the replay page asks for the progress while the job runs (HTMX).
REPLAY_POLL_SECONDS = 2


@router.post("/platform/policy/replays", dependencies=[Csrf])
def policy_replay_start(request: Request, user: PlatformStaff,
                        draft_id: Annotated[str, Form(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")],
                        start: Annotated[str, Form(alias="from", max_length=40)] = "",
                        end: Annotated[str, Form(alias="to", max_length=40)] = "",
                        workers: Annotated[int, Form(ge=1, le=replay_jobs.MAX_WORKERS)] = 1) -> Response:
    """Queue a what-if replay of the draft over [from, to) (local dates) and show its page."""
    try:
        job = replay_jobs.start(ctx_of(request), user.principal, draft_id, start.strip(), end.strip(),
                                workers=workers, by=f"user:{user.name}")
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _policy_page(request, user, status_code=exc.status, error=explain(request, exc))
    return see_other(f"/app/platform/policy/replays/{job['id']}")


def _replay(request: Request, user: Any, replay_id: str, template: str) -> Response:
    try:
        job = replay_jobs.get(ctx_of(request), user.principal, replay_id)
    except NotFound as exc:
        return not_found_page(request, exc)
    return render(request, template, job=job, report=job["report"], statuses=REPLAY_STATUSES, kinds=REPLAY_KINDS,
                  poll_seconds=REPLAY_POLL_SECONDS)


@router.get("/platform/policy/replays/{replay_id}", response_class=HTMLResponse)
def policy_replay_page(request: Request, user: PlatformStaff, replay_id: ReplayId) -> Response:
    """The replay's progress while it runs (polled), then its report: differences by kind, shop, category and rule
    id, and differing cases with both timelines side by side."""
    return _replay(request, user, replay_id, "platform/replay.html")


@router.get("/platform/policy/replays/{replay_id}/progress", response_class=HTMLResponse)
def policy_replay_progress(request: Request, user: PlatformStaff, replay_id: ReplayId) -> Response:
    """The fragment the replay page polls (HTMX): the progress again while running, the report once done."""
    return _replay(request, user, replay_id, "platform/_replay.html")


@router.get("/platform/policy/replays/{replay_id}/report.csv")
def policy_replay_csv(request: Request, user: PlatformStaff, replay_id: ReplayId) -> Response:
    """The replay's differences as CSV (the columns of `aftersales policy replay --csv`)."""
    try:
        return csv_response(*replay_jobs.report_csv(ctx_of(request), user.principal, replay_id))
    except NotFound as exc:
        return not_found_page(request, exc)


@router.get("/platform/policy/record")
def policy_record(request: Request, user: PlatformStaff) -> Response:
    """D3: the policy's record (every draft, schedule and withdrawal), as the API exports it."""
    return record_response(*publishing.record(ctx_of(request), user.principal, secret=settings_of(request).record_secret))
# --- staff users ------------------------------------------------------------------------------------------------
UserId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ROLE_LABELS = {"merchant_agent": N_("merchant agent"), "merchant_admin": N_("merchant admin"),
               "platform_agent": N_("platform agent")}


def _users(request: Request, user: Any, *, cursor: str | None = None, status_code: int = 200, error: str | None = None,
           form: dict[str, str] | None = None, password: dict[str, Any] | None = None) -> Response:
    page = users.list_users(ctx_of(request), user.principal, cursor=cursor, limit=PAGE_SIZE)
    next_url = f"/app/platform/users?{urlencode({'cursor': page['next_cursor']})}" if page["next_cursor"] else None
    response = render(request, "platform/users.html", status_code=status_code, error=error, rows=page["items"],
                      next_url=next_url, form=form or {}, password=password, roles=ROLE_LABELS,
                      merchants=console.shops(ctx_of(request), user.principal))
    if password is not None:  # a password on the page: never kept by a cache
        response.headers["cache-control"] = "no-store"
    return response


@router.get("/platform/users", response_class=HTMLResponse)
def users_page(request: Request, user: PlatformStaff,
               cursor: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.@-]*$")] = None) -> Response:
    """Staff users (role, shop, disabled) with create, disable/enable and password reset."""
    return _users(request, user, cursor=cursor or None)


@router.post("/platform/users", dependencies=[Csrf])
def create_user(request: Request, user: PlatformStaff, username: Annotated[str, Form(max_length=64)] = "",
                display_name: Annotated[str, Form(max_length=200)] = "", role: Annotated[str, Form(max_length=24)] = "",
                merchant_id: Annotated[str, Form(max_length=64)] = "",
                password: Annotated[str, Form(max_length=200)] = "") -> Response:
    """A new staff user; without a password typed, one is drawn at random and shown once on this answer."""
    form = {"username": username, "display_name": display_name, "role": role, "merchant_id": merchant_id}
    chosen = password or users.new_password()
    try:
        created = users.create_user(ctx_of(request), user.principal, username=username.strip(), password=chosen,
                                    role=role, merchant_id=(merchant_id.strip() or None) if role != "platform_agent" else None,
                                    display_name=_text(display_name, "display_name") or None)
    except NotFound as exc:
        return _users(request, user, status_code=422, error=explain(request, exc), form=form)
    except ServiceError as exc:
        return _users(request, user, status_code=exc.status, error=explain(request, exc), form=form)
    if password:
        return see_other("/app/platform/users", flash=_t(request, N_("User {name} created."), name=created["username"]))
    return _users(request, user, password={**created, "password": chosen})


@router.post("/platform/users/{user_id}/{verb}", dependencies=[Csrf])
def user_action(request: Request, user: PlatformStaff, user_id: UserId,
                verb: Annotated[str, Path(pattern=r"^(disable|enable|reset-password)$")]) -> Response:
    """Disable (signs them out everywhere), enable, or reset the password (the new one shown on this answer only)."""
    ctx = ctx_of(request)
    try:
        if verb == "reset-password":
            return _users(request, user, password=users.reset_password(ctx, user.principal, user_id))
        done = users.set_disabled(ctx, user.principal, user_id, disabled=verb == "disable", acting_user_id=user.id)
    except NotFound as exc:
        return not_found_page(request, exc)
    except ServiceError as exc:
        return _users(request, user, status_code=exc.status, error=explain(request, exc))
    text = N_("User {name} disabled and signed out.") if verb == "disable" else N_("User {name} enabled.")
    return see_other("/app/platform/users", flash=_t(request, text, name=done["username"]))
