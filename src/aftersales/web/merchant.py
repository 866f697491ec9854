"""Workbench pages of a shop's staff: the queue (S1) and the case desk (S2–S5).

Every page calls the same service functions as the API with the signed-in user's principal; which actions a form
is shown for comes from the case view's ``allowed_actions``, and every refusal is shown with its rule id and
explanation (S4). Another merchant's case answers 404 exactly like an unknown id (T2).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from aftersales import i18n
from aftersales.api.downloads import evidence_store
from aftersales.domain.cases import Auto, CaseStatus
from aftersales.domain.catalog import CaseType, Reason
from aftersales.domain.errors import DomainError
from aftersales.domain.messages import N_
from aftersales.service import case_desk, deposits, evidence, messages, return_addresses, shop_desk
from aftersales.service import cases as case_service
from aftersales.service import complaints as complaint_service
from aftersales.service.errors import Invalid, NotFound, ServiceError

from .app import complaint_record, evidence_file, not_found_page
from .deps import Csrf, MerchantStaff, Staff, ctx_of, explain, lang_of, render, see_other, settings_of

router = APIRouter(prefix="/app", include_in_schema=False)

CaseId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
PAGE_SIZE = 25
MAX_TEXT = 2000
DUE_WITHIN = {"4h": timedelta(hours=4), "24h": timedelta(hours=24)}
#: The queue highlights a row whose deadline is this close (amber) or past / flagged (red).
SOON = timedelta(hours=4)

#: What each RULEBOOK rule is about, shown next to its id in the timeline (titles of RULEBOOK.md).
RULE_TITLES = {
    "T0": N_("Time"), "T1": N_("Money"), "T2": N_("Actors"),
    "G1": N_("Group window"), "G2": N_("No after-sales while the group is pending"), "G3": N_("Group formation"),
    "G4": N_("Group expiry"), "G5": N_("Completing a group for the customer"),
    "E1": N_("Pending group"), "E2": N_("Before shipment"), "E3": N_("Shipped, not yet delivered"),
    "E4": N_("No-reason return"), "E5": N_("Merchant-responsibility problems"), "E6": N_("Warranty"),
    "E7": N_("After the windows"), "E8": N_("Cancellation limit"), "E9": N_("One case at a time"), "E10": N_("Amounts"),
    "M1": N_("Merchant response"), "M2": N_("Refusal"), "M3": N_("Who pays return shipping"), "M4": N_("Exchange first"),
    "M5": N_("Buyer ships the return"), "M6": N_("Merchant receives the return"), "M7": N_("Exchange, reship, repair"),
    "M8": N_("Negotiated partial refund"), "C1": N_("Cancellation"), "F1": N_("Refunds"),
    "P1": N_("Platform intervention"), "P2": N_("Advance compensation"), "K1": N_("Complaint channels"),
    "K2": N_("Complaints"), "D1": N_("Consumer-rights deposit"), "D2": N_("Ledger"), "D3": N_("Dispute resolution"),
    "S1": N_("Timeliness"), "S2": N_("Calm the customer"), "S3": N_("Understand the problem"),
    "S4": N_("Solve within the rules"), "S5": N_("Record and archive"), "S6": N_("Tell customers early"),
}
#: What the system does when the deadline passes (the deadline's ``action``).
DUE_ACTIONS = {
    Auto.REMIND_MERCHANT.value: N_("the shop is reminded"),
    Auto.AUTO_APPROVE.value: N_("the system approves the request on the shop's behalf"),
    Auto.CLOSE_UNANSWERED.value: N_("the case closes as refused if the buyer does not answer"),
    Auto.LAPSE_OFFER.value: N_("the offer lapses and counts as declined"),
    Auto.CLOSE_BUYER_OVERDUE.value: N_("the case closes because the buyer did not ship the return"),
    Auto.RETURN_TIMEOUT.value: N_("the system refunds the buyer (or goes on with the exchange)"),
    Auto.SHIP_TIMEOUT.value: N_("the case turns into a refund of the goods concerned"),
    Auto.AUTO_CONFIRM_RECEIVED.value: N_("the case closes as done"),
    Auto.FLAG_PLATFORM_OVERDUE.value: N_("the case is flagged as overdue for the platform"),
    Auto.ADVANCE_COMPENSATION.value: N_("the platform pays the ruling and recovers it from the deposit"),
}
CLOSE_LABELS = {
    "refunded": N_("refunded"), "exchanged": N_("exchanged"), "reshipped": N_("reshipped"), "repaired": N_("repaired"),
    "cancelled": N_("cancelled by the buyer"), "buyer_overdue": N_("the buyer did not ship the return"),
    "rejected": N_("refused"), "platform_rejected": N_("rejected by the platform"),
    "order_cancelled": N_("the order was cancelled"),
}
#: S3 reason categories.
CATEGORY_LABELS = {"product": N_("product"), "logistics": N_("logistics"), "service": N_("service"),
                   "buyer": N_("buyer's own reason"), "other": N_("other")}
OFFER_LABELS = {"exchange": N_("free exchange"), "partial_refund": N_("partial refund, the buyer keeps the goods"),
                "refund": N_("refund"), "reject": N_("reject the request")}
#: The fields of each action's form: (name, kind) with kind text | textarea | yuan | payer | outcome | advance.
ACTION_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "approve": (("return_shipping_payer", "payer"), ("return_address_id", "address")),
    "reject": (("reason", "textarea"),),
    "offer_partial_refund": (("refund_fen", "yuan"),),
    "reject_return": (("reason", "textarea"),),
    "ship_replacement": (("carrier", "text"), ("tracking_no", "text")),
    "rule": (("outcome", "outcome"), ("refund_fen", "yuan"), ("rationale", "textarea")),
    "advance_compensate": (("reason", "advance"),),
    "escalate": (("reason", "textarea"),),
}
#: Actions that change money or close a door get a red button.
DANGER = frozenset({"reject", "reject_return", "advance_compensate"})
YUAN = re.compile(r"^\s*(\d{1,11})(?:[.,](\d{1,2}))?\s*$")


# --- the queue ------------------------------------------------------------------------------------------------
#: S1: the queue's views — whose next move it is, and who of the shop handles the case.
VIEWS = {"action": N_("Needs my action"), "mine": N_("Mine"), "unassigned": N_("Unassigned"), "all": N_("All")}
#: How often the queue asks whether new cases arrived (seconds).
POLL_SECONDS = 20


def _view_filter(view: str) -> dict[str, Any]:
    """The list_cases arguments of a queue view (S1)."""
    return {"action": {"awaiting": "merchant"}, "mine": {"assignee": "me"}, "unassigned": {"assignee": "none"},
            "all": {}}[view]


@router.get("/queue", response_class=HTMLResponse)
def queue(request: Request, user: MerchantStaff,
          view: Annotated[str, Query(max_length=12)] = "action",
          q: Annotated[str, Query(max_length=64)] = "",
          status: Annotated[str, Query(max_length=40)] = "",
          type: Annotated[str, Query(max_length=20)] = "",
          reason: Annotated[str, Query(max_length=40)] = "",
          due: Annotated[str, Query(max_length=8)] = "",
          cursor: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """S1: the shop's open cases, nearest deadline first, in one of the views (needs my action, mine, unassigned,
    all), with filters, search, counts per status, claim buttons and the bulk approval of the cases the shop cannot
    refuse anyway (M2)."""
    ctx, lang = ctx_of(request), lang_of(request)
    view = view if view in VIEWS else "action"
    filters = {"q": q.strip(), "status": status if status in _STATUSES else "", "type": type if type in _TYPES else "",
               "reason": reason if reason in _REASONS else "", "due": due if due in DUE_WITHIN else ""}
    now = ctx.now()
    error = None
    try:
        page = case_service.list_cases(
            ctx, user.principal, status=filters["status"] or None, order_id=None, merchant_id=None,
            due_before=now + DUE_WITHIN[filters["due"]] if filters["due"] else None, cursor=cursor, limit=PAGE_SIZE,
            lang=lang, sort="deadline", case_type=filters["type"] or None, reason=filters["reason"] or None,
            search=filters["q"] or None, open_only=True, me=user.id, **_view_filter(view))
    except (DomainError, ServiceError) as exc:  # a tampered cursor: show the first page's filters with the refusal
        page, error = {"items": [], "next_cursor": None}, explain(request, exc)
    counts = case_service.count_by_status(ctx, user.principal)
    deposit = deposits.get_deposit(ctx, user.principal, _shop(user))  # D1: a restricted shop is told
    rows = [{**c, "urgency": _urgency(c, now)} for c in page["items"]]
    active = {k: v for k, v in filters.items() if v}
    state = {**({"view": view} if view != "action" else {}), **active}
    next_url = f"/app/queue?{urlencode({**state, 'cursor': page['next_cursor']})}" if page["next_cursor"] else None
    return render(request, "merchant/queue.html", status_code=422 if error else 200, error=error, rows=rows,
                  filters=filters, counts=counts, open_total=sum(n for s, n in counts.items() if s != "closed"),
                  statuses=_STATUSES, types=_TYPES, reasons=_REASONS, next_url=next_url,
                  first_url=f"/app/queue?{urlencode(state)}" if cursor else None,
                  due_actions=DUE_ACTIONS, filtered=bool(active), deposit=deposit, view=view, views=VIEWS,
                  view_url=lambda v: "/app/queue" + (f"?{urlencode({'view': v})}" if v != "action" else ""),
                  here=f"/app/queue?{urlencode(state)}" if state else "/app/queue",
                  staff_names=_staff_names(request, user), me=user.id, since=now.isoformat(),
                  poll_seconds=POLL_SECONDS)


def _staff_names(request: Request, user: Any) -> dict[str, str]:
    return {u["id"]: u["name"] for u in shop_desk.staff(ctx_of(request), user.principal)}


@router.get("/queue/arrivals", response_class=HTMLResponse)
def queue_arrivals(request: Request, user: MerchantStaff,
                   since: Annotated[str, Query(max_length=40)] = "",
                   back: Annotated[str, Query(max_length=400, pattern=r"^/app/queue(\?[^\s]*)?$")] = "/app/queue") -> Response:
    """S1: the small fragment the queue polls (HTMX): how many cases arrived since the page was shown."""
    try:
        instant = datetime.fromisoformat(since)
    except ValueError:
        return Response(status_code=204)
    if instant.tzinfo is None:
        return Response(status_code=204)
    count = shop_desk.arrived_since(ctx_of(request), user.principal, instant)
    return render(request, "merchant/_arrivals.html", count=count, back=back)


@router.post("/cases/{case_id}/claim", dependencies=[Csrf])
def claim_case(request: Request, user: MerchantStaff, case_id: CaseId,
               back: Annotated[str, Form(max_length=400, pattern=r"^/app/(queue|cases/)[^\s]*$")] = "/app/queue") -> Response:
    """S1: take a case nobody handles yet (someone else got there first: said, nothing changed)."""
    lang = lang_of(request)
    try:
        case_service.assign(ctx_of(request), user.principal, case_id, assignee="me", me=user.id, unassigned_only=True,
                            lang=lang)
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return see_other(back, flash=explain(request, exc))
    return see_other(back, flash=i18n.translate(N_("The case is yours."), lang))


@router.post("/cases/{case_id}/assign", dependencies=[Csrf])
def assign_case(request: Request, user: MerchantStaff, case_id: CaseId,
                assignee: Annotated[str, Form(max_length=64)] = "") -> Response:
    """S1: give the case to a colleague of the shop, or back to nobody (the service checks the user is the shop's)."""
    lang = lang_of(request)
    try:
        case_service.assign(ctx_of(request), user.principal, case_id, assignee=assignee.strip() or None, me=user.id,
                            unassigned_only=False, lang=lang)
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return see_other(f"/app/cases/{case_id}#handler", flash=explain(request, exc), warning=True)
    text = N_("The case is assigned.") if assignee.strip() else N_("Nobody handles the case now.")
    return see_other(f"/app/cases/{case_id}#handler", flash=i18n.translate(text, lang))


@router.post("/queue/bulk", dependencies=[Csrf])
async def queue_bulk(request: Request, user: MerchantStaff) -> Response:
    """S1 + M2: approve the ticked cases together. First a confirmation listing each case, its amount and what
    happens next (a dry run of each approval: the rules answer, nothing changes); once confirmed, each case is
    approved on its own and the page lists what happened to each."""
    form = await request.form()
    ids = [v for v in form.getlist("case_id") if isinstance(v, str)]
    lang = lang_of(request)
    confirmed = form.get("confirmed") == "1"
    if not ids:
        return see_other("/app/queue", flash=i18n.translate(N_("Tick the cases to approve first."), lang))
    try:
        out = case_service.bulk_act(ctx_of(request), user.principal, "approve", ids, dry_run=not confirmed, lang=lang,
                                    tz=ctx_of(request).policy.timezone)
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return see_other("/app/queue", flash=explain(request, exc))
    rows = [{**r, "next": _bulk_next(r["case"]) if r["case"] else None,
             "amount": _bulk_amount(r["case"]) if r["case"] else None} for r in out["results"]]
    return render(request, "merchant/bulk.html", rows=rows, confirmed=confirmed, ok=out["ok"], refused=out["refused"],
                  total=sum(r["amount"] or 0 for r in rows if r["result"] == "ok"))


#: What an approval leads to, by the status the (dry-run) approval leaves the case in (a refund: ``MONEY_NEXT``).
BULK_NEXT = {
    "awaiting_return_shipment": N_("The buyer sends the goods back; you check them when they arrive (M6), then "
                                   "{amount} is refunded."),
    "awaiting_replacement_shipment": N_("You ship the replacement."),
}


def _bulk_amount(case: dict[str, Any]) -> int | None:
    """The money concerned: what the approval refunded (dry run: would refund), else what the buyer asked for."""
    return int(case["refunded_fen"]) if case.get("refunded_fen") else case.get("refund_fen")


def _bulk_next(case: dict[str, Any]) -> str | None:
    if case["status"] in ("refund_pending", "closed"):
        return MONEY_NEXT["approve"]
    return BULK_NEXT.get(case["status"])


_STATUSES = tuple(s.value for s in CaseStatus)
_TYPES = tuple(t.value for t in CaseType)
_REASONS = tuple(r.value for r in Reason)


def _urgency(case: dict[str, Any], now: datetime) -> str:
    """Row highlight only (the deadline itself comes from the case): late, urgent or calm."""
    if case.get("platform_overdue"):
        return "late"
    due = (case.get("deadline") or {}).get("due_at")
    if due is None:
        return ""
    left = datetime.fromisoformat(due) - now
    return "late" if left <= timedelta(0) else "urgent" if left < SOON else ""


# --- the case desk --------------------------------------------------------------------------------------------
def _desk(request: Request, user: Any, case_id: str, *, status_code: int = 200, error: str | None = None,
          form: dict[str, Any] | None = None, reply: int | None = None) -> Response:
    ctx, lang = ctx_of(request), lang_of(request)
    try:
        desk = case_desk.case_page(ctx, user.principal, case_id, lang=lang)
    except NotFound as exc:
        return not_found_page(request, exc)
    message = (form or {}).get("message", "")
    if reply is not None and 0 <= reply < len(desk["replies"]):
        message = desk["replies"][reply]["text"]  # "use this reply": the message box starts with it
    return render(request, "merchant/case.html", status_code=status_code, error=error, d=desk, c=desk["case"],
                  o=desk["order"], form=form or {}, message=message, fields=ACTION_FIELDS, danger=DANGER,
                  rule_titles=RULE_TITLES, due_actions=DUE_ACTIONS,
                  close_labels=CLOSE_LABELS, category_labels=CATEGORY_LABELS, offer_labels=OFFER_LABELS,
                  staff_names=_staff_names(request, user))


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, user: Staff, case_id: CaseId,
              reply: Annotated[int | None, Query(ge=0, le=50)] = None) -> Response:
    """The case desk: order, request, evidence, timeline, replies (S2), allowed actions, messages, notes, summary."""
    return _desk(request, user, case_id, reply=reply)


