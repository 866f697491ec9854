"""Shared fixtures: every integration and API test runs on SQLite and on PostgreSQL.

PostgreSQL comes from AFTERSALES_TEST_DATABASE_URL (default: the local server); each test gets its own schema,
so parallel runs and parallel workers never collide. Under CI=true a missing PostgreSQL fails the run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from aftersales.api.app import create_app
from aftersales.config import Settings
from aftersales.domain import policy as policy_mod
from aftersales.service.context import Clock, Context, UnitOfWork
from aftersales.service.ledger import audit as ledger_audit
from aftersales.store.db import make_engine, normalise_url
from aftersales.store.migrate import migrated_schema, upgrade

#: Every lean JSON answer (api/responses.py) is checked against its route's response model during the tests.
os.environ.setdefault("AFTERSALES_CHECK_RESPONSES", "1")
PG_URL = os.environ.get("AFTERSALES_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
#: The tests' connections commit without waiting for the WAL's flush to disk (~6 ms a commit on this machine's disk,
#: 0.7 ms without): a crash of the PostgreSQL server could lose the last commits of a test database, nothing else.
#: What the tests check (isolation, locking, a killed client process) is unchanged.
PG_TEST_URL = make_url(normalise_url(PG_URL)).update_query_dict({"options": "-c synchronous_commit=off"}).render_as_string(
    hide_password=False)
CLOCK_START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai
PLATFORM_KEY = "test-platform-key-" + "x" * 24


def _pg_available() -> str | None:
    try:
        eng = create_engine(normalise_url(PG_URL))
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def pg_problem() -> str | None:
    return _pg_available()


@dataclass
class Database:
    kind: str
    url: str
    schema: str | None = None

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {"env": "test", "database_url": self.url, "database_schema": self.schema,
                                  "clock": "manual", "clock_start": CLOCK_START, "bootstrap_platform_key": PLATFORM_KEY}
        values.update(overrides)
        return Settings(**values)

    def env(self) -> dict[str, str]:
        env = {"AFTERSALES_ENV": "test", "AFTERSALES_DATABASE_URL": self.url, "AFTERSALES_CLOCK": "manual",
               "AFTERSALES_CLOCK_START": CLOCK_START.isoformat(), "AFTERSALES_BOOTSTRAP_PLATFORM_KEY": PLATFORM_KEY}
        if self.schema:
            env["AFTERSALES_DATABASE_SCHEMA"] = self.schema
        return env


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once per test process; each test gets a copy of the file (the migrations take
    ~0.5 s, a copy ~1 ms)."""
    path = tmp_path_factory.mktemp("template") / "aftersales.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection's close checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def pg_template(pg_problem: str | None) -> Iterator[str | None]:
    """The SQL that recreates, in a new schema, a schema migrated once per test process (pg_dump's text, the
    template schema's name replaced): a test's schema is made in one round trip instead of ~1–2 s of migrations.
    None when PostgreSQL or pg_dump is missing (each test then migrates its own schema)."""
    if pg_problem is not None or shutil.which("pg_dump") is None:
        yield None
        return
    with migrated_schema(PG_TEST_URL, f"tpl_{os.getpid()}_{secrets.token_hex(6)}") as template:
        url = make_url(normalise_url(PG_URL))
        dumped = subprocess.run(
            ["pg_dump", "--schema", template, "--no-owner", "--no-privileges", "--inserts", "--dbname",
             url.set(drivername="postgresql").render_as_string(hide_password=False)],
            check=True, capture_output=True, text=True).stdout
        # Plain pg_dump text: psql's meta-commands (\restrict …) are not SQL; the session settings it sets stay on
        # the admin connection that runs it.
        yield "\n".join(line for line in dumped.splitlines() if not line.startswith("\\")).replace(template, "{schema}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Any, pg_problem: str | None) -> Iterator[Database]:
    """A fresh, migrated database of each kind (a copy of one migrated once per test process)."""
    if request.param == "sqlite":
        db = Database("sqlite", f"sqlite:///{tmp_path}/aftersales.db")
        shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp_path / "aftersales.db")
        yield db
        return
    if pg_problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {pg_problem}")
        pytest.skip(f"PostgreSQL not available: {pg_problem}")
    schema = f"t_{os.getpid()}_{secrets.token_hex(4)}"
    script = request.getfixturevalue("pg_template")
    if script is None:
        with migrated_schema(PG_TEST_URL, schema):
            yield Database("postgresql", PG_TEST_URL, schema)
        return
    admin = create_engine(PG_TEST_URL)
    raw = admin.raw_connection()
    try:
        raw.cursor().execute(script.replace("{schema}", schema))
        raw.commit()
    finally:
        raw.close()
    try:
        yield Database("postgresql", PG_TEST_URL, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def ctx(database: Database) -> Iterator[Context]:
    engine = make_engine(database.url, schema=database.schema)
    yield Context(engine=engine, policy=policy_mod.load(), clock=Clock(True, CLOCK_START))
    engine.dispose()


@dataclass
class Api:
    """A TestClient with keys for the usual cast, and small helpers that keep tests readable."""

    client: TestClient
    keys: dict[str, str] = field(default_factory=dict)

    def h(self, who: str = "platform", **extra: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who != "anonymous" else {}
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        return headers

    def get(self, path: str, who: str = "platform", **kw: Any) -> Any:
        return self.client.get(path, headers=self.h(who), **kw)

    def post(self, path: str, body: Any = None, who: str = "platform", headers: dict[str, str] | None = None) -> Any:
        return self.client.post(path, json=body, headers={**self.h(who), **(headers or {})})

    def put(self, path: str, body: Any = None, who: str = "platform") -> Any:
        return self.client.put(path, json=body, headers=self.h(who))

    def key(self, name: str, role: str, subject_id: str | None) -> str:
        r = self.post("/v1/api-keys", {"role": role, "subject_id": subject_id})
        assert r.status_code == 201, r.text
        self.keys[name] = r.json()["key"]
        return self.keys[name]

    def advance(self, seconds: int) -> dict[str, Any]:
        r = self.post("/v1/clock/advance", {"seconds": seconds})
        assert r.status_code == 200, r.text
        return r.json()

    def now(self) -> datetime:
        return datetime.fromisoformat(self.get("/v1/clock").json()["now"])


@pytest.fixture
def api(database: Database, ctx: Context) -> Iterator[Api]:
    """The API over a fresh database: merchants mA, mB; the category apparel; buyers bX, bY; keys for each and for
    the platform."""
    app = create_app(database.settings(), ctx)
    with TestClient(app, raise_server_exceptions=False) as client:
        a = Api(client, {"platform": PLATFORM_KEY})
        for mid in ("mA", "mB"):
            assert a.post("/v1/merchants", {"id": mid, "name": f"Shop {mid}", "return_address": "1 Return Rd"}).status_code == 201
        # E4: an order's categories must exist; "apparel" (plain terms) is the category of the tests' usual items.
        assert a.put("/v1/categories/apparel", {"name": "Apparel", "no_reason_return": True}).status_code in (200, 201)
        a.key("merchant_a", "merchant", "mA")
        a.key("merchant_b", "merchant", "mB")
        a.key("buyer_x", "buyer", "bX")
        a.key("buyer_y", "buyer", "bY")
        yield a
    # D2, after every API test that moved money: every transaction balances, every balance is the sum of its
    # entries, refunded ≤ paid per order, and no account but a merchant's debt is negative.
    with UnitOfWork(ctx, readonly=True) as uow:
        assert ledger_audit(uow) == [], "the ledger invariants broke"
