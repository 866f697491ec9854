"""S2 Calm the customer: suggested replies for customer service.

For an order (and its case, its eligibility answer, its group) this module says which situation the buyer is
in and proposes a reply for each: an apology or a greeting, the rule that applies, and its deadline where
there is one. Replies are :class:`~aftersales.domain.messages.Msg` values, translated and formatted per call by
``aftersales.i18n`` (zh-CN, es, en). Every reply with a deadline carries it as the ``deadline`` placeholder
(an aware UTC ``datetime``) and as :attr:`Reply.deadline`.

Who sends the reply decides its voice (:class:`Voice`): the shop's own agent writes as the shop ("We have approved
your return…", "Please send the parcel to our address…"), the platform's agent about the shop ("The shop must
answer by…"). There is one set of replies: a reply whose words depend on the voice carries both (:class:`Said`) and
:func:`suggested_replies` picks by its ``voice`` parameter; a reply that never names the shop is the same in both.

Pure: standard library and the domain only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from .cases import Case, CaseStatus, CloseReason, Offer, ShippingPayer
from .catalog import CaseType
from .eligibility import Eligibility, Option
from .groups import Group, GroupStatus
from .messages import N_, Msg
from .orders import Order, OrderStatus, RefundKind, RefundStatus
from .policy import Policy
from .timeutil import after_hours


class Situation(StrEnum):
    """The situations of RULEBOOK §1–§4 a reply is written for (S2)."""

    PENDING_GROUP = "pending_group"  # G2
    GROUP_FAILED = "group_failed"  # G4
    REFUND_BEFORE_SHIPMENT = "refund_before_shipment"  # E2
    IN_TRANSIT = "in_transit"  # E3
    NO_REASON_RETURN = "no_reason_return"  # E4
    STATUTORY_EXCLUSION = "statutory_exclusion"  # E4, by law
    SHOP_EXCLUSION = "shop_exclusion"  # E4, the shop's own exclusion confirmed by the buyer
    MERCHANT_RESPONSIBILITY = "merchant_responsibility"  # E5
    WARRANTY_REPAIR = "warranty_repair"  # E6
    WINDOWS_OVER = "windows_over"  # E7, for the buyer
    OPEN_ON_BEHALF = "open_on_behalf"  # E7, the shop offers to open the case
    CANCELLATION_LIMIT = "cancellation_limit"  # E8
    CANCELLATIONS_LEFT = "cancellations_left"  # E8
    CASE_OPEN = "case_open"  # E9
    NOTHING_LEFT = "nothing_left"  # E10
    INFORMATION = "information"  # any other refusal: its own explanation
    AWAITING_MERCHANT = "awaiting_merchant"  # M1
    REFUSAL = "refusal"  # M2
    EXCHANGE_OFFER = "exchange_offer"  # M4
    PARTIAL_REFUND_OFFER = "partial_refund_offer"  # M8
    AWAITING_RETURN_SHIPMENT = "awaiting_return_shipment"  # M5 + M3
    RETURN_SHIPPING_DISPUTED = "return_shipping_disputed"  # M3 → P1
    RETURN_IN_TRANSIT = "return_in_transit"  # M6
    AWAITING_MERCHANT_RECEIPT = "awaiting_merchant_receipt"  # M6
    AWAITING_REPLACEMENT_SHIPMENT = "awaiting_replacement_shipment"  # M7
    REPLACEMENT_IN_TRANSIT = "replacement_in_transit"  # M7
    PLATFORM_REVIEW = "platform_review"  # P1
    PLATFORM_OVERDUE = "platform_overdue"  # P1, the agent's limit has passed
    RULING_TO_PAY = "ruling_to_pay"  # P1 + P2
    REFUND_PENDING = "refund_pending"  # F1
    CLOSED_REFUNDED = "closed_refunded"  # F1
    CLOSED_EXCHANGED = "closed_exchanged"  # M7
    CLOSED_RESHIPPED = "closed_reshipped"  # M7
    CLOSED_REPAIRED = "closed_repaired"  # M7
    CLOSED_CANCELLED = "closed_cancelled"  # C1 + E8
    CLOSED_BUYER_OVERDUE = "closed_buyer_overdue"  # M5
    CLOSED_REJECTED = "closed_rejected"  # M2
    CLOSED_PLATFORM_REJECTED = "closed_platform_rejected"  # P1
    CLOSED_ORDER_CANCELLED = "closed_order_cancelled"  # G4 / E2


class Voice(StrEnum):
    """Who sends a suggested reply (S2)."""

    PLATFORM = "platform"  # the platform's customer service: "the shop must answer by …"
    SHOP = "shop"  # the shop's own agent: "we will answer by …"


class Said(NamedTuple):
    """A reply's words in each voice, same placeholders: the platform's (naming "the shop") and the shop's own."""

    platform: str
    shop: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One suggested reply: the situation, the rule that applies and the message (with its deadline, if any)."""

    situation: str
    rule: str
    msg: Msg
    #: The instant the situation changes by itself (same value as ``msg.params["deadline"]``), if any.
    deadline: datetime | None = None
    #: The shop's own words for this reply when they differ from ``msg.text`` (the platform's), else None.
    shop_text: str | None = None

    def in_voice(self, voice: Voice) -> Reply:
        """This reply as ``voice`` sends it (same situation, rule, values and deadline)."""
        if voice is Voice.SHOP and self.shop_text is not None:
            return replace(self, msg=Msg(self.shop_text, self.msg.params), shop_text=None)
        return self


def _reply(situation: Situation, rule: str, text: str | Said, deadline: datetime | None = None, **params: object) -> Reply:
    """A reply; a ``deadline`` is also put in the message as the ``{deadline}`` placeholder."""
    platform, shop = (text.platform, text.shop) if isinstance(text, Said) else (text, None)
    values: dict[str, object] = dict(params)
    if deadline is not None or "{deadline}" in platform:
        values["deadline"] = deadline
    return Reply(str(situation), rule, Msg(platform, values), deadline, shop)


def suggested_replies(
    order: Order,
    case: Case | None,
    eligibility: Eligibility | None,
    now: datetime,
    policy: Policy,
    group: Group | None = None,
    voice: Voice = Voice.PLATFORM,
) -> list[Reply]:
    """The replies customer service may send about ``order`` at ``now`` (S2), most relevant first, in ``voice``.

    ``case`` is the case the conversation is about (``None``: the order's open case, if any);
    ``eligibility`` is the answer of :func:`aftersales.domain.eligibility.evaluate` for the person asking
    (``None``: the replies that need no eligibility answer); ``group`` is the order's group (G2).
    """
    return [r.in_voice(voice) for r in _replies(order, case, eligibility, now, policy, group)]


def _replies(order: Order, case: Case | None, eligibility: Eligibility | None, now: datetime, policy: Policy,
             group: Group | None) -> list[Reply]:
    if order.status is OrderStatus.GROUP_PENDING:
        return [_pending_group(order, now, policy, group)]
    replies: list[Reply] = []
    current = case if case is not None else order.open_case()
    if current is not None:
        if case is None:
            replies.append(_case_open(current))
        replies.extend(_case_replies(order, current, policy))
    if current is None or current.is_closed:
        replies.extend(_order_replies(order, eligibility, policy, skip_cancellations=_was_cancelled(current)))
    return _unique(replies)


def _was_cancelled(case: Case | None) -> bool:
    return case is not None and case.close_reason is CloseReason.CANCELLED


def _unique(replies: list[Reply]) -> list[Reply]:
    seen: set[tuple[str, str]] = set()
    out: list[Reply] = []
    for reply in replies:
        key = (reply.situation, reply.msg.text)
        if key not in seen:
            seen.add(key)
            out.append(reply)
    return out


# --- §1 group orders -----------------------------------------------------------------------------------------
def _pending_group(order: Order, now: datetime, policy: Policy, group: Group | None) -> Reply:
    """G2: apologise, explain, give the exact expiry instant and what happens then (G4, G5)."""
    if group is None or group.status is not GroupStatus.PENDING:
        # The group opened at or before this member paid, so it expires no later than this.
        return _reply(
            Situation.PENDING_GROUP, "G2",
            N_("Sorry to keep you waiting! Your group has not formed yet, so an after-sales request cannot be opened "
               "and the order cannot be shipped for now (rule G2). The group expires no later than {deadline}: if it "
               "has not formed by then, the whole order, items and shipping, is refunded to you automatically, with "
               "nothing for you to do. Inviting friends to join lets the order go ahead; once the group has formed, "
               "you can still ask for a refund before shipment."),
            after_hours(order.paid_at, policy.group_wait_hours),
        )
    missing = max(1, group.size - len(group.member_ids))
    text: str | Said
    if now >= group.expires_at:
        text = (
            N_("Thank you for your patience. Your group's waiting time ended at {deadline} and the group is being "
               "settled right now (rule G2): it forms automatically and your order goes ahead.")
            if group.auto_complete
            else N_("Thank you for your patience. Your group's waiting time ended at {deadline} without enough members "
                    "(rule G2). The order is being cancelled and the whole amount, items and shipping, is refunded to "
                    "you automatically; there is nothing you need to do.")
        )
        return _reply(Situation.PENDING_GROUP, "G2", text, group.expires_at)
    if group.auto_complete:
        text = Said(N_(
                 "Sorry to keep you waiting! Your group has not formed yet, so an after-sales request cannot be opened "
                 "and the order cannot be shipped for now (rule G2). Members still needed: {missing}. The group stays "
                 "open until {deadline}; if it is not full by then, it is completed automatically at that moment and your "
                 "order goes ahead. You can invite friends to join, and the shop can also complete the group for you "
                 "earlier (rule G5); after that you can ask for a refund before shipment if you no longer want the order."
             ),
                    N_("Sorry to keep you waiting! Your group has not formed yet, so an after-sales request cannot be opened and we cannot ship the order "
                       "for now (rule G2). Members still needed: {missing}. The group stays open until {deadline}; if it is not full by then, it is "
                       "completed automatically at that moment and your order goes ahead. You can invite friends to join, and we can also complete the "
                       "group for you earlier (rule G5); after that you can ask for a refund before shipment if you no longer want the order."))
    else:
        text = N_(
            "Sorry to keep you waiting! Your group has not formed yet, so an after-sales request cannot be opened "
            "and the order cannot be shipped for now (rule G2). Members still needed: {missing}. The group stays "
            "open until {deadline}: if it has not formed by then, the whole order, items and shipping, is refunded "
            "to you automatically, with nothing for you to do. Inviting friends to join lets the order go ahead; "
            "once the group has formed, you can still ask for a refund before shipment."
        )
    return _reply(Situation.PENDING_GROUP, "G2", text, group.expires_at, missing=missing)


def _group_failure(order: Order) -> Reply | None:
    """G4: the group did not form; the order was refunded in full automatically."""
    refund = next((r for r in order.refunds if r.kind is RefundKind.GROUP_FAILURE), None)
    if refund is None:
        return None
    text = (
        N_("We are sorry your group did not form in time. The order was cancelled and the whole amount, {amount_fen} "
           "for items and shipping, has been refunded to your original payment method (rule G4).")
        if refund.status is RefundStatus.SETTLED
        else N_("We are sorry your group did not form in time. The order was cancelled and the whole amount, "
                "{amount_fen} for items and shipping, is being refunded automatically to your original payment method "
                "(rule G4); there is nothing you need to do.")
    )
    return _reply(Situation.GROUP_FAILED, "G4", text, amount_fen=refund.amount_fen)


# --- §2 what the buyer may open ------------------------------------------------------------------------------
def _order_replies(order: Order, eligibility: Eligibility | None, policy: Policy, *, skip_cancellations: bool) -> list[Reply]:
    """Replies about what can be asked for now (E2–E10), from the eligibility answer or the order's status."""
    failure = _group_failure(order)
    if failure is not None:
        return [failure]
    if eligibility is None:
        return _status_only_replies(order)
    replies: list[Reply] = []
    allowed = [o for o in eligibility.options if o.allowed]
    if not allowed:
        replies.append(_refused(order, eligibility, policy))
        return replies
    refund_only = next((o for o in allowed if o.type is CaseType.REFUND_ONLY), None)
    # Returns first: "can I send it back?" is what a buyer asks most after delivery.
    for option in sorted(allowed, key=lambda o: o.type is not CaseType.RETURN_REFUND):
        replies.extend(_option_replies(order, option, refund_only))
    used = order.buyer_cancellations
    if used > 0 and not skip_cancellations and not any(o.rule == "E7" for o in allowed):
        replies.append(_cancellations_left(eligibility.cancellations_left, policy))
    return replies


def _status_only_replies(order: Order) -> list[Reply]:
    """Without an eligibility answer, the replies that the order's status alone decides."""
    if order.status is OrderStatus.AWAITING_SHIPMENT:
        return [_before_shipment(order.remaining_fen)]
    if order.status is OrderStatus.SHIPPED:
        return [_in_transit(order.remaining_fen)]
    if order.status is OrderStatus.CANCELLED or order.remaining_fen == 0:
        return [_nothing_left()]
    return []


def _before_shipment(max_refund_fen: int) -> Reply:
    return _reply(
        Situation.REFUND_BEFORE_SHIPMENT, "E2",
        Said(N_("Hello, thank you for contacting us. Your order has not shipped yet, so you can ask for a refund of the "
                "whole order, items and shipping ({max_refund_fen}), for any reason (rule E2). The shop cannot refuse a "
                "refund before shipment, and once the refund is made the order will not be shipped."),
             N_("Hello, thank you for contacting us. Your order has not shipped yet, so you can ask for a refund of the whole order, items and shipping "
                "({max_refund_fen}), for any reason (rule E2). We accept every refund before shipment, and once the refund is made we will not ship the "
                "order.")),
        max_refund_fen=max_refund_fen,
    )


def _in_transit(max_refund_fen: int) -> Reply:
    return _reply(
        Situation.IN_TRANSIT, "E3",
        Said(N_("Hello, thank you for contacting us. Your parcel is already on its way. You can still ask for a refund "
                "of up to {max_refund_fen} (rule E3): the shop will intercept the parcel, or you can refuse it when it "
                "is delivered. Returns and exchanges become possible once the goods have been delivered."),
             N_("Hello, thank you for contacting us. Your parcel is already on its way. You can still ask for a refund of up to {max_refund_fen} (rule "
                "E3): we will intercept the parcel, or you can refuse it when it is delivered. Returns and exchanges become possible once the goods have "
                "been delivered.")),
        max_refund_fen=max_refund_fen,
    )


def _nothing_left() -> Reply:
    return _reply(
        Situation.NOTHING_LEFT, "E10",
        N_("Thank you for contacting us. Everything paid for this order has already been refunded, so there is "
           "nothing left to request (rule E10). If the money has not reached you yet, please let us know and we "
           "will check it with the payment service right away."),
    )


def _cancellations_left(left: int, policy: Policy) -> Reply:
    if left <= 0:
        return _reply(
            Situation.CANCELLATION_LIMIT, "E8",
            Said(N_("We are sorry, but after-sales requests on this order have already been cancelled {max} times, the "
                    "most allowed (rule E8), so a new request cannot be opened online. Please contact the shop: it can "
                    "still open a request for you with your consent."),
                 N_("We are sorry, but after-sales requests on this order have already been cancelled {max} times, the most allowed (rule E8), so a new "
                    "request cannot be opened online. Tell us here what you need: with your consent, we can still open a request for you.")),
            max=policy.max_buyer_cancellations,
        )
    return _reply(
        Situation.CANCELLATIONS_LEFT, "E8",
        N_("Please note: after-sales requests on one order can be cancelled at most {max} times (rule E8). "
           "Cancellations left on this order: {left}. After that, no new request can be opened online."),
        left=left, max=policy.max_buyer_cancellations,
    )


def _refused(order: Order, eligibility: Eligibility, policy: Policy) -> Reply:
    """Every type is refused: say why, by the deciding rule."""
    first = eligibility.options[0]
    if first.rule == "E8":
        return _reply(
            Situation.CANCELLATION_LIMIT, "E8",
            Said(N_("We are sorry, but after-sales requests on this order have already been cancelled {count} times, "
                    "the most allowed (rule E8), so a new request cannot be opened online. Please contact the shop: it "
                    "can still open a request for you with your consent."),
                 N_("We are sorry, but after-sales requests on this order have already been cancelled {count} times, the most allowed (rule E8), so a new "
                    "request cannot be opened online. Tell us here what you need: with your consent, we can still open a request for you.")),
            count=order.buyer_cancellations,
        )
    if first.rule == "E7":
        return _reply(
            Situation.WINDOWS_OVER, "E7",
            Said(N_("Thank you for contacting us, and we are sorry for the trouble. The after-sales period for this order "
                    "has ended, so a new request can no longer be opened online (rule E7). Please contact the shop in the "
                    "chat: with your consent, the shop can open a request on your behalf, and all the usual rules and "
                    "deadlines then apply."),
                 N_("Thank you for contacting us, and we are sorry for the trouble. The after-sales period for this order has ended, so a new request can "
                    "no longer be opened online (rule E7). With your consent, we can open a request on your behalf here in the chat, and all the usual "
                    "rules and deadlines then apply.")),
        )
    if first.rule == "E9":
        return _reply(
            Situation.CASE_OPEN, "E9",
            N_("Thank you for your patience. Request {case_id} is still being handled on this order, and only one "
               "after-sales request can be open at a time (rule E9). We will follow it up for you; a new request "
               "can be opened once it is closed."),
            case_id=first.explanation.params.get("case_id"),
        )
    if first.rule == "E10":
        return _nothing_left()
    return _reply(Situation.INFORMATION, first.rule, N_("Thank you for contacting us. {explanation}"), explanation=first.explanation)


def _problem_deadline(option: Option, refund_only: Option | None) -> datetime | None:
    """E5: until when merchant-responsibility problems are accepted (the after-sales window)."""
    if refund_only is not None and refund_only.rule == "E5":
        return refund_only.deadline
    others = [d for r, d in option.reason_deadlines.items() if r != "no_reason"]
    return max(others, default=None)


def _option_replies(order: Order, option: Option, refund_only: Option | None) -> list[Reply]:
    """Replies for one allowed case type."""
    if option.rule == "E2":
        return [_before_shipment(option.max_refund_fen)] if option.type is CaseType.REFUND_ONLY else []
    if option.rule == "E3":
        return [_in_transit(option.max_refund_fen)] if option.type is CaseType.REFUND_ONLY else []
    if option.rule == "E7":
        return [_reply(
            Situation.OPEN_ON_BEHALF, "E7",
            Said(N_("Thank you for contacting us, and we are sorry for the trouble. The after-sales period for this order "
                    "has ended, but the shop can still open a request on your behalf (rule E7). If you agree, please "
                    "confirm it in the chat and tell us what you need; the usual rules and deadlines then apply."),
                 N_("Thank you for contacting us, and we are sorry for the trouble. The after-sales period for this order has ended, but we can still open"
                    " a request on your behalf (rule E7). If you agree, please confirm it in the chat and tell us what you need; the usual rules and "
                    "deadlines then apply.")),
        )]
    replies: list[Reply] = []
    if option.type is CaseType.RETURN_REFUND:
        excluded = option.explanation.params.get("excluded")
        if option.rule == "E4":
            deadline = option.reason_deadlines.get("no_reason", option.deadline)
            text = (
                Said(N_("Hello, thank you for contacting us. You can return the goods without giving a reason until "
                        "{deadline} (rule E4, 7-day no-reason return), as long as they are intact; the shop checks them "
                        "when they arrive. Your return-shipping insurance covers the return shipping (rule M3)."),
                     N_("Hello, thank you for contacting us. You can return the goods without giving a reason until {deadline} (rule E4, 7-day no-reason "
                        "return), as long as they are intact; we check them when they arrive. Your return-shipping insurance covers the return shipping "
                        "(rule M3)."))
                if order.return_shipping_insured
                else Said(N_("Hello, thank you for contacting us. You can return the goods without giving a reason until "
                             "{deadline} (rule E4, 7-day no-reason return), as long as they are intact; the shop checks "
                             "them when they arrive. For a no-reason return the return shipping is paid by you (rule M3)."),
                          N_("Hello, thank you for contacting us. You can return the goods without giving a reason until {deadline} (rule E4, 7-day no-"
                             "reason return), as long as they are intact; we check them when they arrive. For a no-reason return the return shipping is "
                             "paid by you (rule M3)."))
            )
            replies.append(_reply(Situation.NO_REASON_RETURN, "E4", text, deadline))
        if isinstance(excluded, Msg):
            replies.append(_exclusion(excluded, _problem_deadline(option, refund_only)))
    elif option.type is CaseType.REFUND_ONLY and option.rule == "E5":
        replies.append(_reply(
            Situation.MERCHANT_RESPONSIBILITY, "E5",
            Said(N_("We are sorry there is a problem with your order. When the shop is responsible (a quality problem, "
                    "goods not as described, a wrong or missing item, damage in transit and so on), you can until "
                    "{deadline} ask for a full or partial refund and keep the goods, a return and refund, an exchange, or "
                    "the missing items (rule E5). For these problems the shop pays the return shipping (rule M3)."),
                 N_("We are sorry there is a problem with your order. When we are responsible (a quality problem, goods not as described, a wrong or "
                    "missing item, damage in transit and so on), you can until {deadline} ask for a full or partial refund and keep the goods, a return "
                    "and refund, an exchange, or the missing items (rule E5). For these problems we pay the return shipping (rule M3).")),
            option.deadline,
        ))
    elif option.type is CaseType.REPAIR and option.rule == "E6":
        replies.append(_reply(
            Situation.WARRANTY_REPAIR, "E6",
            Said(N_("We are sorry the item has a quality problem. The after-sales period has ended, but the warranty "
                    "covers a repair until {deadline} (rule E6). Please open a repair request; for a quality problem the "
                    "shop pays the return shipping."),
                 N_("We are sorry the item has a quality problem. The after-sales period has ended, but the warranty covers a repair until {deadline} "
                    "(rule E6). Please open a repair request; for a quality problem we pay the return shipping.")),
            option.deadline,
        ))
    return replies


def _exclusion(excluded: Msg, deadline: datetime | None) -> Reply:
    """E4: an item the buyer cannot return without a reason — by law, or by the shop's exclusion they confirmed."""
    if "exclusion" in excluded.params:
        text = Said(N_(
                 "We understand, and we are sorry for the inconvenience. {excluded} The law (CRPL art. 25) excludes "
                 "custom-made goods, fresh or perishable goods, unsealed digital goods and delivered newspapers and "
                 "periodicals from no-reason returns (rule E4). If there is a problem the shop is responsible for, you "
                 "can still ask for a refund, a return or an exchange until {deadline}."
             ),
                    N_("We understand, and we are sorry for the inconvenience. {excluded} The law (CRPL art. 25) excludes custom-made goods, fresh or "
                       "perishable goods, unsealed digital goods and delivered newspapers and periodicals from no-reason returns (rule E4). If there is a "
                       "problem we are responsible for, you can still ask for a refund, a return or an exchange until {deadline}."))
        return _reply(Situation.STATUTORY_EXCLUSION, "E4", text, deadline, excluded=excluded)
    text = Said(N_(
             "We understand, and we are sorry for the inconvenience. {excluded} This was shown when you bought it and "
             "you confirmed it, so it binds the return (rule E4). If there is a problem the shop is responsible for, "
             "you can still ask for a refund, a return or an exchange until {deadline}."
         ),
                N_("We understand, and we are sorry for the inconvenience. {excluded} This was shown when you bought it and you confirmed it, so it binds "
                   "the return (rule E4). If there is a problem we are responsible for, you can still ask for a refund, a return or an exchange until "
                   "{deadline}."))
    return _reply(Situation.SHOP_EXCLUSION, "E4", text, deadline, excluded=excluded)


# --- §3 and §4 a case ----------------------------------------------------------------------------------------
def _case_open(case: Case) -> Reply:
    return _reply(
        Situation.CASE_OPEN, "E9",
        N_("Thank you for your patience. Request {case_id} is still being handled on this order ({status}), and "
           "only one after-sales request can be open at a time (rule E9). We will follow it up for you; a new "
           "request can be opened once it is closed."),
        case.deadline.due_at if case.deadline else None,
        case_id=case.id, status=str(case.status),
    )


def _due(case: Case) -> datetime | None:
    return case.deadline.due_at if case.deadline is not None else None


def _case_replies(order: Order, case: Case, policy: Policy) -> list[Reply]:
    """Replies for the case's status (M1–M8, P1, P2, F1) or, once closed, its close reason."""
    status = case.status
    due = _due(case)
    if status is CaseStatus.AWAITING_MERCHANT:
        return [_awaiting_merchant(case, due, policy)]
    if status is CaseStatus.AWAITING_BUYER:
        return [_awaiting_buyer(case, case.offer, due)]
    if status is CaseStatus.AWAITING_RETURN_SHIPMENT:
        return _awaiting_return(case, due, policy)
    if status is CaseStatus.RETURN_IN_TRANSIT:
        text = (
            Said(N_("Thank you for sending the goods back. Once the parcel arrives, the shop has {hours} hours to check "
                    "it and refund you (rule M6). If there is no delivery record, the refund is made automatically on "
                    "{deadline}."),
                 N_("Thank you for sending the goods back. Once the parcel arrives, we have {hours} hours to check it and refund you (rule M6). If there "
                    "is no delivery record, the refund is made automatically on {deadline}."))
            if case.type is CaseType.RETURN_REFUND
            else Said(N_("Thank you for sending the goods back. Once the parcel arrives, the shop has {ship_hours} hours "
                         "to send you {goods} (rules M6, M7). If there is no delivery record, the parcel is treated as "
                         "received on {deadline}."),
                      N_("Thank you for sending the goods back. Once the parcel arrives, we have {ship_hours} hours to send you {goods} (rules M6, M7). If"
                         " there is no delivery record, the parcel is treated as received on {deadline}."))
        )
        return [_reply(Situation.RETURN_IN_TRANSIT, "M6", text, due, hours=policy.merchant_confirm_hours,
                       ship_hours=policy.merchant_ship_hours, goods=_goods(case))]
    if status is CaseStatus.AWAITING_MERCHANT_RECEIPT:
        return [_reply(
            Situation.AWAITING_MERCHANT_RECEIPT, "M6",
            Said(N_("Thank you for your patience. Your return has arrived at the shop, which must check it and refund "
                    "you by {deadline} (rule M6); if it does nothing by then, the refund is made automatically. If the "
                    "shop rejects the goods, the platform reviews the case (rule P1)."),
                 N_("Thank you for your patience. Your return has reached us; we will check it and refund you by {deadline} (rule M6), and if we have not "
                    "done so by then, the refund is made automatically. If we cannot accept the goods, the platform reviews the case (rule P1).")),
            due,
        )]
    if status is CaseStatus.AWAITING_REPLACEMENT_SHIPMENT:
        return [_reply(
            Situation.AWAITING_REPLACEMENT_SHIPMENT, "M7",
            Said(N_("Thank you for your patience. The shop must send you {goods} by {deadline} (rule M7). If it has not "
                    "shipped by then, your request turns into a refund of the goods concerned automatically."),
                 N_("Thank you for your patience. We will send you {goods} by {deadline} (rule M7). If we have not shipped by then, your request turns "
                    "into a refund of the goods concerned automatically.")),
            due, goods=_goods(case),
        )]
    if status is CaseStatus.REPLACEMENT_IN_TRANSIT:
        return [_reply(
            Situation.REPLACEMENT_IN_TRANSIT, "M7",
            Said(N_("Good news: the shop has sent you {goods} with {carrier}, tracking number {tracking_no} (rule M7). "
                    "Please confirm receipt once it arrives and everything is fine; if something is wrong, tell us "
                    "before {deadline}, when the request closes as completed automatically."),
                 N_("Good news: we have sent you {goods} with {carrier}, tracking number {tracking_no} (rule M7). Please confirm receipt once it arrives "
                    "and everything is fine; if something is wrong, tell us before {deadline}, when the request closes as completed automatically.")),
            due, goods=_goods(case), carrier=case.replacement_carrier, tracking_no=case.replacement_tracking_no,
        )]
    if status is CaseStatus.PLATFORM_REVIEW:
        return [_platform_review(case, due, policy)]
    if status is CaseStatus.REFUND_PENDING:
        pending = sum(r.amount_fen for r in case.refunds(order) if r.status is RefundStatus.PENDING)
        return [_reply(
            Situation.REFUND_PENDING, "F1",
            N_("Thank you for your patience. Your refund of {amount_fen} has been sent back through your original "
               "payment method and is being confirmed by the payment service (rule F1). If a transfer fails, it is "
               "retried automatically until it succeeds, and you are never paid twice or charged anything."),
            amount_fen=pending,
        )]
    return [_closed(order, case, policy)]


def _goods(case: Case) -> Msg:
    """What the shop sends back under M7, as a nested message."""
    if case.type is CaseType.RESHIP:
        return Msg(N_("the missing items"))
    if case.type is CaseType.REPAIR:
        return Msg(N_("the repaired item"))
    return Msg(N_("the replacement"))


def _awaiting_merchant(case: Case, due: datetime | None, policy: Policy) -> Reply:
    """M1: the shop answers within ``merchant_response_hours``, or the system agrees for it."""
    if case.type is CaseType.REFUND_ONLY:
        text = Said(N_("Sorry for the trouble, and thank you for your patience. Your refund request has been passed to the "
                       "shop, which must answer by {deadline} (rule M1). If the shop does not answer in time, the refund "
                       "is approved automatically and goes back to your original payment method."),
                    N_("Sorry for the trouble, and thank you for your patience. We have received your refund request and will answer by {deadline} (rule "
                       "M1). If we have not answered by then, the refund is approved automatically and goes back to your original payment method."))
    elif case.type is CaseType.RESHIP:
        text = Said(N_("Sorry for the trouble, and thank you for your patience. Your request for the missing items has "
                       "been passed to the shop, which must answer by {deadline} (rule M1). If the shop does not answer in "
                       "time, the request is approved automatically and the shop must then send the items within "
                       "{ship_hours} hours."),
                    N_("Sorry for the trouble, and thank you for your patience. We have received your request for the missing items and will answer by "
                       "{deadline} (rule M1). If we have not answered by then, the request is approved automatically and we then send the items within "
                       "{ship_hours} hours."))
    else:
        text = Said(N_("Sorry for the trouble, and thank you for your patience. Your request has been passed to the shop, "
                       "which must answer by {deadline} (rule M1). If the shop does not answer in time, the return is "
                       "approved automatically and you will receive the shop's return address."),
                    N_("Sorry for the trouble, and thank you for your patience. We have received your request and will answer by {deadline} (rule M1). If "
                       "we have not answered by then, the return is approved automatically and you will receive our return address."))
    return _reply(Situation.AWAITING_MERCHANT, "M1", text, due, ship_hours=policy.merchant_ship_hours)


def _awaiting_buyer(case: Case, offer: Offer | None, due: datetime | None) -> Reply:
    """M2 refusal, M4 exchange offer or M8 partial-refund offer: the buyer decides before the deadline."""
    if offer is None:
        return _reply(
            Situation.REFUSAL, "M2",
            Said(N_("We are sorry the shop could not accept your request. The shop's reason: \u201c{refusal_reason}\u201d. "
                    "Until {deadline} you can modify your request and submit it again, ask the platform to step in, or "
                    "accept the shop's answer (rule M2). If we hear nothing from you by then, the request closes."),
                 N_("We are sorry we could not accept your request. Our reason: “{refusal_reason}”. Until {deadline} you can modify your request and "
                    "submit it again, ask the platform to step in, or accept our answer (rule M2). If we hear nothing from you by then, the request "
                    "closes.")),
            due, refusal_reason=case.rejection_reason,
        )
    if offer.kind == "partial_refund":
        return _reply(
            Situation.PARTIAL_REFUND_OFFER, "M8",
            Said(N_("Thank you for your patience. To make up for the trouble, the shop offers you a partial refund of "
                    "{refund_fen} and you keep the goods (rule M8). If you accept, the refund is made at once; if you "
                    "decline, your request goes on where it was. Please answer by {deadline}; after that the offer lapses "
                    "and your request goes on where it was."),
                 N_("Thank you for your patience. To make up for the trouble, we offer you a partial refund of {refund_fen} and you keep the goods (rule "
                    "M8). If you accept, the refund is made at once; if you decline, your request goes on where it was. Please answer by {deadline}; after"
                    " that the offer lapses and your request goes on where it was.")),
            due, refund_fen=offer.refund_fen,
        )
    text = (
        Said(N_("We are sorry about the problem with your goods. The shop offers you a free exchange instead of a refund "
                "(rule M4). If you accept, you send the item back and the shop pays the return shipping; if you decline, "
                "your return and refund go on, still with the shop paying the return shipping. Please answer by "
                "{deadline}; without an answer the offer lapses as if declined."),
             N_("We are sorry about the problem with your goods. We offer you a free exchange instead of a refund (rule M4). If you accept, you send the "
                "item back and we pay the return shipping; if you decline, your return and refund go on, still with us paying the return shipping. Please "
                "answer by {deadline}; without an answer the offer lapses as if declined."))
        if case.type is CaseType.RETURN_REFUND
        else Said(N_("We are sorry about the problem with your goods. The shop offers you a free exchange instead of a "
                     "refund (rule M4). If you accept, you send the item back and the shop pays the return shipping; if "
                     "you decline, your refund request goes back to the shop for its answer. Please answer by {deadline}; "
                     "without an answer the offer lapses as if declined."),
                  N_("We are sorry about the problem with your goods. We offer you a free exchange instead of a refund (rule M4). If you accept, you send "
                     "the item back and we pay the return shipping; if you decline, your refund request comes back to us for our answer. Please answer by "
                     "{deadline}; without an answer the offer lapses as if declined."))
    )
    return _reply(Situation.EXCHANGE_OFFER, "M4", text, due)


def _awaiting_return(case: Case, due: datetime | None, policy: Policy) -> list[Reply]:
    """M5 with M3: ship the return by the deadline; who pays the return shipping."""
    payer = case.return_shipping_payer
    text: str | Said
    if payer is ShippingPayer.MERCHANT:
        text = Said(N_("Thank you for your patience: your return has been approved. Please send the goods back and enter "
                       "the carrier and tracking number by {deadline} (rule M5). The shop pays the return shipping: enter "
                       "the fee you paid with the tracking number and it is reimbursed with your refund, up to {cap_fen} "
                       "(rule M3). {ship_to}"),
                    N_("Thank you for your patience: we have approved your return. Please send the parcel to our address and enter the carrier and "
                       "tracking number by {deadline} (rule M5). We pay the return shipping: enter the fee you paid with the tracking number and it is "
                       "reimbursed with your refund, up to {cap_fen} (rule M3). {ship_to}"))
    elif payer is ShippingPayer.INSURER:
        text = Said(N_("Thank you for your patience: your return has been approved. Please send the goods back and enter "
                       "the carrier and tracking number by {deadline} (rule M5). Your return-shipping insurance covers the "
                       "return shipping (rule M3). {ship_to}"),
                    N_("Thank you for your patience: we have approved your return. Please send the parcel to our address and enter the carrier and "
                       "tracking number by {deadline} (rule M5). Your return-shipping insurance covers the return shipping (rule M3). {ship_to}"))
    else:
        text = Said(N_("Thank you for your patience: your return has been approved. Please send the goods back and enter "
                       "the carrier and tracking number by {deadline} (rule M5). For this return the shipping is paid by "
                       "you (rule M3). {ship_to}"),
                    N_("Thank you for your patience: we have approved your return. Please send the parcel to our address and enter the carrier and "
                       "tracking number by {deadline} (rule M5). For this return the shipping is paid by you (rule M3). {ship_to}"))
    replies = [_reply(Situation.AWAITING_RETURN_SHIPMENT, "M5", text, due, cap_fen=policy.return_shipping_cap_fen,
                      ship_to=_ship_to(case))]
    if case.return_shipping_disputed:
        replies.append(_reply(
            Situation.RETURN_SHIPPING_DISPUTED, "M3",
            Said(N_("We are sorry for the confusion about the return shipping. For this problem the rules make the shop "
                    "pay the return shipping, but the shop has declined (rule M3). You can ask the platform to step in "
                    "(rule P1); please do so before {deadline}, when the time to send the return ends."),
                 N_("We are sorry for the confusion about the return shipping. For this problem the rules say we pay the return shipping, but we have "
                    "declined it (rule M3). You can ask the platform to step in (rule P1); please do so before {deadline}, when the time to send the "
                    "return ends.")),
            due,
        ))
    return replies


def _ship_to(case: Case) -> Msg:
    """M5: the address the return goes to, as the case keeps it, written out on one line (or that it will follow)."""
    if case.return_address is None:
        return Msg(N_("The return address will be sent to you in a message."))
    return Msg(N_("Return address: {address}."), {"address": ", ".join(case.return_address.lines())})


def _platform_review(case: Case, due: datetime | None, policy: Policy) -> Reply:
    """P1 (and P2 when a refund ruling waits for the shop's payment)."""
    ruling = case.ruling
    if ruling is not None and ruling.outcome == "refund" and ruling.paid_by is None:
        return _reply(
            Situation.RULING_TO_PAY, "P1",
            Said(N_("Thank you for your patience. The platform has ruled that you are refunded {refund_fen} (rule P1). "
                    "The shop must pay by {deadline}; if it does not, the platform pays you at once from its compensation "
                    "fund (rule P2)."),
                 N_("Thank you for your patience. The platform has ruled that you are refunded {refund_fen} (rule P1). We pay it by {deadline}; if we do "
                    "not, the platform pays you at once from its compensation fund (rule P2).")),
            due, refund_fen=ruling.refund_fen,
        )
    if case.platform_overdue:
        return _reply(
            Situation.PLATFORM_OVERDUE, "P1",
            Said(N_("We sincerely apologise: the platform has not taken up your case within the promised {hours} hours. "
                    "It has been flagged for priority handling (rule P1), and an agent will contact you as soon as "
                    "possible. The ruling and its reasons will be shown to you and to the shop."),
                 N_("We are sorry for the wait: the platform has not taken up your case within the promised {hours} hours. It has been flagged for "
                    "priority handling (rule P1), and a platform agent will contact you as soon as possible. The ruling and its reasons will be shown to "
                    "you and to us.")),
            hours=policy.platform_accept_hours,
        )
    return _reply(
        Situation.PLATFORM_REVIEW, "P1",
        Said(N_("Thank you for your patience. The platform's customer service will take up your case by {deadline} and "
                "rule on it (rule P1). The decision and its reasons will be shown to you and to the shop; please add any "
                "photos or chat records that help."),
             N_("Thank you for your patience. The platform's customer service will take up your case by {deadline} and rule on it (rule P1). The decision "
                "and its reasons will be shown to you and to us; please add any photos or chat records that help.")),
        due,
    )


def _closed(order: Order, case: Case, policy: Policy) -> Reply:
    """A closed case, by its close reason."""
    reason = case.close_reason
    if reason is CloseReason.REFUNDED:
        return _reply(
            Situation.CLOSED_REFUNDED, "F1",
            N_("Thank you for your patience. Your refund of {amount_fen} has been completed through your original "
               "payment method (rule F1), and the request is closed. We are sorry for the trouble and hope to serve "
               "you better next time."),
            amount_fen=case.refunded_fen(order),
        )
    if reason is CloseReason.EXCHANGED:
        return _reply(Situation.CLOSED_EXCHANGED, "M7", N_(
            "Thank you for your patience. Your exchange is complete and the request is closed (rule M7). If anything "
            "is still wrong with the new item, please contact us within its after-sales period."))
    if reason is CloseReason.RESHIPPED:
        return _reply(Situation.CLOSED_RESHIPPED, "M7", N_(
            "Thank you for your patience. The missing items have been delivered and the request is closed (rule M7). "
            "If anything is still missing, please contact us within the after-sales period."))
    if reason is CloseReason.REPAIRED:
        return _reply(Situation.CLOSED_REPAIRED, "M7", N_(
            "Thank you for your patience. The repaired item has been delivered and the request is closed (rule M7). "
            "If the problem comes back, please contact us while the warranty lasts."))
    if reason is CloseReason.CANCELLED:
        left = max(0, policy.max_buyer_cancellations - order.buyer_cancellations)
        text = (
            N_("Your request has been cancelled as you asked (rule C1). After-sales requests on one order can be "
               "cancelled at most {max} times (rule E8); cancellations left on this order: {left}. You can open a "
               "new request while the after-sales period lasts.")
            if left > 0
            else Said(N_("Your request has been cancelled as you asked (rule C1). This was the last of the {max} "
                         "cancellations allowed on one order (rule E8), so no new request can be opened online; if you need "
                         "help later, please contact the shop, which can open a request for you with your consent."),
                      N_("Your request has been cancelled as you asked (rule C1). This was the last of the {max} cancellations allowed on one order (rule "
                         "E8), so no new request can be opened online; if you need help later, please contact us here, and we can open a request for you "
                         "with your consent."))
        )
        return _reply(Situation.CLOSED_CANCELLED, "C1", text, left=left, max=policy.max_buyer_cancellations)
    if reason is CloseReason.BUYER_OVERDUE:
        return _reply(
            Situation.CLOSED_BUYER_OVERDUE, "M5",
            N_("We are sorry, but the return was not sent by {closed_at}, so the request closed automatically "
               "(rule M5). This does not count as a cancellation. If the after-sales period is still open, you can "
               "submit a new request."),
            closed_at=case.closed_at,
        )
    if reason is CloseReason.REJECTED:
        return _reply(
            Situation.CLOSED_REJECTED, "M2",
            Said(N_("Thank you for your understanding. The request closed after the shop's refusal (rule M2). If you "
                    "still disagree, you can file a complaint through the complaint button on the order or our customer "
                    "service, and we will look into it."),
                 N_("Thank you for your understanding. The request closed after our refusal (rule M2). If you still disagree, you can file a complaint "
                    "with the platform through the complaint button on the order, and the platform will look into it.")),
        )
    if reason is CloseReason.PLATFORM_REJECTED:
        return _reply(
            Situation.CLOSED_PLATFORM_REJECTED, "P1",
            N_("Thank you for your patience. The platform reviewed your case and did not uphold the request (rule "
               "P1). Its reasons: \u201c{rationale}\u201d. If you still disagree, you can seek mediation by a "
               "consumer association, complain to the authorities, or go to arbitration or court."),
            rationale=case.ruling.rationale if case.ruling is not None else None,
        )
    return _reply(
        Situation.CLOSED_ORDER_CANCELLED, "E10",
        N_("Thank you for contacting us. The order was cancelled and refunded, so this request has been closed "
           "(rule E10). If the money has not reached you yet, please let us know and we will check it for you."),
    )


__all__ = ["Reply", "Said", "Situation", "Voice", "suggested_replies"]