@router.post("/cases/{case_id}/act/{action}", dependencies=[Csrf])
async def case_action(request: Request, user: Staff, case_id: CaseId,
                      action: Annotated[str, Path(max_length=40, pattern=r"^[a-z_]+$")]) -> Response:
    """One action from the case desk, at the version the page showed (a stale page gets a clear 409)."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        version = _version(values.get("version"))
        params = _params(action, values)
        if values.get("confirmed") != "1":
            confirm = _confirmation(request, user, case_id, action, params, values)
            if confirm is not None:
                return confirm
        done = case_service.act(ctx_of(request), user.principal, case_id, action, params, if_match=version,
                                lang=lang_of(request))
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _desk(request, user, case_id, status_code=exc.status, error=explain(request, exc),
                     form={**values, "action": action})
    if done["status"] == CaseStatus.AWAITING_RETURN_SHIPMENT.value and done["return_address"] is None:
        return see_other(f"/app/cases/{case_id}", warning=True, flash=i18n.translate(N_(
            "Approved, but your shop has no return address: tell the buyer in a message where to send the goods."),
            lang_of(request)))
    return see_other(f"/app/cases/{case_id}", flash=i18n.done_notice(action, lang_of(request)))


#: F1/M8: what happens once the shop confirms an action that moves money (the amount is stated with it).
MONEY_NEXT = {
    "approve": N_("The buyer is refunded {amount} now, and the case closes."),
    "offer_partial_refund": N_("The buyer is offered {amount} and keeps the goods; if they accept, {amount} is refunded "
                               "at once. If they decline or do not answer, the request goes on as before."),
    "confirm_return": N_("You confirm the returned goods arrived as expected; the buyer is refunded {amount} now, "
                         "and the case closes."),
}


#: M5: what happens once the shop confirms the approval of a return (the address is shown with it).
RETURN_NEXT = N_("The buyer is asked to send the goods to this address and to enter the carrier and tracking number "
                 "within {days} days; you check the goods when they arrive.")
NO_ADDRESS_NEXT = N_("Your shop has no return address: the buyer is not told where to send the goods, so you will have "
                     "to tell them in a message. Add an address to the shop's return addresses first if you can.")


def _moves_money(action: str, case: dict[str, Any]) -> bool:
    """Which actions ask for a confirmation: approving a refund without return, a partial refund offer, and
    confirming the receipt of a return that is refunded."""
    if action == "approve":
        return bool(case["type"] == CaseType.REFUND_ONLY.value)
    if action == "confirm_return":
        return bool(case["type"] == CaseType.RETURN_REFUND.value)
    return action == "offer_partial_refund"


def _approves_return(action: str, desk: dict[str, Any]) -> bool:
    """M5: approving a return cannot be undone and sends the buyer to an address: it is confirmed too."""
    return action == "approve" and desk["return_addresses"] is not None


def _confirmation(request: Request, user: Any, case_id: str, action: str, params: dict[str, Any],
                  values: dict[str, str]) -> Response | None:
    """The confirm step before money moves or a return is approved (None: nothing to confirm, go on)."""
    ctx, lang = ctx_of(request), lang_of(request)
    desk = case_desk.case_page(ctx, user.principal, case_id, lang=lang)  # NotFound → 404 by the caller
    c = desk["case"]
    returning = _approves_return(action, desk)
    if action not in c["allowed_actions"] or not (returning or _moves_money(action, c)):
        return None  # not allowed: the service refuses it with its rule; nothing moves: nothing to confirm
    hidden = {k: v for k, v in values.items() if k not in ("csrf_token", "confirmed")}
    if returning:
        book = desk["return_addresses"]
        wanted = params.get("return_address_id")
        address = next((a for a in book if a["id"] == wanted), None) if wanted else next(iter(book), None)
        return render(request, "merchant/confirm.html", c=c, action=action, amount=None, hidden=hidden,
                      address=address, next_text=RETURN_NEXT if address else NO_ADDRESS_NEXT,
                      next_params={"days": ctx.policy.buyer_return_days}, rule="M5")
    amount = params.get("refund_fen") if action == "offer_partial_refund" else c.get("refund_fen")
    return render(request, "merchant/confirm.html", c=c, action=action, amount=amount, hidden=hidden,
                  next_text=MONEY_NEXT[action], next_params={}, rule="M8" if action == "offer_partial_refund" else "F1")


@router.post("/cases/{case_id}/messages", dependencies=[Csrf])
def case_message(request: Request, user: Staff, case_id: CaseId, body: Annotated[str, Form(max_length=4000)] = "",
                 internal: Annotated[str | None, Form(max_length=8)] = None) -> Response:
    """A message to the buyer, or an internal handling note (S5) seen only by the shop."""
    try:
        text = _text(body, 4000)
        messages.post(ctx_of(request), user.principal, "case", case_id, body=text, internal=internal is not None)
    except NotFound as exc:
        return not_found_page(request, exc)
    except ServiceError as exc:
        return _desk(request, user, case_id, status_code=exc.status, error=explain(request, exc),
                     form={"message": body, "internal": internal})
    note = "Note saved." if internal is not None else "Message sent."
    return see_other(f"/app/cases/{case_id}#messages", flash=i18n.translate(note, lang_of(request)))


@router.post("/cases/{case_id}/summary", dependencies=[Csrf])
def case_summary(request: Request, user: Staff, case_id: CaseId, summary: Annotated[str, Form(max_length=4000)] = "") -> Response:
    """S5: the resolution summary, kept with the case as a marked internal note."""
    try:
        case_desk.write_summary(ctx_of(request), user.principal, case_id, body=_text(summary, 3900))
    except NotFound as exc:
        return not_found_page(request, exc)
    except ServiceError as exc:
        return _desk(request, user, case_id, status_code=exc.status, error=explain(request, exc), form={"summary": summary})
    return see_other(f"/app/cases/{case_id}#summary", flash=i18n.translate("Summary saved.", lang_of(request)))


@router.post("/cases/{case_id}/evidence", dependencies=[Csrf])
def case_evidence(request: Request, user: Staff, case_id: CaseId, file: Annotated[UploadFile, File()],
                  note: Annotated[str, Form(max_length=MAX_TEXT)] = "") -> Response:
    """D3: attach a photo or PDF to the case (recognised by its content)."""

    limit = settings_of(request).max_evidence_bytes
    try:
        evidence.attach(ctx_of(request), evidence_store(request), user.principal, "case", case_id, data=file.file.read(limit + 1),
                        filename=file.filename, note=note.strip() or None, max_bytes=limit)
    except NotFound as exc:
        return not_found_page(request, exc)
    except ServiceError as exc:
        return _desk(request, user, case_id, status_code=exc.status, error=explain(request, exc))
    return see_other(f"/app/cases/{case_id}#evidence", flash=i18n.translate("Evidence attached.", lang_of(request)))


@router.get("/cases/{case_id}/evidence/{evidence_id}")
def case_evidence_file(request: Request, user: Staff, case_id: CaseId,
                       evidence_id: Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9_.:-]+$")]) -> Response:
    """One evidence file, downloaded (never rendered inline by this origin)."""
    return evidence_file(request, user.principal, case_id, evidence_id)


# --- form values → action parameters -----------------------------------------------------------------------------
def _version(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 9:
        raise Invalid("the page's version is not a number: reload the page")
    return int(value)


def _text(value: str, limit: int) -> str:
    text = value.strip()
    if not text:
        raise Invalid("Write something first.")
    if len(text) > limit or "\x00" in text:
        raise Invalid("at most {limit} characters", limit=limit)
    return text


def fen_of(value: str) -> int:
    """An amount typed in yuan ("12", "12.5", "12.50") as integer fen; no floats (T1)."""
    m = YUAN.match(value)
    if m is None:
        raise Invalid("Give the amount in yuan, e.g. 12.50.")
    return int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))


def _params(action: str, values: dict[str, str]) -> dict[str, Any]:
    """The parameters of ``action`` from its form; empty optional fields are left out (the domain decides)."""
    params: dict[str, Any] = {}
    for name, kind in ACTION_FIELDS.get(action, ()):
        raw = values.get(name, "").strip()
        if not raw:
            continue
        if len(raw) > MAX_TEXT:
            raise Invalid("{field}: at most {limit} characters", field=name, limit=MAX_TEXT)
        params[name] = fen_of(raw) if kind == "yuan" else raw
    return params


# --- complaints about the shop (K2) -------------------------------------------------------------------------------
ComplaintId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
#: The shop sees a complaint from its acceptance on; "accepted" is the one waiting for its answer.
SHOP_COMPLAINT_STATUSES = ("accepted", "answered", "resolved")
MAX_ANSWER = 2000


def _complaint_labels() -> dict[str, Any]:
    from . import platform as labels  # the platform console's labels of complaints: one wording for both sides

    return {"statuses": labels.COMPLAINT_STATUS, "categories": labels.COMPLAINT_CATEGORY, "channels": labels.CHANNELS,
            "actions": labels.COMPLAINT_ACTIONS, "due_labels": labels.COMPLAINT_DUE, "outcomes": labels.OUTCOMES,
            "remedies": labels.REMEDIES}


@router.get("/shop/complaints", response_class=HTMLResponse)
def shop_complaints(request: Request, user: MerchantStaff,
                    status: Annotated[str, Query(max_length=16)] = "",
                    cursor: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """K2: the complaints about the shop — those awaiting its answer first, nearest limit first; then the others."""
    ctx = ctx_of(request)
    status = status if status in SHOP_COMPLAINT_STATUSES[1:] else ""
    error = None
    waiting = complaint_service.list_complaints(ctx, user.principal, status="accepted", merchant_id=None, order_id=None,
                                                flagged=None, cursor=None, limit=200)["items"]
    waiting.sort(key=lambda c: ((c.get("deadline") or {}).get("due_at") or "~", c["id"]))
    try:
        others = complaint_service.list_complaints(ctx, user.principal, status=status or None, merchant_id=None,
                                                   order_id=None, flagged=None, cursor=cursor, limit=PAGE_SIZE)
    except (DomainError, ServiceError) as exc:
        others, error = {"items": [], "next_cursor": None}, explain(request, exc)
    rest = [c for c in others["items"] if c["status"] != "accepted"]
    next_url = (f"/app/shop/complaints?{urlencode({**({'status': status} if status else {}), 'cursor': others['next_cursor']})}"
                if others["next_cursor"] else None)
    return render(request, "merchant/complaints.html", status_code=422 if error else 200, error=error,
                  waiting=waiting, rest=rest, status=status, next_url=next_url, now=ctx.now().isoformat(),
                  **_complaint_labels())


def _shop_complaint(request: Request, user: Any, complaint_id: str, *, status_code: int = 200,
                    error: str | None = None, form: dict[str, Any] | None = None) -> Response:
    try:
        record = complaint_record(request, user.principal, complaint_id)
    except NotFound as exc:
        return not_found_page(request, exc)
    return render(request, "merchant/complaint.html", status_code=status_code, error=error, c=record["complaint"],
                  events=record["events"], notes=record["messages"], files=record["evidence"], form=form or {}, rule_titles=RULE_TITLES, **_complaint_labels())


@router.get("/shop/complaints/{complaint_id}", response_class=HTMLResponse)
def shop_complaint(request: Request, user: MerchantStaff, complaint_id: ComplaintId) -> Response:
    """K2: one complaint about the shop: what the buyer says, its limit, the messages and evidence, the answer form."""
    return _shop_complaint(request, user, complaint_id)


@router.post("/shop/complaints/{complaint_id}/respond", dependencies=[Csrf])
def shop_complaint_respond(request: Request, user: MerchantStaff, complaint_id: ComplaintId,
                           answer: Annotated[str, Form(max_length=4000)] = "",
                           version: Annotated[str, Form(max_length=12)] = "") -> Response:
    """K2: the shop's answer, through the complaint service (which refuses it when the complaint does not allow it)."""
    try:
        complaint_service.act(ctx_of(request), user.principal, complaint_id, "respond",
                              {"answer": _text(answer, MAX_ANSWER)}, if_match=_version(version))
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _shop_complaint(request, user, complaint_id, status_code=exc.status, error=explain(request, exc),
                               form={"answer": answer})
    return see_other(f"/app/shop/complaints/{complaint_id}",
                     flash=i18n.translate("Your answer was sent to the platform.", lang_of(request)))


