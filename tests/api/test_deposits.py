"""RULEBOOK §4 D1, D2 and P2 through HTTP, on SQLite and PostgreSQL, with the manual clock.

The deposit is derived from the ledger; every test ends with the ledger audit of ``tests/conftest.py`` (every
transaction balances, no account but a merchant's debt is negative, refunded ≤ paid per order).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from helpers import act, advance_to, create_order, days, delivered_order, get_case, hours, local, open_case, problem

REQUIRED = 100_000  # policy deposit_required_fen


def deposit(api: Any, merchant: str = "mA", who: str = "platform") -> dict[str, Any]:
    r = api.get(f"/v1/merchants/{merchant}/deposit", who=who)
    assert r.status_code == 200, r.text
    return dict(r.json())


def top_up(api: Any, amount: int, merchant: str = "mA", who: str = "merchant_a") -> dict[str, Any]:
    r = api.post(f"/v1/merchants/{merchant}/deposit/top-ups", {"amount_fen": amount}, who=who)
    assert r.status_code == 201, r.text
    return dict(r.json())


def ruled_refund(api: Any, order_id: str, refund_fen: int = 1000) -> str:
    """A delivered order whose refusal the buyer escalated and the platform ruled: refund ``refund_fen`` (P1)."""
    delivered_order(api, order_id)
    case = open_case(api, order_id, "refund_only", "quality_problem")
    act(api, case["id"], "reject", {"reason": "no fault found"})
    act(api, case["id"], "escalate", {"reason": "it is broken"}, who="buyer_x")
    act(api, case["id"], "rule", {"outcome": "refund", "refund_fen": refund_fen, "rationale": "photos show the defect"},
        who="platform")
    return str(case["id"])


def ledger(api: Any, account: str, who: str = "platform") -> dict[str, Any]:
    r = api.get("/v1/ledger/transactions", who=who, params={"account": account})
    assert r.status_code == 200, r.text
    return dict(r.json())


# --- D1: the deposit --------------------------------------------------------------------------------------------
def test_D1_a_new_shop_without_its_deposit_is_restricted(api: Any) -> None:
    d = deposit(api)
    assert (d["balance_fen"], d["required_fen"], d["debt_fen"], d["shortfall_fen"], d["restricted"]) == (0, REQUIRED, 0, REQUIRED, True)


def test_D1_a_top_up_is_one_balanced_transaction_and_lifts_the_restriction(api: Any) -> None:
    d = top_up(api, REQUIRED)
    assert (d["balance_fen"], d["restricted"]) == (REQUIRED, False)
    page = ledger(api, "merchant:mA:deposit", who="merchant_a")
    assert page["balance_fen"] == REQUIRED
    [tx] = page["items"]
    assert tx["kind"] == "deposit_top_up" and tx["rule"] == "D1"
    assert {"account": "platform::cash", "debit_fen": REQUIRED, "credit_fen": 0} in tx["entries"]
    assert ledger(api, "platform::cash")["balance_fen"] == REQUIRED  # an asset: debits − credits


def test_D1_only_the_platform_and_the_merchant_itself_see_or_top_up_a_deposit(api: Any) -> None:
    assert api.get("/v1/merchants/mA/deposit", who="merchant_b").status_code == 404
    assert api.get("/v1/merchants/mA/deposit", who="buyer_x").status_code == 404
    problem(api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": 5}, who="buyer_x"), 403)
    problem(api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": 5}, who="merchant_b"), 404)
    assert deposit(api)["balance_fen"] == 0


def test_T1_a_top_up_must_be_a_positive_integer_of_fen(api: Any) -> None:
    for bad in (0, -5, 10.5, "100", None, True):
        problem(api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": bad}, who="merchant_a"), 422)
    assert deposit(api)["balance_fen"] == 0


def test_D1_a_withdrawal_is_refused_while_the_deposit_is_short(api: Any) -> None:
    top_up(api, REQUIRED - 1)
    body = problem(api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 1}, who="merchant_a"), 422, "D1")
    assert "short" in body["detail"]


def test_D1_a_withdrawal_keeps_the_required_deposit_and_is_paid_after_the_hold(api: Any) -> None:
    top_up(api, REQUIRED + 30_000)
    problem(api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 30_001}, who="merchant_a"), 422, "D1")
    r = api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 30_000}, who="merchant_a")
    assert r.status_code == 201, r.text
    w = r.json()
    assert w["status"] == "pending"
    d = deposit(api)
    assert (d["balance_fen"], d["pending_withdrawal_fen"], d["available_fen"]) == (REQUIRED + 30_000, 30_000, REQUIRED)
    # The pending request holds its amount: a second one finds nothing above the required deposit.
    problem(api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 1}, who="merchant_a"), 422, "D1")
    # T0: asked on local day 2026-03-01, the 90-day hold ends at the end of local day 2026-05-30.
    assert datetime.fromisoformat(w["due_at"]) == local(2026, 5, 31)
    advance_to(api, local(2026, 5, 31) - timedelta(seconds=1))
    assert deposit(api)["balance_fen"] == REQUIRED + 30_000
    api.advance(1)
    [done] = api.get("/v1/merchants/mA/deposit/withdrawals", who="merchant_a").json()["items"]
    assert done["status"] == "completed"
    assert deposit(api)["balance_fen"] == REQUIRED
    kinds = [tx["kind"] for tx in ledger(api, "merchant:mA:deposit")["items"]]
    assert kinds == ["deposit_withdrawal", "deposit_top_up"]


def test_D1_a_withdrawal_needs_no_open_case(api: Any) -> None:
    top_up(api, REQUIRED + 5_000)
    create_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "no_reason")
    body = problem(api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 5_000}, who="merchant_a"), 422, "D1")
    assert "open" in body["detail"]
    act(api, case["id"], "cancel", who="buyer_x")
    assert api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 5_000}, who="merchant_a").status_code == 201


def test_D1_a_withdrawal_waits_while_a_case_opened_during_the_hold_is_open(api: Any) -> None:
    top_up(api, REQUIRED + 5_000)
    api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 5_000}, who="merchant_a")
    api.advance(days(89))
    create_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "no_reason")
    advance_to(api, local(2026, 5, 31))  # the hold's end (T0: the end of local day D+90)
    [w] = api.get("/v1/merchants/mA/deposit/withdrawals", who="merchant_a").json()["items"]
    assert w["status"] == "pending" and "open case" in w["reason"]
    assert deposit(api)["balance_fen"] == REQUIRED + 5_000
    act(api, case["id"], "approve")  # refunded and closed
    api.advance(hours(24))
    [w] = api.get("/v1/merchants/mA/deposit/withdrawals", who="merchant_a").json()["items"]
    assert w["status"] == "completed"
    assert deposit(api)["balance_fen"] == REQUIRED


def test_D1_a_cancelled_withdrawal_moves_nothing(api: Any) -> None:
    top_up(api, REQUIRED + 5_000)
    w = api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 5_000}, who="merchant_a").json()
    r = api.post(f"/v1/merchants/mA/deposit/withdrawals/{w['id']}/cancel", who="merchant_a")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    problem(api.post(f"/v1/merchants/mA/deposit/withdrawals/{w['id']}/cancel", who="merchant_a"), 409, "D1")
    problem(api.post(f"/v1/merchants/mB/deposit/withdrawals/{w['id']}/cancel", who="merchant_b"), 404)
    api.advance(days(91))
    d = deposit(api)
    assert (d["balance_fen"], d["pending_withdrawal_fen"]) == (REQUIRED + 5_000, 0)


# --- P2: advance compensation, recovered from the deposit ---------------------------------------------------------
def test_P2_an_unpaid_ruling_is_paid_by_the_platform_and_recovered_from_the_deposit(api: Any) -> None:
    top_up(api, REQUIRED)
    cid = ruled_refund(api, "o1", 1000)
    api.advance(hours(24))
    case = get_case(api, cid)
    assert case["status"] == "closed" and case["close_reason"] == "refunded" and case["refunded_fen"] == 1000
    assert deposit(api)["balance_fen"] == REQUIRED - 1000
    fund = ledger(api, "platform::compensation_fund")
    assert fund["balance_fen"] == 0  # paid out and recovered in the same transaction
    assert sorted(tx["kind"] for tx in fund["items"]) == ["advance_compensation", "deposit_recovery"]
    assert ledger(api, "buyer:bX:refunds", who="buyer_x")["balance_fen"] == 1000


def test_P2_recovery_beyond_the_deposit_is_the_merchants_debt_until_topped_up(api: Any) -> None:
    top_up(api, 600)
    ruled_refund(api, "o1", 1000)
    api.advance(hours(24))
    d = deposit(api)
    assert (d["balance_fen"], d["debt_fen"], d["restricted"]) == (0, 400, True)
    assert ledger(api, "merchant:mA:debt")["balance_fen"] == -400  # the one account that may be negative
    problem(api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 1}, who="merchant_a"), 422, "D1")
    d = top_up(api, 700)  # settles the debt first
    assert (d["balance_fen"], d["debt_fen"]) == (300, 0)
    d = top_up(api, REQUIRED - 300)
    assert (d["balance_fen"], d["debt_fen"], d["restricted"]) == (REQUIRED, 0, False)


def test_P2_a_merchant_who_pays_in_time_leaves_the_deposit_untouched(api: Any) -> None:
    top_up(api, REQUIRED)
    cid = ruled_refund(api, "o1", 1000)
    act(api, cid, "pay_ruling")
    api.advance(hours(25))
    assert deposit(api)["balance_fen"] == REQUIRED
    assert ledger(api, "platform::compensation_fund")["items"] == []


def test_P2_the_platform_pays_at_once_when_the_merchant_is_unreachable(api: Any) -> None:
    top_up(api, REQUIRED)
    cid = ruled_refund(api, "o1", 1000)
    problem(api.post(f"/v1/cases/{cid}/advance_compensate", {"reason": "because"}), 422)
    problem(api.post(f"/v1/cases/{cid}/advance_compensate", {"reason": "merchant_unreachable"}, who="merchant_a"), 403)
    case = act(api, cid, "advance_compensate", {"reason": "merchant_unreachable"}, who="platform")
    assert case["status"] == "closed" and case["refunded_fen"] == 1000
    assert deposit(api)["balance_fen"] == REQUIRED - 1000
    api.advance(hours(25))  # the 24 h deadline finds nothing left to pay
    assert deposit(api)["balance_fen"] == REQUIRED - 1000


def test_P2_closing_a_shop_pays_its_unpaid_rulings_now_and_later_rulings_at_once(api: Any) -> None:
    top_up(api, REQUIRED)
    first = ruled_refund(api, "o1", 1000)
    delivered_order(api, "o2")
    second = open_case(api, "o2", "refund_only", "quality_problem")
    act(api, second["id"], "reject", {"reason": "no"})
    act(api, second["id"], "escalate", {"reason": "unfair"}, who="buyer_x")
    problem(api.post("/v1/merchants/mA/close", {"reason": "shop_closed"}, who="merchant_a"), 403)
    r = api.post("/v1/merchants/mA/close", {"reason": "shop_closed"})
    assert r.status_code == 200, r.text
    assert (r.json()["rulings_advanced"], r.json()["shop_closed"], r.json()["balance_fen"]) == (1, True, REQUIRED - 1000)
    assert get_case(api, first)["close_reason"] == "refunded"
    case = act(api, second["id"], "rule", {"outcome": "refund", "refund_fen": 2000, "rationale": "defective"}, who="platform")
    assert case["close_reason"] == "refunded"
    assert deposit(api)["balance_fen"] == REQUIRED - 3000
    # A closed shop leaving the platform may take what is left, once nothing is open.
    r = api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": REQUIRED - 3000}, who="merchant_a")
    assert r.status_code == 201, r.text


def test_M3_D1_return_shipping_beyond_the_shops_takings_is_covered_by_the_deposit(api: Any) -> None:
    top_up(api, REQUIRED)
    delivered_order(api, "o1")
    case = open_case(api, "o1", "return_refund", "quality_problem")
    act(api, case["id"], "approve", {"return_shipping_payer": "merchant"})
    act(api, case["id"], "ship_return", {"carrier": "SF", "tracking_no": "R1", "shipping_fee_fen": 1500}, who="buyer_x")
    act(api, case["id"], "confirm_return")
    assert ledger(api, "merchant:mA:sales")["balance_fen"] == 0
    assert deposit(api)["balance_fen"] == REQUIRED - 1500
    assert ledger(api, "buyer:bX:return_shipping", who="buyer_x")["balance_fen"] == 1500


def test_D1_withdrawal_hold_counts_local_days(api: Any) -> None:
    # Asked at 23:30 local time on 2026-03-02 (15:30 UTC): 90 × 24 h would end at 23:30 on 2026-05-31; T0 counts local
    # days, so the hold runs to the end of local day 2026-05-31 — its last half hour included.
    top_up(api, REQUIRED + 5_000)
    advance_to(api, local(2026, 3, 2, 23, 30))
    r = api.post("/v1/merchants/mA/deposit/withdrawals", {"amount_fen": 5_000}, who="merchant_a")
    assert r.status_code == 201, r.text
    assert datetime.fromisoformat(r.json()["due_at"]) == local(2026, 6, 1)
    advance_to(api, local(2026, 5, 31, 23, 59))
    [w] = api.get("/v1/merchants/mA/deposit/withdrawals", who="merchant_a").json()["items"]
    assert w["status"] == "pending" and deposit(api)["balance_fen"] == REQUIRED + 5_000
    advance_to(api, local(2026, 6, 1))
    [w] = api.get("/v1/merchants/mA/deposit/withdrawals", who="merchant_a").json()["items"]
    assert w["status"] == "completed" and datetime.fromisoformat(w["completed_at"]) == local(2026, 6, 1)
    assert deposit(api)["balance_fen"] == REQUIRED
