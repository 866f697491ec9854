"""What a buyer may open (E1–E10), for an order, an actor and an instant.

Pure and fast: it is asked on every order page and before every case is opened (B3 benchmark).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from functools import lru_cache

from .catalog import (
    AFTER_SALES_REASONS,
    ALL_REASONS,
    EXCHANGE_REASONS,
    REPAIR_REASONS,
    RESHIP_REASONS,
    CaseType,
    Category,
    Reason,
    StatutoryExclusion,
    default_category,
)
from .events import Actor
from .groups import Group
from .messages import N_, Msg
from .orders import Order, OrderItem, OrderStatus
from .policy import Policy
from .timeutil import day_window_end, local_day, zone


@dataclass(frozen=True, slots=True)
class Option:
    """One case type: allowed or not, the rule deciding, why, with which reasons, until when, for how much."""

    type: CaseType
    allowed: bool
    rule: str
    explanation: Msg
    reasons: tuple[Reason, ...] = ()
    deadline: datetime | None = None
    max_refund_fen: int = 0
    #: For return_refund: when each reason stops being accepted (no_reason closes before the others).
    reason_deadlines: dict[str, datetime] = field(default_factory=dict)
    #: Items that the option covers (sku), for a request that names items.
    skus: tuple[str, ...] = ()


_OptionBuilder = Callable[
    [CaseType, bool, str, Msg, tuple[Reason, ...], datetime | None, int, dict[str, datetime], tuple[str, ...]], Option
]


def _option_builder() -> _OptionBuilder:
    """``Option(type, allowed, rule, explanation, reasons, deadline, max_refund_fen, reason_deadlines, skus)``, faster.

    The frozen dataclass ``__init__`` sets each field through ``object.__setattr__``; this sets the same slots
    through their descriptors (about 2.5x faster, it matters at 100k decisions/s). The result is an ordinary,
    equal ``Option``. It refuses to build if ``Option`` ever gains a field or a ``__post_init__`` it would skip.
    """
    names = tuple(f.name for f in fields(Option))
    expected = ("type", "allowed", "rule", "explanation", "reasons", "deadline", "max_refund_fen", "reason_deadlines", "skus")
    if names != expected or hasattr(Option, "__post_init__"):
        raise RuntimeError("eligibility._option_builder is out of date with Option")
    s_type, s_allowed, s_rule, s_expl, s_reasons, s_deadline, s_max, s_deadlines, s_skus = (
        Option.__dict__[n].__set__ for n in names
    )
    new = object.__new__

    def build(type: CaseType, allowed: bool, rule: str, explanation: Msg, reasons: tuple[Reason, ...],
              deadline: datetime | None, max_refund_fen: int, reason_deadlines: dict[str, datetime],
              skus: tuple[str, ...]) -> Option:
        option: Option = new(Option)
        s_type(option, type)
        s_allowed(option, allowed)
        s_rule(option, rule)
        s_expl(option, explanation)
        s_reasons(option, reasons)
        s_deadline(option, deadline)
        s_max(option, max_refund_fen)
        s_deadlines(option, reason_deadlines)
        s_skus(option, skus)
        return option

    return build


_option = _option_builder()


@dataclass(frozen=True, slots=True)
class Eligibility:
    options: tuple[Option, ...]
    cancellations_left: int

    def option(self, case_type: CaseType) -> Option:
        for option in self.options:
            if option.type is case_type:
                return option
        raise KeyError(case_type)


if tuple(f.name for f in fields(Eligibility)) != ("options", "cancellations_left") or hasattr(Eligibility, "__post_init__"):
    raise RuntimeError("eligibility.evaluate builds Eligibility by its slots and is out of date with it")
_new = object.__new__
_set_options = Eligibility.__dict__["options"].__set__
_set_left = Eligibility.__dict__["cancellations_left"].__set__


@dataclass(frozen=True, slots=True)
class ItemTerms:
    """Windows of one order line after delivery (T0 day counting)."""

    item: OrderItem
    no_reason_ok: bool
    no_reason_rule: Msg | None
    after_sales_end: datetime
    warranty_end: datetime | None


#: One line's terms on the hot path: (item, its E4 exclusion or None, E5 window end, E6 warranty end or None).
_Terms = tuple[OrderItem, Msg | None, datetime, datetime | None]


def item_terms(order: Order, categories: Mapping[str, Category], policy: Policy) -> list[ItemTerms]:
    """Per item: E4 eligibility for no-reason return, the E5 window end and the E6 warranty end."""
    assert order.delivered_at is not None
    day = local_day(order.delivered_at, policy.timezone)
    return [ItemTerms(item, exclusion is None, exclusion, as_end, w_end)
            for item, exclusion, as_end, w_end in _item_terms(order, categories, policy, day)]


@lru_cache(maxsize=1024)
def _default_category(code: str) -> Category:
    return default_category(code)


def _item_terms(order: Order, categories: Mapping[str, Category], policy: Policy, day: date) -> list[_Terms]:
    """:func:`item_terms` as plain tuples; ``day`` is the local day of delivery (T0)."""
    tz = policy.timezone
    get = categories.get
    fixed = order.terms.get  # E4–E6: the terms in force when the order was paid, never the category as it is now
    terms: list[_Terms] = []
    for item in order.items:
        cat = fixed(item.category) or get(item.category) or _default_category(item.category)
        exclusion: Msg | None = None
        if cat.statutory_exclusion is not None:
            exclusion = _statutory_exclusion(item.title, cat.statutory_exclusion)
        elif not cat.no_reason_return and item.exclusion_confirmed:
            exclusion = _shop_exclusion(item.title)
        as_days = cat.after_sales_days
        if as_days is None:
            as_days = policy.after_sales_days
        w_days = cat.warranty_days
        if w_days is None:
            w_days = policy.warranty_days
        terms.append((item, exclusion, day_window_end(day, as_days, tz),
                      day_window_end(day, w_days, tz) if w_days > as_days else None))
    return terms


@lru_cache(maxsize=4096)
def _statutory_exclusion(title: str, exclusion: StatutoryExclusion) -> Msg:
    """E4: the law excludes this product (shared by every order of it)."""
    return Msg(N_("{title} is excluded from no-reason returns by law ({exclusion})."), {"title": title, "exclusion": str(exclusion)})


@lru_cache(maxsize=4096)
def _shop_exclusion(title: str) -> Msg:
    """E4: the shop excludes this product and the buyer confirmed it at purchase."""
    return Msg(N_("{title} is not returnable without a reason, as the shop stated and you confirmed at purchase."), {"title": title})


#: S4: how many excluded lines an explanation names one by one (the rest are counted).
NAMED_EXCLUSIONS = 5


def exclusions_msg(exclusions: Sequence[Msg]) -> Msg:
    """S4 + E4: one explanation naming each excluded line and its exclusion (statutory, with its label, or the shop's
    own confirmed one); past :data:`NAMED_EXCLUSIONS` lines, the others are counted."""
    if len(exclusions) > NAMED_EXCLUSIONS:
        more = Msg(N_("{count} more items are excluded as well."), {"count": len(exclusions) - NAMED_EXCLUSIONS})
        return _join_msgs([*exclusions[:NAMED_EXCLUSIONS], more])
    return _join_msgs(list(exclusions))


def _join_msgs(msgs: list[Msg]) -> Msg:
    out = msgs[-1]
    for msg in reversed(msgs[:-1]):
        out = Msg(N_("{first} {then}"), {"first": msg, "then": out})
    return out


def _no(case_type: CaseType, rule: str, text: str, **params: object) -> Option:
    return Option(case_type, False, rule, Msg(text, params))


_CASE_TYPES: tuple[CaseType, ...] = tuple(CaseType)
# Enum members as module constants: reading ``OrderStatus.SHIPPED`` costs ten times a global on the hot path.
_REFUND_ONLY, _RETURN_REFUND, _EXCHANGE, _RESHIP, _REPAIR = (
    CaseType.REFUND_ONLY, CaseType.RETURN_REFUND, CaseType.EXCHANGE, CaseType.RESHIP, CaseType.REPAIR)
_GROUP_PENDING, _AWAITING_SHIPMENT, _SHIPPED, _CANCELLED_ORDER = (
    OrderStatus.GROUP_PENDING, OrderStatus.AWAITING_SHIPMENT, OrderStatus.SHIPPED, OrderStatus.CANCELLED)
_BUYER, _MERCHANT = Actor.BUYER, Actor.MERCHANT


def _all_types_refused(rule: str, text: str, **params: object) -> tuple[Option, ...]:
    msg = Msg(text, params)
    return tuple([_option(t, False, rule, msg, (), None, 0, {}, ()) for t in _CASE_TYPES])


# Answers that depend on nothing but the rule are built once and shared (Option and Msg are never mutated).
_CANCELLED = _all_types_refused("E10", N_("The order was cancelled and refunded; nothing is left to ask for."))
_ALL_REFUNDED = _all_types_refused("E10", N_("Everything paid for this order has already been refunded."))
_WINDOWS_ENDED = _all_types_refused(
    "E7",
    N_(
        "The after-sales period for this order has ended, so a request can no longer be opened here. "
        "Please contact the shop: it can open a case for you with your consent."
    ),
)
#: E2/E3: the refund option's explanation and the four refused types.
_BEFORE_DELIVERY: dict[str, tuple[Msg, tuple[Option, ...]]] = {
    "E2": (
        Msg(N_("The order has not shipped: you can ask for a refund of the whole order, items and shipping, for any reason.")),
        tuple(Option(t, False, "E2", Msg(N_("The order has not shipped yet: only a refund of the whole order can be requested.")))
              for t in _CASE_TYPES if t is not CaseType.REFUND_ONLY),
    ),
    "E3": (
        Msg(N_("The order is on its way: you can ask for a refund; the shop intercepts the parcel or you refuse delivery.")),
        tuple(Option(t, False, "E3", Msg(N_("The order has not been delivered yet: returns and other requests open after delivery.")))
              for t in _CASE_TYPES if t is not CaseType.REFUND_ONLY),
    ),
}


@lru_cache(maxsize=64)
def _cancellation_limit(count: int) -> tuple[Option, ...]:
    return _all_types_refused(
        "E8",
        N_(
            "After-sales requests on this order were cancelled {count} times, the most allowed, so no new "
            "request can be opened. Please contact the shop."
        ),
        count=count,
    )


def evaluate(
    order: Order,
    *,
    actor: Actor,
    now: datetime,
    policy: Policy,
    categories: Mapping[str, Category],
    group: Group | None = None,
) -> Eligibility:
    """The after-sales options of ``order`` for ``actor`` at ``now`` (E1–E10, G2)."""
    left = policy.max_buyer_cancellations - order.buyer_cancellations
    if left < 0:
        left = 0
    eligibility: Eligibility = _new(Eligibility)  # Eligibility(options, left), without the frozen __init__'s setattr calls
    _set_options(eligibility, _options(order, actor, now, policy, categories, group, left))
    _set_left(eligibility, left)
    return eligibility


def _options(
    order: Order,
    actor: Actor,
    now: datetime,
    policy: Policy,
    categories: Mapping[str, Category],
    group: Group | None,
    left: int,
) -> tuple[Option, ...]:
    status = order.status
    if status is _GROUP_PENDING:
        expires_at = group.expires_at if group is not None else None
        if group is not None and group.auto_complete:
            # G4: this group forms by itself at expiry (模拟成团) instead of failing.
            return _all_types_refused(
                "E1",
                N_(
                    "Your group has not formed yet, so no after-sales request can be opened (rule G2). "
                    "At {expires_at} the group is completed automatically and your order goes ahead; the shop can "
                    "also complete it sooner. Once it has formed you can ask for a refund before shipment."
                ),
                expires_at=expires_at,
            )
        return _all_types_refused(
            "E1",
            N_(
                "Your group has not formed yet, so no after-sales request can be opened (rule G2). "
                "The group expires at {expires_at}: if it has not formed by then, the whole order is refunded "
                "automatically, items and shipping, with nothing for you to do. Inviting others to join, or the "
                "shop completing the group, lets the order proceed; you can then ask for a refund before shipment."
            ),
            expires_at=expires_at,
        )
    if status is _CANCELLED_ORDER:
        return _CANCELLED
    open_case = order.open_case()
    if open_case is not None:
        return _all_types_refused(
            "E9",
            N_("Case {case_id} is still open on this order; only one after-sales case can be open at a time."),
            case_id=open_case.id,
        )
    buyer_blocked = actor is _BUYER and left == 0
    if buyer_blocked:
        return _cancellation_limit(order.buyer_cancellations)
    remaining_fen, remaining_shipping_fen, remaining = _money(order)
    if remaining_fen == 0:
        return _ALL_REFUNDED

    if status is _AWAITING_SHIPMENT or status is _SHIPPED:
        rule = "E2" if status is _AWAITING_SHIPMENT else "E3"
        msg, refused = _BEFORE_DELIVERY[rule]
        skus = tuple([i.sku for i in order.items])
        return (_option(_REFUND_ONLY, True, rule, msg, ALL_REASONS, None, remaining_fen, {}, skus), *refused)

    # Delivered: the windows of E4–E6 counted from the local day of delivery (T0).
    return _delivered_options(order, actor, now, policy, categories, remaining_shipping_fen, remaining)


def _money(order: Order) -> tuple[int, int, dict[str, int]]:
    """E10 in one pass over the lines and the refunds: ``order.remaining_fen``, ``order.remaining_shipping_fen``
    and ``order.remaining_goods(sku)`` for every line."""
    left: dict[str, int] = {}
    paid = order.shipping_fee_fen
    for item in order.items:
        total = item.total_fen
        paid += total
        if item.sku not in left:
            left[item.sku] = total
    refunded_goods = refunded_shipping = 0
    for refund in order.refunds:
        refunded_shipping += refund.shipping_fen
        for sku, amount in refund.goods.items():
            refunded_goods += amount
            if sku in left:
                left[sku] -= amount
    return paid - refunded_goods - refunded_shipping, order.shipping_fee_fen - refunded_shipping, left


@lru_cache(maxsize=4096)
def _until(text: str, deadline: datetime | None) -> Msg:
    """A ``{deadline}`` explanation; shared by every order whose window ends at the same instant."""
    return Msg(text, {"deadline": deadline})


@lru_cache(maxsize=1024)
def _no_reason_msg(no_reason_end: datetime) -> Msg:
    return Msg(N_("Until {no_reason_deadline} you can return the goods without giving a reason, if they are intact."),
               {"no_reason_deadline": no_reason_end})


_NO_REASON_KEY = Reason.NO_REASON.value
_AFTER_SALES_KEYS = tuple(r.value for r in AFTER_SALES_REASONS)
_NO_REASON_ONLY: tuple[Reason, ...] = (Reason.NO_REASON,)
_ALL_RETURN_REASONS: tuple[Reason, ...] = (Reason.NO_REASON, *AFTER_SALES_REASONS)


def _delivered_options(
    order: Order, actor: Actor, now: datetime, policy: Policy, categories: Mapping[str, Category],
    remaining_shipping_fen: int, remaining: dict[str, int],
) -> tuple[Option, ...]:
    delivered_at = order.delivered_at
    assert delivered_at is not None
    tz = policy.timezone
    day = delivered_at.astimezone(zone(tz)).date()  # the local day of delivery (T0)
    terms = _item_terms(order, categories, policy, day)
    no_reason_end = day_window_end(day, policy.no_reason_days, tz)
    in_no_reason_period = now < no_reason_end
    in_window: list[_Terms] = []
    in_warranty: list[_Terms] = []
    in_no_reason: list[_Terms] = []
    excluded_lines: list[Msg] = []  # every line's E4 exclusion (S4: each is named), whatever is left of it
    window_end_at: datetime | None = None  # the latest E5 window end among the lines still in it
    window_goods = 0
    warranty_after_window = False
    for t in terms:
        item, exclusion, as_end, w_end = t
        if exclusion is not None:
            excluded_lines.append(exclusion)
        left = remaining[item.sku]
        if left <= 0:
            continue
        if now < as_end:
            in_window.append(t)
            window_goods += left
            if window_end_at is None or as_end > window_end_at:
                window_end_at = as_end
            if w_end is not None:
                warranty_after_window = True
        elif w_end is not None and now < w_end:
            in_warranty.append(t)
        if in_no_reason_period and exclusion is None:
            in_no_reason.append(t)

    first_excluded = exclusions_msg(excluded_lines) if excluded_lines else None
    if window_end_at is None and not in_warranty and not in_no_reason:
        if actor is _MERCHANT:
            return _merchant_on_behalf(terms, remaining)
        return _WINDOWS_ENDED

    option = _option
    outside = _OUTSIDE_WINDOW

    # refund_only after delivery: merchant responsibility within E5, buyer keeps the goods.
    if window_end_at is not None:
        window_skus = tuple([t[0].sku for t in in_window])
        refund_only = option(
            _REFUND_ONLY, True, "E5",
            _until(N_("Until {deadline} you can ask for a full or partial refund and keep the goods "
                      "when the shop is responsible for a problem."), window_end_at),
            AFTER_SALES_REASONS, window_end_at, window_goods, {}, window_skus,
        )
    else:
        refund_only = outside[_REFUND_ONLY, bool(in_warranty)]

    # return_refund: no-reason (E4) and merchant responsibility (E5).
    if in_no_reason or window_end_at is not None:
        if window_end_at is not None and (not in_no_reason or in_no_reason == in_window) and len(remaining) == len(terms):
            # Every line's sku is distinct and the no-reason lines (if any) are the lines in the window.
            cover_goods, cover_skus = window_goods, window_skus
        else:
            covered: dict[str, _Terms] = {t[0].sku: t for t in in_no_reason}
            covered.update([(t[0].sku, t) for t in in_window])
            cover = list(covered.values())
            cover_goods, cover_skus = sum([remaining[t[0].sku] for t in cover]), tuple([t[0].sku for t in cover])
        if len(in_window) == len(terms):  # E10: shipping only when every line is in the window
            cover_goods += remaining_shipping_fen
        if in_no_reason:
            rule = "E4"
            if first_excluded is not None:
                msg = Msg(N_("Until {no_reason_deadline} you can return the eligible items without giving a reason; {excluded}"),
                          {"no_reason_deadline": no_reason_end, "excluded": first_excluded})
            else:
                msg = _no_reason_msg(no_reason_end)
            if window_end_at is not None:
                reasons = _ALL_RETURN_REASONS
                deadline = window_end_at if window_end_at > no_reason_end else no_reason_end
            else:
                reasons, deadline = _NO_REASON_ONLY, no_reason_end
        else:
            assert window_end_at is not None
            rule, reasons, deadline = "E5", AFTER_SALES_REASONS, window_end_at
            if in_no_reason_period:
                # Lines in the window, none in the no-reason period although it is open: an exclusion keeps them out.
                assert first_excluded is not None
                msg = Msg(N_("{excluded} Until {deadline} you can return goods when the shop is responsible for a problem."),
                          {"excluded": first_excluded, "deadline": window_end_at})
            else:
                msg = _until(N_("The 7-day no-reason return period has ended; until {deadline} you can return goods "
                                "when the shop is responsible for a problem."), window_end_at)
        return_refund = option(_RETURN_REFUND, True, rule, msg, reasons, deadline, cover_goods,
                               _reason_deadlines(no_reason_end if in_no_reason else None, window_end_at), cover_skus)
    else:
        return_refund = outside[_RETURN_REFUND, bool(in_warranty)]

    if window_end_at is not None:
        exchange = option(_EXCHANGE, True, "E5",
                          _until(N_("Until {deadline} you can ask for an exchange when the goods have a problem."), window_end_at),
                          EXCHANGE_REASONS, window_end_at, window_goods, {}, window_skus)
        reship = option(_RESHIP, True, "E5",
                        _until(N_("Until {deadline} you can ask the shop to send missing items."), window_end_at),
                        RESHIP_REASONS, window_end_at, window_goods, {}, window_skus)
    else:
        exchange = outside[_EXCHANGE, bool(in_warranty)]
        reship = outside[_RESHIP, bool(in_warranty)]

    if in_warranty:
        warranty_end = max([t[3] for t in in_warranty if t[3] is not None])
        repair = option(_REPAIR, True, "E6",
                        _until(N_("The after-sales period has ended, but the warranty lets you ask for a repair "
                                  "of a quality problem until {deadline}."), warranty_end),
                        REPAIR_REASONS, warranty_end, sum([remaining[t[0].sku] for t in in_warranty]), {},
                        tuple([t[0].sku for t in in_warranty]))
    elif warranty_after_window:
        repair = option(_REPAIR, False, "E6",
                        _until(N_("Repairs under warranty start when the after-sales period ends on {deadline}; "
                                  "until then ask for an exchange or a return."), window_end_at),
                        (), None, 0, {}, ())
    else:
        repair = _NO_WARRANTY
    return refund_only, return_refund, exchange, reship, repair


@lru_cache(maxsize=4096)
def _reason_deadlines(no_reason_end: datetime | None, window_end_at: datetime | None) -> dict[str, datetime]:
    """return_refund: when each reason stops being accepted; shared by the orders with the same window ends."""
    deadlines: dict[str, datetime] = {_NO_REASON_KEY: no_reason_end} if no_reason_end is not None else {}
    if window_end_at is not None:
        deadlines.update(dict.fromkeys(_AFTER_SALES_KEYS, window_end_at))
    return deadlines


_OUTSIDE_WINDOW: dict[tuple[CaseType, bool], Option] = {
    **{(t, True): _no(t, "E6", N_("The after-sales period has ended; under the warranty only a repair of a quality problem "
                                  "can be requested.")) for t in _CASE_TYPES},
    **{(t, False): _no(t, "E5", N_("The after-sales period for this request has ended.")) for t in _CASE_TYPES},
}
_NO_WARRANTY = _no(CaseType.REPAIR, "E6", N_("These goods carry no warranty beyond the after-sales period."))
_ON_BEHALF = Msg(N_("The buyer's windows have ended; the shop may open this case on the buyer's behalf, with the buyer's consent."))


def _merchant_on_behalf(terms: list[_Terms], remaining: dict[str, int]) -> tuple[Option, ...]:
    """E7: after the windows the merchant may open any case for the buyer, with the buyer's consent."""
    skus = tuple([t[0].sku for t in terms if remaining[t[0].sku] > 0])
    total = sum(remaining.values())
    return tuple([_option(t, True, "E7", _ON_BEHALF, ALL_REASONS, None, total, {}, skus) for t in _CASE_TYPES])