@router.post("/shop/complaints/{complaint_id}/messages", dependencies=[Csrf])
def shop_complaint_message(request: Request, user: MerchantStaff, complaint_id: ComplaintId,
                           body: Annotated[str, Form(max_length=4000)] = "",
                           internal: Annotated[str | None, Form(max_length=8)] = None) -> Response:
    """A message on the complaint (the buyer and the platform read it), or an internal note of the shop."""
    try:
        messages.post(ctx_of(request), user.principal, "complaint", complaint_id, body=_text(body, 4000),
                      internal=internal is not None)
    except NotFound as exc:
        return not_found_page(request, exc)
    except ServiceError as exc:
        return _shop_complaint(request, user, complaint_id, status_code=exc.status, error=explain(request, exc),
                               form={"body": body})
    note = "Note saved." if internal is not None else "Message sent."
    return see_other(f"/app/shop/complaints/{complaint_id}#messages", flash=i18n.translate(note, lang_of(request)))


@router.post("/shop/complaints/{complaint_id}/evidence", dependencies=[Csrf])
def shop_complaint_evidence(request: Request, user: MerchantStaff, complaint_id: ComplaintId,
                            file: Annotated[UploadFile, File()],
                            note: Annotated[str, Form(max_length=MAX_TEXT)] = "") -> Response:
    """K2/D3: the shop's evidence (order, screenshots, chat) attached to the complaint, recognised by its content."""
    limit = settings_of(request).max_evidence_bytes
    try:
        evidence.attach(ctx_of(request), evidence_store(request), user.principal, "complaint", complaint_id,
                        data=file.file.read(limit + 1), filename=file.filename, note=note.strip() or None,
                        max_bytes=limit)
    except NotFound as exc:
        return not_found_page(request, exc)
    except ServiceError as exc:
        return _shop_complaint(request, user, complaint_id, status_code=exc.status, error=explain(request, exc))
    return see_other(f"/app/shop/complaints/{complaint_id}#evidence",
                     flash=i18n.translate("Evidence attached.", lang_of(request)))


