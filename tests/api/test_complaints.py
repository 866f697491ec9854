"""K1 published complaint channels and K2 complaints, through HTTP on SQLite and PostgreSQL.

The manual clock starts at 2026-03-01T02:00Z = 10:00 in Asia/Shanghai: the phone line (09:00–20:00) answers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from helpers import START, advance_to, delivered_order, hours, local, open_case, problem
from sqlalchemy import func, select

from aftersales.service.complaints import count_open
from aftersales.store import tables as t

DESC = "The shop ignores my after-sales request."


def complaint_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"channel": "in_app_chat", "category": "after_sales_not_handled", "description": DESC}
    body.update(fields)
    return body


def try_file(api: Any, who: str = "buyer_x", **fields: Any) -> Any:
    return api.post("/v1/complaints", complaint_body(**fields), who=who)


def file(api: Any, who: str = "buyer_x", **fields: Any) -> dict[str, Any]:
    r = try_file(api, who=who, **fields)
    assert r.status_code == 201, r.text
    return dict(r.json())


def try_do(api: Any, cid: str, verb: str, body: Any = None, who: str = "platform", **headers: str) -> Any:
    return api.post(f"/v1/complaints/{cid}/{verb}", body, who=who, headers=headers or None)


def do(api: Any, cid: str, verb: str, body: Any = None, who: str = "platform") -> dict[str, Any]:
    r = try_do(api, cid, verb, body, who=who)
    assert r.status_code == 200, r.text
    return dict(r.json())


def get(api: Any, cid: str, who: str = "platform") -> dict[str, Any]:
    r = api.get(f"/v1/complaints/{cid}", who=who)
    assert r.status_code == 200, r.text
    return dict(r.json())


def events(api: Any, cid: str, who: str = "platform") -> list[dict[str, Any]]:
    r = api.get(f"/v1/complaints/{cid}/events", who=who)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def count_complaints(ctx: Any) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.complaints)).scalar_one())


def accepted(api: Any, order_id: str = "o1") -> dict[str, Any]:
    delivered_order(api, order_id)
    c = file(api, order_id=order_id)
    return do(api, c["id"], "accept")


def ledger_balance(api: Any, account: str) -> int:
    r = api.get("/v1/ledger/transactions", params={"account": account})
    assert r.status_code == 200, r.text
    return int(r.json()["balance_fen"])


# --- K1 ---------------------------------------------------------------------------------------------------
def test_K1_channels_are_published_without_a_key_with_the_phone_hours(api: Any) -> None:
    r = api.get("/v1/complaint-channels", who="anonymous")
    assert r.status_code == 200, r.text
    body = r.json()
    codes = [c["code"] for c in body["channels"]]
    assert codes == ["in_app_chat", "order_button", "wechat_official_account", "phone"]
    phone = body["channels"][-1]
    assert phone["recorded_by"] == "platform agent" and not phone["always_open"]
    h = phone["hours"]
    assert (h["opens"], h["closes"], h["timezone"], h["open_now"]) == ("09:00", "20:00", "Asia/Shanghai", True)
    assert datetime.fromisoformat(h["closes_at"]) == local(2026, 3, 1, 20)
    assert datetime.fromisoformat(h["next_opening_at"]) == local(2026, 3, 2, 9)
    assert all(c["hours"] is None and c["always_open"] for c in body["channels"][:-1])


def test_K1_phone_next_opening_across_midnight_with_the_manual_clock(api: Any) -> None:
    def phone() -> dict[str, Any]:
        return dict(api.get("/v1/complaint-channels", who="anonymous").json()["channels"][-1]["hours"])

    for instant, open_now, nxt in [
        (local(2026, 3, 1, 19, 59), True, local(2026, 3, 2, 9)),
        (local(2026, 3, 1, 20), False, local(2026, 3, 2, 9)),  # the end is exclusive
        (local(2026, 3, 1, 23, 30), False, local(2026, 3, 2, 9)),
        (local(2026, 3, 2, 0, 30), False, local(2026, 3, 2, 9)),  # past midnight: the same day's opening
        (local(2026, 3, 2, 8, 59), False, local(2026, 3, 2, 9)),
        (local(2026, 3, 2, 9), True, local(2026, 3, 3, 9)),
    ]:
        advance_to(api, instant)
        h = phone()
        assert h["open_now"] is open_now, (instant, h)
        assert datetime.fromisoformat(h["next_opening_at"]) == nxt, (instant, h)
        assert (h["closes_at"] is not None) is open_now


def test_K1_phone_complaint_outside_hours_is_refused_with_the_next_opening(api: Any, ctx: Any) -> None:
    delivered_order(api, "o1")
    advance_to(api, local(2026, 3, 1, 21))
    r = try_file(api, who="platform", channel="phone", order_id="o1", buyer_id="bX")
    body = problem(r, 422, "K1")
    assert datetime.fromisoformat(body["next_opening_at"]) == local(2026, 3, 2, 9)
    assert "09:00" in body["detail"] and "20:00" in body["detail"]
    assert count_complaints(ctx) == 0
    advance_to(api, local(2026, 3, 2, 9))
    c = file(api, who="platform", channel="phone", order_id="o1", buyer_id="bX")
    assert (c["channel"], c["filed_by"], c["buyer_id"], c["merchant_id"]) == ("phone", "platform", "bX", "mA")


def test_K1_phone_complaints_are_recorded_by_an_agent_and_buyers_file_the_rest(api: Any, ctx: Any) -> None:
    delivered_order(api, "o1")
    problem(try_file(api, who="buyer_x", channel="phone", order_id="o1"), 403, "K1")
    problem(try_file(api, who="platform", channel="in_app_chat", order_id="o1", buyer_id="bX"), 403, "K1")
    problem(try_file(api, who="platform", channel="phone", merchant_id="mA"), 422)  # which buyer? (K1: no order names one)
    problem(try_file(api, who="merchant_a", order_id="o1"), 403)
    problem(try_file(api, who="anonymous", order_id="o1"), 401)
    problem(try_file(api, who="buyer_x", order_id="o1", buyer_id="bY"), 422)
    problem(try_file(api, who="platform", channel="phone", order_id="o1", buyer_id="bY"), 422, "K2")  # not bY's order
    problem(try_file(api, who="buyer_x", channel="order_button", merchant_id="mA"), 422, "K1")  # the button is on an order
    assert count_complaints(ctx) == 0
    for channel in ("in_app_chat", "order_button", "wechat_official_account"):
        assert file(api, channel=channel, order_id="o1")["filed_by"] == "buyer:bX"


# --- K2: filing ---------------------------------------------------------------------------------------------
def test_K2_complaint_about_an_order_derives_the_shop_and_starts_the_accept_limit(api: Any) -> None:
    delivered_order(api, "o1")
    c = file(api, order_id="o1", category="unfair_refusal")
    assert (c["status"], c["order_id"], c["merchant_id"], c["buyer_id"], c["case_id"]) == ("submitted", "o1", "mA", "bX", None)
    assert c["deadline"] == {"action": "accept", "by": "platform", "due_at": (START + timedelta(hours=24)).isoformat(),
                             "rule": "K2", "overdue": False}
    assert c["flags"] == [] and c["version"] == 1 and c["allowed_actions"] == []
    assert get(api, c["id"])["allowed_actions"] == ["accept", "reject"]
    ev = events(api, c["id"], who="buyer_x")
    assert [e["kind"] for e in ev] == ["complaint_submitted"]
    assert ev[0]["rules"] == ["K1", "K2"] and ev[0]["actor"] == "buyer"


def test_K2_complaint_about_a_case_derives_its_order_and_shop(api: Any) -> None:
    delivered_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "quality_problem")
    c = file(api, case_id=case["id"])
    assert (c["case_id"], c["order_id"], c["merchant_id"]) == (case["id"], "o1", "mA")
    assert file(api, case_id=case["id"], order_id="o1", merchant_id="mA")["case_id"] == case["id"]


def test_K2_complaint_about_a_shop_needs_no_order(api: Any) -> None:
    c = file(api, merchant_id="mB", category="service_attitude")
    assert (c["merchant_id"], c["order_id"], c["case_id"]) == ("mB", None, None)
    problem(try_file(api, merchant_id="mZ"), 404)


def test_K2_subjects_must_be_consistent(api: Any, ctx: Any) -> None:
    delivered_order(api, "o1")
    delivered_order(api, "o2")
    case = open_case(api, "o1", "refund_only", "quality_problem")
    problem(try_file(api), 422, "K2")  # about nothing
    problem(try_file(api, case_id=case["id"], order_id="o2"), 422, "K2")  # the case is on o1
    problem(try_file(api, order_id="o1", merchant_id="mB"), 422, "K2")  # o1 is from mA
    problem(try_file(api, order_id="o1", category="bored"), 422)
    problem(try_file(api, order_id="o1", description=""), 422)
    problem(try_file(api, order_id="o1", description="x" * 2001), 422)
    assert count_complaints(ctx) == 0


def test_K2_another_buyers_order_or_case_is_unknown(api: Any, ctx: Any) -> None:
    delivered_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "quality_problem")
    theirs = problem(try_file(api, who="buyer_y", order_id="o1"), 404)
    unknown = problem(try_file(api, who="buyer_y", order_id="oNowhere"), 404)
    assert theirs == unknown and "o1" not in str(theirs)
    problem(try_file(api, who="buyer_y", case_id=case["id"]), 404)
    assert count_complaints(ctx) == 0


# --- K2: handling -------------------------------------------------------------------------------------------
def test_K2_accept_respond_resolve_and_the_rationale_is_shown_to_both_sides(api: Any) -> None:
    c = accepted(api)
    assert c["status"] == "accepted" and c["accepted_at"] == START.isoformat()
    assert c["deadline"]["action"] == "respond" and c["deadline"]["by"] == "merchant"
    assert datetime.fromisoformat(c["deadline"]["due_at"]) == START + timedelta(hours=48)
    assert get(api, c["id"], who="merchant_a")["allowed_actions"] == ["respond"]
    api.advance(hours(3))
    c = do(api, c["id"], "respond", {"answer": "We refunded the shipping; the item is fine."}, who="merchant_a")
    assert c["status"] == "answered" and c["deadline"] is None
    assert get(api, c["id"], who="buyer_x")["response"].startswith("We refunded")
    c = do(api, c["id"], "resolve", {"outcome": "not_upheld", "rationale": "The shop answered within the rules."})
    assert (c["status"], c["outcome"], c["remedies"]) == ("resolved", "not_upheld", [])
    for who in ("buyer_x", "merchant_a"):
        seen = get(api, c["id"], who=who)
        assert seen["rationale"] == "The shop answered within the rules." and seen["outcome"] == "not_upheld"
    ev = events(api, c["id"], who="merchant_a")
    assert [e["kind"] for e in ev] == ["complaint_submitted", "complaint_accepted", "complaint_answered",
                                       "complaint_resolved"]
    assert [e["actor"] for e in ev] == ["buyer", "platform", "merchant", "platform"]
    assert all("K2" in e["rules"] for e in ev) and ev[2]["data"]["late"] is False


def test_K2_reject_gives_the_buyer_the_reason_and_the_shop_never_sees_it(api: Any) -> None:
    delivered_order(api, "o1")
    c = file(api, order_id="o1")
    c = do(api, c["id"], "reject", {"reason": "Not a matter for the platform."})
    assert (c["status"], c["rationale"], c["deadline"]) == ("rejected", "Not a matter for the platform.", None)
    assert get(api, c["id"], who="buyer_x")["rationale"] == "Not a matter for the platform."
    problem(api.get(f"/v1/complaints/{c['id']}", who="merchant_a"), 404)
    assert api.get("/v1/complaints", who="merchant_a").json()["items"] == []


def test_K2_the_merchant_sees_a_complaint_from_its_acceptance(api: Any) -> None:
    delivered_order(api, "o1")
    c = file(api, order_id="o1")
    problem(api.get(f"/v1/complaints/{c['id']}", who="merchant_a"), 404)
    problem(try_do(api, c["id"], "respond", {"answer": "early"}, who="merchant_a"), 404)
    do(api, c["id"], "accept")
    assert get(api, c["id"], who="merchant_a")["status"] == "accepted"
    for outsider in ("merchant_b", "buyer_y"):
        problem(api.get(f"/v1/complaints/{c['id']}", who=outsider), 404)
        problem(api.get(f"/v1/complaints/{c['id']}/events", who=outsider), 404)
        assert api.get("/v1/complaints", who=outsider).json()["items"] == []


def test_K2_the_wrong_party_is_refused_with_403(api: Any) -> None:
    c = accepted(api)
    delivered_order(api, "o2")
    fresh = file(api, order_id="o2")
    for who in ("merchant_a", "buyer_x", "merchant_b", "buyer_y"):
        problem(try_do(api, fresh["id"], "accept", who=who), 403)
        problem(try_do(api, fresh["id"], "reject", {"reason": "no"}, who=who), 403)
        problem(try_do(api, c["id"], "resolve", {"outcome": "not_upheld", "rationale": "r"}, who=who), 403)
    for who in ("platform", "buyer_x", "buyer_y"):
        problem(try_do(api, c["id"], "respond", {"answer": "a"}, who=who), 403)
    problem(try_do(api, c["id"], "respond", {"answer": "a"}, who="merchant_b"), 404)  # not its shop
    problem(try_do(api, fresh["id"], "accept", who="anonymous"), 401)
    assert get(api, c["id"])["version"] == c["version"] and get(api, fresh["id"])["status"] == "submitted"


def test_K2_an_act_in_the_wrong_status_is_a_409(api: Any) -> None:
    c = accepted(api)
    problem(try_do(api, c["id"], "accept"), 409, "K2")
    problem(try_do(api, c["id"], "reject", {"reason": "late"}), 409, "K2")
    do(api, c["id"], "respond", {"answer": "done"}, who="merchant_a")
    problem(try_do(api, c["id"], "respond", {"answer": "again"}, who="merchant_a"), 409, "K2")
    do(api, c["id"], "resolve", {"outcome": "not_upheld", "rationale": "fine"})
    problem(try_do(api, c["id"], "resolve", {"outcome": "not_upheld", "rationale": "again"}), 409, "K2")
    delivered_order(api, "o2")
    fresh = file(api, order_id="o2")
    problem(try_do(api, fresh["id"], "resolve", {"outcome": "not_upheld", "rationale": "r"}), 409, "K2")


def test_K2_if_match_guards_against_stale_versions(api: Any) -> None:
    delivered_order(api, "o1")
    c = file(api, order_id="o1")
    problem(try_do(api, c["id"], "accept", None, who="platform", **{"If-Match": "7"}), 409)
    r = try_do(api, c["id"], "accept", None, who="platform", **{"If-Match": str(c["version"])})
    assert r.status_code == 200 and r.json()["version"] == c["version"] + 1, r.text


# --- K2: limits are flagged, never dropped -------------------------------------------------------------------
def test_K2_accept_overdue_is_flagged_when_the_platform_misses_its_limit(api: Any) -> None:
    delivered_order(api, "o1")
    c = file(api, order_id="o1")
    due = START + timedelta(hours=24)
    advance_to(api, due - timedelta(seconds=1))
    assert get(api, c["id"])["flags"] == []
    assert api.advance(hours(2))["fired"] == 1
    seen = get(api, c["id"], who="buyer_x")
    assert seen["flags"] == [{"rule": "K2", "kind": "accept_overdue", "at": due.isoformat()}] and seen["flagged"]
    assert seen["status"] == "submitted" and seen["deadline"]["overdue"] is True
    flagged = [e for e in events(api, c["id"]) if e["kind"] == "complaint_flagged"]
    assert len(flagged) == 1 and flagged[0]["actor"] == "system" and flagged[0]["at"] == due.isoformat()
    ids = [x["id"] for x in api.get("/v1/complaints", params={"flagged": "true"}).json()["items"]]
    assert ids == [c["id"]] and api.get("/v1/complaints", params={"flagged": "false"}).json()["items"] == []
    late = do(api, c["id"], "accept")  # still possible, and the flag stays
    assert late["status"] == "accepted" and late["flags"][0]["kind"] == "accept_overdue"
    assert events(api, c["id"])[-1]["data"]["late"] is True


def test_K2_no_flag_when_the_platform_accepts_in_time(api: Any) -> None:
    delivered_order(api, "o1")
    c = file(api, order_id="o1")
    api.advance(hours(23))
    do(api, c["id"], "accept")
    api.advance(hours(2))  # past the old accept limit; the merchant's runs until 23 h + 48 h
    assert get(api, c["id"])["flags"] == []
    assert api.get("/v1/complaints", params={"flagged": "true"}).json()["items"] == []


def test_K2_respond_overdue_is_flagged_and_a_late_answer_is_still_taken(api: Any) -> None:
    c = accepted(api)
    due = START + timedelta(hours=48)
    api.advance(hours(48))
    seen = get(api, c["id"], who="merchant_a")
    assert seen["flags"] == [{"rule": "K2", "kind": "respond_overdue", "at": due.isoformat()}]
    assert seen["deadline"] == {"action": "respond", "by": "merchant", "due_at": due.isoformat(), "rule": "K2",
                                "overdue": True}
    late = do(api, c["id"], "respond", {"answer": "Sorry, late."}, who="merchant_a")
    assert late["status"] == "answered" and late["flagged"]
    assert events(api, c["id"])[-1]["data"]["late"] is True


def test_K2_no_flag_when_the_merchant_answers_in_time(api: Any) -> None:
    c = accepted(api)
    api.advance(hours(47))
    do(api, c["id"], "respond", {"answer": "Handled."}, who="merchant_a")
    api.advance(hours(5))
    assert get(api, c["id"])["flags"] == []


def test_K2_the_platform_resolves_an_unanswered_complaint_once_the_merchant_limit_passed(api: Any) -> None:
    c = accepted(api)
    body = {"outcome": "upheld", "rationale": "The shop never answered.", "remedies": [{"type": "penalty", "amount_fen": 500}]}
    problem(try_do(api, c["id"], "resolve", body), 422, "K2")
    api.advance(hours(48))
    done = do(api, c["id"], "resolve", body)
    assert done["status"] == "resolved" and done["flags"][0]["kind"] == "respond_overdue"
    assert done["remedies"] == [{"type": "penalty", "amount_fen": 500}]


# --- K2 remedies ------------------------------------------------------------------------------------------
def test_K2_upheld_remedies_move_the_money(api: Any) -> None:
    c = accepted(api)  # o1: 10000 + 800 shipping
    do(api, c["id"], "respond", {"answer": "No."}, who="merchant_a")
    body = {"outcome": "upheld", "rationale": "The item was defective.", "remedies": [
        {"type": "refund", "amount_fen": 3000}, {"type": "compensation", "amount_fen": 500},
        {"type": "penalty", "amount_fen": 1000}]}
    done = do(api, c["id"], "resolve", body)
    assert done["outcome"] == "upheld" and len(done["remedies"]) == 3
    order = api.get("/v1/orders/o1").json()
    assert order["refunded_fen"] == 3000
    assert ledger_balance(api, "buyer:bX:compensation") == 500
    assert ledger_balance(api, "platform::penalties") == 1000
    assert get(api, c["id"], who="buyer_x")["rationale"] == "The item was defective."


def test_K2_a_refused_remedy_aborts_the_whole_resolve(api: Any) -> None:
    c = accepted(api)
    do(api, c["id"], "respond", {"answer": "No."}, who="merchant_a")
    body = {"outcome": "upheld", "rationale": "r", "remedies": [
        {"type": "compensation", "amount_fen": 500}, {"type": "refund", "amount_fen": 10801}]}
    problem(try_do(api, c["id"], "resolve", body), 422, "E10")
    after = get(api, c["id"])
    assert after["status"] == "answered" and after["version"] == c["version"] + 1
    assert api.get("/v1/orders/o1").json()["refunded_fen"] == 0
    assert ledger_balance(api, "buyer:bX:compensation") == 0


def test_K2_a_refund_remedy_needs_an_order(api: Any) -> None:
    c = file(api, merchant_id="mA")
    do(api, c["id"], "accept")
    do(api, c["id"], "respond", {"answer": "No."}, who="merchant_a")
    body = {"outcome": "upheld", "rationale": "r", "remedies": [{"type": "refund", "amount_fen": 100}]}
    problem(try_do(api, c["id"], "resolve", body), 422, "K2")
    assert get(api, c["id"])["status"] == "answered"


def test_K2_remedies_fit_the_outcome(api: Any) -> None:
    c = accepted(api)
    do(api, c["id"], "respond", {"answer": "No."}, who="merchant_a")
    problem(try_do(api, c["id"], "resolve", {"outcome": "upheld", "rationale": "r"}), 422, "K2")
    problem(try_do(api, c["id"], "resolve", {"outcome": "not_upheld", "rationale": "r",
                                             "remedies": [{"type": "penalty", "amount_fen": 1}]}), 422, "K2")
    problem(try_do(api, c["id"], "resolve", {"outcome": "upheld", "rationale": "r", "remedies": [
        {"type": "penalty", "amount_fen": 1}, {"type": "penalty", "amount_fen": 2}]}), 422, "K2")
    problem(try_do(api, c["id"], "resolve", {"outcome": "upheld", "rationale": "r",
                                             "remedies": [{"type": "penalty", "amount_fen": 0}]}), 422)
    problem(try_do(api, c["id"], "resolve", {"outcome": "upheld", "rationale": "",
                                             "remedies": [{"type": "penalty", "amount_fen": 1}]}), 422)
    assert get(api, c["id"])["status"] == "answered"


# --- reads ------------------------------------------------------------------------------------------------
def test_K2_list_filters_and_pages(api: Any, ctx: Any) -> None:
    delivered_order(api, "o1")
    delivered_order(api, "o2")
    delivered_order(api, "o3", merchant="mB", buyer="bY")
    a = file(api, order_id="o1")
    b = file(api, order_id="o2")
    y = file(api, who="buyer_y", order_id="o3")
    shop = file(api, merchant_id="mB")
    do(api, b["id"], "accept")
    ids = lambda r: [c["id"] for c in r.json()["items"]]  # noqa: E731
    assert ids(api.get("/v1/complaints")) == [a["id"], b["id"], y["id"], shop["id"]]
    assert ids(api.get("/v1/complaints", who="buyer_x")) == [a["id"], b["id"], shop["id"]]
    assert ids(api.get("/v1/complaints", who="buyer_y")) == [y["id"]]
    assert ids(api.get("/v1/complaints", who="merchant_a")) == [b["id"]]
    assert ids(api.get("/v1/complaints", params={"status": "submitted", "merchant_id": "mB"})) == [y["id"], shop["id"]]
    assert ids(api.get("/v1/complaints", params={"order_id": "o2"})) == [b["id"]]
    first = api.get("/v1/complaints", params={"limit": "3"}).json()
    assert [c["id"] for c in first["items"]] == [a["id"], b["id"], y["id"]] and first["next_cursor"]
    rest = api.get("/v1/complaints", params={"limit": "3", "cursor": first["next_cursor"]}).json()
    assert [c["id"] for c in rest["items"]] == [shop["id"]] and rest["next_cursor"] is None
    problem(api.get("/v1/complaints", params={"limit": "201"}), 422)
    problem(api.get("/v1/complaints", params={"status": "lost"}), 422)
    with ctx.engine.connect() as conn:  # D1 counts what is not resolved or rejected
        assert (count_open(conn, "mA"), count_open(conn, "mB")) == (2, 2)


def test_K2_events_page_with_a_cursor(api: Any) -> None:
    c = accepted(api)
    first = api.get(f"/v1/complaints/{c['id']}/events", params={"limit": "1"}).json()
    assert [e["kind"] for e in first["items"]] == ["complaint_submitted"] and first["next_cursor"]
    rest = api.get(f"/v1/complaints/{c['id']}/events", params={"cursor": first["next_cursor"]}).json()
    assert [e["kind"] for e in rest["items"]] == ["complaint_accepted"] and rest["next_cursor"] is None
    problem(api.get("/v1/complaints/cp_nowhere/events"), 404)
