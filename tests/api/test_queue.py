"""P1 (the agents' queue) and S1 (the merchant's queue): ``GET /v1/cases?sort=deadline`` orders cases by their next
deadline, cases past due without an automatic action (flagged) first, with keyset pages on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from helpers import act, delivered_order, hours, open_case


def page_through(api: Any, who: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {**params, "sort": "deadline", "limit": "2", **({"cursor": cursor} if cursor else {})}
        r = api.get("/v1/cases", who=who, params=q)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


def test_S1_the_merchants_queue_is_ordered_by_the_next_deadline(api: Any) -> None:
    ids = []
    for i in range(5):
        delivered_order(api, f"o{i}")
        ids.append(open_case(api, f"o{i}", "refund_only", "quality_problem")["id"])
        api.advance(hours(1))
    act(api, ids[0], "reject", {"reason": "not yet"})  # now waits for the buyer: 7 days, the latest deadline
    queue = page_through(api, "merchant_a")
    assert [c["id"] for c in queue] == [*ids[1:], ids[0]]
    dues = [c["deadline"]["due_at"] for c in queue]
    assert dues == sorted(dues)
    assert page_through(api, "merchant_b") == []


def test_P1_the_agents_queue_puts_overdue_escalations_first(api: Any) -> None:
    escalated = []
    for i in range(3):
        delivered_order(api, f"o{i}")
        case = open_case(api, f"o{i}", "refund_only", "quality_problem")
        act(api, case["id"], "reject", {"reason": "no fault"})
        act(api, case["id"], "escalate", {"reason": "broken"}, who="buyer_x")
        escalated.append(case["id"])
        api.advance(hours(10))
    # The first escalation is now 30 h old: past P1's 24 h, flagged, no automatic action left → first in the queue.
    queue = page_through(api, "platform", status="platform_review")
    assert [c["id"] for c in queue] == escalated
    assert queue[0]["deadline"] is None
    assert [c["deadline"]["action"] for c in queue[1:]] == ["flag_platform_overdue"] * 2


def test_a_forged_queue_cursor_is_refused(api: Any) -> None:
    for bad in ("bm90LWEtZGF0ZXxjc18x", "fA"):  # "not-a-date|cs_1", "|"
        r = api.get("/v1/cases", params={"sort": "deadline", "cursor": bad})
        assert r.status_code == 422, r.text