@router.get("/shop/complaints/{complaint_id}/evidence/{evidence_id}")
def shop_complaint_evidence_file(request: Request, user: MerchantStaff, complaint_id: ComplaintId,
                                 evidence_id: Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9_.:-]+$")]) -> Response:
    """One evidence file of the complaint, as a download."""
    return evidence_file(request, user.principal, complaint_id, evidence_id, kind="complaint")


def _shop(user: Any) -> str:
    """The signed-in merchant staff's shop (a merchant principal always names one)."""
    merchant_id = user.principal.subject_id
    if not merchant_id:
        raise NotFound("merchant", "")
    return str(merchant_id)


# --- the deposit (D1) ---------------------------------------------------------------------------------------------
def _deposit_page(request: Request, user: Any, *, status_code: int = 200, error: str | None = None,
                  form: dict[str, Any] | None = None) -> Response:
    ctx, merchant_id = ctx_of(request), _shop(user)
    try:
        dep = deposits.get_deposit(ctx, user.principal, merchant_id)
        withdrawals = deposits.list_withdrawals(ctx, user.principal, merchant_id)["items"]
    except NotFound as exc:
        return not_found_page(request, exc)
    return render(request, "merchant/deposit.html", status_code=status_code, error=error, dep=dep,
                  withdrawals=withdrawals, form=form or {}, hold_days=ctx.policy.deposit_withdrawal_hold_days,
                  rule_titles=RULE_TITLES)


