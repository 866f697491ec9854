"""The law an order is judged by, fixed at purchase: category terms (E4–E6) and the platform policy version (T0).

An order records, when it is created, the terms of its categories and the policy version in force at its
``paid_at`` (:func:`stamp`); eligibility, deadlines and automatic actions for it then use those
(:func:`order_policy`), never the category or the policy file as they are now.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from aftersales.domain.catalog import Category
from aftersales.domain.orders import Order
from aftersales.domain.policy import Policy, version_id
from aftersales.store import terms as store

from .context import Context, Principal, UnitOfWork, read, run
from .errors import NotFound

#: Policy versions by id: a version's parameters never change, so a process may keep what it has read.
_POLICIES: dict[str, Policy] = {}
_POLICIES_LOCK = threading.Lock()


def stamp(ctx: Context, conn: Connection, now: datetime, codes: Iterable[str], paid_at: datetime,
          book: store.TermsBook | None = None, categories: Mapping[str, Category] | None = None,
          ) -> tuple[dict[str, Category], str]:
    """The terms of the categories ``codes`` in force at ``paid_at`` and the policy version in force at ``paid_at``
    (stored). A published version (service/publishing.py) applies to the orders paid from its ``effective_at`` on.
    ``categories``: every category, as the caller has just read them in this transaction (their names are not read
    again)."""
    vid = store.ensure_policy_version(conn, ctx.policy_at(conn, paid_at), now, judged_at=paid_at)
    codes = set(codes)
    names = None if categories is None else {code: cat.name for code, cat in categories.items()}
    book = book if book is not None else store.terms_book(conn, codes, names=names)
    return book.for_items(codes, paid_at), vid


def order_policy(ctx: Context, conn: Connection, order: Order) -> Policy:
    """The policy that judges ``order``: the version it recorded, whatever the policy file in force now.

    An order recorded before policy versions existed (migration 0017 stamps them) follows the policy in force."""
    vid = order.policy_version
    if vid is None or vid == version_id(ctx.policy):
        return ctx.policy
    policy = _POLICIES.get(vid)
    if policy is None:
        policy = store.load_policy_version(conn, vid)
        if policy is None:
            raise RuntimeError(f"order {order.id} was judged by policy version {vid}, which is not stored (T0)")
        with _POLICIES_LOCK:
            _POLICIES[vid] = policy
    return policy


def terms_versions(order: Order) -> dict[str, int | None]:
    """Per category of the order, the terms version that judges it (None: the category was never configured)."""
    return {code: cat.version for code, cat in sorted(order.terms.items())}


def policy_in_force(ctx: Context, who: Principal) -> dict[str, Any]:
    """The policy in force, with its version id and the instant it took effect (a published version's
    ``effective_at``; for the file's version, when it was first in force: the earliest of when it was first recorded
    and the payment of the first order it judged, :func:`stamp`) and, when published, its draft's id."""
    def q(uow: UnitOfWork) -> tuple[Policy, datetime | None, str | None, Any]:
        policy, at, draft = ctx.policy_in_force(uow.conn, uow.now)
        return policy, at, draft, store.policy_version_row(uow.conn, version_id(policy))

    policy, at, draft, row = read(ctx, q)
    if row is None:  # the first question since this version took effect: record it (once, whoever asks first)
        def cmd(uow: UnitOfWork) -> Any:
            store.ensure_policy_version(uow.conn, policy, uow.now)
            return store.policy_version_row(uow.conn, version_id(policy))

        row = run(ctx, cmd)
    return {**policy.as_dict(), "version": version_id(policy),
            "effective_at": (at or row.effective_at).isoformat(), "draft_id": draft}


def category_versions(ctx: Context, who: Principal, code: str) -> list[dict[str, Any]]:
    """Every terms version of a category, oldest first (E4–E6)."""
    def q(uow: UnitOfWork) -> list[dict[str, Any]]:
        rows = store.category_versions(uow.conn, code)
        if not rows:
            raise NotFound("category", code)
        return [{**r, "effective_at": r["effective_at"].isoformat()} for r in rows]

    return read(ctx, q)
