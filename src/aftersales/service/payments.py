"""The payment port (F1): every refund leaves with the idempotency key the domain derived from the case.

Two kinds of gateway:

* the built-in one (``synchronous = True``) is the platform's own balance: it settles inside the command's
  transaction, so a refund and its settlement commit or roll back together;
* an external one (``synchronous = False``) is called after the transaction commits, from the
  ``payment_jobs`` outbox row written with the refund. It is retried with backoff until it confirms; the
  refund (and its case, in ``refund_pending``) stays visible meanwhile. Settlement happens once per key
  (``Order.settle_refund`` ignores a second confirmation), and the gateway itself must treat the key as an
  idempotency key so that a retried request never pays twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from aftersales.domain.orders import Order, Refund, RefundStatus

MAX_BACKOFF = timedelta(minutes=30)


class GatewayError(Exception):
    """The gateway refused, failed or timed out; the refund will be retried."""


class PaymentGateway(Protocol):
    synchronous: bool

    def submit(self, key: str, amount_fen: int, order_id: str) -> bool:
        """Pay ``amount_fen`` back for ``order_id`` under idempotency ``key``; True once the payment side confirmed.

        Raises :class:`GatewayError` on failure or timeout."""


class InstantGateway:
    """Settles every refund immediately: the platform's own balance is the payment route."""

    synchronous = True

    def submit(self, key: str, amount_fen: int, order_id: str) -> bool:
        return True


def settle_new_refunds(order: Order, gateway: PaymentGateway, now: datetime) -> None:
    """With a synchronous gateway, settle the order's pending refunds in this transaction (exactly once per key).

    With an external gateway nothing happens here: the store writes a payment job with each new refund."""
    if not gateway.synchronous:
        return
    for refund in list(order.refunds):
        if refund.status is RefundStatus.PENDING and gateway.submit(refund.key, refund.amount_fen, order.id):
            order.settle_refund(refund.key, now)


def backoff(attempts: int) -> timedelta:
    """2 s, 4 s, 8 s … doubling, capped at 30 minutes."""
    return min(timedelta(seconds=2 * 2 ** max(0, attempts - 1)), MAX_BACKOFF)


def pending_refund(order: Order) -> Refund | None:
    return next((r for r in order.refunds if r.status is RefundStatus.PENDING), None)