@router.get("/shop/deposit", response_class=HTMLResponse)
def shop_deposit(request: Request, user: MerchantStaff) -> Response:
    """D1: balance, required, debt, restriction, how to top up, the withdrawals and the withdrawal form."""
    return _deposit_page(request, user)


@router.post("/shop/deposit/withdrawals", dependencies=[Csrf])
def shop_withdraw(request: Request, user: MerchantStaff, amount: Annotated[str, Form(max_length=20)] = "") -> Response:
    """D1: ask to withdraw; the deposit service refuses it while restricted or with a case or complaint open."""
    try:
        deposits.request_withdrawal(ctx_of(request), user.principal, _shop(user), fen_of(amount))
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _deposit_page(request, user, status_code=exc.status, error=explain(request, exc), form={"amount": amount})
    return see_other("/app/shop/deposit", flash=i18n.translate("Withdrawal requested.", lang_of(request)))


@router.post("/shop/deposit/withdrawals/{withdrawal_id}/cancel", dependencies=[Csrf])
def shop_withdraw_cancel(request: Request, user: MerchantStaff,
                         withdrawal_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]) -> Response:
    """D1: withdraw a pending request; nothing moves."""
    try:
        deposits.cancel_withdrawal(ctx_of(request), user.principal, _shop(user), withdrawal_id)
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _deposit_page(request, user, status_code=exc.status, error=explain(request, exc))
    return see_other("/app/shop/deposit", flash=i18n.translate("Withdrawal request cancelled.", lang_of(request)))


