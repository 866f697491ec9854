"""Request and response models of the public API (API.md). Strict: wrong types and unknown fields are 422."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints

from aftersales.domain.cases import CaseStatus, CloseReason
from aftersales.domain.catalog import StatutoryExclusion
from aftersales.domain.events import Actor
from aftersales.domain.ids import ID_PATTERN as ID_PATTERN  # T2: the documented alphabet of ids; ``:`` is not in it
from aftersales.domain.messages import N_
from aftersales.domain.money import MAX_FEN
from aftersales.domain.orders import Payer, RefundKind

#: Free text may hold anything but NUL, which PostgreSQL cannot store in a text column.
NO_NUL = r"^[^\x00]*$"
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
Text = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339(value: object) -> object:
    """API.md: instants are RFC 3339 strings; pydantic alone would also take epoch numbers (seconds or ms?)."""
    if (isinstance(value, str) and not _RFC3339.match(value)) or isinstance(value, int | float):
        raise ValueError(N_("must be an RFC 3339 instant with an offset, e.g. 2026-03-01T10:00:00+08:00"))
    return value


def _in_range(value: datetime) -> datetime:
    """Instants are stored in UTC: one whose UTC value falls outside years 1970–9998 cannot be (0001-01-01+01:00)."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(N_("must be an instant between 1970 and 9998")) from None
    if not 1970 <= utc.year <= 9998:
        raise ValueError(N_("must be an instant between 1970 and 9998"))
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_in_range)]
Fen = Annotated[int, Field(strict=True, gt=0, le=MAX_FEN)]
FenOrZero = Annotated[int, Field(strict=True, ge=0, le=MAX_FEN)]
CaseTypeName = Literal["refund_only", "return_refund", "exchange", "reship", "repair"]
OrderStatusName = Literal["group_pending", "awaiting_shipment", "shipped", "delivered", "cancelled"]
ReasonName = Literal["no_reason", "quality_problem", "not_as_described", "wrong_item", "missing_parts", "counterfeit",
                     "damaged_in_transit", "not_received", "late_delivery", "service_attitude", "other"]


class Strict(BaseModel):
    # Ints and bools are strict field by field (no "12" or 1.0 for an amount); instants arrive as RFC 3339 strings.
    model_config = ConfigDict(extra="forbid")


# --- requests ----------------------------------------------------------------------------------------------
class MerchantIn(Strict):
    id: Id
    name: ShortText
    return_address: Text | None = None


class ApiKeyIn(Strict):
    role: Literal["merchant", "buyer", "platform"]
    subject_id: Id | None = None
    label: ShortText | None = None


class CategoryIn(Strict):
    name: ShortText
    no_reason_return: StrictBool
    statutory_exclusion: Literal["custom_made", "perishable", "digital", "periodical"] | None = None
    after_sales_days: Annotated[int, Field(strict=True, ge=0, le=3650)] | None = None
    warranty_days: Annotated[int, Field(strict=True, ge=0, le=36500)] | None = None


class OrderItemIn(Strict):
    sku: Id
    title: ShortText
    category: Id
    quantity: Annotated[int, Field(strict=True, ge=1, le=100000)]
    unit_price_fen: Fen
    exclusion_confirmed: StrictBool = False


class GroupIn(Strict):
    id: Id
    size: Annotated[int, Field(strict=True, ge=2, le=1000)]
    auto_complete: StrictBool = False


class OrderIn(Strict):
    id: Id
    merchant_id: Id
    buyer_id: Id
    paid_at: Instant
    shipping_fee_fen: FenOrZero
    return_shipping_insured: StrictBool = False
    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=200)]
    group: GroupIn | None = None


class ShipIn(Strict):
    carrier: ShortText
    tracking_no: ShortText


class DeliverIn(Strict):
    at: Instant | None = None


class CaseItemIn(Strict):
    sku: Id
    quantity: Annotated[int, Field(strict=True, ge=1, le=100000)]


class CaseIn(Strict):
    order_id: Id
    type: CaseTypeName
    reason: ReasonName
    items: Annotated[list[CaseItemIn], Field(min_length=1, max_length=200)] | None = None
    refund_fen: Fen | None = None
    description: Text | None = None
    #: E7: a merchant opening a case for the buyer states that the buyer consented.
    buyer_consent: StrictBool = False


