"""What every service function needs: the engine, the policy, the clock, the payment port, and who calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from aftersales.domain.events import Actor
from aftersales.domain.policy import Policy, from_parameters, version_id
from aftersales.store import idempotency as idempotency_store
from aftersales.store import repositories as repo
from aftersales.store import terms as terms_store
from aftersales.store.repositories import ConcurrentUpdate, Tracker

from .egress import Egress
from .errors import Conflict, Forbidden
from .payments import InstantGateway, PaymentGateway

T = TypeVar("T")

@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer as sent (``body``) and as recorded for replays (``stored``: the body without its secrets)."""

    status: int
    content_type: str
    body: bytes
    stored: str


@dataclass(slots=True)
class IdempotencyClaim:
    """The Idempotency-Key claim of the request being served (set by the API middleware, once authenticated).

    Every commit of that request marks the claim in the same transaction, and only while the claim is still this
    request's: if the process dies after the commit, a retry knows the request was applied; if a retry took the
    claim over after the process died before it, this request can no longer commit. Either way the request takes
    effect at most once. ``answer`` (bound by the API once the request is routed) turns the command's result into
    the HTTP answer, which the commit records with the effect: a retry arriving as soon as the answer has left
    finds it replayable. ``recorded`` is what the last commit recorded (the middleware checks it is what was sent).
    """

    principal: str
    key: str
    created_at: datetime
    answer: Callable[[object], Answer | None] | None = None
    recorded: Answer | None = None


