"""D1 + P2: the merchant's consumer-rights deposit, its debt, and the money the platform advances and recovers.

Every movement is a balanced :class:`~aftersales.domain.ledger.Transaction` (D2); nothing here keeps a balance —
callers pass the balances they derived from the ledger, under a lock on the merchant, and post what comes back.

Accounts (:class:`~aftersales.domain.ledger.Account` values; ``ledger`` module for the rest):

* ``merchant:<id>:deposit`` — the deposit the platform holds for the shop (credit-normal, never negative);
* ``merchant:<id>:debt`` — what the shop owes the platform beyond its deposit: the only account that may go
  negative (a balance of −500 is a debt of 500 fen);
* ``platform::compensation_fund`` — pays buyers in advance (P2) and is refilled by each recovery in the same
  transaction, so it never goes below what the platform put in;
* ``platform::penalties`` — penalties of upheld complaints (K2);
* ``platform::cash`` — the platform's money at its banks and payment routes: debit-normal (an asset), so its
  balance is debits − credits; buyers' payments and merchants' top-ups come in here, withdrawals go out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from .errors import DomainError, RuleViolation, StateConflict
from .events import Actor
from .ledger import COMPENSATION_FUND, PLATFORM_CASH, Account, Entry, OwnerKind, Transaction, buyer_account, merchant_account, merchant_sales, platform_account
from .messages import N_
from .money import require_fen

PENALTIES = platform_account("penalties")
#: Asset accounts: their balance is debits − credits. Every other account's is credits − debits.
DEBIT_NORMAL = frozenset({PLATFORM_CASH})


def deposit_account(merchant_id: str) -> Account:
    return merchant_account(merchant_id, "deposit")


def debt_account(merchant_id: str) -> Account:
    return merchant_account(merchant_id, "debt")


def buyer_compensation(buyer_id: str) -> Account:
    return buyer_account(buyer_id, "compensation")


def may_go_negative(account: Account) -> bool:
    """D1: recovery beyond the deposit is recorded as the merchant's debt — the one account allowed below zero."""
    return account.owner_kind is OwnerKind.MERCHANT and account.kind == "debt"


@dataclass(frozen=True, slots=True)
class DepositState:
    """A merchant's deposit as derived from the ledger, with what the policy requires of it."""

    balance_fen: int
    debt_fen: int
    required_fen: int
    pending_withdrawal_fen: int = 0

    @property
    def shortfall_fen(self) -> int:
        return max(0, self.required_fen - self.balance_fen) + self.debt_fen

    @property
    def restricted(self) -> bool:
        """D1: a deposit below what is required, or any debt, restricts the merchant until topped up."""
        return self.shortfall_fen > 0

    @property
    def available_fen(self) -> int:
        """What a withdrawal request may still ask for: the balance less what pending requests already hold."""
        return max(0, self.balance_fen - self.pending_withdrawal_fen)


def top_up_split(amount_fen: object, state: DepositState) -> tuple[int, int]:
    """D1: how a top-up of ``amount_fen`` divides: (what settles the debt, what goes into the deposit)."""
    amount = require_fen(amount_fen, "amount_fen")
    to_debt = min(amount, state.debt_fen)
    return to_debt, amount - to_debt


def after_top_up(amount_fen: object, state: DepositState) -> DepositState:
    """D1: the deposit as it will be once ``amount_fen`` is paid in (what a confirmation page shows)."""
    to_debt, to_deposit = top_up_split(amount_fen, state)
    return replace(state, balance_fen=state.balance_fen + to_deposit, debt_fen=state.debt_fen - to_debt)


def recovery_split(amount_fen: int, state: DepositState) -> tuple[int, int]:
    """D1/P2: how a recovery of ``amount_fen`` is taken: (from the deposit, as far as it goes; the rest as debt)."""
    from_deposit = min(amount_fen, max(0, state.balance_fen))
    return from_deposit, amount_fen - from_deposit


def top_up(merchant_id: str, amount_fen: object, state: DepositState, key: str, at: datetime) -> Transaction:
    """D1: money paid in by the merchant settles its debt first; the rest tops the deposit up."""
    amount = require_fen(amount_fen, "amount_fen")
    to_debt, _ = top_up_split(amount, state)
    entries = [Entry(PLATFORM_CASH, debit_fen=amount)]
    if to_debt:
        entries.append(Entry(debt_account(merchant_id), credit_fen=to_debt))
    if amount - to_debt:
        entries.append(Entry(deposit_account(merchant_id), credit_fen=amount - to_debt))
    return Transaction(key=key, kind="deposit_top_up", at=at, entries=tuple(entries), rule="D1")