# --- S1: needs my action, and the search ----------------------------------------------------------------------------
@router.get("/search", response_class=HTMLResponse)
def search(request: Request, user: MerchantStaff, q: Annotated[str, Query(max_length=64)] = "") -> Response:
    """Without ``q``: the cases whose next step is the shop's. With it: open and closed cases by order id, case id,
    buyer id, SKU, title or tracking number (prefix, case-insensitive)."""
    ctx, lang = ctx_of(request), lang_of(request)
    term, error = q.strip(), None
    try:
        rows = (shop_desk.search(ctx, user.principal, term, lang=lang) if term
                else shop_desk.needs_action(ctx, user.principal, lang=lang))
    except (DomainError, ServiceError) as exc:
        rows, error = [], explain(request, exc)
    now = ctx.now()
    return render(request, "merchant/search.html", status_code=422 if error else 200, error=error, q=term,
                  rows=[{**c, "urgency": _urgency(c, now)} for c in rows], due_actions=DUE_ACTIONS)


# --- M1/M5: the shop's return addresses ---------------------------------------------------------------------------
AddressId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
ADDRESS_FIELDS = ("label", "contact_name", "phone", "address")


def _addresses_page(request: Request, user: Any, *, status_code: int = 200, error: str | None = None,
                    form: dict[str, Any] | None = None, archiving: str | None = None) -> Response:
    ctx, merchant_id = ctx_of(request), _shop(user)
    try:
        book = return_addresses.list_addresses(ctx, user.principal, merchant_id)["items"]
    except NotFound as exc:
        return not_found_page(request, exc)
    return render(request, "merchant/addresses.html", status_code=status_code, error=error, book=book,
                  form=form or {}, archiving=next((a for a in book if a["id"] == archiving), None),
                  rule_titles=RULE_TITLES)


