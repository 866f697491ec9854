"""Workbench pages of a buyer (issue 6): their orders, what they may ask for and why, their cases, complaints.

Buyers arrive through their signed link (``/app/buyer/enter``) and use these pages on a phone. Every page calls the
same service functions as the API with the buyer's principal: the options of an order (E1–E10, the G2 answer of a
pending group included) come from ``orders.options``, the actions on a case from the case view's
``allowed_actions``; a refusal is shown with its rule id and explanation (S4). Another buyer's order, case or
complaint answers 404 exactly like an unknown id (T2).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile  # what request.form() gives (FastAPI's UploadFile subclasses it)

from aftersales import i18n
from aftersales.api.downloads import evidence_store
from aftersales.domain.cases import REFUND_TYPES, Auto
from aftersales.domain.catalog import Reason
from aftersales.domain.complaints import Category as ComplaintCategory
from aftersales.domain.errors import DomainError
from aftersales.domain.messages import N_, Msg
from aftersales.service import cases as case_service
from aftersales.service import complaints, evidence, messages, orders
from aftersales.service.errors import Invalid, NotFound, ServiceError

from .app import complaint_record, evidence_file, not_found_page
from .deps import Buyer, Csrf, ctx_of, explain, lang_of, render, see_other, settings_of

router = APIRouter(prefix="/app", include_in_schema=False)

Id = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
MAX_TEXT = 2000
YUAN = re.compile(r"^\s*(\d{1,11})(?:[.,](\d{1,2}))?\s*$")

#: What the system does when the case's deadline passes, told to the buyer (the deadline's ``action``).
DUE_ACTIONS = {
    Auto.REMIND_MERCHANT.value: N_("the shop is reminded to answer you"),
    Auto.AUTO_APPROVE.value: N_("your request is approved automatically if the shop has not answered"),
    Auto.CLOSE_UNANSWERED.value: N_("the case closes as refused if you do not answer"),
    Auto.LAPSE_OFFER.value: N_("the shop's offer lapses and counts as declined"),
    Auto.CLOSE_BUYER_OVERDUE.value: N_("the case closes if you have not shipped the return"),
    Auto.RETURN_TIMEOUT.value: N_("you are refunded automatically if the shop has not checked the return"),
    Auto.SHIP_TIMEOUT.value: N_("the case turns into a refund if the shop has not shipped"),
    Auto.AUTO_CONFIRM_RECEIVED.value: N_("receipt is confirmed automatically and the case closes"),
    Auto.FLAG_PLATFORM_OVERDUE.value: N_("the platform's review is flagged as late"),
    Auto.ADVANCE_COMPENSATION.value: N_("the platform pays you the ruling itself"),
}
#: What the buyer reads for each closing reason of a case.
CLOSE_LABELS = {
    "refunded": N_("refunded"), "exchanged": N_("exchanged"), "reshipped": N_("reshipped"), "repaired": N_("repaired"),
    "cancelled": N_("cancelled by you"), "buyer_overdue": N_("the return was not shipped in time"),
    "rejected": N_("refused"), "platform_rejected": N_("rejected by the platform"),
    "order_cancelled": N_("the order was cancelled"),
}
#: Timeline entries that are not a person's action.
EVENT_LABELS = {"opened": N_("request opened"), "refund_issued": N_("refund issued"),
                "refund_settled": N_("refund paid"), "refund_failed": N_("refund failed")}
OFFER_LABELS = {"exchange": N_("a free exchange"), "partial_refund": N_("a partial refund; you keep the goods")}
COMPLAINT_CATEGORIES = {
    ComplaintCategory.AFTER_SALES_NOT_HANDLED.value: N_("my after-sales request was not handled"),
    ComplaintCategory.UNFAIR_REFUSAL.value: N_("my request was refused unfairly"),
    ComplaintCategory.PRODUCT_QUALITY.value: N_("product quality"),
    ComplaintCategory.COUNTERFEIT.value: N_("counterfeit goods"),
    ComplaintCategory.SERVICE_ATTITUDE.value: N_("the shop's service attitude"),
    ComplaintCategory.LOGISTICS.value: N_("delivery"), ComplaintCategory.OTHER.value: N_("something else"),
}
COMPLAINT_STATUSES = {"submitted": N_("received, being screened"), "accepted": N_("accepted, the shop must answer"),
                      "rejected": N_("not accepted"), "answered": N_("answered by the shop"),
                      "resolved": N_("resolved by the platform")}
#: K1 channel names as the buyer reads them (the service publishes English names).
CHANNEL_NAMES = {"in_app_chat": N_("In-app chat with official customer service"),
                 "order_button": N_("The complaint button on the order"),
                 "wechat_official_account": N_("The platform's official WeChat account"),
                 "phone": N_("Customer service phone line")}
REASONS = tuple(r.value for r in Reason)


# --- orders ---------------------------------------------------------------------------------------------------
@router.get("/orders", response_class=HTMLResponse)
def order_list(request: Request, user: Buyer) -> Response:
    """The buyer's orders with status, amounts and any open case."""
    return render(request, "buyer/orders.html", orders=orders.list_buyer_orders(ctx_of(request), user.principal))


