"""Property-based conformance of the whole HTTP API against its own /openapi.json (schemathesis).

Every documented operation is exercised with generated requests (valid and invalid ones), each sent with
the platform key or with a merchant key, on a database (SQLite, and PostgreSQL in its own schema) seeded
with merchants, categories, orders and cases in several states, so that generated ids often hit real resources.
Every response must

- not be a server error (no 5xx),
- have a status code the operation documents,
- have the documented media type (``application/problem+json`` for errors), and a body matching the schema
  documented for that status code.

The database is shared by all operations of one database kind (a module-scoped fixture), and the generated
requests mutate it as they go, which only adds variety. To keep the file under two minutes, SQLite gets every
phase (explicit examples, the coverage phase's boundary and negative values, then fuzzing) and PostgreSQL the
fuzzing phase only: the operations' logic is the same, the PostgreSQL run is there for what
only that database refuses (NUL characters, long values, types), which fuzzing reaches too.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import tempfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance
from sqlalchemy import create_engine, text

from aftersales.api.app import create_app
from aftersales.config import Settings
from aftersales.store.db import make_engine, normalise_url
from aftersales.store.migrate import migrated_schema, upgrade

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
PG_URL = os.environ.get("AFTERSALES_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PLATFORM_KEY = "schemathesis-platform-key-" + "x" * 24
CLOCK_START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
ORDERS = [f"so{i}" for i in range(1, 13)]

#: Ids of seeded resources by path-parameter name; filled by the ``seeded`` fixture, read when drawing.
KNOWN: dict[str, list[str]] = {}


def _settings(url: str, schema: str | None = None) -> Settings:
    return Settings(env="test", database_url=url, database_schema=schema, clock="manual", clock_start=CLOCK_START,
                    bootstrap_platform_key=PLATFORM_KEY)


# The document does not depend on the data: load it once, from an app whose database is never opened.
# Requests go to the seeded app of the current database (``app=`` in ``call_and_validate``).
# No probes with undocumented methods (405 comes from the router, not from this code), no stateful phase.
SPEC_APP = create_app(_settings(f"sqlite:///{tempfile.gettempdir()}/aftersales-unused.db"))
FULL = {"seed": 20260301, "phases": {"coverage": {"unexpected-methods": []}, "stateful": {"enabled": False}}}
FUZZ_ONLY = {"seed": 20260301, "phases": {"examples": {"enabled": False}, "coverage": {"enabled": False},
                                          "stateful": {"enabled": False}}}
schema = schemathesis.openapi.from_asgi("/openapi.json", SPEC_APP, config=SchemathesisConfig.from_dict(FULL))
schema_pg = schemathesis.openapi.from_asgi("/openapi.json", SPEC_APP, config=SchemathesisConfig.from_dict(FUZZ_ONLY))
UNIQUE = itertools.count()


def _known(name: str) -> st.SearchStrategy[str]:
    # Drawn at request time, so that the ids seeded for the current database are used.
    return st.integers(min_value=0, max_value=10_000).map(lambda i: KNOWN[name][i % len(KNOWN[name])])


def before_generate_path_parameters(context: Any, strategy: Any) -> Any:
    # Half of the time, point the path at a seeded resource rather than a random (missing) one.
    names = re.findall(r"{(\w+)}", context.operation.path)
    if not names or any(n not in ("case_id", "order_id", "merchant_id", "group_id", "code") for n in names):
        return strategy
    return st.one_of(st.fixed_dictionaries({n: _known(n) for n in names}), strategy)


def flatmap_body(context: Any, body: Any) -> Any:
    # Opening a case, creating an order, a key or a complaint: sometimes name a seeded order or merchant.
    if not isinstance(body, dict):
        return st.just(body)
    swaps = {"order_id": "order_id", "merchant_id": "merchant_id", "subject_id": "merchant_id"}
    present = [field for field in swaps if isinstance(body.get(field), str)]
    if not present:
        return st.just(body)
    return st.one_of(st.just(body), st.fixed_dictionaries({f: _known(swaps[f]) for f in present}).map(lambda d: {**body, **d}))


for _schema in (schema, schema_pg):
    _schema.hook(before_generate_path_parameters)
    _schema.hook(flatmap_body)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One fresh, migrated database of each kind for the whole module."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('schemathesis')}/aftersales.db"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield _settings(url)
        return
    try:
        admin = create_engine(normalise_url(PG_URL))
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {exc}")
        pytest.skip(f"PostgreSQL not available: {str(exc).splitlines()[0]}")
    admin.dispose()
    with migrated_schema(PG_URL, f"st_{os.getpid()}_{secrets.token_hex(4)}") as name:
        yield _settings(PG_URL, name)


class Seeder:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.keys = {"platform": PLATFORM_KEY}

    def call(self, method: str, path: str, body: Any = None, who: str = "platform") -> Any:
        return self.client.request(method, path, json=body, headers={"Authorization": f"Bearer {self.keys[who]}"})

    def ok(self, method: str, path: str, body: Any = None, who: str = "platform") -> Any:
        r = self.call(method, path, body, who)
        assert r.status_code in (200, 201), f"{method} {path}: {r.status_code} {r.text}"
        return r.json()


def _order(order_id: str, **extra: Any) -> dict[str, Any]:
    body = {"id": order_id, "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00+00:00",
            "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 2, "unit_price_fen": 1999},
                      {"sku": "s2", "title": "Plums", "category": "fresh", "quantity": 1, "unit_price_fen": 800}]}
    body.update(extra)
    return body


def _seed(s: Seeder) -> dict[str, list[str]]:
    """Merchants, keys, categories, orders in several statuses and cases in several statuses."""
    for mid in ("mA", "mB"):
        s.ok("POST", "/v1/merchants", {"id": mid, "name": f"Shop {mid}", "return_address": "1 Return Rd"})
    s.keys["merchant"] = s.ok("POST", "/v1/api-keys", {"role": "merchant", "subject_id": "mA"})["key"]
    s.keys["buyer"] = s.ok("POST", "/v1/api-keys", {"role": "buyer", "subject_id": "bX"})["key"]
    s.ok("PUT", "/v1/categories/apparel", {"name": "Apparel", "no_reason_return": True})
    s.ok("PUT", "/v1/categories/fresh", {"name": "Fresh food", "no_reason_return": False, "statutory_exclusion": "perishable"})
    for oid in ORDERS:
        s.ok("POST", "/v1/orders", _order(oid))
    s.ok("POST", "/v1/orders", _order("sog1", group={"id": "g1", "size": 2}))
    for oid in ORDERS[6:]:
        s.ok("POST", f"/v1/orders/{oid}/ship", {"carrier": "SF", "tracking_no": f"T{oid}"})
    for oid in ORDERS[9:]:
        s.ok("POST", f"/v1/orders/{oid}/deliver", {})
    cases: list[str] = []

    def case(order_id: str, type_: str, reason: str, then: list[tuple[str, str, dict[str, Any] | None]], **extra: Any) -> None:
        # Best effort: the rules decide which states are reachable; the seed only wants variety.
        r = s.call("POST", "/v1/cases", {"order_id": order_id, "type": type_, "reason": reason, **extra}, who="buyer")
        if r.status_code != 201:
            return
        cases.append(r.json()["id"])
        for action, who, body in then:
            if s.call("POST", f"/v1/cases/{cases[-1]}/{action}", body, who=who).status_code != 200:
                return

    one = {"items": [{"sku": "s1", "quantity": 1}]}
    for oid in ORDERS[0:3]:
        case(oid, "refund_only", "no_reason", [])  # awaiting_merchant
    case(ORDERS[3], "refund_only", "no_reason", [("approve", "merchant", None)])  # closed, refunded
    case(ORDERS[4], "refund_only", "no_reason", [("cancel", "buyer", None)])  # closed, cancelled
    case(ORDERS[6], "refund_only", "not_received", [])
    case(ORDERS[7], "refund_only", "not_received", [("reject", "merchant", {"reason": "it was shipped"})])
    case(ORDERS[9], "return_refund", "quality_problem", [("approve", "merchant", None)], **one)
    case(ORDERS[10], "exchange", "quality_problem", [], **one)
    case(ORDERS[11], "return_refund", "quality_problem", [("approve", "merchant", None),
                                                           ("ship_return", "buyer", {"carrier": "SF", "tracking_no": "R1"})], **one)
    assert len(cases) >= 5, cases
    return {"case_id": cases, "order_id": [*ORDERS, "sog1"], "merchant_id": ["mA", "mB"], "group_id": ["g1"],
            "code": ["apparel", "fresh"]}


@pytest.fixture(scope="module")
def seeded(database: Settings) -> Iterator[tuple[Any, dict[str, str]]]:
    """The app over the seeded database, and the keys to call it with."""
    app = create_app(database)
    with TestClient(app, raise_server_exceptions=False) as client:
        seeder = Seeder(client)
        KNOWN.clear()
        KNOWN.update(_seed(seeder))
        yield app, seeder.keys
    app.state.ctx.engine.dispose()
    KNOWN.clear()


def _call(case: Any, app: Any, keys: dict[str, str]) -> None:
    # A valid Idempotency-Key is mostly made unique, so that the body behind it reaches the handler instead
    # of a replay or a "reused with another body" 422; one key in four is left as drawn, to keep those paths.
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and key.strip() and len(key) <= 200 and zlib.crc32(key.encode("utf-8", "replace")) % 4:
        case.headers["Idempotency-Key"] = f"{key[:150]}~{next(UNIQUE)}"
    # Each case goes with the platform key or with the merchant key (mA, who owns the seeded orders and cases),
    # chosen from its content so that a failing case replays with the same key; both keys get about half.
    who = ("platform", "merchant")[zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode()) % 2]
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {keys[who]}"}, checks=CHECKS)


SETTINGS = {"deadline": None, "suppress_health_check": list(HealthCheck), "derandomize": True, "database": None}


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@schema.parametrize()
@settings(max_examples=20, **SETTINGS)
def test_api_conforms_to_its_openapi(case: Any, seeded: tuple[Any, dict[str, str]]) -> None:
    _call(case, *seeded)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
@schema_pg.parametrize()
@settings(max_examples=20, **SETTINGS)
def test_api_conforms_to_its_openapi_on_postgresql(case: Any, seeded: tuple[Any, dict[str, str]]) -> None:
    _call(case, *seeded)
