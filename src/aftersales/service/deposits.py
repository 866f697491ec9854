"""The consumer-rights deposit (D1), advance compensation and its recovery (P2), and complaint remedies (K2).

Balances are never stored: they are summed from the ledger (D2) while the merchant's row is locked
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``), so that many
recoveries against one deposit at once each see what the previous one left, and the deposit never goes negative —
what it cannot cover becomes the merchant's debt.

Money moves only as the domain's transactions (:mod:`aftersales.domain.deposits`), handed to the unit of work
(``uow.tracker.post``) and written by its flush, with the recoveries they call for (P2), through the store's one
ledger writer. Reading the deposit flushes first, so that a command reads what it has posted so far.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta
from typing import Any

from aftersales.domain import deposits as d
from aftersales.domain.cases import Action
from aftersales.domain.complaints import refund_remedy
from aftersales.domain.errors import RuleViolation
from aftersales.domain.events import Actor
from aftersales.domain.messages import N_
from aftersales.domain.money import require_fen
from aftersales.domain.timeutil import window_end
from aftersales.store import deposits as store
from aftersales.store import ledger as ledger_store
from aftersales.store import repositories as repo

from .context import Context, Principal, UnitOfWork, read, run
from .errors import Invalid, NotFound, require_version
from .payments import settle_new_refunds
from .terms import order_policy

#: A withdrawal that falls due while a case or complaint is open waits this long before it is looked at again.
RECHECK = timedelta(hours=24)


# --- reading the deposit --------------------------------------------------------------------------------------
def state(uow: UnitOfWork, ctx: Context, merchant_id: str, *, excluding: str | None = None) -> d.DepositState:
    """The deposit as the ledger has it now — with what this unit of work has posted so far (flushed first) — and
    what pending withdrawals (but ``excluding``) hold back."""
    uow.tracker.flush()
    balance, debt = ledger_store.held(uow.conn, merchant_id)
    return d.DepositState(balance_fen=balance, debt_fen=debt, required_fen=ctx.policy.deposit_required_fen,
                          pending_withdrawal_fen=store.pending_withdrawals_fen(uow.conn, merchant_id, excluding=excluding))


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


def _merchant(uow: UnitOfWork, merchant_id: str, *, lock: bool = False) -> Any:
    row = ledger_store.lock_merchant(uow.conn, merchant_id) if lock else repo.merchant(uow.conn, merchant_id)
    if row is None:
        raise NotFound("merchant", merchant_id)
    return row


def get_deposit(ctx: Context, who: Principal, merchant_id: str) -> dict[str, Any]:
    """API.md ``GET /v1/merchants/{id}/deposit``: balance, required, debt and whether the merchant is restricted."""
    _visible(who, merchant_id)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        row = _merchant(uow, merchant_id)
        return _view(row, state(uow, ctx, merchant_id))

    return read(ctx, q)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{time.time_ns() // 1000:014x}{secrets.token_hex(4)}"


def top_up(ctx: Context, who: Principal, merchant_id: str, amount_fen: int) -> dict[str, Any]:
    """D1: the merchant (or the platform for it) pays money in; it settles any debt first, then tops the deposit up."""
    who.require("platform", "merchant")
    _visible(who, merchant_id)
    amount = require_fen(amount_fen, "amount_fen")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = _merchant(uow, merchant_id, lock=True)
        tx = d.top_up(merchant_id, amount, state(uow, ctx, merchant_id), _new_id("topup"), uow.now)
        uow.tracker.post(tx)
        return {**_view(row, state(uow, ctx, merchant_id)), "transaction_key": tx.key}

    return run(ctx, cmd)


def top_up_preview(ctx: Context, who: Principal, merchant_id: str, amount_fen: int) -> dict[str, Any]:
    """D1, before a top-up is confirmed: what it would settle of the debt, what it would add to the deposit, and the
    deposit afterwards (whether the shop stays restricted) — read, nothing posted; :func:`top_up` moves the money."""
    who.require("platform", "merchant")
    _visible(who, merchant_id)
    amount = require_fen(amount_fen, "amount_fen")

    def q(uow: UnitOfWork) -> dict[str, Any]:
        row = _merchant(uow, merchant_id)
        now = state(uow, ctx, merchant_id)
        to_debt, to_deposit = d.top_up_split(amount, now)
        return {"amount_fen": amount, "to_debt_fen": to_debt, "to_deposit_fen": to_deposit,
                "before": _view(row, now), "after": _view(row, d.after_top_up(amount, now))}

    return read(ctx, q)


# --- withdrawals ----------------------------------------------------------------------------------------------
def _open_counts(uow: UnitOfWork, merchant_id: str, at: datetime | None = None) -> tuple[int, int]:
    """Open cases (at ``at``, when given) and open complaints of the merchant: a withdrawal needs none (D1)."""
    from .complaints import count_open

    return store.open_case_count(uow.conn, merchant_id, at), count_open(uow.conn, merchant_id)


def _withdrawal_view(row: Any, who: Principal) -> dict[str, Any]:
    """A withdrawal as ``who`` sees it, with the actions ``who`` can take on it now (D1)."""
    return {"id": row.id, "merchant_id": row.merchant_id, "amount_fen": row.amount_fen, "status": row.status,
            "reason": row.reason, "requested_by": row.requested_by, "requested_at": row.requested_at.isoformat(),
            "due_at": row.due_at.isoformat(), "completed_at": row.completed_at.isoformat() if row.completed_at else None,
            "allowed_actions": store.withdrawal(row).allowed_actions(who.actor), "version": row.version}


def request_withdrawal(ctx: Context, who: Principal, merchant_id: str, amount_fen: int) -> dict[str, Any]:
    """D1: ask to take money out of the deposit; it is paid at the end of the ``deposit_withdrawal_hold_days``-th
    local day after the request (T0), if still allowed."""
    who.require("platform", "merchant")
    _visible(who, merchant_id)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = _merchant(uow, merchant_id, lock=True)
        cases, complaints = _open_counts(uow, merchant_id)
        amount = d.check_withdrawal(amount_fen, state(uow, ctx, merchant_id), open_cases=cases,
                                    open_complaints=complaints, leaving=bool(row.closed))
        wid = _new_id("wd")
        # T0: a hold of N days after a request on local day D ends at the end of local day D+N (platform time zone).
        due = window_end(uow.now, ctx.policy.deposit_withdrawal_hold_days, ctx.policy.timezone)
        values = {"id": wid, "merchant_id": merchant_id, "amount_fen": amount, "status": "pending", "reason": None,
                  "requested_by": who.key, "requested_at": uow.now, "due_at": due, "completed_at": None, "version": 1}
        added = store.add_withdrawal(uow.conn, values)
        store.arm(uow.conn, wid, 1, due)
        return _withdrawal_view(added, who)

    return run(ctx, cmd)


def list_withdrawals(ctx: Context, who: Principal, merchant_id: str) -> dict[str, Any]:
    _visible(who, merchant_id)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        _merchant(uow, merchant_id)
        return {"items": [_withdrawal_view(r, who) for r in store.withdrawals_of(uow.conn, merchant_id)], "next_cursor": None}

    return read(ctx, q)


def _load_withdrawal(uow: UnitOfWork, merchant_id: str, withdrawal_id: str) -> d.Withdrawal:
    w = store.load_withdrawal(uow.conn, merchant_id, withdrawal_id)
    if w is None:
        raise NotFound("withdrawal", withdrawal_id)
    return w


def cancel_withdrawal(ctx: Context, who: Principal, merchant_id: str, withdrawal_id: str, *,
                      if_match: int | None = None) -> dict[str, Any]:
    """D1: a pending request may be withdrawn by the merchant or the platform; nothing moves."""
    who.require("platform", "merchant")
    _visible(who, merchant_id)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        _merchant(uow, merchant_id, lock=True)
        w = _load_withdrawal(uow, merchant_id, withdrawal_id)
        require_version("withdrawal", w.version, if_match)
        w.move("cancel", who.actor, uow.now, reason=f"cancelled by {who.role}")
        return _withdrawal_view(store.save_withdrawal(uow.conn, w), who)

    return run(ctx, cmd)


def apply_timer(ctx: Context, uow: UnitOfWork, row: Any, now: datetime) -> int:
    """The hold is over: pay the withdrawal if nothing is open and the deposit still holds it (D1).

    With a case open at its due instant, or a complaint open, it waits (checked again every 24 h); if recoveries took
    the deposit below the amount meanwhile, it fails — buyers are paid before merchants (P2). The deadline worker
    applies it after the batch's other actions and writes theirs first (API.md: in due order), so a case an earlier
    automatic action closed, or a recovery it made, counts."""
    merchant_id = store.withdrawal_merchant(uow.conn, row.subject_id)
    if merchant_id is None:
        return 0
    _merchant(uow, merchant_id, lock=True)
    w = _load_withdrawal(uow, merchant_id, row.subject_id)
    if w.status is not d.WithdrawalStatus.PENDING or w.version != row.stage:
        return 0  # stale: cancelled, or re-armed since
    uow.tracker.flush()  # the cases and ledger postings the batch's earlier actions changed, before reading them
    cases, complaints = _open_counts(uow, w.merchant_id, row.due_at)
    s = state(uow, ctx, w.merchant_id, excluding=w.id)
    if cases or complaints:
        w.version += 1
        w.due_at = row.due_at + RECHECK
        w.reason = f"waiting: {cases} open case(s) and {complaints} open complaint(s) (D1)"
        store.save_withdrawal(uow.conn, w)
        store.arm(uow.conn, w.id, w.version, w.due_at)
        return 1
    if s.debt_fen > 0 or s.balance_fen < w.amount_fen:
        w.move("fail", Actor.SYSTEM, row.due_at, reason=f"the deposit holds {s.balance_fen} fen and a debt of {s.debt_fen} (D1)")
        store.save_withdrawal(uow.conn, w)
        return 1
    uow.tracker.post(d.withdrawal(w.merchant_id, w.amount_fen, f"withdrawal:{w.id}", row.due_at))
    w.move("complete", Actor.SYSTEM, row.due_at)
    store.save_withdrawal(uow.conn, w)
    return 1


# --- P2: paying what the merchant does not ---------------------------------------------------------------------
def advance_unpaid_rulings(ctx: Context, uow: UnitOfWork, merchant_id: str, reason: str) -> int:
    """P2: the shop is closed or unreachable: pay every refund ruling it has not paid yet, now."""
    ids = store.rulings_awaiting_advance(uow.conn, merchant_id)
    from aftersales.domain import cases as dcases

    uow.tracker.load_orders(sorted({r.order_id for r in ids}), lock=True)
    for r in ids:
        order = uow.tracker.get_order(r.order_id)
        assert order is not None
        dcases.act(order, r.id, Action.ADVANCE_COMPENSATE, Actor.PLATFORM, uow.now, order_policy(ctx, uow.conn, order),
                   reason=reason)
        settle_new_refunds(order, ctx.gateway, uow.now)
    return len(ids)


def close_shop_preview(ctx: Context, who: Principal, merchant_id: str) -> dict[str, Any]:
    """P2, before a closure is confirmed: the refund rulings the platform would pay at once (each with its ruled
    amount) and how their recovery would fall on the deposit and, beyond it, the shop's debt — read, nothing moves;
    :func:`close_shop` does it (an advance pays what E10 leaves of the ruling when it is made)."""
    who.require("platform")

    def q(uow: UnitOfWork) -> dict[str, Any]:
        row = _merchant(uow, merchant_id)
        ids = store.rulings_awaiting_advance(uow.conn, merchant_id)
        uow.tracker.load_orders(sorted({r.order_id for r in ids}))
        rulings = []
        for r in sorted(ids, key=lambda r: r.id):
            order = uow.tracker.get_order(r.order_id)
            assert order is not None
            ruling = order.case(r.id).ruling
            rulings.append({"case_id": r.id, "order_id": r.order_id,
                            "refund_fen": (ruling.refund_fen or 0) if ruling is not None else 0})
        s = state(uow, ctx, merchant_id)
        total = sum(x["refund_fen"] for x in rulings)
        from_deposit, to_debt = d.recovery_split(total, s)
        return {"deposit": _view(row, s), "rulings": rulings, "total_fen": total, "from_deposit_fen": from_deposit,
                "to_debt_fen": to_debt}

    return read(ctx, q)


def close_shop(ctx: Context, who: Principal, merchant_id: str, reason: str) -> dict[str, Any]:
    """The platform records that a shop is closed or unreachable: its unpaid refund rulings are paid at once (P2)."""
    who.require("platform")
    if reason not in ("shop_closed", "merchant_unreachable"):
        raise Invalid("reason must be shop_closed or merchant_unreachable")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        _merchant(uow, merchant_id)
        # Orders before the merchant's row, the order every command that moves money locks them in.
        paid = advance_unpaid_rulings(ctx, uow, merchant_id, reason)
        store.close_merchant(uow.conn, merchant_id)
        # state() flushes: the advances and their recoveries are posted before the deposit is read back
        s = state(uow, ctx, merchant_id)
        return {**_view(_merchant(uow, merchant_id), s), "rulings_advanced": paid}

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
    _merchant(uow, merchant_id, lock=True)
    if kind == "compensation":  # recovered from the deposit at the flush, as every advance (P2)
        uow.tracker.post(d.compensation(merchant_id, buyer_id, amount, key, at, order_id=order_id))
    elif kind == "penalty":
        uow.tracker.post(d.penalty(merchant_id, amount, state(uow, ctx, merchant_id), key, at, order_id=order_id))
    else:
        raise Invalid("remedy type must be one of {values}", values=", ".join(REMEDIES))
