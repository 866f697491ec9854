"""`aftersales keys list|revoke|rotate` and `aftersales sessions list|revoke` on a temporary SQLite database, and
the production guard of the bootstrap platform key."""

from __future__ import annotations

import hashlib
import os

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from aftersales import cli
from aftersales.config import Settings
from aftersales.service import setup, users
from aftersales.service.context import PLATFORM
from aftersales.service.errors import Unauthorized

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("AFTERSALES_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AFTERSALES_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(cli.app, ["migrate"]).exit_code == 0
    return cli._context(Settings())


def invoke(*args: str):
    return runner.invoke(cli.app, list(args))


def principal(ctx, key):
    try:
        return setup.authenticate(ctx, key, None)
    except Unauthorized:
        return None


def test_keys_list_revoke_rotate(env):
    ctx = env
    setup.create_merchant(ctx, PLATFORM, id="mA", name="Shop A", return_address=None)
    a = setup.create_api_key(ctx, None, role="merchant", subject_id="mA", label="till")
    b = setup.create_api_key(ctx, None, role="buyer", subject_id="bX")
    listed = invoke("keys", "list")
    assert listed.exit_code == 0, listed.output
    assert a["id"] in listed.output and b["id"] in listed.output and "till" in listed.output
    assert a["key"] not in listed.output and b["key"] not in listed.output
    assert invoke("keys", "revoke", b["id"]).exit_code == 0
    assert principal(ctx, b["key"]) is None
    rotated = invoke("keys", "rotate", a["id"])
    assert rotated.exit_code == 0, rotated.output
    new_key = rotated.stdout.strip().splitlines()[-1]
    assert new_key.startswith("as_m_") and new_key != a["key"]
    assert principal(ctx, a["key"]) is None
    assert principal(ctx, new_key) is not None
    active = invoke("keys", "list", "--active", "--json")
    assert active.exit_code == 0 and a["id"] not in active.output and b["id"] not in active.output
    unknown = invoke("keys", "revoke", "nope")
    assert unknown.exit_code == 1


def test_sessions_list_and_revoke(env):
    ctx = env
    users.create_user(ctx, None, username="alice", password="a long password 1", role="platform_agent")
    token = users.login(ctx, "alice", "a long password 1")
    sid = hashlib.sha256(token.encode()).hexdigest()
    listed = invoke("sessions", "list")
    assert listed.exit_code == 0 and "alice" in listed.output and sid[:12] in listed.output and token not in listed.output
    assert invoke("sessions", "revoke", sid).exit_code == 0
    assert users.session(ctx, token) is None
    assert invoke("sessions", "revoke", sid).exit_code == 1


PROD = {"env": "production", "secret_key": "Q7v!pX2r#Lm9Tz4wKc8Yb1Nh6Fd3Gs0Ej5", "record_secret": "uR4$kW9mZ2qT7xN1pL6vB3cY8hF0jD5sG"}


def test_the_bootstrap_key_is_refused_in_production_unless_allowed():
    with pytest.raises(ValidationError) as info:
        Settings(**PROD, bootstrap_platform_key="b" * 30)
    assert "AFTERSALES_ALLOW_BOOTSTRAP_KEY_IN_PRODUCTION" in str(info.value)
    assert Settings(**PROD, bootstrap_platform_key="b" * 30, allow_bootstrap_key_in_production=True).bootstrap_platform_key
    assert Settings(**PROD).bootstrap_platform_key is None
    assert Settings(env="development", bootstrap_platform_key="b" * 30).bootstrap_platform_key


def test_the_cli_refuses_to_start_in_production_with_a_bootstrap_key(env, monkeypatch):
    monkeypatch.setenv("AFTERSALES_ENV", "production")
    monkeypatch.setenv("AFTERSALES_SECRET_KEY", PROD["secret_key"])
    monkeypatch.setenv("AFTERSALES_RECORD_SECRET", PROD["record_secret"])
    monkeypatch.setenv("AFTERSALES_BOOTSTRAP_PLATFORM_KEY", "b" * 30)
    result = invoke("keys", "list")
    assert result.exit_code == 2 and "AFTERSALES_BOOTSTRAP_PLATFORM_KEY is refused in production" in result.output
    monkeypatch.setenv("AFTERSALES_ALLOW_BOOTSTRAP_KEY_IN_PRODUCTION", "true")
    assert invoke("keys", "list").exit_code == 0