def _order_page(request: Request, user: Any, order_id: str, *, status_code: int = 200, error: str | None = None,
                form: dict[str, Any] | None = None) -> Response:
    ctx, lang = ctx_of(request), lang_of(request)
    try:
        order = orders.get_order(ctx, user.principal, order_id)
        opts = orders.options(ctx, user.principal, order_id, lang=lang)
    except NotFound as exc:
        return not_found_page(request, exc)
    cases = case_service.list_cases(ctx, user.principal, status=None, order_id=order_id, merchant_id=None,
                                    due_before=None, cursor=None, limit=50, lang=lang)["items"]
    allowed = [o for o in opts["options"] if o["allowed"]]
    refused = [o for o in opts["options"] if not o["allowed"]]
    # Presentation only: when every type is refused for the same reason (a pending group, G2), say it once.
    shared = refused[0] if refused and not allowed and len({(o["rule"], o["explanation"]) for o in refused}) == 1 else None
    return render(request, "buyer/order.html", status_code=status_code, error=error, o=order, opts=opts,
                  allowed=allowed, refused=[] if shared else refused, shared=shared, cases=cases, form=form or {},
                  close_labels=CLOSE_LABELS, titles={i["sku"]: i["title"] for i in order["items"]},
                  refund_types={str(t) for t in REFUND_TYPES},  # E10: only these take an amount
                  quantities={i["sku"]: i["quantity"] for i in order["items"]})


@router.get("/orders/{order_id}", response_class=HTMLResponse)
def order_page(request: Request, user: Buyer, order_id: Id) -> Response:
    """The order, its group, and the after-sales options with explanations, deadlines and maximum refunds."""
    return _order_page(request, user, order_id)


@router.post("/orders/{order_id}/cases", dependencies=[Csrf])
async def open_case(request: Request, user: Buyer, order_id: Id) -> Response:
    """Open a request of one allowed type; an optional photo or PDF is attached once the case exists (D3)."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    ctx, lang = ctx_of(request), lang_of(request)
    try:
        data: dict[str, Any] = {"order_id": order_id, "type": values.get("type", ""), "reason": values.get("reason", "")}
        items = _items(form.getlist("sku"), form.getlist("quantity"))
        if items:
            data["items"] = items
        if values.get("refund", "").strip():
            data["refund_fen"] = fen_of(values["refund"])
        if values.get("description", "").strip():
            data["description"] = _text(values["description"])
        view = case_service.open_case(ctx, user.principal, data, lang=lang)
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _order_page(request, user, order_id, status_code=exc.status, error=explain(request, exc), form=values)
    upload = form.get("evidence")
    if isinstance(upload, UploadFile) and upload.filename:
        problem = await _attach(request, user, view["id"], upload, values.get("evidence_note", ""))
        if problem:  # the request is open, the file is not: a warning that says what to do, not a success
            notice = i18n.render(Msg(N_("Your request was opened, but the file was not attached: {problem}. Attach it "
                                        "again below, under “Photos and documents”: a photo (JPEG, PNG, WebP or GIF) or a PDF."),
                                     {"problem": problem.rstrip(".。 ")}), lang)
            return see_other(f"/app/buyer/cases/{view['id']}#evidence", flash=notice, warning=True)
    return see_other(f"/app/buyer/cases/{view['id']}", flash=i18n.translate("Your request was opened.", lang))


# --- cases ----------------------------------------------------------------------------------------------------
def _case_page(request: Request, user: Any, case_id: str, *, status_code: int = 200, error: str | None = None,
               form: dict[str, Any] | None = None) -> Response:
    ctx, lang = ctx_of(request), lang_of(request)
    try:
        case = case_service.get_case(ctx, user.principal, case_id, lang=lang)
        events = case_service.case_events(ctx, user.principal, case_id, cursor=None, limit=500)["items"]
        talk = messages.list_messages(ctx, user.principal, "case", case_id, cursor=None, limit=500)["items"]
        files = evidence.list_evidence(ctx, user.principal, "case", case_id, cursor=None, limit=200)["items"]
        order = orders.get_order(ctx, user.principal, case["order_id"])
    except NotFound as exc:
        return not_found_page(request, exc)
    return render(request, "buyer/case.html", status_code=status_code, error=error, c=case, o=order, events=events,
                  talk=talk, files=files, form=form or {}, due_actions=DUE_ACTIONS, close_labels=CLOSE_LABELS,
                  event_labels=EVENT_LABELS, offer_labels=OFFER_LABELS, reasons=REASONS,
                  titles={i["sku"]: i["title"] for i in order["items"]})


@router.get("/buyer/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, user: Buyer, case_id: Id) -> Response:
    """The case: status, next deadline and what happens then, timeline, messages, and the buyer's actions now."""
    return _case_page(request, user, case_id)


