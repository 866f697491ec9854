"""Disabled staff users (users.disabled_at, migration 20261206_0021), on SQLite and PostgreSQL: the login refuses
them with the one generic answer, their sessions stop working and are ended, enabling lets them sign in again; a
password reset returns a new password once and ends their sessions. Platform only; nobody disables themselves."""

from __future__ import annotations

import pytest

from aftersales.service import users
from aftersales.service.context import Context, Principal
from aftersales.service.errors import Forbidden, Invalid, NotFound, Unauthorized

PASSWORD = "correct horse battery"
PLATFORM = Principal("platform")
NO_DELAYS = (users.Throttle("pair", free=10_000), users.Throttle("address", free=10_000))


def test_a_disabled_user_cannot_log_in_or_use_a_session(ctx: Context) -> None:
    uid = users.create_user(ctx, None, username="alice", password=PASSWORD, role="platform_agent")["id"]
    token = users.login(ctx, "alice", PASSWORD, "10.0.0.1", throttles=NO_DELAYS)
    assert users.session(ctx, token) is not None
    view = users.set_disabled(ctx, PLATFORM, uid, disabled=True)
    assert view["disabled_at"] is not None
    assert users.session(ctx, token) is None
    with pytest.raises(Unauthorized) as info:
        users.login(ctx, "alice", PASSWORD, "10.0.0.1", throttles=NO_DELAYS)
    assert info.value.detail == users.GENERIC_LOGIN_ERROR  # the same answer as a wrong password
    assert users.set_disabled(ctx, PLATFORM, uid, disabled=False)["disabled_at"] is None
    assert users.session(ctx, token) is None  # the sessions ended with the disabling
    assert users.session(ctx, users.login(ctx, "alice", PASSWORD, "10.0.0.1", throttles=NO_DELAYS)) is not None
    listed = {u["username"]: u for u in users.list_users(ctx, PLATFORM, cursor=None, limit=50)["items"]}
    assert listed["alice"]["disabled_at"] is None and "password_hash" not in listed["alice"]


def test_password_reset_and_who_may(ctx: Context) -> None:
    uid = users.create_user(ctx, None, username="bob", password=PASSWORD, role="platform_agent")["id"]
    token = users.login(ctx, "bob", PASSWORD, "10.0.0.2", throttles=NO_DELAYS)
    fresh = users.reset_password(ctx, PLATFORM, uid)["password"]
    assert len(fresh) >= 20 and users.session(ctx, token) is None
    with pytest.raises(Unauthorized):
        users.login(ctx, "bob", PASSWORD, "10.0.0.2", throttles=NO_DELAYS)
    assert users.login(ctx, "bob", fresh, "10.0.0.2", throttles=NO_DELAYS)
    with pytest.raises(Invalid):
        users.set_disabled(ctx, PLATFORM, uid, disabled=True, acting_user_id=uid)
    with pytest.raises(NotFound):
        users.set_disabled(ctx, PLATFORM, "u_nope", disabled=True)
    with pytest.raises(NotFound):  # a platform agent is no shop's staff: not found for a merchant
        users.reset_password(ctx, Principal("merchant", "mA"), uid)
    with pytest.raises(Forbidden):
        users.reset_password(ctx, Principal("buyer", "bX"), uid)


def test_a_password_change_is_throttled_with_the_sign_in(ctx: Context) -> None:
    """Guessing the current password through a change counts in the sign-in's buckets (one check, users._signed): after
    the pair's free failures the right password is refused too, by the change and by the login, until the delay ends."""
    users.create_user(ctx, None, username="carol", password=PASSWORD, role="platform_agent")
    for _ in range(3):
        with pytest.raises(Unauthorized):
            users.change_password(ctx, "carol", "a wrong guess 123", "a brand new passphrase", "10.0.0.3")
    with pytest.raises(Unauthorized):
        users.change_password(ctx, "carol", PASSWORD, "a brand new passphrase", "10.0.0.3")
    with pytest.raises(Unauthorized):
        users.login(ctx, "carol", PASSWORD, "10.0.0.3")
    assert users.login(ctx, "carol", PASSWORD, "10.0.0.4")  # another address: its own pair, the password unchanged
