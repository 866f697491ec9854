"""D2 + T2: ledger tenancy by structure, on SQLite and PostgreSQL.

Look-alike tenants — ``m_apparel`` and ``m-apparel`` (``_`` is a LIKE wildcard), ``M-APPAREL`` (SQLite's LIKE ignores
case) — each move money, and every ledger listing and export shows each only its own: the entries' owner columns are
compared by equality. An id with ``:`` (``m-apparel:outlet``, which would render as ``merchant:m-apparel:outlet:…``)
is refused at creation, naming the field.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import problem

from aftersales.domain.errors import InvalidInput
from aftersales.service import setup
from aftersales.service.context import PLATFORM

PAID_AT = "2026-03-01T01:00:00+00:00"
#: merchant → (its buyer, its price in fen: every amount differs, so that a stray transaction is recognisable)
TENANTS = {"m_apparel": ("b_1", 1111), "m-apparel": ("b-1", 2222), "M-APPAREL": ("B-1", 3333)}
TOP_UP = {"m_apparel": 100_001, "m-apparel": 100_002, "M-APPAREL": 100_003}


def _order(api: Any, oid: str, merchant: str, buyer: str, price: int) -> dict[str, Any]:
    return {"id": oid, "merchant_id": merchant, "buyer_id": buyer, "paid_at": PAID_AT, "shipping_fee_fen": 0,
            "items": [{"sku": "s1", "title": "Coat", "category": "apparel", "quantity": 1, "unit_price_fen": price}]}


def _tenants(api: Any) -> dict[str, str]:
    """The three look-alike merchants with keys, an order each, a refund on it (a case) and a top-up; → case ids."""
    cases = {}
    for n, (mid, (buyer, price)) in enumerate(TENANTS.items()):
        assert api.post("/v1/merchants", {"id": mid, "name": f"Shop {n}"}).status_code == 201
        api.key(f"m{n}", "merchant", mid)
        api.key(f"b{n}", "buyer", buyer)
        assert api.post("/v1/orders", _order(api, f"o{n}", mid, buyer, price), who=f"m{n}").status_code == 201
        r = api.post("/v1/cases", {"order_id": f"o{n}", "type": "refund_only", "reason": "no_reason"}, who=f"b{n}")
        assert r.status_code == 201, r.text
        cases[mid] = r.json()["id"]
        assert api.post(f"/v1/cases/{cases[mid]}/approve", who=f"m{n}").status_code == 200
        r = api.post(f"/v1/merchants/{mid}/deposit/top-ups", {"amount_fen": TOP_UP[mid]}, who=f"m{n}")
        assert r.status_code == 201, r.text
    return cases


def _all_pages(api: Any, who: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = api.get("/v1/ledger/transactions", who=who, params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


def _owners(items: list[dict[str, Any]]) -> set[str]:
    """The owners (``merchant:<id>``, ``buyer:<id>``) of every non-platform entry of these transactions."""
    return {e["account"].rsplit(":", 1)[0] for tx in items for e in tx["entries"] if not e["account"].startswith("platform:")}


def test_D2_T2_look_alike_merchants_and_buyers_each_list_only_their_own_money(api: Any) -> None:
    _tenants(api)
    for n, (mid, (buyer, price)) in enumerate(TENANTS.items()):
        mine = _all_pages(api, f"m{n}")
        # the payment, the refund and the top-up — nobody else's
        assert sorted(tx["kind"] for tx in mine) == ["deposit_top_up", "payment", "refund"], (mid, mine)
        assert _owners(mine) == {f"merchant:{mid}", f"buyer:{buyer}"}, mid
        assert {tx["amount_fen"] for tx in mine} == {price, TOP_UP[mid]}
        theirs = _all_pages(api, f"b{n}")
        assert sorted(tx["kind"] for tx in theirs) == ["refund"] and _owners(theirs) == {f"merchant:{mid}", f"buyer:{buyer}"}
        for account, balance in ((f"merchant:{mid}:sales", 0), (f"merchant:{mid}:deposit", TOP_UP[mid])):
            page = api.get("/v1/ledger/transactions", who=f"m{n}", params={"account": account}).json()
            assert page["balance_fen"] == balance and _owners(page["items"]) <= {f"merchant:{mid}", f"buyer:{buyer}"}
            # the platform's filter by account is equality too
            assert _all_pages(api, "platform", account=account) == [tx for tx in mine if any(e["account"] == account for e in tx["entries"])]
        deposit = api.get(f"/v1/merchants/{mid}/deposit", who=f"m{n}").json()
        assert deposit["balance_fen"] == TOP_UP[mid]
        for other in TENANTS:
            if other != mid:  # another tenant's account is unknown (T2: the 404 of a missing one)
                problem(api.get("/v1/ledger/transactions", who=f"m{n}", params={"account": f"merchant:{other}:sales"}), 404)
                problem(api.get(f"/v1/merchants/{other}/deposit", who=f"m{n}"), 404)
    assert len(_all_pages(api, "platform")) == 9


def test_D3_T2_each_case_record_exports_only_its_own_ledger_transactions(api: Any) -> None:
    cases = _tenants(api)
    for n, (mid, (buyer, price)) in enumerate(TENANTS.items()):
        r = api.get(f"/v1/cases/{cases[mid]}/record", who=f"m{n}")
        assert r.status_code == 200, r.text
        doc = json.loads(r.content)
        ledger = [item for item in json.dumps(doc).split('"account": "')[1:]]
        owners = {a.split('"', 1)[0].rsplit(":", 1)[0] for a in ledger}
        assert owners == {f"merchant:{mid}", f"buyer:{buyer}"}, (mid, owners)
        assert str(price) in r.text


def test_T2_an_id_with_a_colon_or_outside_the_alphabet_is_refused_naming_the_field(api: Any) -> None:
    for bad in ("m-apparel:outlet", "m apparel", "m%", "-m", "x" * 65, "中"):
        body = problem(api.post("/v1/merchants", {"id": bad, "name": "Outlet"}), 422)
        assert "id" in body["detail"], body
    assert api.get("/v1/merchants/m-apparel:outlet").status_code in (404, 422)
    problem(api.post("/v1/api-keys", {"role": "buyer", "subject_id": "b:1"}), 422)
    for field in ("id", "merchant_id", "buyer_id"):
        body = _order(api, "o-colon", "mA", "bX", 100)
        body[field] = "mA:sales"
        assert field in problem(api.post("/v1/orders", body), 422)["detail"]
    # the ids of the demo and of the tests are all inside the alphabet
    for ok in ("m_apparel", "m-apparel", "M-APPAREL", "g-mango-01", "o.1", "x" * 64):
        assert api.post("/v1/merchants", {"id": ok, "name": "Shop"}).status_code == 201, ok
    problem(api.get("/v1/ledger/transactions", params={"account": "merchant:mA:outlet:sales"}), 422)


def test_T2_the_services_refuse_such_ids_too_for_the_cli_and_the_demo(ctx: Any) -> None:
    for call in (lambda: setup.create_merchant(ctx, PLATFORM, id="m-apparel:outlet", name="Outlet", return_address=None),
                 lambda: setup.create_api_key(ctx, None, role="buyer", subject_id="b:1")):
        with pytest.raises(InvalidInput) as err:
            call()
        assert err.value.rule == "T2"
