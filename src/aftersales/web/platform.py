"""The platform console (P1, P2, K2, D1–D3): interventions and rulings, complaints, deposits, the ledger, records.

Platform agents only (anyone else gets the 404 page). Every page calls the same service functions as the API with
the agent's principal: which forms a case or complaint shows comes from its view's ``allowed_actions``, and every
refusal is shown with its rule id and explanation (S4).
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from aftersales import i18n
from aftersales.api.downloads import record_response
from aftersales.domain.errors import DomainError
from aftersales.domain.messages import N_
from aftersales.service import case_desk, console, credentials, deadlines, ledger, messages, records
from aftersales.service import cases as case_service
from aftersales.service import complaints as complaint_service
from aftersales.service.errors import Invalid, NotFound, ServiceError

from .app import evidence_file, not_found_page
from .deps import Csrf, PlatformStaff, ctx_of, explain, lang_of, render, see_other, settings_of
from .merchant import CLOSE_LABELS, DUE_ACTIONS, RULE_TITLES, fen_of

router = APIRouter(prefix="/app", include_in_schema=False)

Id = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
PAGE_SIZE = 50
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
@router.get("/platform", response_class=HTMLResponse)
def interventions(request: Request, user: PlatformStaff,
                  cursor: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """P1: cases under platform review, flagged overdue first, then by nearest deadline."""
    ctx, lang = ctx_of(request), lang_of(request)
    error = None
    try:
        page = case_service.list_cases(ctx, user.principal, status="platform_review", order_id=None, merchant_id=None,
                                       due_before=None, cursor=cursor, limit=PAGE_SIZE, lang=lang, sort="deadline")
    except (DomainError, ServiceError) as exc:  # a tampered cursor
        page, error = {"items": [], "next_cursor": None}, explain(request, exc)
    counts = case_service.count_by_status(ctx, user.principal)
    next_url = f"/app/platform?{urlencode({'cursor': page['next_cursor']})}" if page["next_cursor"] else None
    return render(request, "platform/queue.html", status_code=422 if error else 200, error=error, rows=page["items"],
                  in_review=counts.get("platform_review", 0), next_url=next_url, first=cursor is None,
                  due_actions=DUE_ACTIONS)


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
    ctx = ctx_of(request)
    try:
        c = complaint_service.get(ctx, user.principal, complaint_id)
        events = complaint_service.events(ctx, user.principal, complaint_id, cursor=None, limit=200)["items"]
        notes = messages.list_messages(ctx, user.principal, "complaint", complaint_id, cursor=None, limit=200)["items"]
    except NotFound as exc:
        return not_found_page(request, exc)
    return render(request, "platform/complaint.html", status_code=status_code, error=error, c=c, events=events,
                  notes=notes, form=form or {}, statuses=COMPLAINT_STATUS, categories=COMPLAINT_CATEGORY,
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
def deposits(request: Request, user: PlatformStaff) -> Response:
    """D1: every merchant's deposit, restricted ones first."""
    return render(request, "platform/deposits.html", rows=console.deposits_overview(ctx_of(request), user.principal))


@router.get("/platform/ledger", response_class=HTMLResponse)
def ledger_page(request: Request, user: PlatformStaff, account: Annotated[str, Query(max_length=120)] = "",
                cursor: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    """D2: transactions newest first with their entries; filtered by an account, with its balance."""
    account = account.strip()
    error = None
    page: dict[str, Any] = {"items": [], "next_cursor": None}
    try:
        if account and not ACCOUNT.match(account):
            raise Invalid("An account looks like merchant:<id>:deposit or platform::compensation_fund.")
        page = ledger.transactions(ctx_of(request), user.principal, account=account or None, cursor=cursor,
                                   limit=PAGE_SIZE)
    except (ServiceError, DomainError) as exc:
        error = explain(request, exc)
    query = {"account": account} if account else {}
    next_url = f"/app/platform/ledger?{urlencode({**query, 'cursor': page['next_cursor']})}" if page["next_cursor"] else None
    return render(request, "platform/ledger.html", status_code=422 if error else 200, error=error, account=account,
                  page=page, next_url=next_url)


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
