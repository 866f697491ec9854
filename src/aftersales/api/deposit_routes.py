"""The consumer-rights deposit (D1) and advance compensation when a shop is closed (P2)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel

from aftersales.service import deposits

from .app import CtxDep, IdempotencyKey, IfMatch, Who
from .routes import PathId
from .schemas import Fen, Problem, Strict

router = APIRouter(tags=["deposits"])
P = {"model": Problem}
ERRORS: dict[int | str, dict[str, Any]] = {401: P, 403: P, 404: P, 409: P, 422: P}


class AmountIn(Strict):
    amount_fen: Fen


class CloseIn(Strict):
    #: ``shop_closed``: the shop stopped trading; ``merchant_unreachable``: it does not answer the platform (P2).
    reason: Literal["shop_closed", "merchant_unreachable"]


class DepositOut(BaseModel):
    merchant_id: str
    #: What the deposit holds, derived from the ledger (``merchant:<id>:deposit``).
    balance_fen: int
    #: D1 ``deposit_required_fen``.
    required_fen: int
    #: What the merchant owes beyond its deposit after recoveries (``merchant:<id>:debt``, shown positive).
    debt_fen: int
    #: Missing to reach the required deposit, plus the debt.
    shortfall_fen: int
    #: D1: a shortfall restricts the merchant (no withdrawal) until topped up.
    restricted: bool
    #: Held back by pending withdrawal requests.
    pending_withdrawal_fen: int
    available_fen: int
    shop_closed: bool


class TopUpOut(DepositOut):
    transaction_key: str


class CloseOut(DepositOut):
    #: Refund rulings the platform paid at once (P2) because of the closure.
    rulings_advanced: int


class WithdrawalOut(BaseModel):
    id: str
    merchant_id: str
    amount_fen: int
    status: Literal["pending", "completed", "cancelled", "failed"]
    reason: str | None
    requested_by: str
    requested_at: str
    #: When the hold (``deposit_withdrawal_hold_days``) ends and the withdrawal is paid, if still allowed.
    due_at: str
    completed_at: str | None
    #: D1: what the caller can do with the withdrawal now (``cancel`` while it is pending).
    allowed_actions: list[Literal["cancel"]] = []
    version: int


class WithdrawalPage(BaseModel):
    items: list[WithdrawalOut]
    next_cursor: str | None


@router.get("/v1/merchants/{merchant_id}/deposit", response_model=DepositOut, responses=ERRORS)
def get_deposit(merchant_id: PathId, ctx: CtxDep, who: Who) -> Any:
    """API.md: balance, required, debt and restriction. The platform and the merchant itself."""
    return deposits.get_deposit(ctx, who, merchant_id)


@router.post("/v1/merchants/{merchant_id}/deposit/top-ups", status_code=201, response_model=TopUpOut, responses=ERRORS)
def top_up(merchant_id: PathId, body: AmountIn, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """D1: pays the merchant's debt first, then tops the deposit up. One balanced ledger transaction."""
    return deposits.top_up(ctx, who, merchant_id, body.amount_fen)


@router.post("/v1/merchants/{merchant_id}/deposit/withdrawals", status_code=201, response_model=WithdrawalOut,
             responses=ERRORS)
def request_withdrawal(merchant_id: PathId, body: AmountIn, ctx: CtxDep, who: Who,
                       idempotency_key: IdempotencyKey = None) -> Any:
    """D1: refused (422, rule D1) while restricted, with an open case or complaint, or below the required deposit
    (a closed shop may take all of it). Paid by the deadline worker after the hold if still allowed."""
    return deposits.request_withdrawal(ctx, who, merchant_id, body.amount_fen)


@router.get("/v1/merchants/{merchant_id}/deposit/withdrawals", response_model=WithdrawalPage, responses=ERRORS)
def list_withdrawals(merchant_id: PathId, ctx: CtxDep, who: Who) -> Any:
    """The merchant's deposit withdrawals with their status."""
    return deposits.list_withdrawals(ctx, who, merchant_id)


@router.post("/v1/merchants/{merchant_id}/deposit/withdrawals/{withdrawal_id}/cancel", response_model=WithdrawalOut,
             responses=ERRORS)
def cancel_withdrawal(merchant_id: PathId, withdrawal_id: PathId, ctx: CtxDep, who: Who, if_match: IfMatch,
                      idempotency_key: IdempotencyKey = None) -> Any:
    """Cancel a pending withdrawal before it is paid out. `If-Match: <version>`: only the withdrawal as last read
    (409 otherwise)."""
    return deposits.cancel_withdrawal(ctx, who, merchant_id, withdrawal_id, if_match=if_match)


@router.post("/v1/merchants/{merchant_id}/close", response_model=CloseOut, responses=ERRORS)
def close_shop(merchant_id: PathId, body: CloseIn, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
    """Platform: the shop is closed or unreachable. Its unpaid refund rulings are paid by the platform at once and
    recovered from its deposit (P2); later refund rulings on it are paid at once too."""
    return deposits.close_shop(ctx, who, merchant_id, body.reason)
