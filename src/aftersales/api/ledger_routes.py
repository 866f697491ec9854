"""The ledger (D2): every money movement, balanced."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from aftersales.service import ledger

from .app import CtxDep, Who
from .schemas import Instant, Problem

router = APIRouter(tags=["ledger"])
P = {"model": Problem}
ERRORS: dict[int | str, dict[str, Any]] = {401: P, 403: P, 404: P, 422: P}


class EntryOut(BaseModel):
    account: str
    debit_fen: int
    credit_fen: int


class TransactionOut(BaseModel):
    id: int
    key: str
    kind: str
    at: str
    order_id: str | None
    case_id: str | None
    rule: str | None
    amount_fen: int
    entries: list[EntryOut]


class TransactionPage(BaseModel):
    items: list[TransactionOut]
    next_cursor: str | None
    #: With ``?account=``: that account's balance (credits − debits), derived from its entries.
    balance_fen: int | None = None


@router.get("/v1/ledger/transactions", response_model=TransactionPage, responses=ERRORS)
def ledger_transactions(
    ctx: CtxDep, who: Who,
    account: Annotated[str | None, Query(min_length=3, max_length=120, pattern=r"^(merchant|buyer|platform):[A-Za-z0-9_.-]*:[a-z_]+$")] = None,
    cursor: Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    at_after: Annotated[Instant | None, Query(description="Inclusive; RFC 3339 with a UTC offset.")] = None,
    at_before: Annotated[Instant | None, Query(description="Exclusive; RFC 3339 with a UTC offset; after `at_after`.")] = None,
) -> Any:
    """Newest first. Merchants and buyers see the transactions that touch their own accounts. ``at_after`` /
    ``at_before`` keep those booked in that period (a malformed instant, or a period that does not start before it
    ends, is 422 — rule D2 for the latter)."""
    return ledger.transactions(ctx, who, account=account, cursor=cursor, limit=limit, at_after=at_after,
                               at_before=at_before)
