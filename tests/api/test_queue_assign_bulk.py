"""S1, the queue at work: claiming and assigning cases (``POST /v1/cases/{id}/assignee``, ``?assignee=``), the
cases whose next move is the merchant's (``?awaiting=merchant``, decided by the guards), and bulk approval
(``POST /v1/cases/bulk-actions``), each row checked by the rules exactly as a single action (M2, F1, E10, T2)."""

from __future__ import annotations

from typing import Any

from helpers import act, create_order, delivered_order, event, events, get_case, get_order, open_case, problem


def user(api: Any, username: str, merchant: str | None = "mA", role: str = "merchant_agent") -> str:
    r = api.post("/v1/users", {"username": username, "password": "correct horse battery", "role": role,
                               "merchant_id": merchant, "display_name": username.title()})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def assign(api: Any, case_id: str, assignee: str | None, who: str = "merchant_a", **extra: Any) -> Any:
    return api.post(f"/v1/cases/{case_id}/assignee", {"assignee": assignee, **extra}, who=who)


def listed(api: Any, who: str = "merchant_a", **params: Any) -> list[str]:
    r = api.get("/v1/cases", who=who, params={"sort": "deadline", **params})
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["items"]]


def bulk(api: Any, case_ids: list[str], *, dry_run: bool = False, who: str = "merchant_a") -> Any:
    return api.post("/v1/cases/bulk-actions", {"action": "approve", "case_ids": case_ids, "dry_run": dry_run}, who=who)


# --- S1: claim and assign -------------------------------------------------------------------------------------
def test_S1_a_case_is_assigned_to_a_shop_user_and_the_timeline_says_so(api: Any) -> None:
    ann, bob = user(api, "ann"), user(api, "bob")
    delivered_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "quality_problem")
    assert case["assignee_id"] is None
    r = assign(api, case["id"], ann)
    assert r.status_code == 200, r.text
    assert r.json()["assignee_id"] == ann and r.json()["version"] == case["version"]  # staffing is no state change
    assert get_case(api, case["id"], who="merchant_a")["assignee_id"] == ann
    ev = event(events(api, case["id"]), "assigned")
    assert ev["rules"] == ["S1"] and ev["data"]["assignee_id"] == ann and ev["data"]["previous_assignee_id"] is None
    # Handing it to Bob, then back to nobody: two more events; the same assignee again changes nothing.
    assert assign(api, case["id"], bob).json()["assignee_id"] == bob
    assert assign(api, case["id"], bob).status_code == 200
    assert assign(api, case["id"], None).json()["assignee_id"] is None
    assigned = [e for e in events(api, case["id"]) if e["kind"] == "assigned"]
    assert [(e["data"]["previous_assignee_id"], e["data"]["assignee_id"]) for e in assigned] == [
        (None, ann), (ann, bob), (bob, None)]
    # Who of the shop handles the case is not the buyer's business: the buyer's timeline leaves it out.
    assert "assigned" not in [e["kind"] for e in events(api, case["id"], who="buyer_x")]


def test_S1_unassigned_only_claims_a_free_case_and_409s_a_taken_one(api: Any) -> None:
    ann, bob = user(api, "ann"), user(api, "bob")
    delivered_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "quality_problem")
    assert assign(api, case["id"], ann, unassigned_only=True).status_code == 200
    problem(assign(api, case["id"], bob, unassigned_only=True), 409, "S1")
    assert get_case(api, case["id"])["assignee_id"] == ann  # nothing changed
    assert assign(api, case["id"], ann, unassigned_only=True).status_code == 200  # already hers: fine


def test_S1_only_the_shops_own_users_and_me_needs_a_signed_in_user(api: Any) -> None:
    other = user(api, "carl", merchant="mB")
    agent = user(api, "pat", merchant=None, role="platform_agent")
    delivered_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "quality_problem")
    for bad in (other, agent, "u_nobody"):
        problem(assign(api, case["id"], bad), 422)
    problem(assign(api, case["id"], "me"), 422)  # an API key is no signed-in user
    problem(api.post(f"/v1/cases/{case['id']}/assignee", {"assignee": None, "extra": 1}, who="merchant_a"), 422)
    problem(api.get("/v1/cases", who="merchant_a", params={"assignee": "me"}), 422)
    assert get_case(api, case["id"])["assignee_id"] is None
    assert [e for e in events(api, case["id"]) if e["kind"] == "assigned"] == []