class ClockAdvanceIn(Strict):
    seconds: Annotated[int, Field(strict=True, ge=0, le=10 * 366 * 86400)]


class Empty(Strict):
    pass


class ApproveIn(Strict):
    return_shipping_payer: Literal["buyer", "merchant", "insurer"] | None = None
    #: M5: which of the shop's active return addresses the return goes to (returns only; default: the shop's default).
    return_address_id: Id | None = None


class ReasonIn(Strict):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=NO_NUL)]


class RefundAmountIn(Strict):
    refund_fen: Fen


class ShipReturnIn(Strict):
    carrier: ShortText
    tracking_no: ShortText
    #: M3: what the buyer paid for the return parcel (reimbursed when the merchant pays, up to the cap).
    shipping_fee_fen: FenOrZero | None = None


class DeliveredIn(Strict):
    at: Instant | None = None


class ResubmitIn(Strict):
    reason: ReasonName | None = None
    refund_fen: Fen | None = None
    description: Text | None = None


class RuleIn(Strict):
    outcome: Literal["refund", "reject"]
    refund_fen: Fen | None = None
    rationale: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=NO_NUL)]


class AdvanceIn(Strict):
    """P2: why the platform pays a refund ruling itself, at once."""

    reason: Literal["shop_closed", "merchant_unreachable"]


#: The body each case action takes (API.md), ``Empty`` where it takes none.
ACTION_BODIES: dict[str, type[Strict]] = {
    "approve": ApproveIn, "reject": ReasonIn, "offer_exchange": Empty, "offer_partial_refund": RefundAmountIn,
    "accept_offer": Empty, "decline_offer": Empty, "ship_return": ShipReturnIn, "mark_return_delivered": DeliveredIn,
    "confirm_return": Empty, "reject_return": ReasonIn, "ship_replacement": ShipIn,
    "mark_replacement_delivered": DeliveredIn, "confirm_received": Empty, "resubmit": ResubmitIn,
    "accept_rejection": Empty, "cancel": Empty, "escalate": ReasonIn, "rule": RuleIn, "pay_ruling": Empty,
    "advance_compensate": AdvanceIn,
}


# --- responses ---------------------------------------------------------------------------------------------
class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    rule: str | None = None
    errors: list[dict[str, Any]] | None = None


class Merchant(BaseModel):
    id: str
    name: str
    return_address: str | None
    closed: bool
    created_at: str


class ApiKey(BaseModel):
    id: str
    #: The key, shown once. Null only in an Idempotency-Key replay (``Idempotent-Replayed: true``), which carries
    #: ``redacted`` instead: the key's SHA-256 and a note (secrets are never stored in clear).
    key: str | None
    role: Literal["merchant", "buyer", "platform"]
    subject_id: str | None
    label: str | None = None
    created_at: str


class Category(BaseModel):
    code: str
    name: str
    no_reason_return: bool
    statutory_exclusion: StatutoryExclusion | None
    after_sales_days: int | None
    warranty_days: int | None
    #: E4–E6: the number of the terms version in force (answer to PUT only).
    version: int | None = None


class CategoryVersion(BaseModel):
    """One version of a category's terms: kept for ever; orders paid while it was in force are judged by it."""

    code: str
    version: int
    no_reason_return: bool
    statutory_exclusion: str | None
    after_sales_days: int | None
    warranty_days: int | None
    effective_at: str
    #: The policy draft this version was published from (None: an immediate PUT /v1/categories/{code}); a version
    #: scheduled from a draft is listed from when it is scheduled, its effective_at possibly still to come.
    draft_id: str | None = None


class GroupOut(BaseModel):
    id: str
    size: int
    members: int
    status: Literal["pending", "formed", "failed"]
    auto_complete: bool
    opened_at: str
    expires_at: str
    closed_at: str | None
    #: G5: what the caller can do with the group now (``complete``), from the same guards that refuse it.
    allowed_actions: list[Literal["complete"]] = []
    version: int


class RefundOut(BaseModel):
    key: str
    kind: RefundKind
    payer: Payer
    rule: str
    status: Literal["pending", "settled"]
    amount_fen: int
    refund_fen: int
    return_shipping_fen: int
    goods: dict[str, int]
    shipping_fen: int
    case_id: str | None
    created_at: str
    settled_at: str | None


class OrderItemOut(BaseModel):
    sku: str
    title: str
    category: str
    quantity: int
    unit_price_fen: int
    exclusion_confirmed: bool


