"""D2: ``GET /v1/ledger/transactions?at_after=&at_before=`` keeps the transactions booked in a period (``at_after``
inclusive, ``at_before`` exclusive), combined with ``account`` and the cursor; malformed instants, naive ones and a
period that does not start before it ends are 422 and answer nothing else."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from helpers import PROBLEM, iso

TOP_UPS = (100_001, 100_002, 100_003)


def _three_days(api: Any) -> list[str]:
    """A top-up of mA's deposit on three consecutive days; → the instants they were booked at."""
    booked = []
    for n, amount in enumerate(TOP_UPS):
        if n:
            api.advance(24 * 3600)
        assert api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": amount}).status_code == 201
        booked.append(iso(api.now()))
    return booked


def _amounts(r: Any) -> list[int]:
    assert r.status_code == 200, r.text
    return [tx["amount_fen"] for tx in r.json()["items"]]


def test_D2_ledger_transactions_filtered_by_period(api: Any) -> None:
    first, second, third = _three_days(api)
    url = "/v1/ledger/transactions"
    assert _amounts(api.get(url, params={"at_after": second})) == [100_003, 100_002]  # inclusive
    assert _amounts(api.get(url, params={"at_before": second})) == [100_001]  # exclusive
    assert _amounts(api.get(url, params={"at_after": first, "at_before": third})) == [100_002, 100_001]
    one = api.get(url, params={"account": "merchant:mA:deposit", "at_after": second, "at_before": third})
    assert _amounts(one) == [100_002]
    assert one.json()["balance_fen"] == sum(TOP_UPS)  # the account's balance, whatever the period
    paged = api.get(url, params={"at_after": first, "limit": 2})
    assert _amounts(paged) == [100_003, 100_002] and paged.json()["next_cursor"]
    rest = api.get(url, params={"at_after": first, "limit": 2, "cursor": paged.json()["next_cursor"]})
    assert _amounts(rest) == [100_001] and rest.json()["next_cursor"] is None
    # a merchant's own view takes the same filters
    later = (api.now() + timedelta(seconds=1)).isoformat()
    assert _amounts(api.get(url, params={"at_after": later}, who="merchant_a")) == []


@pytest.mark.parametrize("params", [
    {"at_after": "yesterday"}, {"at_before": "2026-03-01"}, {"at_after": "2026-03-01T10:00:00"},
    {"at_after": "2026-03-02T00:00:00Z", "at_before": "2026-03-01T00:00:00Z"},
    {"at_after": "2026-03-02T00:00:00Z", "at_before": "2026-03-02T00:00:00Z"},
])
def test_D2_a_bad_period_is_422(api: Any, params: dict[str, str]) -> None:
    assert api.post("/v1/merchants/mA/deposit/top-ups", {"amount_fen": 5000}).status_code == 201
    r = api.get("/v1/ledger/transactions", params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    if "at_before" in params and "at_after" in params:
        assert r.json()["rule"] == "D2" and "start before it ends" in r.json()["detail"]
