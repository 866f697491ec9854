"""D2: the ledger. Every money movement is one balanced double-entry transaction, append-only; balances are
derived from the entries. A correction is a reversing transaction, never an edit.

Accounts are named ``<owner>:<id>:<purpose>``: ``merchant:m1:sales`` (what the shop earns and pays refunds
from), ``buyer:b1:refunds`` (money returned to the buyer), ``platform::compensation_fund`` (advance compensation,
P2). Amounts are positive integer fen (T1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .errors import InvalidInput
from .messages import N_
from .orders import Order, Payer, Refund, RefundKind


@dataclass(frozen=True, slots=True)
class Entry:
    """One side of a transaction: ``amount_fen`` debited from or credited to ``account``."""

    account: str
    debit_fen: int = 0
    credit_fen: int = 0


@dataclass(frozen=True, slots=True)
class Transaction:
    """A balanced set of entries, identified by an idempotency ``key`` (posting the same key twice is a no-op)."""

    key: str
    kind: str
    at: datetime
    entries: tuple[Entry, ...]
    order_id: str | None = None
    case_id: str | None = None
    rule: str | None = None
    #: P2: the merchant whose deposit recovers this payment, when the platform advanced it (not stored).
    recover_from: str | None = None

    def __post_init__(self) -> None:
        if not self.entries:
            raise InvalidInput("D2", N_("A ledger transaction needs entries."))
        for e in self.entries:
            if e.debit_fen < 0 or e.credit_fen < 0 or (e.debit_fen == 0) == (e.credit_fen == 0):
                raise InvalidInput("D2", N_("Each ledger entry is a positive debit or a positive credit."))
        if sum(e.debit_fen for e in self.entries) != sum(e.credit_fen for e in self.entries):
            raise InvalidInput("D2", N_("A ledger transaction must balance: debits equal credits."))

    @property
    def amount_fen(self) -> int:
        return sum(e.debit_fen for e in self.entries)


def merchant_sales(merchant_id: str) -> str:
    return f"merchant:{merchant_id}:sales"


def buyer_refunds(buyer_id: str) -> str:
    return f"buyer:{buyer_id}:refunds"


def buyer_return_shipping(buyer_id: str) -> str:
    return f"buyer:{buyer_id}:return_shipping"


COMPENSATION_FUND = "platform::compensation_fund"
#: The platform's money at its banks and payment routes: an asset, so its balance is debits − credits.
PLATFORM_CASH = "platform::cash"


def normal_balance(account: str, credits: int, debits: int) -> int:
    """An account's balance from its entries: debits − credits for the platform's cash, credits − debits otherwise."""
    return debits - credits if account == PLATFORM_CASH else credits - debits


def payment_transaction(order: Order) -> Transaction:
    """The buyer's payment, held by the platform for the shop: what later refunds are paid from (F1)."""
    return Transaction(key=f"payment:{order.id}", kind="payment", at=order.paid_at, order_id=order.id, rule="D2",
                       entries=(Entry(PLATFORM_CASH, debit_fen=order.paid_fen),
                                Entry(merchant_sales(order.merchant_id), credit_fen=order.paid_fen)))


def refund_transaction(order: Order, refund: Refund, at: datetime) -> Transaction:
    """F1 + D2: a settled refund, paid by the merchant (or by the platform's fund in advance, P2)."""
    source = COMPENSATION_FUND if refund.payer is Payer.PLATFORM else merchant_sales(order.merchant_id)
    entries = [Entry(source, debit_fen=refund.amount_fen)]
    if refund.refund_fen:
        entries.append(Entry(buyer_refunds(order.buyer_id), credit_fen=refund.refund_fen))
    if refund.return_shipping_fen:
        entries.append(Entry(buyer_return_shipping(order.buyer_id), credit_fen=refund.return_shipping_fen))
    kind = {RefundKind.CASE: "refund", RefundKind.GROUP_FAILURE: "group_failure_refund",
            RefundKind.RETURN_SHIPPING: "return_shipping_reimbursement", RefundKind.COMPLAINT: "complaint_refund"}[refund.kind]
    if refund.payer is Payer.PLATFORM and refund.kind is not RefundKind.COMPLAINT:
        kind = "advance_compensation"
    return Transaction(key=f"settle:{refund.key}", kind=kind, at=at, entries=tuple(entries), order_id=order.id,
                       case_id=refund.case_id, rule=refund.rule,
                       recover_from=order.merchant_id if refund.payer is Payer.PLATFORM else None)