class OrderOut(BaseModel):
    id: str
    merchant_id: str
    buyer_id: str
    status: OrderStatusName
    paid_at: str
    shipping_fee_fen: int
    paid_fen: int
    refunded_fen: int
    buyer_cancellations: int
    return_shipping_insured: bool
    items: list[OrderItemOut]
    group: GroupOut | None
    shipped_at: str | None
    delivered_at: str | None
    carrier: str | None
    tracking_no: str | None
    cancelled_at: str | None
    open_case_id: str | None
    case_ids: list[str]
    refunds: list[RefundOut]
    #: E3/E4/G2: what the caller can do with the order itself now (``ship``, ``deliver``).
    allowed_actions: list[Literal["ship", "deliver"]] = []
    version: int


class OptionOut(BaseModel):
    type: CaseTypeName
    allowed: bool
    rule: str
    explanation: str
    reasons: list[ReasonName]
    deadline: str | None
    max_refund_fen: int
    reason_deadlines: dict[str, str]
    items: list[str]


class OptionsOut(BaseModel):
    options: list[OptionOut]
    cancellations_left: int
    #: T0: the platform policy version that judged the order (None for an order recorded before versions existed).
    policy_version: str | None = None
    #: E4–E6: per category of the order, the terms version in force when it was paid (None: never configured).
    terms_versions: dict[str, int | None] = {}


class DeadlineOut(BaseModel):
    action: str
    due_at: str
    rule: str


class CaseOut(BaseModel):
    id: str
    order_id: str
    merchant_id: str
    buyer_id: str
    type: CaseTypeName
    reason: ReasonName
    status: CaseStatus
    close_reason: CloseReason | None
    refund_fen: int | None
    refunded_fen: int
    return_shipping_payer: Literal["buyer", "merchant", "insurer"] | None
    return_shipping_proposed: Literal["buyer", "merchant", "insurer"] | None
    return_shipping_disputed: bool
    return_shipping_fee_fen: int
    #: M3: what of ``return_shipping_fee_fen`` goes back to the buyer with the refund (up to the cap, when the shop
    #: pays return shipping; else 0), and that cap.
    return_shipping_reimbursable_fen: int = 0
    return_shipping_cap_fen: int = 0
    deadline: DeadlineOut | None
    items: list[CaseItemIn]
    description: str
    opened_by: Actor
    opened_at: str
    closed_at: str | None
    first_response_at: str | None
    rejection_reason: str | None
    escalation_reason: str | None
    offer: dict[str, Any] | None
    ruling: dict[str, Any] | None
    platform_overdue: bool
    #: M5: where the buyer sends the return — a copy of the shop's address taken when the return was approved
    #: (``id``, ``label``, ``contact_name``, ``phone``, ``address``, ``text``); null before approval or when the shop
    #: had no return address then.
    return_address: dict[str, Any] | None = None
    return_shipment: dict[str, Any] | None
    replacement_shipment: dict[str, Any] | None
    refunds: list[RefundOut] | None
    allowed_actions: list[str]
    #: E8: cancellations the buyer has left on the order (absent from list pages).
    cancellations_left: int | None = None
    #: S1: the shop's user handling the case (`POST /v1/cases/{id}/assignee`), or null.
    assignee_id: str | None = None
    version: int


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None


class CasePage(BaseModel):
    items: list[CaseOut]
    next_cursor: str | None


class AssigneeIn(Strict):
    """S1: who of the shop handles the case: `"me"` (the signed-in workbench user), a user id of the shop, or null
    (nobody). With `unassigned_only`, only a case nobody has yet is taken (409 otherwise)."""

    assignee: Id | None
    unassigned_only: StrictBool = False


class BulkActionIn(Strict):
    """S1: one action on up to 100 of the merchant's cases, each checked by the rules on its own."""

    action: Literal["approve"]
    case_ids: Annotated[list[Id], Field(min_length=1, max_length=100)]
    dry_run: StrictBool = False


class BulkRowOut(BaseModel):
    case_id: str
    result: Literal["ok", "refused"]
    #: The rule that refused the row, and its explanation in the caller's language.
    rule: str | None
    message: str | None
    #: The case after the action (with `dry_run`: as it would be), when `ok`.
    case: CaseOut | None


class BulkActionOut(BaseModel):
    action: str
    dry_run: bool
    ok: int
    refused: int
    results: list[BulkRowOut]


