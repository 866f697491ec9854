"""K1 published complaint channels and K2 complaints: the pure aggregate (no I/O; time is an argument).

Life of a complaint (one explicit transition table, :data:`TRANSITIONS`)::

    submitted ──accept (platform)──► accepted ──respond (merchant)──► answered ──resolve (platform)──► resolved
        └──────reject (platform)──► rejected      └──────────resolve (platform, once the merchant's limit passed)──┘

Beyond the table, a verb may have guards (:data:`GUARDS`: resolve waits until the merchant was heard); the same
guards refuse a verb and leave it out of :meth:`Complaint.allowed_actions`.

Limits (K2): the platform accepts or rejects within ``complaint_accept_hours`` of filing; the merchant answers an
accepted complaint within ``merchant_complaint_hours`` of acceptance. A missed limit does not move the complaint (a
person still has to decide), it is *flagged*: a :class:`Flag` on the complaint and a ``complaint_flagged`` event,
raised by the deadline worker at the instant the limit ran out. A late act is still accepted, and says it was late.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from .cases import pay_complaint_refund, require_within
from .errors import DomainError, InvalidInput, NotPermitted, RuleViolation, StateConflict
from .events import Actor
from .messages import N_
from .money import require_fen, split_proportionally
from .orders import Order, OrderStatus, Payer, Refund, RefundKind
from .policy import Policy
from .timeutil import after_hours, zone

#: K2: the longest description, answer, reason or rationale (characters).
MAX_TEXT = 2000


class Channel(StrEnum):
    """K1: the published channels through which a complaint reaches the platform."""

    IN_APP_CHAT = "in_app_chat"  # chat with official customer service, in the app
    ORDER_BUTTON = "order_button"  # the complaint button on the order
    WECHAT = "wechat_official_account"
    PHONE = "phone"  # answered during ``phone_hours``, recorded by a platform agent


class Category(StrEnum):
    AFTER_SALES_NOT_HANDLED = "after_sales_not_handled"
    UNFAIR_REFUSAL = "unfair_refusal"
    PRODUCT_QUALITY = "product_quality"
    COUNTERFEIT = "counterfeit"
    SERVICE_ATTITUDE = "service_attitude"
    LOGISTICS = "logistics"
    OTHER = "other"


class ComplaintStatus(StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ANSWERED = "answered"
    RESOLVED = "resolved"


class Verb(StrEnum):
    """What a person may do to a complaint (``POST /v1/complaints/{id}/{verb}``)."""

    ACCEPT = "accept"
    REJECT = "reject"
    RESPOND = "respond"
    RESOLVE = "resolve"


class Outcome(StrEnum):
    UPHELD = "upheld"
    NOT_UPHELD = "not_upheld"


class RemedyType(StrEnum):
    REFUND = "refund"  # back on the order (counts against what is left to refund, E10)
    COMPENSATION = "compensation"  # paid to the buyer beyond any refund
    PENALTY = "penalty"  # taken from the merchant's deposit for the platform


S = ComplaintStatus
#: The transition table: in a status, each verb, who may take it, and the status it leads to.
TRANSITIONS: dict[ComplaintStatus, dict[Verb, tuple[frozenset[Actor], ComplaintStatus]]] = {
    S.SUBMITTED: {Verb.ACCEPT: (frozenset({Actor.PLATFORM}), S.ACCEPTED),
                  Verb.REJECT: (frozenset({Actor.PLATFORM}), S.REJECTED)},
    S.ACCEPTED: {Verb.RESPOND: (frozenset({Actor.MERCHANT}), S.ANSWERED),
                 Verb.RESOLVE: (frozenset({Actor.PLATFORM}), S.RESOLVED)},
    S.ANSWERED: {Verb.RESOLVE: (frozenset({Actor.PLATFORM}), S.RESOLVED)},
    S.REJECTED: {},
    S.RESOLVED: {},
}
#: Who may take each verb in some status (derived from the table: the API's role check uses it, before any lookup).
ACTORS: dict[Verb, frozenset[Actor]] = {
    v: frozenset().union(*(row[v][0] for row in TRANSITIONS.values() if v in row)) for v in Verb
}
FINAL = frozenset({S.REJECTED, S.RESOLVED})


@dataclass(frozen=True, slots=True)
class Limit:
    """K2: the limit that runs while a complaint is in a status: what is awaited, of whom, and its flag."""

    verb: Verb
    by: Actor
    hours_parameter: str
    flag: str

    def hours(self, policy: Policy) -> int:
        value: int = getattr(policy, self.hours_parameter)
        return value


LIMITS: dict[ComplaintStatus, Limit] = {
    S.SUBMITTED: Limit(Verb.ACCEPT, Actor.PLATFORM, "complaint_accept_hours", "accept_overdue"),
    S.ACCEPTED: Limit(Verb.RESPOND, Actor.MERCHANT, "merchant_complaint_hours", "respond_overdue"),
}
#: Timer action of each flag (``timers.action``).
FLAG_ACTIONS = {limit.flag: f"flag_{limit.flag}" for limit in LIMITS.values()}


@dataclass(frozen=True, slots=True)
class Flag:
    """A missed K2 limit, kept on the complaint for good."""

    rule: str
    kind: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Remedy:
    type: RemedyType
    amount_fen: int


@dataclass(frozen=True, slots=True)
class ComplaintEvent:
    """One change to a complaint (T2: actor, instant, rule ids)."""

    kind: str
    actor: Actor
    at: datetime
    rules: tuple[str, ...]
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Deadline:
    """The complaint's next awaited act: what, by whom, until when, under which rule."""

    action: Verb
    by: Actor
    due_at: datetime
    rule: str = "K2"