async def _address_form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and (k in ADDRESS_FIELDS or k in ("version", "confirmed",
                                                                                                   "is_default", "id"))}


def _address_done(request: Request, text: str) -> Response:
    return see_other("/app/shop/addresses", flash=i18n.translate(text, lang_of(request)))


def _address_change(request: Request, user: Any, change: Callable[[], object], done: str,
                    form: dict[str, Any] | None = None) -> Response:
    """Run one change of the address book: done, back to the book with ``done`` said; refused, the book again with
    why (and the form as it was sent); another shop's address, not found."""
    try:
        change()
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _addresses_page(request, user, status_code=exc.status, error=explain(request, exc), form=form)
    return _address_done(request, done)


@router.get("/shop/addresses", response_class=HTMLResponse)
def shop_addresses(request: Request, user: MerchantStaff) -> Response:
    """M1/M5: the shop's return addresses — the default (where automatic approvals send returns) and the others."""
    return _addresses_page(request, user)


@router.post("/shop/addresses", dependencies=[Csrf])
async def shop_address_add(request: Request, user: MerchantStaff) -> Response:
    values = await _address_form(request)
    data: dict[str, Any] = {k: values.get(k, "") for k in ADDRESS_FIELDS}
    data["is_default"] = values.get("is_default") == "1"
    return _address_change(request, user, lambda: return_addresses.create_address(ctx_of(request), user.principal,
                                                                                 _shop(user), data),
                           N_("Return address added."), form={**values, "id": "new"})