#: The form fields of the buyer's actions that take parameters: (field, kind) with kind text | yuan | reason.
ACTION_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "ship_return": (("carrier", "text"), ("tracking_no", "text"), ("shipping_fee_fen", "yuan")),
    "resubmit": (("reason", "reason"), ("refund_fen", "yuan"), ("description", "text")),
    "escalate": (("reason", "text"),),
}


@router.post("/buyer/cases/{case_id}/act/{action}", dependencies=[Csrf])
async def case_action(request: Request, user: Buyer, case_id: Id,
                      action: Annotated[str, Path(max_length=40, pattern=r"^[a-z_]+$")]) -> Response:
    """One of the buyer's actions, at the version the page showed (a stale page gets a clear 409)."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    lang = lang_of(request)
    try:
        params: dict[str, Any] = {}
        for name, kind in ACTION_FIELDS.get(action, ()):
            raw = values.get(name, "").strip()
            if raw:
                params[name] = fen_of(raw) if kind == "yuan" else _text(raw)
        version = values.get("version", "")
        if version and (not version.isdigit() or len(version) > 9):
            raise Invalid("the page's version is not a number: reload the page")
        if action == "cancel" and values.get("confirmed") != "1":
            confirm = _confirm_cancel(request, user, case_id, values)
            if confirm is not None:
                return confirm
        case_service.act(ctx_of(request), user.principal, case_id, action, params,
                         if_match=int(version) if version else None, lang=lang)
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _case_page(request, user, case_id, status_code=exc.status, error=explain(request, exc),
                          form={**values, "action": action})
    return see_other(f"/app/buyer/cases/{case_id}", flash=i18n.done_notice(action, lang))


def _confirm_cancel(request: Request, user: Any, case_id: str, values: dict[str, str]) -> Response | None:
    """C1/E8: cancelling spends one of the order's few cancellations, so the buyer confirms it first, told how many
    are left after this one and what that means (None: cancelling is not allowed now; the service refuses it)."""
    case = case_service.get_case(ctx_of(request), user.principal, case_id, lang=lang_of(request))
    if "cancel" not in case["allowed_actions"]:
        return None
    hidden = {k: v for k, v in values.items() if k not in ("csrf_token", "confirmed")}
    return render(request, "buyer/confirm_cancel.html", c=case, hidden=hidden,
                  left_after=max(0, case["cancellations_left"] - 1))


@router.post("/buyer/cases/{case_id}/messages", dependencies=[Csrf])
def case_message(request: Request, user: Buyer, case_id: Id, body: Annotated[str, Form(max_length=4000)] = "") -> Response:
    """A message to the shop (seen by the shop and the platform)."""
    try:
        messages.post(ctx_of(request), user.principal, "case", case_id, body=_text(body), internal=False)
    except NotFound as exc:
        return not_found_page(request, exc)
    except (DomainError, ServiceError) as exc:
        return _case_page(request, user, case_id, status_code=exc.status, error=explain(request, exc),
                          form={"message": body})
    return see_other(f"/app/buyer/cases/{case_id}#messages", flash=i18n.translate("Message sent.", lang_of(request)))


@router.post("/buyer/cases/{case_id}/evidence", dependencies=[Csrf])
async def case_evidence(request: Request, user: Buyer, case_id: Id) -> Response:
    """D3: add a photo or PDF to the case (recognised by its content, not its name)."""
    return await _evidence_form(request, user, "case", case_id, _case_page, f"/app/buyer/cases/{case_id}#evidence")


async def _evidence_form(request: Request, user: Any, kind: str, subject_id: str, page: Callable[..., Response],
                         back: str) -> Response:
    """The buyer's evidence form of a case or complaint: attach, then back to ``back``; a refusal re-shows ``page``."""
    form = await request.form()
    upload, note = form.get("evidence"), form.get("evidence_note")
    if not isinstance(upload, UploadFile) or not upload.filename:
        problem: str | None = i18n.translate("Choose a file first.", lang_of(request))
    else:
        try:
            problem = await _attach(request, user, subject_id, upload, note if isinstance(note, str) else "", kind=kind)
        except NotFound as exc:
            return not_found_page(request, exc)
    if problem:
        return page(request, user, subject_id, status_code=422, error=problem)
    return see_other(back, flash=i18n.translate("Evidence attached.", lang_of(request)))