@dataclass(frozen=True, slots=True)
class Timer:
    action: str
    stage: int
    rule: str
    due_at: datetime


# --- K1: channels and phone hours -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PhoneHours:
    """K1: the phone line's hours in the platform zone, whether it answers at ``now`` and when it next opens."""

    opens: time
    closes: time
    timezone: str
    open_now: bool
    #: The next opening strictly after ``now`` (while open: tomorrow's).
    next_opening_at: datetime
    #: While open: when today's hours end.
    closes_at: datetime | None


def phone_hours(now: datetime, policy: Policy) -> PhoneHours:
    """K1: the phone line at ``now``. Hours are local times of ``policy.timezone``; the end is exclusive."""
    opens, closes = policy.phone_open
    tz = zone(policy.timezone)
    local = now.astimezone(tz)
    open_now = opens <= local.time().replace(tzinfo=None) < closes
    closes_at = datetime.combine(local.date(), closes, tz).astimezone(UTC) if open_now else None
    day = local.date()
    while True:  # at most two steps: today's opening if still ahead, else tomorrow's
        start = datetime.combine(day, opens, tz).astimezone(UTC)
        if start > now:
            return PhoneHours(opens, closes, policy.timezone, open_now, start, closes_at)
        day += timedelta(days=1)


class PhoneClosed(RuleViolation):
    """K1: a phone complaint outside the published hours; ``extra`` goes into the problem as is."""

    def __init__(self, hours: PhoneHours) -> None:
        super().__init__("K1", N_("The phone line answers from {opens} to {closes} ({timezone}); it opens again at "
                                  "{next_opening_at}."),
                         opens=hours.opens.strftime("%H:%M"), closes=hours.closes.strftime("%H:%M"),
                         timezone=hours.timezone, next_opening_at=hours.next_opening_at)
        self.extra = {"next_opening_at": hours.next_opening_at.isoformat(), "phone_hours": {
            "opens": hours.opens.strftime("%H:%M"), "closes": hours.closes.strftime("%H:%M"), "timezone": hours.timezone}}


def check_channel(channel: Channel, actor: Actor, now: datetime, policy: Policy) -> None:
    """K1: buyers file through the chat, the order button or WeChat themselves; a phone complaint is recorded by a
    platform agent, and only while the phone line answers."""
    if channel is Channel.PHONE:
        if actor is not Actor.PLATFORM:
            raise NotPermitted("K1", N_("A phone complaint is recorded by a platform agent during the phone hours."))
        hours = phone_hours(now, policy)
        if not hours.open_now:
            raise PhoneClosed(hours)
    elif actor is not Actor.BUYER:
        raise NotPermitted("K1", N_("Through {channel} the buyer files the complaint; agents record phone complaints."),
                           channel=str(channel))


