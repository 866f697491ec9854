"""Group-buy orders (拼单): G1–G5."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from .errors import DomainError, InvalidInput, NotPermitted, RuleViolation, StateConflict
from .events import Actor, Event
from .messages import N_
from .orders import Order, OrderStatus, Refund
from .policy import Policy
from .timeutil import after_hours


class GroupStatus(StrEnum):
    PENDING = "pending"
    FORMED = "formed"
    FAILED = "failed"


@dataclass(slots=True)
class Group:
    id: str
    merchant_id: str
    size: int
    opened_at: datetime
    expires_at: datetime
    auto_complete: bool = False
    status: GroupStatus = GroupStatus.PENDING
    member_ids: list[str] = field(default_factory=list)
    closed_at: datetime | None = None
    version: int = 1
    pending_events: list[Event] = field(default_factory=list)

    def _record(self, kind: str, actor: Actor, at: datetime, rules: tuple[str, ...], **data: object) -> None:
        self.pending_events.append(Event(kind, actor, at, rules, group_id=self.id, data=dict(data)))

    def _form(self, orders: list[Order], actor: Actor, now: datetime, rule: str) -> None:
        """G3: every member order becomes awaiting shipment."""
        self.status = GroupStatus.FORMED
        self.closed_at = now
        self.version += 1
        for order in orders:
            if order.status is OrderStatus.GROUP_PENDING:
                order.status = OrderStatus.AWAITING_SHIPMENT
                order.version += 1
                order.record("group_formed", actor, now, (rule, "G3"))
        self._record("group_formed", actor, now, (rule, "G3"), members=len(self.member_ids))

    def join(self, order: Order, now: datetime, orders: list[Order]) -> None:
        """G1/G3: ``order`` (just paid) joins; the group forms when the last member pays before expiry.

        ``orders`` are the current members (``order`` excluded)."""
        if order.merchant_id != self.merchant_id:
            raise InvalidInput("G1", N_("An order can only join a group of its own merchant."))
        if self.status is not GroupStatus.PENDING:
            raise StateConflict("G1", N_("Group {group_id} is {status} and takes no more members."),
                                group_id=self.id, status=str(self.status))
        if now >= self.expires_at:
            raise StateConflict("G1", N_("Group {group_id} expired at {expires_at}."), group_id=self.id, expires_at=self.expires_at)
        self.member_ids.append(order.id)
        self.version += 1
        order.status = OrderStatus.GROUP_PENDING
        self._record("group_joined", Actor.BUYER, now, ("G1",), order_id=order.id, members=len(self.member_ids))
        if len(self.member_ids) >= self.size:
            self._form([*orders, order], Actor.BUYER, now, "G3")

    def expire(self, orders: list[Order], now: datetime) -> list[Refund]:
        """G4 at the expiry instant: form automatically (模拟成团) or fail and refund every member in full, once."""
        if self.status is not GroupStatus.PENDING:
            raise StateConflict("G4", N_("Group {group_id} is already {status}."), group_id=self.id, status=str(self.status))
        if now < self.expires_at:
            raise StateConflict("G4", N_("Group {group_id} does not expire before {expires_at}."),
                                group_id=self.id, expires_at=self.expires_at)
        if self.auto_complete:
            self._form(orders, Actor.SYSTEM, self.expires_at, "G4")
            return []
        self.status = GroupStatus.FAILED
        self.closed_at = self.expires_at
        self.version += 1
        refunds = [o.cancel_for_group_failure(self.expires_at) for o in orders if o.status is OrderStatus.GROUP_PENDING]
        self._record("group_failed", Actor.SYSTEM, self.expires_at, ("G4",), refunded_orders=len(refunds))
        return refunds

    def allowed_actions(self, actor: Actor, now: datetime) -> list[str]:
        """The people's actions ``actor`` can take on the group at ``now``: those of :data:`GROUP_ACTIONS` that admit
        ``actor`` and whose guards pass — the same checks :meth:`complete` refuses with."""
        out = []
        for action in GROUP_ACTIONS:
            try:
                self._check(action, actor, now)
            except DomainError:
                continue
            out.append(action)
        return out

    def _check(self, action: str, actor: Actor, now: datetime) -> None:
        actors, guards = GROUP_ACTIONS[action]
        if actor not in actors:
            raise NotPermitted("G5", N_("Only the merchant or a platform agent can complete a group."))
        for guard in guards:
            guard(self, now)

    def complete(self, orders: list[Order], actor: Actor, now: datetime) -> None:
        """G5: the merchant or a platform agent completes a pending group early, where automatic completion is allowed."""
        self._check("complete", actor, now)
        self._form(orders, actor, now, "G5")


# --- people's actions on a group (G5): who may take them, and their guards ---------------------------------------
def still_pending(group: Group, now: datetime) -> None:
    """G5: only a group that has neither formed nor failed can be completed."""
    if group.status is not GroupStatus.PENDING:
        raise StateConflict("G5", N_("Group {group_id} is already {status}."), group_id=group.id, status=str(group.status))


def completion_allowed(group: Group, now: datetime) -> None:
    """G5: only where automatic completion (模拟成团) is allowed."""
    if not group.auto_complete:
        raise RuleViolation("G5", N_("This group does not allow completion without all its members."))


def not_expired(group: Group, now: datetime) -> None:
    """G4: once the window ended, expiry decides — not a person."""
    if now >= group.expires_at:
        raise StateConflict("G4", N_("Group {group_id} expired at {expires_at}."), group_id=group.id, expires_at=group.expires_at)


#: Each action: who may take it, then its guards in order.
GROUP_ACTIONS: dict[str, tuple[frozenset[Actor], tuple[Callable[[Group, datetime], None], ...]]] = {
    "complete": (frozenset({Actor.MERCHANT, Actor.PLATFORM}), (still_pending, completion_allowed, not_expired)),
}


def open_group(
    *, id: str, merchant_id: str, size: int, auto_complete: bool, first: Order, policy: Policy
) -> Group:
    """G1: the first member's payment opens the group; it waits ``group_wait_hours``."""
    if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= 1000:
        raise InvalidInput("G1", N_("{field} must be a whole number between 2 and 1000."), field="size")
    group = Group(
        id=id,
        merchant_id=merchant_id,
        size=size,
        opened_at=first.paid_at,
        expires_at=after_hours(first.paid_at, policy.group_wait_hours),
        auto_complete=auto_complete,
    )
    group._record("group_opened", Actor.BUYER, first.paid_at, ("G1",), size=size, expires_at=group.expires_at.isoformat())
    group.join(first, first.paid_at, [])
    return group