def test_T2_a_merchant_cannot_assign_another_shops_case(api: Any) -> None:
    carl = user(api, "carl", merchant="mB")
    delivered_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "quality_problem")
    problem(assign(api, case["id"], carl, who="merchant_b"), 404)
    problem(assign(api, case["id"], None, who="buyer_x"), 403)
    problem(assign(api, case["id"], None, who="platform"), 403)
    assert get_case(api, case["id"])["assignee_id"] is None


def test_S1_the_queue_lists_mine_unassigned_and_by_user(api: Any) -> None:
    ann = user(api, "ann")
    ids = []
    for i in range(3):
        delivered_order(api, f"o{i}")
        ids.append(open_case(api, f"o{i}", "refund_only", "quality_problem")["id"])
    assign(api, ids[1], ann)
    assert listed(api, assignee=ann) == [ids[1]]
    assert listed(api, assignee="none") == [ids[0], ids[2]]
    assert listed(api) == ids
    assert listed(api, who="merchant_b", assignee=ann) == []  # T2: another shop's filter matches nothing of its own


# --- S1: awaiting the merchant ------------------------------------------------------------------------------------
def test_S1_awaiting_merchant_keeps_the_cases_whose_next_move_is_the_shops(api: Any) -> None:
    for i in range(4):
        delivered_order(api, f"o{i}")
    waiting = open_case(api, "o0", "refund_only", "quality_problem")["id"]
    refused = open_case(api, "o1", "refund_only", "quality_problem")["id"]
    act(api, refused, "reject", {"reason": "no fault found"})  # the buyer's move now (M2)
    ret = open_case(api, "o2", "return_refund", "no_reason")["id"]
    act(api, ret, "approve")  # the buyer ships the return (M5): the buyer's move
    done = open_case(api, "o3", "refund_only", "quality_problem")["id"]
    act(api, done, "approve")  # refunded and closed
    # Paged two at a time: the filter keeps paging correctly over the cases it leaves out.
    seen, cursor = [], None
    while True:
        params = {"sort": "deadline", "awaiting": "merchant", "limit": "1", **({"cursor": cursor} if cursor else {})}
        r = api.get("/v1/cases", who="merchant_a", params=params)
        assert r.status_code == 200, r.text
        seen += [c["id"] for c in r.json()["items"]]
        for c in r.json()["items"]:
            assert c["allowed_actions"], c  # exactly: the merchant has a move
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [waiting]
    assert listed(api, awaiting="merchant", sort="created") == [waiting]
    assert listed(api, who="platform", awaiting="merchant") == [waiting]
    assert listed(api, who="merchant_b", awaiting="merchant") == []
    problem(api.get("/v1/cases", who="merchant_a", params={"awaiting": "buyer"}), 422)


