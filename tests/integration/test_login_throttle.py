"""Workbench logins that resist guessing (service/users.py): failures counted atomically per (address, username)
and per address, growing delays (a delay, not a lock-out), and one answer, after the same work, for an unknown
name, a wrong password and an attempt during a delay. Time is the manual clock; nothing sleeps."""

from __future__ import annotations

import re
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aftersales.service import users
from aftersales.service.context import Context, UnitOfWork
from aftersales.service.errors import Unauthorized
from aftersales.store import users as store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web"))
from webhelpers import PASSWORD, browser, make_user, sign_in

NO_DELAYS = (users.Throttle("pair", free=10_000), users.Throttle("address", free=10_000))


def now(ctx: Context) -> datetime:
    with UnitOfWork(ctx, readonly=True) as uow:
        return uow.now


def advance(ctx: Context, seconds: float) -> datetime:
    with UnitOfWork(ctx) as uow:
        ctx.clock.set(uow.conn, uow.now + timedelta(seconds=seconds))
        uow.commit()
    return now(ctx)


def bucket(ctx: Context, name: str) -> Any:
    with ctx.engine.connect() as conn:
        return store.bucket(conn, name)


def refused(ctx: Context, username: str, password: str, address: str, **kw: Any) -> str:
    with pytest.raises(Unauthorized) as info:
        users.login(ctx, username, password, address, **kw)
    return str(info.value.detail)


@pytest.fixture
def alice(ctx: Context) -> str:
    users.create_user(ctx, None, username="alice", password=PASSWORD, role="platform_agent")
    return "alice"


def _in_parallel(ctx: Context, n: int, **kw: Any) -> list[str]:
    start = threading.Barrier(n)
    answers: list[str] = []

    def attempt() -> None:
        start.wait(30)
        try:
            users.login(ctx, "alice", "a wrong guess", "203.0.113.7", **kw)
            answers.append("signed in")
        except Unauthorized as exc:
            answers.append(str(exc.detail))

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    return answers


def test_32_parallel_wrong_passwords_are_all_counted(ctx: Context, alice: str) -> None:
    """Each thread has its own connection from the pool; the buckets are locked while counted, so none is lost."""
    answers = _in_parallel(ctx, 32, throttles=NO_DELAYS)
    assert answers == [users.GENERIC_LOGIN_ERROR] * 32
    assert bucket(ctx, "pair:203.0.113.7 alice").failures == 32
    assert bucket(ctx, "addr:203.0.113.7").failures == 32


def test_32_parallel_wrong_passwords_get_only_the_free_tries_weighed(ctx: Context, alice: str) -> None:
    """With the shipped throttle and the clock standing still: two free failures, the third starts a 1 s delay, and
    the 29 others fall inside it — refused the same way, not counted, the delay not extended."""
    answers = _in_parallel(ctx, 32)
    assert answers == [users.GENERIC_LOGIN_ERROR] * 32
    pair = bucket(ctx, "pair:203.0.113.7 alice")
    assert pair.failures == 3 and pair.next_attempt_at == now(ctx) + timedelta(seconds=1)
    assert bucket(ctx, "addr:203.0.113.7").failures == 3


def test_unknown_name_wrong_password_and_delay_answer_alike_after_the_same_work(
        ctx: Context, alice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    verified: list[str] = []
    real = users._verify
    monkeypatch.setattr(users, "_verify", lambda h, p: verified.append(h) or real(h, p))
    unknown = refused(ctx, "mallory", PASSWORD, "198.51.100.1")
    wrong = refused(ctx, "alice", "not it at all", "198.51.100.2")
    for _ in range(2):
        refused(ctx, "alice", "not it at all", "198.51.100.2")  # the third failure starts a delay
    delayed = refused(ctx, "alice", PASSWORD, "198.51.100.2")  # the right password, during the delay
    assert unknown == wrong == delayed == users.GENERIC_LOGIN_ERROR
    assert len(verified) == 5  # one argon2 verification per attempt, the delayed one and the unknown name included
    assert verified[0] == users._DUMMY_HASH and all(h.startswith("$argon2id$") for h in verified)


def test_an_unknown_name_is_delayed_exactly_like_a_real_one(ctx: Context, alice: str) -> None:
    for name in ("alice", "nobody"):
        for _ in range(3):
            refused(ctx, name, "guess", "198.51.100.9")
        assert bucket(ctx, f"pair:198.51.100.9 {name}").failures == 3
        assert bucket(ctx, f"pair:198.51.100.9 {name}").next_attempt_at == now(ctx) + timedelta(seconds=1)


def test_delays_grow_to_15_minutes_and_the_right_password_works_after_one(ctx: Context, alice: str) -> None:
    address, pair_only = "192.0.2.10", users.THROTTLES[:1]
    assert pair_only[0].name == "pair"
    waits = []
    for _ in range(16):
        refused(ctx, "alice", "guess", address, throttles=pair_only)
        row = bucket(ctx, f"pair:{address} alice")
        wait = (row.next_attempt_at - now(ctx)).total_seconds() if row.next_attempt_at else 0
        waits.append(wait)
        if wait:  # attempts during the delay are not counted and do not extend it
            refused(ctx, "alice", "guess again", address, throttles=pair_only)
            assert bucket(ctx, f"pair:{address} alice") == row
            refused(ctx, "alice", PASSWORD, address, throttles=pair_only)  # not even the right password
            advance(ctx, wait)
    assert waits[:6] == [0, 0, 1, 2, 4, 8] and waits[-1] == 900 and max(waits) == 900
    assert users.login(ctx, "alice", PASSWORD, address, throttles=pair_only)  # the delay is over: it works
    assert bucket(ctx, f"pair:{address} alice").failures == 0


def test_one_address_guessing_many_names_is_delayed_on_all_of_them(ctx: Context, alice: str) -> None:
    """Per address: ten failures on ten names (each name's own count stays at one), the eleventh delays the address."""
    for i in range(11):
        refused(ctx, f"user{i}", "guess", "203.0.113.50")
    assert bucket(ctx, "addr:203.0.113.50").failures == 11
    assert refused(ctx, "alice", PASSWORD, "203.0.113.50") == users.GENERIC_LOGIN_ERROR  # delayed
    assert users.login(ctx, "alice", PASSWORD, "203.0.113.51")  # another address is not
    advance(ctx, 1)
    assert users.login(ctx, "alice", PASSWORD, "203.0.113.50")


def test_another_address_cannot_keep_a_user_out(ctx: Context, alice: str) -> None:
    """The finding: one wrong request every few minutes kept an account locked. Failures from elsewhere delay
    only elsewhere."""
    for _ in range(20):
        refused(ctx, "alice", "guess", "203.0.113.66")
        advance(ctx, 300)
    assert users.login(ctx, "alice", PASSWORD, "198.51.100.77")


def test_the_workbench_answers_every_failure_with_one_page(api: Any, ctx: Context) -> None:
    make_user(api, "alice")
    web = browser(api)

    def error(r: Any) -> str:
        assert r.status_code == 401
        m = re.search(r'<p class="error" role="alert">(.*?)</p>', r.text)
        assert m, r.text
        assert "try again in a few minutes" in r.text  # the same hint on every failure
        return m.group(1)

    unknown = error(sign_in(web, "mallory"))
    wrong = [error(sign_in(web, "alice", "not the password")) for _ in range(3)]
    delayed = error(sign_in(web, "alice"))
    assert len({unknown, *wrong, delayed}) == 1
    assert unknown == "Wrong username or password."
