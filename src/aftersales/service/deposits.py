"""The consumer-rights deposit (D1), advance compensation and its recovery (P2), and complaint remedies (K2).

Balances are never stored: they are summed from the ledger (D2) while the merchant's row is locked
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``), so that many
recoveries against one deposit at once each see what the previous one left, and the deposit never goes negative —
what it cannot cover becomes the merchant's debt.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from aftersales.domain import deposits as d
from aftersales.domain import ledger
from aftersales.domain.cases import Action
from aftersales.domain.complaints import refund_remedy
from aftersales.domain.errors import RuleViolation
from aftersales.domain.events import Actor
from aftersales.domain.messages import N_
from aftersales.domain.money import require_fen
from aftersales.domain.timeutil import window_end
from aftersales.store import repositories as repo
from aftersales.store import tables as t

from .context import Context, Principal, UnitOfWork, read, run
from .errors import Invalid, NotFound
from .ledger import account_balance
from .payments import settle_new_refunds

#: A withdrawal that falls due while a case or complaint is open waits this long before it is looked at again.
RECHECK = timedelta(hours=24)


# --- reading the deposit --------------------------------------------------------------------------------------
def _held(conn: Connection, merchant_id: str) -> tuple[int, int]:
    """The merchant's deposit and its debt (shown positive), from the ledger."""
    return (account_balance(conn, d.deposit_account(merchant_id)),
            max(0, -account_balance(conn, d.debt_account(merchant_id))))


