"""The worker: applies due deadlines (M1–M7, P1, P2, G4), sends webhooks, and pays refunds through an
external gateway. Runs inside `aftersales serve` or as separate `aftersales worker` processes."""

from __future__ import annotations

import logging
import threading

import httpx

from aftersales.service import payment_worker, webhooks
from aftersales.service.context import Context
from aftersales.service.deadlines import apply_due

log = logging.getLogger("aftersales.worker")


def run_once(ctx: Context, client: httpx.Client | None = None) -> dict[str, int]:
    """One pass over everything due now."""
    fired = apply_due(ctx, ctx.now())
    settled = 0 if ctx.gateway.synchronous else payment_worker.process_due(ctx)
    delivered = webhooks.dispatch_due(ctx, client=client)
    return {"deadlines": fired, "refunds_settled": settled, "webhooks_delivered": delivered}


def loop(ctx: Context, stop: threading.Event, poll_seconds: float) -> None:
    """Poll until ``stop`` is set. Failures are logged and retried on the next pass: nothing due is lost."""
    with httpx.Client() as client:
        while not stop.is_set():
            try:
                done = run_once(ctx, client)
                if any(done.values()):
                    log.info("worker pass: %s", done)
            except Exception:
                log.exception("worker pass failed")
            stop.wait(poll_seconds)


def start_in_thread(ctx: Context, poll_seconds: float) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(ctx, stop, poll_seconds), name="aftersales-worker", daemon=True)
    thread.start()
    return thread, stop
