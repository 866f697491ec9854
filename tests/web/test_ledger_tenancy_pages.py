"""D2 + T2 in the platform console: the ledger filtered by an account shows that account's transactions only — the
owner columns are compared by equality, so ``m_apparel`` is not ``m-apparel`` nor ``M-APPAREL``."""

from __future__ import annotations

from typing import Any

from webhelpers import browser, make_user, sign_in

TENANTS = {"m_apparel": 100_001, "m-apparel": 100_002, "M-APPAREL": 100_003}


def test_D2_T2_the_console_ledger_of_a_look_alike_merchant_shows_only_its_own_transactions(api: Any) -> None:
    for mid, amount in TENANTS.items():
        assert api.post("/v1/merchants", {"id": mid, "name": f"Shop {mid}"}).status_code == 201
        assert api.post(f"/v1/merchants/{mid}/deposit/top-ups", {"amount_fen": amount}).status_code == 201
    make_user(api, "pat", role="platform_agent")
    web = browser(api)
    assert sign_in(web, "pat").status_code == 303
    for mid, amount in TENANTS.items():
        r = web.get("/app/platform/ledger", params={"account": f"merchant:{mid}:deposit"})
        assert r.status_code == 200, r.text
        assert f"{amount / 100:,.2f}" in r.text
        for other, other_amount in TENANTS.items():
            if other != mid:
                assert f"merchant:{other}:" not in r.text and f"{other_amount / 100:,.2f}" not in r.text, (mid, other)
    assert web.get("/app/platform/ledger", params={"account": "merchant:m-apparel:outlet:deposit"}).status_code == 422
