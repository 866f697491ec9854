"""D2 in the pure domain: accounts are values (owner kind, owner id, kind) with the text form the API shows, and the
P2 recoveries of a batch of postings are computed from the balances before it, as if posted one by one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aftersales.domain import deposits as d
from aftersales.domain import ledger
from aftersales.domain.errors import InvalidInput
from aftersales.domain.ids import require_id, valid_id
from aftersales.domain.ledger import Account, Entry, OwnerKind, Transaction

AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def test_D2_an_account_is_a_value_rendered_to_its_text_form() -> None:
    sales = ledger.merchant_sales("m_apparel")
    assert (sales.owner_kind, sales.owner_id, sales.kind) == (OwnerKind.MERCHANT, "m_apparel", "sales")
    assert str(sales) == sales.text == "merchant:m_apparel:sales"
    assert str(ledger.COMPENSATION_FUND) == "platform::compensation_fund" and ledger.PLATFORM_CASH.owner_id == ""
    assert sales != ledger.merchant_sales("m-apparel") and sales != ledger.merchant_sales("M_APPAREL")
    assert Account.parse("buyer:b-1:refunds") == ledger.buyer_refunds("b-1")
    assert Account.parse("platform::cash") == ledger.PLATFORM_CASH


@pytest.mark.parametrize("text", ["merchant:m-apparel:outlet:sales", "merchant::sales", "platform:x:cash", "shop:m1:sales",
                                  "merchant:m%:sales", "merchant:m1:Sales", "merchant:m1", "merchant:m1:sales:"])
def test_D2_only_a_well_formed_account_is_parsed(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        Account.parse(text)
    assert err.value.rule == "D2"


def test_T2_the_id_alphabet() -> None:
    for ok in ("m1", "m_apparel", "m-apparel", "M-APPAREL", "o.1", "9", "x" * 64):
        assert valid_id(ok) and require_id(ok, "id") == ok
    for bad in ("", "m:1", "-m", "_m", ".m", "m 1", "m%", "x" * 65, "中", None, 5):
        assert not valid_id(bad)
        with pytest.raises(InvalidInput) as err:
            require_id(bad, "merchant_id")
        assert err.value.rule == "T2" and err.value.msg.params == {"field": "merchant_id"}


def _advance(key: str, merchant: str, amount: int) -> Transaction:
    return Transaction(key=key, kind="advance_compensation", at=AT, recover_from=merchant, entries=(
        Entry(ledger.COMPENSATION_FUND, debit_fen=amount), Entry(ledger.buyer_refunds("b1"), credit_fen=amount)))


def test_P2_recoveries_are_computed_from_the_balances_before_the_batch_in_posting_order() -> None:
    before = {"m1": d.DepositState(300, 0, 0)}
    top_up = d.top_up("m1", 500, before["m1"], "t", AT)
    batch = [_advance("a1", "m1", 200), top_up, _advance("a2", "m1", 700)]
    assert d.recovery_merchants(batch) == ({"m1"}, set())
    out = d.recover_advances(batch, before, {})
    assert [tx.key for tx in out] == ["recover:a1", "recover:a2"]
    # a1 takes 200 of the 300; the top-up brings it to 600; a2 takes those 600 and leaves a debt of 100
    assert next(e for e in out[0].entries if e.account == d.deposit_account("m1")).debit_fen == 200
    assert {str(e.account): e.debit_fen for e in out[1].entries if e.debit_fen} == {"merchant:m1:deposit": 600, "merchant:m1:debt": 100}
    assert d.recover_advances([top_up], before, {}) == []  # nothing advanced: nothing recovered


def test_M3_D1_a_reimbursement_beyond_the_sales_balance_is_covered_by_the_deposit() -> None:
    reimburse = Transaction(key="r", kind="return_shipping_reimbursement", at=AT, entries=(
        Entry(ledger.merchant_sales("m1"), debit_fen=800), Entry(ledger.buyer_return_shipping("b1"), credit_fen=800)))
    assert d.recovery_merchants([reimburse]) == (set(), {"m1"})
    [cover] = d.recover_advances([reimburse], {"m1": d.DepositState(1000, 0, 0)}, {"m1": 500})
    assert cover.kind == "deposit_cover" and cover.amount_fen == 300
    assert Entry(ledger.merchant_sales("m1"), credit_fen=300) in cover.entries