@router.get("/buyer/cases/{case_id}/evidence/{evidence_id}")
def case_evidence_file(request: Request, user: Buyer, case_id: Id, evidence_id: Id) -> Response:
    """One evidence file of the case, downloaded (never rendered inline by this origin)."""
    return evidence_file(request, user.principal, case_id, evidence_id)


# --- complaints (K1, K2) --------------------------------------------------------------------------------------
def _complaints_page(request: Request, user: Any, *, status_code: int = 200, error: str | None = None,
                     form: dict[str, Any] | None = None) -> Response:
    ctx = ctx_of(request)
    mine = complaints.list_complaints(ctx, user.principal, status=None, merchant_id=None, order_id=None, flagged=None,
                                      cursor=None, limit=100)["items"]
    published = complaints.channels(ctx)
    from .platform import REMEDIES  # one wording of the remedies for every side

    return render(request, "buyer/complaints.html", status_code=status_code, error=error, mine=list(reversed(mine)),
                  channels=published["channels"], form=form or {}, categories=COMPLAINT_CATEGORIES, remedies=REMEDIES,
                  statuses=COMPLAINT_STATUSES, channel_names=CHANNEL_NAMES,
                  my_orders=orders.list_buyer_orders(ctx, user.principal))


@router.get("/complaints", response_class=HTMLResponse)
def complaint_list(request: Request, user: Buyer, order_id: Annotated[str, Query(max_length=64)] = "",
                   case_id: Annotated[str, Query(max_length=64)] = "") -> Response:
    """The buyer's complaints with their status, and a form through the published channels (K1)."""
    return _complaints_page(request, user, form={"order_id": order_id, "case_id": case_id})


@router.post("/complaints", dependencies=[Csrf])
def file_complaint(request: Request, user: Buyer, channel: Annotated[str, Form(max_length=40)] = "",
                   category: Annotated[str, Form(max_length=40)] = "",
                   order_id: Annotated[str, Form(max_length=64)] = "", case_id: Annotated[str, Form(max_length=64)] = "",
                   description: Annotated[str, Form(max_length=4000)] = "") -> Response:
    """K2: file a complaint about an order or a case through a buyer's channel."""
    values = {"channel": channel, "category": category, "order_id": order_id, "case_id": case_id, "description": description}
    try:
        if channel not in CHANNEL_CODES or category not in COMPLAINT_CATEGORIES:
            raise Invalid("Choose a channel and what the complaint is about.")
        data = {"channel": channel, "category": category, "description": _text(description),
                "order_id": order_id.strip() or None, "case_id": case_id.strip() or None}
        if data["order_id"] is None and data["case_id"] is None:
            raise Invalid("Choose the order the complaint is about.")
        complaints.file(ctx_of(request), user.principal, data)
    except (DomainError, ServiceError) as exc:
        return _complaints_page(request, user, status_code=exc.status, error=explain(request, exc), form=values)
    return see_other("/app/complaints", flash=i18n.translate("Your complaint was sent to the platform.", lang_of(request)))


CHANNEL_CODES = frozenset(c.value for c, _, _ in complaints.CHANNELS)