class EventOut(BaseModel):
    id: int
    kind: str
    actor: Literal["buyer", "merchant", "platform", "system"]
    at: str
    rules: list[str]
    order_id: str | None
    case_id: str | None
    group_id: str | None
    from_status: str | None
    to_status: str | None
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


class ClockOut(BaseModel):
    now: str


class ClockFailure(BaseModel):
    """F2: an automatic action that could not apply during this advance; the others were applied."""

    case_id: str | None = None
    action: str
    rule: str | None = None
    error: str
    #: The timer's id (``POST /v1/automatic-actions/{id}/retry`` once parked), what it is about, its tries so far.
    id: int
    subject: str
    subject_id: str
    attempts: int
    #: True: tried the most times allowed, parked for the platform (``GET /v1/automatic-actions/stuck``).
    parked: bool
    #: When it is tried again (null once parked).
    next_try_at: str | None


class ClockAdvanceOut(BaseModel):
    now: str
    fired: int
    failed: list[ClockFailure] = []


class PolicyOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    timezone: str
    #: T0: the id of the policy version in force (a hash of its parameters) and when it first took effect.
    version: str | None = None
    effective_at: str | None = None
    #: Issue 15: the draft a published version in force came from (None: the policy file's version).
    draft_id: str | None = None


class PolicyDraftIn(BaseModel):
    """A draft of a new policy version: every parameter of the ``GET /v1/policy`` shape (its ``version``,
    ``effective_at`` of the version in force and ``draft_id`` aside), why, and when it should take effect."""

    model_config = ConfigDict(extra="allow")
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=NO_NUL)]
    #: When the version takes effect once scheduled (default: now; an instant already past means now).
    effective_at: Instant | None = None
    #: E4–E6: new terms of existing categories, ``{code: {no_reason_return, statutory_exclusion?, after_sales_days?,
    #: warranty_days?}}`` (the PUT /v1/categories/{code} terms), published with the draft. A draft with categories
    #: may leave out every parameter: the policy then stays as it is.
    categories: Annotated[dict[str, Any], Field(max_length=500)] | None = None


class PolicyActionIn(Strict):
    #: Why (kept in the record, D3); the draft's reason when absent.
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=NO_NUL)] | None = None


class PolicyDifference(BaseModel):
    name: str
    in_force: Any
    draft: Any


class CategoryTermsDifference(BaseModel):
    category: str
    name: str
    in_force: Any
    draft: Any


class PolicyDraftOut(BaseModel):
    id: str
    #: draft, scheduled (not in force yet), in_force, superseded, withdrawn
    status: str
    #: The drafted policy version (None: the draft changes only category terms)
    version: str | None
    reason: str
    effective_at: str
    created_at: str
    created_by: str
    scheduled_at: str | None
    withdrawn_at: str | None
    parameters: dict[str, Any] | None
    in_force_version: str
    difference: list[PolicyDifference]
    #: E4–E6: the drafted terms per category, and each term that differs from the version in force now
    categories: dict[str, dict[str, Any]] = {}
    category_difference: list[CategoryTermsDifference] = []
    allowed_actions: list[str]


class PolicyDraftPage(BaseModel):
    items: list[PolicyDraftOut]


class ReplayIn(Strict):
    """Issue 15: the period [from, to) of a what-if replay: each a date (local midnight in the platform zone, T0) or
    an RFC 3339 instant with its offset."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=NO_NUL)] = Field(alias="from")
    to: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=NO_NUL)]
    #: How many worker processes replay the orders (split into ranges, reports merged: the same report, sooner)
    workers: Annotated[int, Field(strict=True, ge=1, le=16)] = 1


class ReplayProgress(BaseModel):
    done: int
    #: orders to replay (null until the worker has counted them)
    total: int | None


class ReplayJobOut(BaseModel):
    id: str
    draft_id: str
    #: the period replayed, [from, to)
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    #: queued, running, done, failed
    status: str
    progress: ReplayProgress
    #: how many processes replay the orders
    workers: int = 1
    created_at: str
    created_by: str
    started_at: str | None
    finished_at: str | None
    error: str | None
    #: when done: counts (orders, cases, differing_cases), differences by_kind / by_shop / by_category / by_rule, and
    #: samples of differing cases with both timelines (in_force, candidate) — the report of `aftersales policy replay`
    report: dict[str, Any] | None