# --- S1: bulk approval --------------------------------------------------------------------------------------------
def test_S1_bulk_approve_refunds_each_case_once_and_refuses_row_by_row_with_the_rule(api: Any) -> None:
    create_order(api, "o0")  # not shipped: a refund before shipment (E2), approved = refunded (F1)
    pre = open_case(api, "o0", "refund_only", "no_reason")["id"]
    delivered_order(api, "o1")
    ret = open_case(api, "o1", "return_refund", "no_reason")["id"]
    delivered_order(api, "o2")
    gone = open_case(api, "o2", "refund_only", "quality_problem")["id"]
    act(api, gone, "reject", {"reason": "no fault found"})  # now the buyer's move: approve is not possible (M2)
    dry = bulk(api, [pre, ret, gone], dry_run=True)
    assert dry.status_code == 200, dry.text
    rows = {r["case_id"]: r for r in dry.json()["results"]}
    assert [r["case_id"] for r in dry.json()["results"]] == [pre, ret, gone]  # in the order asked
    assert rows[pre]["result"] == "ok" and rows[pre]["case"]["status"] == "refund_pending"  # no gateway asked
    assert rows[pre]["case"]["refunded_fen"] == 10800  # E2: the goods and the shipping, as the approval would refund
    assert rows[ret]["result"] == "ok" and rows[ret]["case"]["status"] == "awaiting_return_shipment"
    assert rows[gone]["result"] == "refused" and rows[gone]["rule"] == "M2" and rows[gone]["message"]
    assert (dry.json()["ok"], dry.json()["refused"], dry.json()["dry_run"]) == (2, 1, True)
    # The dry run changed nothing: no refund, same statuses.
    assert get_order(api, "o0")["refunded_fen"] == 0
    assert get_case(api, pre)["status"] == "awaiting_merchant"
    assert get_case(api, ret)["status"] == "awaiting_merchant"

    done = bulk(api, [pre, ret, gone])
    assert done.status_code == 200, done.text
    assert [r["result"] for r in done.json()["results"]] == ["ok", "ok", "refused"]
    assert get_order(api, "o0")["refunded_fen"] == get_order(api, "o0")["paid_fen"]
    assert get_case(api, ret)["status"] == "awaiting_return_shipment"
    assert event(events(api, pre), "approve")["actor"] == "merchant"
    # Again: each row is refused by the rules now (already approved); no refund is paid twice.
    again = bulk(api, [pre, ret])
    assert [r["result"] for r in again.json()["results"]] == ["refused", "refused"]
    assert all(r["rule"] for r in again.json()["results"])
    assert get_order(api, "o0")["refunded_fen"] == get_order(api, "o0")["paid_fen"]


def test_T2_a_merchant_cannot_bulk_approve_another_shops_case(api: Any) -> None:
    create_order(api, "o0")
    mine = open_case(api, "o0", "refund_only", "no_reason")["id"]
    create_order(api, "o1", merchant="mB")
    theirs = open_case(api, "o1", "refund_only", "no_reason")["id"]
    problem(bulk(api, [mine, theirs]), 404)
    problem(bulk(api, [mine, theirs], dry_run=True), 404)
    assert get_case(api, mine)["status"] == "awaiting_merchant"  # nothing was done, not even the own case
    assert get_case(api, theirs)["status"] == "awaiting_merchant"
    problem(bulk(api, [mine], who="buyer_x"), 403)
    problem(bulk(api, [mine], who="platform"), 403)


def test_S1_bulk_bad_requests_change_nothing(api: Any) -> None:
    create_order(api, "o0")
    case = open_case(api, "o0", "refund_only", "no_reason")["id"]
    problem(bulk(api, []), 422)
    problem(bulk(api, [case, case]), 422)
    problem(bulk(api, [f"cs_{i}" for i in range(101)]), 422)
    problem(api.post("/v1/cases/bulk-actions", {"action": "reject", "case_ids": [case]}, who="merchant_a"), 422)
    problem(api.post("/v1/cases/bulk-actions", {"action": "approve", "case_ids": [case], "dry_run": "yes"},
                     who="merchant_a"), 422)
    assert get_case(api, case)["status"] == "awaiting_merchant"


def test_S1_a_bulk_approval_retried_with_its_idempotency_key_replays_the_answer(api: Any) -> None:
    create_order(api, "o0")
    case = open_case(api, "o0", "refund_only", "no_reason")["id"]
    body = {"action": "approve", "case_ids": [case]}
    first = api.post("/v1/cases/bulk-actions", body, who="merchant_a", headers={"Idempotency-Key": "bulk-1"})
    assert first.status_code == 200, first.text
    again = api.post("/v1/cases/bulk-actions", body, who="merchant_a", headers={"Idempotency-Key": "bulk-1"})
    assert again.status_code == 200 and again.json() == first.json()  # the same answer, not "refused" this time
    assert first.json()["results"][0]["result"] == "ok"
    assert get_order(api, "o0")["refunded_fen"] == get_order(api, "o0")["paid_fen"]  # paid once
