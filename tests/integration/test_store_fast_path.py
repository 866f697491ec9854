"""The store's fast path (issue 13): fewer statements per step, the same rows.

A few new rows that need their ids back (events, ledger transactions) go in as one ``INSERT … RETURNING``
(store/bulk.py ``insert_returning_ids``) instead of ids taken first then an executemany; an order is loaded with its
cases in one statement, and a case's order by the case id in one statement (``Tracker.get_order_of_case``).
Neither may change what is written: the same events in the same order, the same ledger transactions and entries
(D2), timers, refunds and webhook outbox rows as the previous path (ids taken first, still the path for many rows)
wrote. The number of statements of the B1 cycle is guarded (a count, not a time)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from aftersales.service.context import UnitOfWork
from aftersales.store import bulk
from aftersales.store import tables as t
from aftersales.store import webhooks as webhook_store
from aftersales.store.codec import encode
from aftersales.testing import sql_statements

AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
ITEMS = [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 2, "unit_price_fen": 1999},
         {"sku": "s2", "title": "Socks", "category": "apparel", "quantity": 1, "unit_price_fen": 500}]
#: Statements of one order → case → approve cycle under Idempotency-Keys (bench/store_cycle.py): 46 (SQLite) and 45
#: (PostgreSQL) before the fast path. SQLite counts its BEGIN IMMEDIATE of each transaction. Two of them write the
#: search index (S1) in the same transaction: the new order's terms and the new case's id. PostgreSQL then 32: the new
#: order's category terms come from the process's copy while their change mark (read with the merchant) is current,
#: and the case's categories likewise (the mark read with the order's lock) — store/terms.py. (Statements, not round
#: trips: each unit of work's flush is one pipeline there, and the BEGIN goes with the first statement.) Then 38 and 28:
#: the policy version of an order paid after its known instant is not written again (store/terms.py), and PostgreSQL
#: answers the outbox's "any subscriber?" from the process's copy of the subscriptions (store/webhooks.py).
MAX_STATEMENTS = {"sqlite": 38, "postgresql": 28}
#: The tests' manual clock reads its instant (``kv``) once in each of the cycle's three units of work.
CLOCK_READS = 3


def _cycle(api: Any, order_id: str, n: int = 0) -> str:
    """E2, M1, F1: a paid unshipped order, the buyer's no-reason refund_only case, the merchant's approval."""
    h = {"Idempotency-Key": f"{order_id}-order"}
    r = api.post("/v1/orders", {"id": order_id, "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00+00:00",
                                "shipping_fee_fen": 500, "items": ITEMS}, who="merchant_a", headers=h)
    assert r.status_code == 201, r.text
    r = api.post("/v1/cases", {"order_id": order_id, "type": "refund_only", "reason": "no_reason"}, who="buyer_x",
                 headers={"Idempotency-Key": f"{order_id}-case"})
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    r = api.post(f"/v1/cases/{case_id}/approve", who="merchant_a", headers={"Idempotency-Key": f"{order_id}-approve"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["close_reason"]) == ("closed", "refunded")
    return str(case_id)


def _rows(ctx: Any, prefix: str, case_ids: list[str]) -> dict[str, Any]:
    """What the cycles of ``prefix`` wrote, ids replaced by their rank (event ids by the event's place), the case ids
    (random) by their place, and the prefix taken out."""
    names = {cid: f"C{i}" for i, cid in enumerate(case_ids)}

    def norm(value: Any) -> Any:
        if isinstance(value, str):
            for cid, name in names.items():
                value = value.replace(cid, name)
            return value.replace(f"{prefix}-", "X-")
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [norm(v) for v in value]
        return value

    like = f"{prefix}-%"
    with ctx.engine.connect() as conn:
        ev = [dict(r) for r in conn.execute(select(t.events).where(t.events.c.order_id.like(like)).order_by(t.events.c.id)).mappings()]
        rank = {e["id"]: i for i, e in enumerate(ev)}
        assert [e["id"] for e in ev] == sorted(rank), "events numbered in the order they were written"
        events = [norm({k: v for k, v in e.items() if k != "id"}) for e in ev]
        txs = [dict(r) for r in conn.execute(select(t.ledger_transactions).where(t.ledger_transactions.c.order_id.like(like))
                                             .order_by(t.ledger_transactions.c.id)).mappings()]
        ledger = [norm({**{k: v for k, v in tx.items() if k != "id"}, "entries": [
            {k: v for k, v in e.items() if k not in ("id", "transaction_id")}
            for e in conn.execute(select(t.ledger_entries).where(t.ledger_entries.c.transaction_id == tx["id"])
                                  .order_by(t.ledger_entries.c.id)).mappings()]}) for tx in txs]
        timers = [norm({k: v for k, v in dict(r).items() if k != "id"}) for r in conn.execute(
            select(t.timers).where(t.timers.c.order_id.like(like)).order_by(t.timers.c.id)).mappings()]
        refunds = [norm(dict(r)) for r in conn.execute(select(t.refunds).where(t.refunds.c.order_id.like(like))
                                                       .order_by(t.refunds.c.created_at, t.refunds.c.key)).mappings()]
        outbox = []
        for r in conn.execute(select(t.webhook_outbox).order_by(t.webhook_outbox.c.id)).mappings():
            if r["event_id"] not in rank:
                continue
            payload = json.loads(r["payload"])
            assert payload["data"]["event_id"] == r["event_id"], "the outbox row carries its event's id"
            payload["data"]["event_id"] = rank[r["event_id"]]
            outbox.append(norm({**{k: v for k, v in dict(r).items() if k not in ("id", "payload")},
                                "event_id": rank[r["event_id"]], "payload": payload}))
    assert events and ledger and timers and refunds and outbox
    return {"events": events, "ledger": ledger, "timers": timers, "refunds": refunds, "outbox": outbox}


def test_D2_batch_writes_of_the_fast_path_are_the_rows_the_previous_path_wrote(api, ctx, monkeypatch):
    with ctx.engine.begin() as conn:  # an outbox row per event needs a subscriber
        webhook_store.insert_subscription(conn, id="wh-fast", merchant_id="mA", url="http://example.com/hook",
                                          secret="whsec_x", event_types=[], active=True, created_at=api.now())
    fast = [_cycle(api, f"fast-{i}") for i in range(3)]
    with monkeypatch.context() as m:
        m.setattr(bulk, "RETURNING_ROWS", 0)  # the previous path: ids taken first (new_ids), then an executemany
        slow = [_cycle(api, f"slow-{i}") for i in range(3)]
    assert _rows(ctx, "fast", fast) == _rows(ctx, "slow", slow)


def test_insert_returning_ids_gives_the_ids_stored_in_the_rows_order(ctx):
    rows = [{"order_id": None, "case_id": f"ret-{i}", "group_id": None, "kind": "probe", "actor": "system",
             "at": AT, "rules": [], "from_status": None, "to_status": None, "data": {"i": i},
             "recorded_at": AT} for i in range(5)]
    with ctx.engine.begin() as conn:
        one = bulk.insert_returning_ids(conn, t.events, rows[:1])
        many = bulk.insert_returning_ids(conn, t.events, rows[1:])
        assert bulk.insert_returning_ids(conn, t.events, rows * (bulk.RETURNING_ROWS // 5 + 1)) is None  # too many
        after = bulk.new_ids(conn, t.events, 1)
    assert one is not None and many is not None
    ids = one + many
    assert ids == sorted(ids) and len(set(ids)) == 5 and after is not None and after[0] > max(ids)
    with ctx.engine.connect() as conn:
        stored = dict(conn.execute(select(t.events.c.case_id, t.events.c.id).where(t.events.c.kind == "probe")).all())
    assert [stored[f"ret-{i}"] for i in range(5)] == ids


def test_an_order_loaded_by_its_case_is_the_order_loaded_by_its_id(api, ctx):
    case_id = _cycle(api, "load-1")
    r = api.post("/v1/cases", {"order_id": "load-1", "type": "refund_only", "reason": "no_reason"}, who="buyer_x")
    assert r.status_code in (201, 409, 422), r.text
    with UnitOfWork(ctx, readonly=True) as uow:
        by_case = uow.tracker.get_order_of_case(case_id)
        assert uow.tracker.get_order_of_case("cs_missing") is None
    with UnitOfWork(ctx, readonly=True) as uow:
        order_id = uow.tracker.order_for_case(case_id)
        assert order_id == "load-1"
        by_id = uow.tracker.get_order(order_id)
    assert by_case is not None and by_id is not None
    assert encode(by_case) == encode(by_id) and [encode(c) for c in by_case.cases] == [encode(c) for c in by_id.cases]
    assert by_case.version == by_id.version


def test_the_B1_cycle_stays_within_its_statement_budget(api, ctx, database):
    _cycle(api, "warm")  # caches, the first policy version
    with sql_statements(ctx.engine) as seen:
        _cycle(api, "budget")
    counted = [s for s, _ in seen]
    assert len(counted) <= MAX_STATEMENTS[database.kind] + CLOCK_READS, "\n".join(counted)