# --- K2: what a complaint is about ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Subject:
    """What the complaint names and what the records say about it (looked up by the caller).

    ``order_*`` are the named order's (or the named case's order's) facts; ``case_order_id`` is the order of the
    named case. ``merchant_id`` is the shop named in the body, if any."""

    buyer_id: str
    merchant_id: str | None = None
    order_id: str | None = None
    order_merchant_id: str | None = None
    order_buyer_id: str | None = None
    case_id: str | None = None
    case_order_id: str | None = None

    def resolve(self) -> tuple[str, str | None, str | None]:
        """K2: (merchant, order, case) of a consistent subject; the merchant is derived when not given."""
        if not (self.order_id or self.case_id or self.merchant_id):
            raise RuleViolation("K2", N_("A complaint is about an order, a case or a shop: name at least one."))
        order_id = self.order_id
        if self.case_id is not None:
            if order_id is not None and order_id != self.case_order_id:
                raise RuleViolation("K2", N_("Case {case_id} is not about order {order_id}."),
                                    case_id=self.case_id, order_id=order_id)
            order_id = self.case_order_id
        if order_id is not None:
            if self.order_buyer_id != self.buyer_id:
                raise RuleViolation("K2", N_("Order {order_id} is not the buyer's order."), order_id=order_id)
            if self.merchant_id is not None and self.merchant_id != self.order_merchant_id:
                raise RuleViolation("K2", N_("Order {order_id} is not from shop {merchant_id}."),
                                    order_id=order_id, merchant_id=self.merchant_id)
            assert self.order_merchant_id is not None
            return self.order_merchant_id, order_id, self.case_id
        assert self.merchant_id is not None
        return self.merchant_id, None, None


