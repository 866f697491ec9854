"""The case desk: everything a shop's agent (or a platform agent) needs on one case, read in one transaction.

The workbench's case page shows what this returns and decides nothing itself: the case view (with the actions
allowed for the reader), its order and group, the timeline, the evidence, the conversation and handling notes,
the suggested replies of S2 in the reader's language, the M3 return-shipping recommendation, the reason's S3
category and the resolution summary of S5.

S5 resolution summary: an internal note whose body starts with :data:`SUMMARY_MARK`. It is an ordinary note (so it
is part of the record export like every note), and the latest one is the case's summary.
"""

from __future__ import annotations

from typing import Any

from aftersales import i18n
from aftersales.domain.cases import RETURN_TYPES, CaseStatus, propose_shipping_payer
from aftersales.domain.catalog import reason_category
from aftersales.domain.replies import Voice, suggested_replies
from aftersales.store import repositories as repo
from aftersales.store import return_addresses as address_store

from . import evidence, messages, return_addresses, views
from .cases import _case_dict, _load_case
from .context import Context, Principal, UnitOfWork, read

#: The mark that makes an internal note the case's resolution summary (S5).
SUMMARY_MARK = "[S5] "
MAX_EVENTS = 500


def case_page(ctx: Context, who: Principal, case_id: str, *, lang: str) -> dict[str, Any]:
    """The case desk of ``case_id`` for merchant staff or the platform (another tenant's case: NotFound, T2)."""
    who.require("merchant", "platform")

    def q(uow: UnitOfWork) -> dict[str, Any]:
        order, case = _load_case(uow, who, case_id)
        group = uow.tracker.get_group(order.group_id) if order.group_id else None
        tz = ctx.policy.timezone
        notes = [messages.view(r) for r in messages.rows(uow, "case", case.id, where=messages.visible_to(who))]
        summary = next((n for n in reversed(notes) if n["internal"] and n["author"] == who.role
                        and n["body"].startswith(SUMMARY_MARK)), None)
        # M3: before approval the system's proposal is shown so the shop can confirm or decline it.
        recommended = (propose_shipping_payer(case, order).value
                       if case.type in RETURN_TYPES and case.return_shipping_payer is None else None)
        # S2: the shop's staff speak as the shop ("we"), the platform's agents about it ("the shop").
        voice = Voice.SHOP if who.role == "merchant" else Voice.PLATFORM
        replies = [{"situation": r.situation, "rule": r.rule, "text": i18n.render(r.msg, lang, tz),
                    "deadline": views.iso(r.deadline)}
                   for r in suggested_replies(order, case, None, uow.now, ctx.policy, group, voice=voice)]
        # M5: the shop's active return addresses to choose from when it approves a return (the default first).
        addresses = ([return_addresses.view(r) for r in address_store.rows(uow.conn, order.merchant_id)]
                     if who.role == "merchant" and case.type in RETURN_TYPES and case.status is CaseStatus.AWAITING_MERCHANT
                     else None)
        return {
            "case": _case_dict(ctx, uow, who, order, case, lang),
            "return_addresses": addresses,
            "order": views.order_view(order, group, actor=who.actor, now=uow.now),
            "category": reason_category(case.reason).value,
            "events": [views.event_view(r) for r in repo.case_events(uow.conn, case.id, after=None, limit=MAX_EVENTS)],
            "evidence": [evidence.view(r) for r in evidence.rows(uow, "case", case.id)],
            "messages": notes,
            "summary": {**summary, "body": summary["body"][len(SUMMARY_MARK):]} if summary else None,
            "replies": replies,
            "recommended_payer": recommended,
            "now": uow.now.isoformat(),
        }

    return read(ctx, q)


def write_summary(ctx: Context, who: Principal, case_id: str, *, body: str) -> dict[str, Any]:
    """Record the resolution summary (S5) as a marked internal note of the caller's side."""
    return messages.post(ctx, who, "case", case_id, body=SUMMARY_MARK + body.strip(), internal=True)


__all__ = ["SUMMARY_MARK", "case_page", "write_summary"]