def _take_from_deposit(merchant_id: str, amount: int, state: DepositState) -> list[Entry]:
    """Debit the deposit as far as it goes, the rest to the merchant's debt (D1)."""
    from_deposit, _ = recovery_split(amount, state)
    entries = []
    if from_deposit:
        entries.append(Entry(deposit_account(merchant_id), debit_fen=from_deposit))
    if amount - from_deposit:
        entries.append(Entry(debt_account(merchant_id), debit_fen=amount - from_deposit))
    return entries


def recovery(merchant_id: str, amount_fen: int, state: DepositState, key: str, at: datetime, *,
             order_id: str | None = None, case_id: str | None = None, kind: str = "deposit_recovery",
             to: Account = COMPENSATION_FUND) -> Transaction:
    """P2: what the platform advanced comes back to its fund from the deposit; beyond the deposit it is a debt.

    With ``kind="deposit_cover"`` and ``to`` the merchant's sales account, the deposit covers a merchant payment
    its sales balance could not (D1)."""
    entries = [*_take_from_deposit(merchant_id, amount_fen, state), Entry(to, credit_fen=amount_fen)]
    return Transaction(key=key, kind=kind, at=at, entries=tuple(entries), order_id=order_id,
                       case_id=case_id, rule="P2" if kind == "deposit_recovery" else "D1")


def compensation(merchant_id: str, buyer_id: str, amount_fen: int, key: str, at: datetime, *,
                 order_id: str | None) -> Transaction:
    """K2 remedy: a compensation beyond any refund, paid to the buyer at once from the platform's fund (P2)."""
    return Transaction(key=key, kind="complaint_compensation", at=at, order_id=order_id, rule="K2", recover_from=merchant_id, entries=(
        Entry(COMPENSATION_FUND, debit_fen=amount_fen), Entry(buyer_compensation(buyer_id), credit_fen=amount_fen)))


def penalty(merchant_id: str, amount_fen: int, state: DepositState, key: str, at: datetime, *,
            order_id: str | None) -> Transaction:
    """K2 remedy: a penalty taken from the deposit (beyond it: the merchant's debt)."""
    entries = [*_take_from_deposit(merchant_id, amount_fen, state), Entry(PENALTIES, credit_fen=amount_fen)]
    return Transaction(key=key, kind="complaint_penalty", at=at, entries=tuple(entries), order_id=order_id, rule="K2")


# --- P2: recovering what the platform advanced, in the same transaction as the advance ---------------------------
def reimburses_return_shipping(tx: Transaction) -> str | None:
    """The merchant whose sales pay a return-shipping reimbursement in ``tx`` (M3), if any."""
    if not any(e.account.owner_kind is OwnerKind.BUYER and e.account.kind == "return_shipping" for e in tx.entries):
        return None
    return next((e.account.owner_id for e in tx.entries
                 if e.debit_fen and e.account.owner_kind is OwnerKind.MERCHANT and e.account.kind == "sales"), None)


def recovery_merchants(postings: Sequence[Transaction]) -> tuple[set[str], set[str]]:
    """Whose balances :func:`recover_advances` needs: (merchants whose deposit recovers an advance, merchants whose
    sales pay a return-shipping reimbursement)."""
    advances = {tx.recover_from for tx in postings if tx.recover_from is not None}
    covered = {m for tx in postings if (m := reimburses_return_shipping(tx)) is not None}
    return advances, covered


def recover_advances(postings: Sequence[Transaction], deposits: Mapping[str, DepositState],
                     sales: Mapping[str, int]) -> list[Transaction]:
    """The transactions that go with ``postings``, given the balances before them (``deposits``: the deposit and
    debt of every merchant of :func:`recovery_merchants`; ``sales``: the sales balance of each covered merchant):

    * P2: every payment the platform advanced is recovered from the merchant's deposit — as far as it goes, the
      rest as the merchant's debt (D1);
    * M3 + D1: merchant-paid return shipping is reimbursed beyond what the buyer paid for the order, so it may take
      the merchant's sales balance below zero; the deposit covers the difference (then the debt), so that no
      account but the debt is ever negative.

    The postings are walked in order and each one's effect on these balances is applied first (a top-up or a
    penalty in the same batch counts), exactly as if every transaction had been posted one after the other."""
    deposit = dict(deposits)
    sale = dict(sales)
    out: list[Transaction] = []

    def apply(tx: Transaction) -> None:
        for e in tx.entries:
            m = e.account.owner_id
            if e.account.owner_kind is not OwnerKind.MERCHANT:
                continue
            effect = e.credit_fen - e.debit_fen
            if e.account.kind == "sales" and m in sale:
                sale[m] += effect
            elif m in deposit and e.account.kind in ("deposit", "debt"):
                s = deposit[m]
                deposit[m] = (DepositState(s.balance_fen + effect, s.debt_fen, s.required_fen) if e.account.kind == "deposit"
                              else DepositState(s.balance_fen, s.debt_fen - effect, s.required_fen))

    def take(m: str, tx: Transaction, amount: int, key: str, kind: str) -> None:
        rec = recovery(m, amount, deposit[m], key, tx.at, order_id=tx.order_id, case_id=tx.case_id, kind=kind,
                       to=merchant_sales(m) if kind == "deposit_cover" else COMPENSATION_FUND)
        apply(rec)
        out.append(rec)

    for tx in postings:
        apply(tx)
        if tx.recover_from is not None:
            take(tx.recover_from, tx, tx.amount_fen, f"recover:{tx.key}", "deposit_recovery")
        for m in sorted(sale):
            if sale[m] < 0:
                take(m, tx, -sale[m], f"cover:{tx.key}", "deposit_cover")
    return out