IDEMPOTENCY_CLAIM: ContextVar[IdempotencyClaim | None] = ContextVar("idempotency_claim", default=None)
_NO_RESULT = object()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls (API.md): ``platform``, ``merchant:<id>`` or ``buyer:<id>``."""

    role: str
    subject_id: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(self.role)

    @property
    def key(self) -> str:
        return f"{self.role}:{self.subject_id}" if self.subject_id else self.role

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden("this operation is for {roles} keys", roles=" or ".join(roles))


PLATFORM = Principal("platform")
SYSTEM = Principal("system")


class Clock:
    """The real clock, or the manual clock of API.md kept in the database so that every process shares it."""

    def __init__(self, manual: bool, start: datetime | None = None) -> None:
        self.manual = manual
        self.start = start

    def now(self, conn: Connection | None = None) -> datetime:
        if not self.manual:
            return datetime.now(UTC)
        assert conn is not None, "the manual clock is read inside a transaction"
        value = repo.kv_get(conn, "clock_now")
        if value is None:
            return (self.start or datetime.now(UTC)).astimezone(UTC)
        return datetime.fromisoformat(value)

    def set(self, conn: Connection, now: datetime) -> None:
        repo.kv_set(conn, "clock_now", now.astimezone(UTC).isoformat())


#: Another process's publication reaches this one within this many seconds (this process's own at once).
SCHEDULE_TTL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class PolicySchedule:
    """The scheduled policy versions (T0, issue 15): (effective_at, draft id, the file's version when it was
    scheduled, policy), in the order they take effect.

    The version in force at an instant is the newest scheduled version effective at or before it (none: the file's).
    A policy file replaced after that version was scheduled is the operator's newer word: the file's version is in
    force again (as before publishing existed, a changed file applies from the restart)."""

    loaded: float
    entries: list[tuple[datetime, str, str | None, Policy]]

    def at(self, file: Policy, instant: datetime) -> tuple[Policy, datetime | None, str | None]:
        best = None
        for entry in self.entries:
            if entry[0] > instant:
                break
            best = entry
        if best is None or best[2] != version_id(file):
            return file, None, None
        return best[3], best[0], best[1]


@dataclass
class Context:
    engine: Engine
    policy: Policy
    clock: Clock
    gateway: PaymentGateway = field(default_factory=InstantGateway)
    #: SQLite takes one writer at a time (BEGIN IMMEDIATE, store/db.py). This process's writers queue on this lock,
    #: each woken as soon as the previous one is done, instead of polling SQLite's lock with the busy handler's
    #: growing sleeps (up to 100 ms each), which made the write latency's tail seconds long under load. Re-entrant,
    #: so that a nested unit of work in the same thread behaves as without it. None on PostgreSQL (row locks).
    writer_lock: threading.RLock | None = field(default=None, repr=False, compare=False)
    #: SEC1/SEC2: where webhooks may go and how many a merchant keeps (safe by default; see service/egress.py).
    egress: Egress = field(default_factory=Egress)
    #: T0: the policy of the file (``AFTERSALES_POLICY_FILE`` or the shipped one). ``policy`` is the version in force
    #: now: each unit of work sets it from the published schedule (:meth:`policy_at`), the file's when none applies.
    file_policy: Policy | None = None
    _schedule: PolicySchedule | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.writer_lock is None and self.engine.dialect.name == "sqlite":
            self.writer_lock = threading.RLock()
        if self.file_policy is None:
            self.file_policy = self.policy

    def schedule(self, conn: Connection) -> PolicySchedule:
        """The published policy versions (reloaded every few seconds, at once after a change in this process)."""
        sched = self._schedule
        if sched is None or time.monotonic() - sched.loaded > SCHEDULE_TTL_SECONDS:
            sched = PolicySchedule(time.monotonic(), [(at, did, fv, from_parameters(p))
                                                      for at, did, fv, p in terms_store.scheduled_policies(conn)])
            self._schedule = sched
        return sched

    def forget_schedule(self) -> None:
        self._schedule = None

    def policy_in_force(self, conn: Connection, instant: datetime) -> tuple[Policy, datetime | None, str | None]:
        """T0: the policy in force at ``instant``, the instant it took effect and its draft (None, None: the file's)."""
        assert self.file_policy is not None
        return self.schedule(conn).at(self.file_policy, instant)

    def policy_at(self, conn: Connection, instant: datetime) -> Policy:
        return self.policy_in_force(conn, instant)[0]

    def now(self) -> datetime:
        if not self.clock.manual:
            return datetime.now(UTC)
        with self.engine.connect().execution_options(readonly=True) as conn:
            return self.clock.now(conn)


class UnitOfWork:
    """One command, one transaction: rolled back unless :meth:`commit` is called."""

    def __init__(self, ctx: Context, *, readonly: bool = False) -> None:
        self.ctx = ctx
        self.readonly = readonly

    def __enter__(self) -> UnitOfWork:
        self.lock = None if self.readonly else self.ctx.writer_lock
        if self.lock is not None:
            self.lock.acquire()
        try:
            self.conn = self.ctx.engine.connect()
            if self.readonly:
                self.conn.execution_options(readonly=True)
            self.tx = self.conn.begin()
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise
        try:
            self.now = self.ctx.clock.now(self.conn)
            self.ctx.policy = self.ctx.policy_at(self.conn, self.now)  # T0: the version in force now
        except BaseException:
            self.__exit__()
            raise
        from .webhooks import fan_out  # the outbox hook (webhooks import this module)

        self.tracker = Tracker(self.conn, self.now, on_events=fan_out)
        return self

    def commit(self, result: object = _NO_RESULT) -> None:
        """Commit; under an Idempotency-Key, mark the claim applied and record the answer ``result`` gives."""
        self.tracker.flush()
        claim = IDEMPOTENCY_CLAIM.get()
        answer = None
        if claim is not None:
            if claim.answer is not None and result is not _NO_RESULT:
                answer = claim.answer(result)
            stored = None if answer is None else (answer.status, answer.content_type, answer.stored)
            if not idempotency_store.mark_applied(self.conn, claim.principal, claim.key, claim.created_at,
                                                  answer=stored, answered=claim.recorded is not None):
                raise Conflict("a retry with this Idempotency-Key took this request over; it was not applied")
        self.tx.commit()
        terms_store.committed(self.conn)
        if claim is not None:
            claim.recorded = answer

    def __exit__(self, *exc: object) -> None:
        try:
            if self.tx.is_active:
                self.tx.rollback()
            self.conn.close()
        finally:
            if self.lock is not None:
                self.lock.release()


def run(ctx: Context, command: Callable[[UnitOfWork], T], *, attempts: int = 8) -> T:
    """Run ``command`` in a unit of work and commit, retrying when a concurrent writer got there first."""
    for attempt in range(attempts):
        try:
            with UnitOfWork(ctx) as uow:
                result = command(uow)
                uow.commit(result)
                return result
        except ConcurrentUpdate:
            pass
        except IntegrityError as exc:
            raise Conflict("a resource with this id already exists or a reference is invalid") from exc
        except DBAPIError as exc:  # deadlock / serialization failure / database locked: try again
            if not _retryable(exc):
                raise
        time.sleep(0.005 * (attempt + 1))
    raise Conflict("too many concurrent changes to the same resource; try again")


def _retryable(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    return code in {"40001", "40P01", "55P03"} or "database is locked" in str(exc.orig)


def read(ctx: Context, query: Callable[[UnitOfWork], T]) -> T:
    """Run a read-only query in a transaction (no commit)."""
    with UnitOfWork(ctx, readonly=True) as uow:
        return query(uow)
