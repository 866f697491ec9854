"""SQLite's writers queue on the process's writer lock (service/context.py) instead of polling SQLite's lock: the
lock is taken by writing units of work only, released whatever happens, and absent on PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from aftersales.service.context import UnitOfWork, read, run
from aftersales.store import repositories as repo


def _free(lock: Any) -> bool:
    """Whether another thread can take the lock now."""
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=2)) or (got[-1] and lock.release()))
    t.start()
    t.join()
    return got == [True]


def test_only_sqlite_has_a_writer_lock(ctx: Any, database: Any) -> None:
    assert (ctx.writer_lock is not None) == (database.kind == "sqlite")


def test_writers_wait_for_the_lock_and_readers_do_not(ctx: Any, database: Any) -> None:
    if database.kind != "sqlite":
        pytest.skip("SQLite only")
    order: list[str] = []
    ctx.writer_lock.acquire()
    try:
        writer = threading.Thread(target=lambda: run(ctx, lambda uow: order.append("write") or repo.kv_set(uow.conn, "k", "v")))
        writer.start()
        writer.join(0.5)
        assert writer.is_alive() and order == []  # queued behind the holder, not inside a transaction
        reader = threading.Thread(target=lambda: order.append(read(ctx, lambda uow: "read")))
        reader.start()
        reader.join(10)
        assert order == ["read"]  # a read-only unit of work takes no lock
        order.append("released")
    finally:
        ctx.writer_lock.release()
    writer.join(10)
    assert order == ["read", "released", "write"]
    assert read(ctx, lambda uow: repo.kv_get(uow.conn, "k")) == "v"


def test_the_lock_is_released_after_a_failed_command(ctx: Any, database: Any) -> None:
    if database.kind != "sqlite":
        pytest.skip("SQLite only")

    def boom(uow: UnitOfWork) -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError):
        run(ctx, boom)
    assert _free(ctx.writer_lock)
    with UnitOfWork(ctx) as uow:  # and a unit of work left without commit
        repo.kv_set(uow.conn, "k", "never")
    assert _free(ctx.writer_lock)
    assert read(ctx, lambda uow: repo.kv_get(uow.conn, "k")) is None
