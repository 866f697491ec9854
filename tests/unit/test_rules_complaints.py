"""RULEBOOK §4 K1 (published complaint channels) and K2 (complaints): the pure aggregate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from aftersales.domain import complaints as dc
from aftersales.domain.errors import InvalidInput, NotPermitted, RuleViolation, StateConflict
from aftersales.domain.events import Actor
from aftersales.domain.policy import Policy

SH = ZoneInfo("Asia/Shanghai")
POLICY = Policy()
NOW = datetime(2026, 3, 1, 10, tzinfo=SH).astimezone(UTC)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=SH).astimezone(UTC)


def filed(subject: dc.Subject | None = None, channel: dc.Channel = dc.Channel.IN_APP_CHAT, actor: Actor = Actor.BUYER,
          now: datetime = NOW) -> dc.Complaint:
    subject = subject or dc.Subject(buyer_id="bX", order_id="o1", order_merchant_id="mA", order_buyer_id="bX")
    return dc.file_complaint(id="cp1", subject=subject, channel=channel, category=dc.Category.PRODUCT_QUALITY,
                             description="broken", actor=actor, now=now, policy=POLICY)


def test_K2_the_transition_table_is_the_only_source_of_who_may_do_what() -> None:
    assert {dc.Verb.ACCEPT: {Actor.PLATFORM}, dc.Verb.REJECT: {Actor.PLATFORM},
                         dc.Verb.RESPOND: {Actor.MERCHANT}, dc.Verb.RESOLVE: {Actor.PLATFORM}} == dc.ACTORS
    assert all(not dc.TRANSITIONS[s] for s in dc.FINAL)
    assert set(dc.TRANSITIONS) == set(dc.ComplaintStatus)


# --- K1 ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("now", "open_now", "next_opening"), [
    (local(1, 8, 59), False, local(1, 9)),
    (local(1, 9), True, local(2, 9)),
    (local(1, 19, 59), True, local(2, 9)),
    (local(1, 20), False, local(2, 9)),
    (local(1, 23, 59), False, local(2, 9)),
    (local(2, 0, 1), False, local(2, 9)),
])
def test_K1_phone_hours_and_next_opening(now: datetime, open_now: bool, next_opening: datetime) -> None:
    h = dc.phone_hours(now, POLICY)
    assert (h.open_now, h.next_opening_at) == (open_now, next_opening)
    assert h.closes_at == (local(1, 20) if open_now else None)


def test_K1_phone_hours_follow_the_policy_zone_and_hours() -> None:
    policy = Policy(timezone="Europe/Madrid", phone_hours="08:30-12:00")
    h = dc.phone_hours(datetime(2026, 3, 1, 12, tzinfo=UTC), policy)  # 13:00 in Madrid
    assert not h.open_now and h.next_opening_at == datetime(2026, 3, 2, 7, 30, tzinfo=UTC)


def test_K1_a_phone_complaint_is_recorded_by_an_agent_only_inside_the_hours() -> None:
    subject = dc.Subject(buyer_id="bX", merchant_id="mA")
    with pytest.raises(NotPermitted) as refused:
        filed(subject, dc.Channel.PHONE, Actor.BUYER)
    assert refused.value.rule == "K1"
    with pytest.raises(dc.PhoneClosed) as closed:
        filed(subject, dc.Channel.PHONE, Actor.PLATFORM, now=local(1, 21))
    assert closed.value.rule == "K1" and closed.value.extra["next_opening_at"] == local(2, 9).isoformat()
    assert filed(subject, dc.Channel.PHONE, Actor.PLATFORM).filed_by is Actor.PLATFORM
    with pytest.raises(NotPermitted):
        filed(subject, dc.Channel.WECHAT, Actor.PLATFORM)
    with pytest.raises(RuleViolation):
        filed(subject, dc.Channel.ORDER_BUTTON)  # the button is on an order


# --- K2 subjects ------------------------------------------------------------------------------------------
def test_K2_the_shop_is_derived_from_the_order_or_the_case() -> None:
    order = dict(order_merchant_id="mA", order_buyer_id="bX")
    assert dc.Subject("bX", order_id="o1", **order).resolve() == ("mA", "o1", None)
    assert dc.Subject("bX", case_id="c1", case_order_id="o1", **order).resolve() == ("mA", "o1", "c1")
    assert dc.Subject("bX", merchant_id="mB").resolve() == ("mB", None, None)


@pytest.mark.parametrize("subject", [
    dc.Subject("bX"),
    dc.Subject("bX", order_id="o2", case_id="c1", case_order_id="o1", order_merchant_id="mA", order_buyer_id="bX"),
    dc.Subject("bX", order_id="o1", merchant_id="mB", order_merchant_id="mA", order_buyer_id="bX"),
    dc.Subject("bY", order_id="o1", order_merchant_id="mA", order_buyer_id="bX"),
])
def test_K2_inconsistent_subjects_are_refused(subject: dc.Subject) -> None:
    with pytest.raises(RuleViolation) as refused:
        subject.resolve()
    assert refused.value.rule == "K2"


@pytest.mark.parametrize("description", ["", "   ", "x" * 2001])
def test_K2_the_description_is_bounded(description: str) -> None:
    with pytest.raises(InvalidInput):
        dc.file_complaint(id="cp1", subject=dc.Subject("bX", merchant_id="mA"), channel=dc.Channel.IN_APP_CHAT,
                          category=dc.Category.OTHER, description=description, actor=Actor.BUYER, now=NOW, policy=POLICY)


# --- K2 life and limits -----------------------------------------------------------------------------------
def test_K2_filing_starts_the_platform_limit_and_records_an_event() -> None:
    c = filed()
    assert c.status is dc.S.SUBMITTED and c.merchant_id == "mA"
    assert c.deadline == dc.Deadline(dc.Verb.ACCEPT, Actor.PLATFORM, NOW + timedelta(hours=24))
    assert c.timers() == [dc.Timer("flag_accept_overdue", 1, "K2", NOW + timedelta(hours=24))]
    assert [(e.kind, e.actor, e.rules) for e in c.pending_events] == [("complaint_submitted", Actor.BUYER, ("K1", "K2"))]


def test_K2_accept_then_respond_then_resolve() -> None:
    c = filed()
    c.accept(Actor.PLATFORM, NOW + timedelta(hours=1), POLICY)
    assert c.status is dc.S.ACCEPTED and c.stage == 2
    assert c.deadline == dc.Deadline(dc.Verb.RESPOND, Actor.MERCHANT, NOW + timedelta(hours=49))
    c.respond(Actor.MERCHANT, NOW + timedelta(hours=2), POLICY, answer="we are sorry")
    assert c.status is dc.S.ANSWERED and c.deadline is None and c.timers() == []
    c.resolve(Actor.PLATFORM, NOW + timedelta(hours=3), POLICY, outcome=dc.Outcome.UPHELD, rationale="defective",
              remedies=[dc.Remedy(dc.RemedyType.REFUND, 500)])
    assert (c.status, c.outcome, c.rationale, c.closed_at) == (dc.S.RESOLVED, dc.Outcome.UPHELD, "defective",
                                                               NOW + timedelta(hours=3))
    assert [e.kind for e in c.pending_events] == ["complaint_submitted", "complaint_accepted", "complaint_answered",
                                                  "complaint_resolved"]
    assert c.pending_events[-1].data["remedies"] == [{"type": "refund", "amount_fen": 500}]


def test_K2_the_wrong_party_is_403_before_the_wrong_status_409() -> None:
    c = filed()
    with pytest.raises(NotPermitted):
        c.accept(Actor.MERCHANT, NOW, POLICY)
    with pytest.raises(NotPermitted):
        c.respond(Actor.PLATFORM, NOW, POLICY, answer="a")
    with pytest.raises(StateConflict) as conflict:
        c.respond(Actor.MERCHANT, NOW, POLICY, answer="a")
    assert conflict.value.rule == "K2" and c.version == 1
    c.reject(Actor.PLATFORM, NOW, POLICY, reason="not a complaint")
    with pytest.raises(StateConflict):
        c.accept(Actor.PLATFORM, NOW, POLICY)


def test_K2_an_unanswered_complaint_is_resolved_only_after_the_merchant_limit() -> None:
    c = filed()
    c.accept(Actor.PLATFORM, NOW, POLICY)
    args = dict(outcome=dc.Outcome.NOT_UPHELD, rationale="r", remedies=[])
    with pytest.raises(RuleViolation):
        c.resolve(Actor.PLATFORM, NOW + timedelta(hours=47), POLICY, **args)  # type: ignore[arg-type]
    c.resolve(Actor.PLATFORM, NOW + timedelta(hours=48), POLICY, **args)  # type: ignore[arg-type]
    assert c.status is dc.S.RESOLVED and c.pending_events[-1].data["merchant_answered"] is False


@pytest.mark.parametrize(("outcome", "remedies"), [
    (dc.Outcome.UPHELD, []),
    (dc.Outcome.NOT_UPHELD, [dc.Remedy(dc.RemedyType.PENALTY, 1)]),
    (dc.Outcome.UPHELD, [dc.Remedy(dc.RemedyType.PENALTY, 1), dc.Remedy(dc.RemedyType.PENALTY, 2)]),
    (dc.Outcome.UPHELD, [dc.Remedy(dc.RemedyType.COMPENSATION, 0)]),
])
def test_K2_remedies_fit_the_outcome(outcome: dc.Outcome, remedies: list[dc.Remedy]) -> None:
    with pytest.raises(InvalidInput):
        dc.check_remedies(outcome, remedies)


def test_K2_missed_limits_are_flagged_once_and_stale_timers_are_dropped() -> None:
    c = filed()
    due = NOW + timedelta(hours=24)
    assert not c.flag_overdue("flag_accept_overdue", 7, due)  # another stage
    assert c.flag_overdue("flag_accept_overdue", 1, due)
    assert not c.flag_overdue("flag_accept_overdue", 1, due)  # once
    assert c.flags == [dc.Flag("K2", "accept_overdue", due)] and c.flagged and c.status is dc.S.SUBMITTED
    assert c.pending_events[-1].kind == "complaint_flagged" and c.pending_events[-1].at == due
    c.accept(Actor.PLATFORM, due + timedelta(hours=1), POLICY)
    assert c.pending_events[-1].data["late"] is True
    assert not c.flag_overdue("flag_accept_overdue", 1, due)  # the old stage's row is stale now
    respond_due = due + timedelta(hours=49)
    assert c.flag_overdue("flag_respond_overdue", 2, respond_due)
    assert [f.kind for f in c.flags] == ["accept_overdue", "respond_overdue"]


def test_K2_no_flag_when_acted_in_time() -> None:
    c = filed()
    c.accept(Actor.PLATFORM, NOW + timedelta(hours=23), POLICY)
    assert not c.flag_overdue("flag_accept_overdue", 1, NOW + timedelta(hours=24))
    assert c.flags == [] and c.pending_events[-1].data["late"] is False