def _text(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise InvalidInput("K2", N_("{field} must be a text of 1 to {max} characters."), field=field_name, max=MAX_TEXT)
    return value


# --- the aggregate ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class Complaint:
    """K2: a buyer's complaint about an order, a case or a shop, and the platform's handling of it."""

    id: str
    buyer_id: str
    merchant_id: str
    order_id: str | None
    case_id: str | None
    channel: Channel
    category: Category
    description: str
    filed_by: Actor
    created_at: datetime
    status: ComplaintStatus = S.SUBMITTED
    #: Counts the statuses entered: a timer of another stage is stale.
    stage: int = 1
    version: int = 1
    due_at: datetime | None = None
    accepted_at: datetime | None = None
    answered_at: datetime | None = None
    closed_at: datetime | None = None
    response: str | None = None
    outcome: Outcome | None = None
    #: The platform's reason for a rejection, or the rationale of its resolution (shown to both sides).
    rationale: str | None = None
    remedies: list[Remedy] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    pending_events: list[ComplaintEvent] = field(default_factory=list)

    # --- reading ------------------------------------------------------------------------------------------
    @property
    def limit(self) -> Limit | None:
        return LIMITS.get(self.status)

    @property
    def deadline(self) -> Deadline | None:
        """The next awaited act and its K2 limit (None when nothing is awaited within a limit)."""
        limit = self.limit
        if limit is None or self.due_at is None:
            return None
        return Deadline(limit.verb, limit.by, self.due_at)

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    def timers(self) -> list[Timer]:
        """The durable deadline of the current stage (written when the stage starts)."""
        limit = self.limit
        if limit is None or self.due_at is None:
            return []
        return [Timer(FLAG_ACTIONS[limit.flag], self.stage, "K2", self.due_at)]

    def allowed_actions(self, actor: Actor, now: datetime, policy: Policy) -> list[Verb]:
        """Exactly the verbs ``actor`` can take at ``now``: the table admits the actor in this status and every guard
        of the verb (:data:`GUARDS`) passes — the same checks that refuse the verb."""
        out = []
        for verb, (actors, _) in TRANSITIONS[self.status].items():
            if actor not in actors:
                continue
            try:
                for guard in GUARDS.get(verb, ()):
                    guard(self, actor, now, policy)
            except DomainError:
                continue
            out.append(verb)
        return out

    # --- changing -----------------------------------------------------------------------------------------
    def _guard(self, verb: Verb, actor: Actor, now: datetime, policy: Policy) -> ComplaintStatus:
        """T2 then K2: the wrong party is refused (403) before the wrong status (409), then the verb's guards."""
        if actor not in ACTORS[verb]:
            raise NotPermitted("T2", N_("{action} is not an action for the {actor}."), action=str(verb), actor=str(actor))
        row = TRANSITIONS[self.status]
        if verb not in row or actor not in row[verb][0]:
            raise StateConflict("K2", N_("{action} is not possible while the complaint is {status}."),
                                action=str(verb), status=str(self.status))
        for guard in GUARDS.get(verb, ()):
            guard(self, actor, now, policy)
        return row[verb][1]

    def _enter(self, target: ComplaintStatus, verb: Verb, actor: Actor, now: datetime, policy: Policy,
               **data: Any) -> None:
        before = self.status
        limit = self.limit
        late = limit is not None and limit.verb is verb and self.due_at is not None and now >= self.due_at
        self.status = target
        self.stage += 1
        self.version += 1
        nxt = LIMITS.get(target)
        self.due_at = after_hours(now, nxt.hours(policy)) if nxt is not None else None
        if target in FINAL:
            self.closed_at = now
        self.pending_events.append(ComplaintEvent(f"complaint_{target}", actor, now, ("K2",), {
            "from_status": str(before), "to_status": str(target), "verb": str(verb), "late": late, **data}))

    def accept(self, actor: Actor, now: datetime, policy: Policy) -> None:
        """K2: the platform takes the complaint up; the merchant's limit to answer starts now."""
        target = self._guard(Verb.ACCEPT, actor, now, policy)
        self.accepted_at = now
        self._enter(target, Verb.ACCEPT, actor, now, policy)
        self.pending_events[-1].data["merchant_due_at"] = self.due_at.isoformat() if self.due_at else None

    def reject(self, actor: Actor, now: datetime, policy: Policy, *, reason: str) -> None:
        """K2: the platform declines the complaint (with its reason, shown to the buyer)."""
        target = self._guard(Verb.REJECT, actor, now, policy)
        self.rationale = _text(reason, "reason")
        self._enter(target, Verb.REJECT, actor, now, policy, reason=self.rationale)

    def respond(self, actor: Actor, now: datetime, policy: Policy, *, answer: str) -> None:
        """K2: the merchant answers an accepted complaint (late answers are taken, and marked late)."""
        target = self._guard(Verb.RESPOND, actor, now, policy)
        self.response = _text(answer, "answer")
        self.answered_at = now
        self._enter(target, Verb.RESPOND, actor, now, policy)

    def resolve(self, actor: Actor, now: datetime, policy: Policy, *, outcome: Outcome, rationale: str,
                remedies: list[Remedy]) -> None:
        """K2: the platform decides: ``upheld`` with at least one remedy, or ``not_upheld`` with none; the
        rationale is shown to both sides. An accepted complaint the merchant has not answered may be resolved only
        once the merchant's limit has passed (the merchant is heard first)."""
        target = self._guard(Verb.RESOLVE, actor, now, policy)
        text = _text(rationale, "rationale")
        outcome = Outcome(outcome)
        checked = check_remedies(outcome, remedies)
        self.outcome, self.rationale, self.remedies = outcome, text, checked
        self._enter(target, Verb.RESOLVE, actor, now, policy, outcome=str(outcome), rationale=text,
                    remedies=[{"type": str(r.type), "amount_fen": r.amount_fen} for r in checked],
                    merchant_answered=self.response is not None)

    def flag_overdue(self, action: str, stage: int, due_at: datetime) -> bool:
        """K2: the limit of ``stage`` ran out at ``due_at``: flag it (once). False when the timer is stale."""
        limit = self.limit
        if stage != self.stage or limit is None or FLAG_ACTIONS[limit.flag] != action:
            return False
        if any(f.kind == limit.flag for f in self.flags):
            return False
        self.flags.append(Flag("K2", limit.flag, due_at))
        self.version += 1
        self.pending_events.append(ComplaintEvent("complaint_flagged", Actor.SYSTEM, due_at, ("K2",), {
            "flag": limit.flag, "awaiting": str(limit.verb), "by": str(limit.by), "status": str(self.status)}))
        return True


def merchant_heard(c: Complaint, actor: Actor, now: datetime, policy: Policy) -> None:
    """K2: an accepted complaint is resolved once the merchant answered it or its limit to answer passed."""
    if c.status is S.ACCEPTED and c.due_at is not None and now < c.due_at:
        raise RuleViolation("K2", N_("The merchant may answer until {due_at}; resolve after its answer or after "
                                     "that time."), due_at=c.due_at)


Guard = Callable[[Complaint, Actor, datetime, Policy], None]
#: Each verb's guards beyond the transition table: what must hold of the complaint at that instant.
GUARDS: dict[Verb, tuple[Guard, ...]] = {
    Verb.RESOLVE: (merchant_heard,),
}


def check_remedies(outcome: Outcome, remedies: list[Remedy]) -> list[Remedy]:
    """K2: an upheld complaint carries one to three remedies of different types; a complaint not upheld none."""
    if outcome is Outcome.UPHELD and not remedies:
        raise InvalidInput("K2", N_("An upheld complaint needs a remedy: refund, compensation or penalty."))
    if outcome is Outcome.NOT_UPHELD and remedies:
        raise InvalidInput("K2", N_("A complaint that is not upheld carries no remedy."))
    types = [RemedyType(r.type) for r in remedies]
    if len(set(types)) != len(types):
        raise InvalidInput("K2", N_("Each type of remedy may appear once."))
    return [Remedy(t, require_fen(r.amount_fen, "amount_fen")) for t, r in zip(types, remedies, strict=True)]


def file_complaint(*, id: str, subject: Subject, channel: Channel, category: Category, description: str,
                   actor: Actor, now: datetime, policy: Policy) -> Complaint:
    """K1 + K2: a new complaint, submitted; the platform's limit to accept or reject it starts now."""
    channel, category = Channel(channel), Category(category)
    check_channel(channel, actor, now, policy)
    text = _text(description, "description")
    merchant_id, order_id, case_id = subject.resolve()
    if channel is Channel.ORDER_BUTTON and order_id is None:
        raise RuleViolation("K1", N_("The complaint button is on an order: name the order."))
    c = Complaint(id=id, buyer_id=subject.buyer_id, merchant_id=merchant_id, order_id=order_id, case_id=case_id,
                  channel=channel, category=category, description=text, filed_by=actor, created_at=now,
                  due_at=after_hours(now, LIMITS[S.SUBMITTED].hours(policy)))
    c.pending_events.append(ComplaintEvent("complaint_submitted", actor, now, ("K1", "K2"), {
        "to_status": str(S.SUBMITTED), "channel": str(channel), "category": str(category),
        "accept_due_at": c.due_at.isoformat() if c.due_at else None}))
    return c


def refund_remedy(order: Order, *, complaint_id: str, key: str, amount_fen: int, now: datetime) -> Refund:
    """K2: the refund remedy of an upheld complaint is a refund under E10, paid by the platform (P2) and recovered
    from the deposit.

    With a case open on the order it is paid through that case (:func:`~aftersales.domain.cases.pay_complaint_refund`:
    the case's E10 limit, and the case closes as refunded). Otherwise it is spread over what is left of the goods, and
    of the shipping fee only before delivery (E2/E3) — a complaint is not a return of every item. Above what E10
    allows it is refused, never reduced (T1)."""
    amount = require_fen(amount_fen, "amount_fen")
    if order.status is OrderStatus.GROUP_PENDING:
        raise RuleViolation("E1", N_("The group has not formed yet: if it fails, the whole order is refunded "
                                     "automatically (G4), so no refund can be granted on it now."))
    case = order.open_case()
    if case is not None:
        return pay_complaint_refund(order, case.id, amount, now, complaint_id=complaint_id)
    skus = [i.sku for i in order.items]
    weights = [order.remaining_goods(s) for s in skus]
    if order.before_delivery:
        weights.append(order.remaining_shipping_fen)
    require_within(amount, sum(weights))
    shares = split_proportionally(amount, weights)
    return order.issue_refund(key=key, kind=RefundKind.COMPLAINT, payer=Payer.PLATFORM,
                              rule="K2", now=now, actor=Actor.PLATFORM,
                              goods=dict(zip(skus, shares[:len(skus)], strict=True)),
                              shipping_fen=sum(shares[len(skus):]))