@router.post("/shop/addresses/{address_id}", dependencies=[Csrf])
async def shop_address_edit(request: Request, user: MerchantStaff, address_id: AddressId) -> Response:
    values = await _address_form(request)
    return _address_change(request, user, lambda: return_addresses.update_address(
        ctx_of(request), user.principal, _shop(user), address_id, {k: values.get(k, "") for k in ADDRESS_FIELDS},
        if_match=_version(values.get("version"))),
        N_("Return address saved. Returns approved before keep the address they were given."),
        form={**values, "id": address_id})


@router.post("/shop/addresses/{address_id}/default", dependencies=[Csrf])
async def shop_address_default(request: Request, user: MerchantStaff, address_id: AddressId) -> Response:
    values = await _address_form(request)
    return _address_change(request, user, lambda: return_addresses.set_default(
        ctx_of(request), user.principal, _shop(user), address_id, if_match=_version(values.get("version"))),
        N_("Default return address changed."))


@router.post("/shop/addresses/{address_id}/archive", dependencies=[Csrf])
async def shop_address_archive(request: Request, user: MerchantStaff, address_id: AddressId) -> Response:
    """Archiving cannot be undone: the page asks first."""
    values = await _address_form(request)
    if values.get("confirmed") != "1":
        return _addresses_page(request, user, archiving=address_id)
    return _address_change(request, user, lambda: return_addresses.archive_address(
        ctx_of(request), user.principal, _shop(user), address_id, if_match=_version(values.get("version"))),
        N_("Return address archived."))