def _complaint_page(request: Request, user: Any, complaint_id: str, *, status_code: int = 200,
                    error: str | None = None, form: dict[str, Any] | None = None) -> Response:
    try:
        record = complaint_record(request, user.principal, complaint_id)
    except NotFound as exc:
        return not_found_page(request, exc)
    from .platform import REMEDIES  # one wording of the remedies for every side

    return render(request, "buyer/complaint.html", status_code=status_code, error=error, k=record["complaint"],
                  events=record["events"], talk=record["messages"], files=record["evidence"], form=form or {}, categories=COMPLAINT_CATEGORIES,
                  statuses=COMPLAINT_STATUSES, channel_names=CHANNEL_NAMES, remedies=REMEDIES)


@router.get("/complaints/{complaint_id}", response_class=HTMLResponse)
def complaint_page(request: Request, user: Buyer, complaint_id: Id) -> Response:
    """K2: one of the buyer's complaints — status, the next step and its limit, the shop's answer and the platform's
    decision, the timeline, messages with the shop and the platform, and the buyer's evidence."""
    return _complaint_page(request, user, complaint_id)


@router.post("/complaints/{complaint_id}/messages", dependencies=[Csrf])
def complaint_message(request: Request, user: Buyer, complaint_id: Id,
                      body: Annotated[str, Form(max_length=4000)] = "") -> Response:
    """A message on the complaint (the shop and the platform read it)."""
    try:
        messages.post(ctx_of(request), user.principal, "complaint", complaint_id, body=_text(body), internal=False)
    except NotFound as exc:
        return not_found_page(request, exc)
    except ServiceError as exc:
        return _complaint_page(request, user, complaint_id, status_code=exc.status, error=explain(request, exc),
                               form={"message": body})
    return see_other(f"/app/complaints/{complaint_id}#messages", flash=i18n.translate("Message sent.", lang_of(request)))


@router.post("/complaints/{complaint_id}/evidence", dependencies=[Csrf])
async def complaint_evidence(request: Request, user: Buyer, complaint_id: Id) -> Response:
    """K2/D3: a photo or PDF backing the complaint, recognised by its content."""
    return await _evidence_form(request, user, "complaint", complaint_id, _complaint_page,
                                f"/app/complaints/{complaint_id}#evidence")


@router.get("/complaints/{complaint_id}/evidence/{evidence_id}")
def complaint_evidence_file(request: Request, user: Buyer, complaint_id: Id, evidence_id: Id) -> Response:
    """One evidence file of the complaint, downloaded."""
    return evidence_file(request, user.principal, complaint_id, evidence_id, kind="complaint")


# --- form values ----------------------------------------------------------------------------------------------
def fen_of(value: str) -> int:
    """An amount typed in yuan ("12", "12.5", "12.50") as integer fen; no floats (T1)."""
    m = YUAN.match(value)
    if m is None:
        raise Invalid("Give the amount in yuan, e.g. 12.50.")
    return int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))


def _text(value: str) -> str:
    text = value.strip()
    if not text:
        raise Invalid("Write something first.")
    if len(text) > MAX_TEXT or "\x00" in text:
        raise Invalid("at most {limit} characters", limit=MAX_TEXT)
    return text


def _items(skus: list[Any], quantities: list[Any]) -> list[dict[str, Any]]:
    """The lines the request is about (``sku``/``quantity`` pairs; a blank or 0 quantity leaves a line out)."""
    out = []
    for sku, qty in zip(skus, quantities, strict=False):
        if not isinstance(sku, str) or not isinstance(qty, str) or not qty.strip() or qty.strip() == "0":
            continue
        if not qty.strip().isdigit() or len(qty.strip()) > 6:
            raise Invalid("A quantity is a whole number.")
        out.append({"sku": sku, "quantity": int(qty)})
    return out


async def _attach(request: Request, user: Any, subject_id: str, upload: UploadFile, note: str, *,
                  kind: str = "case") -> str | None:
    """Attach an uploaded file to the case (or complaint); the refusal's explanation, or None when attached."""

    limit = settings_of(request).max_evidence_bytes
    data = await upload.read(limit + 1)
    try:
        evidence.attach(ctx_of(request), evidence_store(request), user.principal, kind, subject_id, data=data,
                        filename=upload.filename, note=note.strip()[:MAX_TEXT] or None, max_bytes=limit)
    except ServiceError as exc:
        if isinstance(exc, NotFound):
            raise
        return explain(request, exc)
    return None
