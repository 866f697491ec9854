"""D2: the ledger. Every money movement is one balanced double-entry transaction, append-only; balances are
derived from the entries. A correction is a reversing transaction, never an edit.

An account is a value, :class:`Account`: who owns it (``merchant``, ``buyer`` or ``platform``), the owner's id
(empty for the platform) and what it holds. Its text form ``<owner kind>:<owner id>:<kind>`` — ``merchant:m1:sales``
(what the shop earns and pays refunds from), ``buyer:b1:refunds`` (money returned to the buyer),
``platform::compensation_fund`` (advance compensation, P2) — is what the API shows and the ``account`` column holds;
the owner is stored in columns of its own and every listing filters on them by equality (tenancy by structure,
never by matching the text). Amounts are positive integer fen (T1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from .errors import InvalidInput
from .ids import valid_id
from .messages import N_
from .orders import Order, Payer, Refund, RefundKind

_ACCOUNT_KIND = re.compile(r"^[a-z][a-z_]{0,39}$")


class OwnerKind(StrEnum):
    MERCHANT = "merchant"
    BUYER = "buyer"
    PLATFORM = "platform"


@dataclass(frozen=True, slots=True)
class Account:
    """A ledger account: its owner (kind and id; the platform's id is ``""``) and its kind (``sales``, ``deposit``…)."""

    owner_kind: OwnerKind
    owner_id: str
    kind: str
    #: The text form, ``<owner kind>:<owner id>:<kind>`` (rendered once).
    text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", f"{self.owner_kind.value}:{self.owner_id}:{self.kind}")

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> Account:
        """The account a client names by its text form (``?account=``): three parts, a known owner kind, an id of
        the documented alphabet (empty only for the platform), a kind. Anything else is refused (D2)."""
        parts = text.split(":")
        bad = InvalidInput("D2", N_("{account} is not an account: use <merchant|buyer|platform>:<id>:<kind>."), account=text[:120])
        if len(parts) != 3 or parts[0] not in _OWNER_KINDS or not _ACCOUNT_KIND.fullmatch(parts[2]):
            raise bad
        kind = OwnerKind(parts[0])
        if (parts[1] != "") if kind is OwnerKind.PLATFORM else not valid_id(parts[1]):
            raise bad
        return cls(kind, parts[1], parts[2])


_OWNER_KINDS = frozenset(k.value for k in OwnerKind)


def merchant_account(merchant_id: str, kind: str) -> Account:
    return Account(OwnerKind.MERCHANT, merchant_id, kind)


def buyer_account(buyer_id: str, kind: str) -> Account:
    return Account(OwnerKind.BUYER, buyer_id, kind)


def platform_account(kind: str) -> Account:
    return Account(OwnerKind.PLATFORM, "", kind)


@dataclass(frozen=True, slots=True)
class Entry:
    """One side of a transaction: ``amount_fen`` debited from or credited to ``account``."""

    account: Account
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


def merchant_sales(merchant_id: str) -> Account:
    return merchant_account(merchant_id, "sales")


def buyer_refunds(buyer_id: str) -> Account:
    return buyer_account(buyer_id, "refunds")


def buyer_return_shipping(buyer_id: str) -> Account:
    return buyer_account(buyer_id, "return_shipping")


COMPENSATION_FUND = platform_account("compensation_fund")
#: The platform's money at its banks and payment routes: an asset, so its balance is debits − credits.
PLATFORM_CASH = platform_account("cash")


def normal_balance(account: Account | str, credits: int, debits: int) -> int:
    """An account's balance from its entries: debits − credits for the platform's cash, credits − debits otherwise.
    (The text form is accepted too: it is what a stored entry's ``account`` column holds.)"""
    return debits - credits if str(account) == PLATFORM_CASH.text else credits - debits


def payment_transaction(order: Order) -> Transaction:
    """The buyer's payment, held by the platform for the shop: what later refunds are paid from (F1).
    (The one definition of it: the store's flush and the bulk import both post what this returns.)"""
    paid = order.paid_fen  # summed over the items once
    return Transaction(key=f"payment:{order.id}", kind="payment", at=order.paid_at, order_id=order.id, rule="D2",
                       entries=(Entry(PLATFORM_CASH, debit_fen=paid), Entry(merchant_sales(order.merchant_id), credit_fen=paid)))


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
