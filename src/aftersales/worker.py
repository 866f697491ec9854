"""The worker: applies due deadlines (M1–M7, P1, P2, G4), sends webhooks, and pays refunds through an
external gateway. Runs inside `aftersales serve` or as separate `aftersales worker` processes."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime

import httpx

from aftersales.service import payment_worker, replay_jobs, webhooks
from aftersales.service.context import Context
from aftersales.service.deadlines import apply_due
from aftersales.store import idempotency

#: How often a worker loop purges the idempotency records past their 24 h (one DELETE on an index).
PURGE_EVERY_SECONDS = 60.0

log = logging.getLogger("aftersales.worker")

#: The cyclic garbage collector's thresholds in a worker process (Python's are 700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """A worker process's garbage collector, set once at its start: what was loaded so far (modules, the policy) is
    frozen out of the collections and a collection waits for 50,000 new objects instead of 700. A batch of due
    deadlines holds hundreds of aggregates decoded from JSON — hundreds of thousands of objects, freed by reference
    counting when the batch ends — and the default thresholds ran about 700 collections per 12,000 timers, a sixth of
    the worker's CPU (docs/perf/deadlines). Cycles are still collected; memory stays flat (bench/deadlines.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _deadlines_and_payments(ctx: Context) -> dict[str, int]:
    fired = apply_due(ctx, ctx.now())
    settled = 0 if ctx.gateway.synchronous else payment_worker.process_due(ctx)
    return {"deadlines": fired, "refunds_settled": settled}


def purge_idempotency(ctx: Context, now: datetime | None = None) -> int:
    """Remove the Idempotency-Key records older than 24 h (API.md: keys live at least 24 h); they hold whole
    answers, so they must not pile up. Their instants are the real clock's (the middleware's), so is ``now``."""
    with ctx.writer_lock or nullcontext(), ctx.engine.begin() as conn:
        return idempotency.purge(conn, now or datetime.now(UTC))


class _Every:
    """Run ``step`` at most once every ``seconds`` (monotonic), else report nothing."""

    def __init__(self, seconds: float, step: Callable[[], dict[str, int]]) -> None:
        self.seconds, self.step, self.last = seconds, step, float("-inf")

    def __call__(self) -> dict[str, int]:
        if time.monotonic() - self.last < self.seconds:
            return {}
        self.last = time.monotonic()
        return self.step()


def run_once(ctx: Context, client: httpx.Client | None = None) -> dict[str, int]:
    """One pass over everything due now."""
    done = _deadlines_and_payments(ctx)
    done["idempotency_purged"] = purge_idempotency(ctx)
    done["webhooks_delivered"] = webhooks.dispatch_due(ctx, client=client)
    done["replays_run"] = 0
    while replay_jobs.run_next(ctx):  # every queued what-if replay (issue 15), each to its end
        done["replays_run"] += 1
    return done


def _poll(name: str, step: Callable[[], dict[str, int]], stop: threading.Event, poll_seconds: float) -> None:
    """Run ``step`` every ``poll_seconds`` until ``stop`` is set. Failures (the database restarting, …) are logged
    and retried on the next pass: nothing due is lost."""
    while not stop.is_set():
        try:
            done = step()
            if any(done.values()):
                log.info("%s: %s", name, done)
        except Exception:
            log.exception("%s failed", name)
        stop.wait(poll_seconds)


def _webhook_loop(ctx: Context, stop: threading.Event, poll_seconds: float) -> None:
    with webhooks.http_client() as client:
        _poll("webhook pass", lambda: {"webhooks_delivered": webhooks.dispatch_due(ctx, client=client)}, stop, poll_seconds)


def _replay_loop(ctx: Context, stop: threading.Event, poll_seconds: float) -> None:
    _poll("replay pass", lambda: {"replays_run": replay_jobs.run_next(ctx)}, stop, poll_seconds)


def loop(ctx: Context, stop: threading.Event, poll_seconds: float) -> None:
    """Poll until ``stop`` is set. Webhooks are sent from a thread of their own: a backlog of deliveries, or an
    endpoint that answers only at the 10 s timeout, must not hold up the automatic actions (M1–M7, P1, P2, G4) and
    the refunds they pay (F1) — the fault soak (bench/soak.py) measured deadlines applied 20–40 s late behind
    webhook deliveries when both shared one loop. What-if replays (issue 15) run in a third thread, for the same
    reason: one replay of a long period takes minutes."""
    hooks = threading.Thread(target=_webhook_loop, args=(ctx, stop, poll_seconds), name="aftersales-webhooks", daemon=True)
    hooks.start()
    replays = threading.Thread(target=_replay_loop, args=(ctx, stop, poll_seconds), name="aftersales-replays", daemon=True)
    replays.start()
    purge = _Every(PURGE_EVERY_SECONDS, lambda: {"idempotency_purged": purge_idempotency(ctx)})
    try:
        _poll("worker pass", lambda: {**_deadlines_and_payments(ctx), **purge()}, stop, poll_seconds)
    finally:
        stop.set()
        hooks.join(timeout=poll_seconds + webhooks.TIMEOUT)
        replays.join(timeout=poll_seconds)


def start_in_thread(ctx: Context, poll_seconds: float) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(ctx, stop, poll_seconds), name="aftersales-worker", daemon=True)
    thread.start()
    return thread, stop