def _lock_merchant(conn: Connection, merchant_id: str) -> Any:
    stmt = select(t.merchants).where(t.merchants.c.id == merchant_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return conn.execute(stmt).first()


def state(conn: Connection, ctx: Context, merchant_id: str, *, excluding: str | None = None) -> d.DepositState:
    """The deposit as the ledger has it now, with what pending withdrawals (but ``excluding``) hold back."""
    w = t.withdrawals.c
    held = select(func.coalesce(func.sum(w.amount_fen), 0)).where(w.merchant_id == merchant_id, w.status == "pending")
    if excluding is not None:
        held = held.where(w.id != excluding)
    balance, debt = _held(conn, merchant_id)
    return d.DepositState(balance_fen=balance, debt_fen=debt, required_fen=ctx.policy.deposit_required_fen,
                          pending_withdrawal_fen=int(conn.execute(held).scalar_one()))


def _visible(who: Principal, merchant_id: str) -> None:
    """Platform, or the merchant itself; anyone else gets the 404 an unknown merchant gets (T2)."""
    if who.role == "platform" or (who.role == "merchant" and who.subject_id == merchant_id):
        return
    raise NotFound("merchant", merchant_id)


def _view(row: Any, s: d.DepositState) -> dict[str, Any]:
    return {"merchant_id": row.id, "balance_fen": s.balance_fen, "required_fen": s.required_fen, "debt_fen": s.debt_fen,
            "shortfall_fen": s.shortfall_fen, "restricted": s.restricted,
            "pending_withdrawal_fen": s.pending_withdrawal_fen, "available_fen": s.available_fen,
            "shop_closed": bool(row.closed)}


def _merchant(conn: Connection, merchant_id: str, *, lock: bool = False) -> Any:
    row = _lock_merchant(conn, merchant_id) if lock else repo.merchant(conn, merchant_id)
    if row is None:
        raise NotFound("merchant", merchant_id)
    return row


def get_deposit(ctx: Context, who: Principal, merchant_id: str) -> dict[str, Any]:
    """API.md ``GET /v1/merchants/{id}/deposit``: balance, required, debt and whether the merchant is restricted."""
    _visible(who, merchant_id)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        row = _merchant(uow.conn, merchant_id)
        return _view(row, state(uow.conn, ctx, merchant_id))

    return read(ctx, q)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{time.time_ns() // 1000:014x}{secrets.token_hex(4)}"


def top_up(ctx: Context, who: Principal, merchant_id: str, amount_fen: int) -> dict[str, Any]:
    """D1: the merchant (or the platform for it) pays money in; it settles any debt first, then tops the deposit up."""
    who.require("platform", "merchant")
    _visible(who, merchant_id)
    amount = require_fen(amount_fen, "amount_fen")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = _merchant(uow.conn, merchant_id, lock=True)
        tx = d.top_up(merchant_id, amount, state(uow.conn, ctx, merchant_id), _new_id("topup"), uow.now)
        repo.post(uow.conn, [tx])
        return {**_view(row, state(uow.conn, ctx, merchant_id)), "transaction_key": tx.key}

    return run(ctx, cmd)


# --- withdrawals ----------------------------------------------------------------------------------------------
def _open_counts(conn: Connection, merchant_id: str) -> tuple[int, int]:
    from .complaints import count_open

    cases = conn.execute(select(func.count()).select_from(t.cases)
                         .where(t.cases.c.merchant_id == merchant_id, t.cases.c.status != "closed")).scalar_one()
    return int(cases), count_open(conn, merchant_id)


def _withdrawal_view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "merchant_id": row.merchant_id, "amount_fen": row.amount_fen, "status": row.status,
            "reason": row.reason, "requested_by": row.requested_by, "requested_at": row.requested_at.isoformat(),
            "due_at": row.due_at.isoformat(), "completed_at": row.completed_at.isoformat() if row.completed_at else None,
            "version": row.version}


def _arm(conn: Connection, withdrawal_id: str, version: int, due_at: datetime) -> None:
    conn.execute(insert(t.timers).values(subject="withdrawal", subject_id=withdrawal_id, order_id=None,
                                         action="pay_withdrawal", stage=version, rule="D1", due_at=due_at))


def request_withdrawal(ctx: Context, who: Principal, merchant_id: str, amount_fen: int) -> dict[str, Any]:
    """D1: ask to take money out of the deposit; it is paid at the end of the ``deposit_withdrawal_hold_days``-th
    local day after the request (T0), if still allowed."""
    who.require("platform", "merchant")
    _visible(who, merchant_id)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = _merchant(uow.conn, merchant_id, lock=True)
        cases, complaints = _open_counts(uow.conn, merchant_id)
        amount = d.check_withdrawal(amount_fen, state(uow.conn, ctx, merchant_id), open_cases=cases,
                                    open_complaints=complaints, leaving=bool(row.closed))
        wid = _new_id("wd")
        # T0: a hold of N days after a request on local day D ends at the end of local day D+N (platform time zone).
        due = window_end(uow.now, ctx.policy.deposit_withdrawal_hold_days, ctx.policy.timezone)
        values = {"id": wid, "merchant_id": merchant_id, "amount_fen": amount, "status": "pending", "reason": None,
                  "requested_by": who.key, "requested_at": uow.now, "due_at": due, "completed_at": None, "version": 1}
        uow.conn.execute(insert(t.withdrawals).values(values))
        _arm(uow.conn, wid, 1, due)
        return _withdrawal_view(uow.conn.execute(select(t.withdrawals).where(t.withdrawals.c.id == wid)).one())

    return run(ctx, cmd)


def list_withdrawals(ctx: Context, who: Principal, merchant_id: str) -> dict[str, Any]:
    _visible(who, merchant_id)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        _merchant(uow.conn, merchant_id)
        rows = uow.conn.execute(select(t.withdrawals).where(t.withdrawals.c.merchant_id == merchant_id)
                                .order_by(t.withdrawals.c.requested_at.desc(), t.withdrawals.c.id.desc())).all()
        return {"items": [_withdrawal_view(r) for r in rows], "next_cursor": None}

    return read(ctx, q)


def _load_withdrawal(conn: Connection, merchant_id: str, withdrawal_id: str) -> d.Withdrawal:
    stmt = select(t.withdrawals).where(t.withdrawals.c.id == withdrawal_id, t.withdrawals.c.merchant_id == merchant_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound("withdrawal", withdrawal_id)
    return d.Withdrawal(row.id, row.merchant_id, row.amount_fen, row.requested_at, row.due_at,
                        d.WithdrawalStatus(row.status), row.reason, row.completed_at, row.version)


def _save_withdrawal(conn: Connection, w: d.Withdrawal) -> Any:
    conn.execute(update(t.withdrawals).where(t.withdrawals.c.id == w.id).values(
        status=w.status.value, reason=w.reason, due_at=w.due_at, completed_at=w.completed_at, version=w.version))
    return conn.execute(select(t.withdrawals).where(t.withdrawals.c.id == w.id)).one()


def cancel_withdrawal(ctx: Context, who: Principal, merchant_id: str, withdrawal_id: str) -> dict[str, Any]:
    """D1: a pending request may be withdrawn by the merchant or the platform; nothing moves."""
    who.require("platform", "merchant")
    _visible(who, merchant_id)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        _merchant(uow.conn, merchant_id, lock=True)
        w = _load_withdrawal(uow.conn, merchant_id, withdrawal_id)
        w.move("cancel", who.actor, uow.now, reason=f"cancelled by {who.role}")
        return _withdrawal_view(_save_withdrawal(uow.conn, w))

    return run(ctx, cmd)


def apply_timer(ctx: Context, uow: UnitOfWork, row: Any, now: datetime) -> int:
    """The hold is over: pay the withdrawal if nothing is open and the deposit still holds it (D1).

    With a case or complaint open it waits (checked again every 24 h); if recoveries took the deposit below the
    amount meanwhile, it fails — buyers are paid before merchants (P2)."""
    w_row = uow.conn.execute(select(t.withdrawals.c.merchant_id).where(t.withdrawals.c.id == row.subject_id)).first()
    if w_row is None:
        return 0
    _merchant(uow.conn, w_row.merchant_id, lock=True)
    w = _load_withdrawal(uow.conn, w_row.merchant_id, row.subject_id)
    if w.status is not d.WithdrawalStatus.PENDING or w.version != row.stage:
        return 0  # stale: cancelled, or re-armed since
    cases, complaints = _open_counts(uow.conn, w.merchant_id)
    s = state(uow.conn, ctx, w.merchant_id, excluding=w.id)
    if cases or complaints:
        w.version += 1
        w.due_at = row.due_at + RECHECK
        w.reason = f"waiting: {cases} open case(s) and {complaints} open complaint(s) (D1)"
        _save_withdrawal(uow.conn, w)
        _arm(uow.conn, w.id, w.version, w.due_at)
        return 1
    if s.debt_fen > 0 or s.balance_fen < w.amount_fen:
        w.move("fail", Actor.SYSTEM, row.due_at, reason=f"the deposit holds {s.balance_fen} fen and a debt of {s.debt_fen} (D1)")
        _save_withdrawal(uow.conn, w)
        return 1
    repo.post(uow.conn, [d.withdrawal(w.merchant_id, w.amount_fen, f"withdrawal:{w.id}", row.due_at)])
    w.move("complete", Actor.SYSTEM, row.due_at)
    _save_withdrawal(uow.conn, w)
    return 1


# --- P2: recovering what the platform advanced ----------------------------------------------------------------
def recover_advances(conn: Connection, postings: list[ledger.Transaction]) -> list[ledger.Transaction]:
    """The Tracker's posting hook, run in the same database transaction as the postings:

    * P2: every payment the platform advanced is recovered from the merchant's deposit — as far as it goes, the
      rest as the merchant's debt (D1);
    * M3 + D1: merchant-paid return shipping is reimbursed beyond what the buyer paid for the order, so it may take
      the merchant's sales balance below zero; the deposit covers the difference (then the debt), so that no
      account but the debt is ever negative."""
    advances = [tx for tx in postings if tx.recover_from is not None]
    covered = {m for tx in postings if (m := _reimburses_return_shipping(tx)) is not None}
    if not advances and not covered:
        return []
    deposit: dict[str, d.DepositState] = {}
    for merchant_id in sorted({tx.recover_from for tx in advances if tx.recover_from} | covered):  # lock in id order
        _lock_merchant(conn, merchant_id)
        deposit[merchant_id] = d.DepositState(*_held(conn, merchant_id), required_fen=0)
    sales = {m: account_balance(conn, ledger.merchant_sales(m)) for m in covered}
    out: list[ledger.Transaction] = []

    def take(m: str, tx: ledger.Transaction, amount: int, key: str, kind: str) -> None:
        before = deposit[m]
        rec = d.recovery(m, amount, before, key, tx.at, order_id=tx.order_id, case_id=tx.case_id, kind=kind,
                         to=ledger.merchant_sales(m) if kind == "deposit_cover" else ledger.COMPENSATION_FUND)
        taken = sum(e.debit_fen for e in rec.entries if e.account == d.deposit_account(m))
        deposit[m] = d.DepositState(before.balance_fen - taken, before.debt_fen + amount - taken, 0)
        out.append(rec)

    for tx in postings:
        if tx.recover_from is not None:
            take(tx.recover_from, tx, tx.amount_fen, f"recover:{tx.key}", "deposit_recovery")
        for m in covered:
            account = ledger.merchant_sales(m)
            sales[m] += sum(e.credit_fen - e.debit_fen for e in tx.entries if e.account == account)
            if sales[m] < 0:
                take(m, tx, -sales[m], f"cover:{tx.key}", "deposit_cover")
                sales[m] = 0
    return out


def _reimburses_return_shipping(tx: ledger.Transaction) -> str | None:
    """The merchant whose sales pay a return-shipping reimbursement in ``tx`` (M3), if any."""
    if not any(e.account.startswith("buyer:") and e.account.endswith(":return_shipping") for e in tx.entries):
        return None
    return next((e.account.split(":")[1] for e in tx.entries if e.debit_fen and e.account.startswith("merchant:")
                 and e.account.endswith(":sales")), None)


def advance_unpaid_rulings(ctx: Context, uow: UnitOfWork, merchant_id: str, reason: str) -> int:
    """P2: the shop is closed or unreachable: pay every refund ruling it has not paid yet, now."""
    ids = uow.conn.execute(select(t.cases.c.id, t.cases.c.order_id).where(
        t.cases.c.merchant_id == merchant_id, t.cases.c.status == "platform_review",
        t.cases.c.due_action == "advance_compensation")).all()
    from aftersales.domain import cases as dcases

    uow.tracker.load_orders(sorted({r.order_id for r in ids}), lock=True)
    for r in ids:
        order = uow.tracker.get_order(r.order_id)
        assert order is not None
        dcases.act(order, r.id, Action.ADVANCE_COMPENSATE, Actor.PLATFORM, uow.now, ctx.policy, reason=reason)
        settle_new_refunds(order, ctx.gateway, uow.now)
    return len(ids)


def close_shop(ctx: Context, who: Principal, merchant_id: str, reason: str) -> dict[str, Any]:
    """The platform records that a shop is closed or unreachable: its unpaid refund rulings are paid at once (P2)."""
    who.require("platform")
    if reason not in ("shop_closed", "merchant_unreachable"):
        raise Invalid("reason must be shop_closed or merchant_unreachable")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        _merchant(uow.conn, merchant_id)
        # Orders before the merchant's row, the order every command that moves money locks them in.
        paid = advance_unpaid_rulings(ctx, uow, merchant_id, reason)
        uow.conn.execute(update(t.merchants).where(t.merchants.c.id == merchant_id).values(closed=True))
        uow.tracker.flush()  # post the advances and their recoveries before the deposit is read back
        return {**_view(_merchant(uow.conn, merchant_id), state(uow.conn, ctx, merchant_id)), "rulings_advanced": paid}

    return run(ctx, cmd)


# --- K2 remedies ----------------------------------------------------------------------------------------------
REMEDIES = ("refund", "compensation", "penalty")


def complaint_remedy(ctx: Context, uow: UnitOfWork, *, complaint_id: str, merchant_id: str, buyer_id: str,
                     order_id: str | None, kind: str, amount_fen: int, at: datetime, index: int = 0) -> None:
    """K2: move the money of one remedy of an upheld complaint, inside the resolving command's transaction.

    * ``refund`` — a refund under E10, paid back on the order at once by the platform (P2) and recovered from the
      deposit: through the case open on the order if there is one (which closes as refunded), else beside it, with
      the shipping fee only where E10 allows it (:func:`aftersales.domain.complaints.refund_remedy`); an excessive
      amount is refused, never capped;
    * ``compensation`` — paid to the buyer beyond any refund, by the platform's fund, recovered from the deposit;
    * ``penalty`` — taken from the deposit (beyond it: the merchant's debt) for the platform."""
    amount = require_fen(amount_fen, "amount_fen")
    key = f"complaint:{complaint_id}:{index}:{kind}"
    if kind == "refund":
        if order_id is None:
            raise RuleViolation("K2", N_("A refund remedy needs the complaint to be about an order."))
        order = uow.tracker.get_order(order_id, lock=True)
        if order is None:
            raise NotFound("order", order_id)
        refund_remedy(order, complaint_id=complaint_id, key=key, amount_fen=amount, now=at)
        settle_new_refunds(order, ctx.gateway, at)
        return
    _merchant(uow.conn, merchant_id, lock=True)
    if kind == "compensation":  # recovered from the deposit by the same hook as every advance (P2)
        tx = d.compensation(merchant_id, buyer_id, amount, key, at, order_id=order_id)
        repo.post(uow.conn, [tx, *recover_advances(uow.conn, [tx])])
    elif kind == "penalty":
        repo.post(uow.conn, [d.penalty(merchant_id, amount, state(uow.conn, ctx, merchant_id), key, at, order_id=order_id)])
    else:
        raise Invalid(f"remedy type must be one of {', '.join(REMEDIES)}")
