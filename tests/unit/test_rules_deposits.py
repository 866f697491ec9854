"""D1, D2 and P2 in the pure domain: the deposit's transactions, its restriction and the withdrawal rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aftersales.domain import deposits as d
from aftersales.domain.errors import InvalidInput, RuleViolation, StateConflict
from aftersales.domain.events import Actor
from aftersales.domain.ledger import COMPENSATION_FUND, PLATFORM_CASH, Account, Entry, Transaction, normal_balance

AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
REQUIRED = 100_000


def state(balance: int = 0, debt: int = 0, pending: int = 0) -> d.DepositState:
    return d.DepositState(balance, debt, REQUIRED, pending)


def effect(tx: Transaction, account: Account | str) -> int:
    """The transaction's effect on ``account`` (a value, or its text form ``merchant:m1:debt``)."""
    return sum(e.credit_fen - e.debit_fen for e in tx.entries if str(e.account) == str(account))


def test_D1_a_deposit_below_the_required_amount_restricts_the_merchant() -> None:
    assert state(REQUIRED - 1).restricted and state(REQUIRED - 1).shortfall_fen == 1
    assert not state(REQUIRED).restricted
    assert state(REQUIRED * 2, debt=1).restricted  # any debt restricts, whatever the deposit


def test_D1_a_top_up_settles_the_debt_before_it_fills_the_deposit() -> None:
    tx = d.top_up("m1", 700, state(0, debt=400), "k", AT)
    assert effect(tx, "merchant:m1:debt") == 400 and effect(tx, "merchant:m1:deposit") == 300
    assert Entry(PLATFORM_CASH, debit_fen=700) in tx.entries and tx.rule == "D1"


def test_T1_a_top_up_is_a_positive_integer_of_fen() -> None:
    for bad in (0, -1, 1.5, "100", True):
        with pytest.raises(InvalidInput):
            d.top_up("m1", bad, state(), "k", AT)


def test_P2_a_recovery_takes_the_deposit_first_and_the_rest_as_debt() -> None:
    tx = d.recovery("m1", 1_000, state(600), "k", AT)
    assert effect(tx, "merchant:m1:deposit") == -600 and effect(tx, "merchant:m1:debt") == -400
    assert effect(tx, COMPENSATION_FUND) == 1_000 and tx.rule == "P2"


def test_D2_platform_cash_is_an_asset_counted_on_the_debit_side() -> None:
    assert normal_balance(PLATFORM_CASH, credits=100, debits=700) == 600
    assert normal_balance("merchant:m1:deposit", credits=700, debits=100) == 600


def test_D1_a_withdrawal_keeps_the_required_deposit_unless_the_shop_leaves() -> None:
    s = state(REQUIRED + 500)
    assert d.check_withdrawal(500, s, open_cases=0, open_complaints=0, leaving=False) == 500
    with pytest.raises(RuleViolation) as err:
        d.check_withdrawal(501, s, open_cases=0, open_complaints=0, leaving=False)
    assert err.value.rule == "D1"
    assert d.check_withdrawal(REQUIRED + 500, s, open_cases=0, open_complaints=0, leaving=True) == REQUIRED + 500


def test_D1_a_withdrawal_needs_no_open_case_or_complaint_and_no_shortfall() -> None:
    for kw in ({"open_cases": 1, "open_complaints": 0}, {"open_cases": 0, "open_complaints": 2}):
        with pytest.raises(RuleViolation):
            d.check_withdrawal(1, state(REQUIRED * 2), leaving=False, **kw)
    with pytest.raises(RuleViolation):
        d.check_withdrawal(1, state(REQUIRED - 1), open_cases=0, open_complaints=0, leaving=False)
    with pytest.raises(RuleViolation):  # a debt forbids it even to a shop that leaves
        d.check_withdrawal(1, state(0, debt=5), open_cases=0, open_complaints=0, leaving=True)


def test_D1_pending_withdrawals_hold_their_amount() -> None:
    with pytest.raises(RuleViolation):
        d.check_withdrawal(1, state(REQUIRED + 500, pending=500), open_cases=0, open_complaints=0, leaving=False)


def test_D1_the_withdrawal_transition_table() -> None:
    w = d.Withdrawal("w1", "m1", 100, AT, AT)
    with pytest.raises(StateConflict):
        w.move("complete", Actor.MERCHANT, AT)  # only the system pays, after the hold
    w.move("cancel", Actor.MERCHANT, AT)
    assert w.status is d.WithdrawalStatus.CANCELLED
    with pytest.raises(StateConflict):
        w.move("complete", Actor.SYSTEM, AT)


MOVES = st.lists(st.tuples(st.sampled_from(["top_up", "recovery", "penalty"]), st.integers(1, 300_000)), max_size=40)


@given(MOVES)
def test_D1_P2_any_sequence_keeps_the_deposit_non_negative_and_conserves_money(moves: list[tuple[str, int]]) -> None:
    balance = debt = paid_in = taken = 0
    for kind, amount in moves:
        s = state(balance, debt)
        if kind == "top_up":
            tx = d.top_up("m1", amount, s, "k", AT)
            paid_in += amount
        elif kind == "recovery":
            tx = d.recovery("m1", amount, s, "k", AT)
            taken += amount
        else:
            tx = d.penalty("m1", amount, s, "k", AT, order_id=None)
            taken += amount
        assert sum(e.debit_fen for e in tx.entries) == sum(e.credit_fen for e in tx.entries)  # D2
        balance += effect(tx, "merchant:m1:deposit")
        debt -= effect(tx, "merchant:m1:debt")
        assert balance >= 0 and debt >= 0
        assert balance == 0 or debt == 0  # never a deposit and a debt at once
    assert balance - debt == paid_in - taken
