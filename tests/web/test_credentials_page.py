"""The platform console's credentials page: API keys listed without secrets, revoked and rotated (the new key shown
on that answer only), staff signed out — CSRF on every form, platform agents only."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from webhelpers import browser, csrf_of, make_user, sign_in

from aftersales.store import tables as t


def agent(api: Any, username: str = "pat", role: str = "platform_agent", merchant: str | None = None) -> Any:
    make_user(api, username, role=role, merchant=merchant)
    web = browser(api)
    assert sign_in(web, username).status_code == 303
    return web


def key_id(ctx: Any, key: str) -> str:
    with ctx.engine.connect() as conn:
        return str(conn.execute(select(t.api_keys.c.id).where(
            t.api_keys.c.key_hash == hashlib.sha256(key.encode()).hexdigest())).scalar_one())


def test_the_page_lists_keys_and_staff_without_secrets(api: Any, ctx: Any) -> None:
    web = agent(api)
    page = web.get("/app/platform/credentials")
    assert page.status_code == 200
    for name, key in api.keys.items():
        if name != "platform":  # the bootstrap key is no row
            assert key_id(ctx, key) in page.text
        assert key not in page.text
    assert "pat" in page.text and 'href="/app/platform/credentials"' in page.text


def test_revoke_and_rotate_need_the_csrf_token_and_work_with_it(api: Any, ctx: Any) -> None:
    web = agent(api)
    kid = key_id(ctx, api.keys["buyer_x"])
    assert web.post(f"/app/platform/credentials/keys/{kid}/revoke", data={}, follow_redirects=False).status_code == 403
    token = csrf_of(web.get("/app/platform/credentials").text)
    r = web.post(f"/app/platform/credentials/keys/{kid}/revoke", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert "revoked" in web.get("/app/platform/credentials").text
    assert api.get("/v1/api-keys").json()["items"] and {i["id"]: i for i in api.get("/v1/api-keys").json()["items"]}[kid]["revoked"]

    mid = key_id(ctx, api.keys["merchant_a"])
    rotated = web.post(f"/app/platform/credentials/keys/{mid}/rotate", data={"csrf_token": token})
    assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
    new_key = rotated.text.split("<code>as_m_", 1)[1].split("</code>", 1)[0]
    assert api.client.get("/v1/merchants/mA", headers={"Authorization": f"Bearer as_m_{new_key}"}).status_code == 200
    assert f"as_m_{new_key}" not in web.get("/app/platform/credentials").text  # shown once
    again = web.post(f"/app/platform/credentials/keys/{mid}/rotate", data={"csrf_token": token})
    assert again.status_code == 409  # the old key is revoked: it cannot be rotated twice


def test_signing_a_staff_member_out(api: Any, ctx: Any) -> None:
    web = agent(api)
    victim = agent(api, "mia", role="merchant_agent", merchant="mA")
    assert victim.get("/app/queue", follow_redirects=False).status_code == 200
    sid = hashlib.sha256(victim.cookies["as_session"].encode()).hexdigest()
    page = web.get("/app/platform/credentials")
    assert sid in page.text
    r = web.post(f"/app/platform/credentials/sessions/{sid}/revoke", data={"csrf_token": csrf_of(page.text)},
                 follow_redirects=False)
    assert r.status_code == 303
    assert victim.get("/app/queue", follow_redirects=False).status_code == 303  # back to the login page


def test_merchants_do_not_get_the_page(api: Any) -> None:
    web = agent(api, "mia", role="merchant_agent", merchant="mA")
    assert web.get("/app/platform/credentials").status_code == 404