# --- withdrawals --------------------------------------------------------------------------------------------
class WithdrawalStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


W = WithdrawalStatus
#: The withdrawal's transition table: in a status, the action, who may take it, and where it leads.
WITHDRAWAL_TRANSITIONS: dict[WithdrawalStatus, dict[str, tuple[frozenset[Actor], WithdrawalStatus]]] = {
    W.PENDING: {
        "cancel": (frozenset({Actor.MERCHANT, Actor.PLATFORM}), W.CANCELLED),
        "complete": (frozenset({Actor.SYSTEM}), W.COMPLETED),
        "fail": (frozenset({Actor.SYSTEM}), W.FAILED),
    },
    W.COMPLETED: {}, W.CANCELLED: {}, W.FAILED: {},
}
#: The people's actions on a withdrawal (the system's ``complete``/``fail`` follow the hold, in the service).
WITHDRAWAL_ACTIONS = ("cancel",)


@dataclass(slots=True)
class Withdrawal:
    """D1: a request to take money out of the deposit, paid only after the hold and with nothing open."""

    id: str
    merchant_id: str
    amount_fen: int
    requested_at: datetime
    due_at: datetime
    status: WithdrawalStatus = W.PENDING
    reason: str | None = None
    completed_at: datetime | None = None
    version: int = 1
    history: list[dict[str, object]] = field(default_factory=list)

    def allowed_actions(self, actor: Actor) -> list[str]:
        """D1: the people's actions ``actor`` can take on the withdrawal now — those :meth:`move` accepts. A pending
        withdrawal needs nothing beyond its table to be cancelled, so the table is its only guard."""
        out = []
        for action in WITHDRAWAL_ACTIONS:
            try:
                self._target(action, actor)
            except DomainError:
                continue
            out.append(action)
        return out

    def _target(self, action: str, actor: Actor) -> WithdrawalStatus:
        table = WITHDRAWAL_TRANSITIONS[self.status]
        if action not in table or actor not in table[action][0]:
            raise StateConflict("D1", N_("{action} is not possible while the withdrawal is {status}."),
                                action=action, status=str(self.status))
        return table[action][1]

    def move(self, action: str, actor: Actor, now: datetime, reason: str | None = None) -> None:
        target = self._target(action, actor)
        self.status = target
        self.reason = reason
        self.completed_at = now
        self.version += 1


def withdrawal(merchant_id: str, amount_fen: int, key: str, at: datetime) -> Transaction:
    """D1: the deposit pays the merchant back after the hold."""
    return Transaction(key=key, kind="deposit_withdrawal", at=at, rule="D1", entries=(
        Entry(deposit_account(merchant_id), debit_fen=amount_fen), Entry(PLATFORM_CASH, credit_fen=amount_fen)))


def check_withdrawal(amount_fen: object, state: DepositState, *, open_cases: int, open_complaints: int,
                     leaving: bool) -> int:
    """D1: may the merchant ask to withdraw ``amount_fen`` now? Returns the amount or raises with the rule.

    The deposit must stay at the required level (a shop that leaves the platform — closed — may take all of it);
    a restricted merchant (shortfall or debt) may not withdraw; no case or complaint may be open."""
    amount = require_fen(amount_fen, "amount_fen")
    if state.debt_fen > 0 or (state.restricted and not leaving):
        raise RuleViolation("D1", N_("The deposit is {shortfall_fen} short of what is required: top it up before withdrawing."),
                            shortfall_fen=state.shortfall_fen)
    if open_cases or open_complaints:
        raise RuleViolation("D1", N_("A withdrawal needs no open case or complaint: {cases} case(s) and {complaints} complaint(s) are open."),
                            cases=open_cases, complaints=open_complaints)
    floor = 0 if leaving else state.required_fen
    most = max(0, state.available_fen - floor)
    if amount > most:
        raise RuleViolation("D1", N_("A withdrawal of {amount_fen} exceeds the {left_fen} that may be withdrawn."),
                            amount_fen=amount, left_fen=most)
    return amount

