"""The published contract (/openapi.json) documents itself: every operation says what it does, and fields that take
fixed values list them (enums), exactly the values the domain uses."""

from __future__ import annotations

from typing import Any

import pytest

from aftersales.domain.cases import CaseStatus, CloseReason
from aftersales.domain.orders import OrderStatus, Payer, RefundKind


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from aftersales.api.app import create_app
    from aftersales.config import Settings

    db = tmp_path_factory.mktemp("openapi") / "doc.db"
    with TestClient(create_app(Settings(env="test", database_url=f"sqlite:///{db}"))) as client:
        r = client.get("/openapi.json")
        assert r.status_code == 200
        return r.json()  # type: ignore[no-any-return]


def test_every_operation_has_a_summary_and_a_description(doc: dict[str, Any]) -> None:
    undocumented = [f"{method.upper()} {path}" for path, ops in doc["paths"].items() for method, op in ops.items()
                    if not (op.get("summary") and len(op.get("description", "").strip()) >= 20)]
    assert len(doc["paths"]) > 50
    assert not undocumented, f"operations without a description: {undocumented}"


def _enum(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    for option in schema.get("anyOf", [schema]):
        ref = option.get("$ref")
        target = doc["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else option
        if "enum" in target:
            return list(target["enum"])
    raise AssertionError(f"no enum in {schema}")


@pytest.mark.parametrize(("model", "field", "values"), [
    ("OrderOut", "status", [s.value for s in OrderStatus]),
    ("CaseOut", "status", [s.value for s in CaseStatus]),
    ("CaseOut", "close_reason", [s.value for s in CloseReason]),
    ("RefundOut", "kind", [s.value for s in RefundKind]),
    ("RefundOut", "payer", [s.value for s in Payer]),
    ("ApiKey", "role", ["merchant", "buyer", "platform"]),
])
def test_fixed_value_fields_list_their_values(doc: dict[str, Any], model: str, field: str, values: list[str]) -> None:
    props = doc["components"]["schemas"][model]["properties"]
    assert sorted(_enum(doc, props[field])) == sorted(values)


def test_the_order_list_documents_its_status_filter(doc: dict[str, Any]) -> None:
    params = {p["name"]: p for p in doc["paths"]["/v1/orders"]["get"]["parameters"]}
    assert sorted(_enum(doc, params["status"]["schema"])) == sorted(s.value for s in OrderStatus)
    assert params["limit"]["schema"]["maximum"] == 200
