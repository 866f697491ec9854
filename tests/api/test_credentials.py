"""Credentials with a life cycle through the API: API keys listed without secrets, revoked (refused within the key
cache's TTL), rotated (the new key shown once, the old one revoked); staff sessions listed and signed out."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select

from aftersales.api.app import API_KEY_CACHE_SECONDS, PrincipalCache
from aftersales.service import users
from aftersales.store import tables as t


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key_id_of(ctx: Any, key: str) -> str:
    with ctx.engine.connect() as conn:
        return str(conn.execute(select(t.api_keys.c.id).where(t.api_keys.c.key_hash == hashlib.sha256(key.encode()).hexdigest())).scalar_one())


def test_the_platform_lists_every_key_without_any_secret(api: Any, ctx: Any) -> None:
    r = api.post("/v1/api-keys", {"role": "merchant", "subject_id": "mA", "label": "till 2"})
    assert r.status_code == 201 and r.json()["label"] == "till 2"
    listed = api.get("/v1/api-keys", params={"limit": 200})
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert len(items) == 5 and listed.json()["next_cursor"] is None
    assert set(items[0]) == {"id", "role", "subject_id", "label", "created_at", "revoked_at", "revoked"}
    for secret in [*api.keys.values(), r.json()["key"]]:
        assert secret not in listed.text and hashlib.sha256(secret.encode()).hexdigest() not in listed.text
    assert {(i["role"], i["subject_id"]) for i in items} == {("merchant", "mA"), ("merchant", "mB"), ("buyer", "bX"),
                                                             ("buyer", "bY")}
    # pages of two, by id, until the end
    seen, cursor = [], None
    while True:
        page = api.get("/v1/api-keys", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(i["id"] for i in items)


def test_a_merchant_lists_and_revokes_only_its_own_keys(api: Any, ctx: Any) -> None:
    own = api.get("/v1/api-keys", who="merchant_a").json()["items"]
    assert [(i["role"], i["subject_id"]) for i in own] == [("merchant", "mA")]
    assert api.get("/v1/api-keys", who="merchant_a", params={"subject_id": "mB"}).json()["items"] == []
    other = key_id_of(ctx, api.keys["merchant_b"])
    assert api.post(f"/v1/api-keys/{other}/revoke", who="merchant_a").status_code == 404
    assert api.post(f"/v1/api-keys/{other}/rotate", who="merchant_a").status_code == 404
    assert api.get("/v1/api-keys", who="buyer_x").status_code == 403
    assert api.get("/v1/merchants/mB", who="merchant_b").status_code == 200  # untouched


def test_a_revoked_key_is_refused_within_the_cache_ttl(api: Any, ctx: Any) -> None:
    clock = FakeClock()
    api.client.app.state.principals = PrincipalCache(ttl=API_KEY_CACHE_SECONDS, clock=clock)
    assert api.get("/v1/merchants/mA", who="merchant_a").status_code == 200  # cached now
    kid = key_id_of(ctx, api.keys["merchant_a"])
    r = api.post(f"/v1/api-keys/{kid}/revoke")
    assert r.status_code == 200 and r.json()["revoked"] is True and r.json()["revoked_at"]
    again = api.post(f"/v1/api-keys/{kid}/revoke")  # revoking twice changes nothing
    assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]
    clock.now += API_KEY_CACHE_SECONDS + 0.01
    assert api.get("/v1/merchants/mA", who="merchant_a").status_code == 401
    listed = {i["id"]: i for i in api.get("/v1/api-keys").json()["items"]}
    assert listed[kid]["revoked"] is True
    assert kid not in {i["id"] for i in api.get("/v1/api-keys", params={"include_revoked": "false"}).json()["items"]}


def test_the_process_that_revokes_a_key_refuses_it_at_once(api: Any, ctx: Any) -> None:
    """B1's key cache: the server process that revoked (or rotated) a key forgets what it resolved at once; only
    the other processes take up to the cache's TTL."""
    api.client.app.state.principals = PrincipalCache(ttl=API_KEY_CACHE_SECONDS, clock=FakeClock())  # time stands still
    assert api.get("/v1/merchants/mA", who="merchant_a").status_code == 200  # cached now
    assert api.post(f"/v1/api-keys/{key_id_of(ctx, api.keys['merchant_a'])}/revoke").status_code == 200
    assert api.get("/v1/merchants/mA", who="merchant_a").status_code == 401
    old = api.keys["merchant_b"]
    assert api.get("/v1/merchants/mB", who="merchant_b").status_code == 200  # cached now
    new = api.post(f"/v1/api-keys/{key_id_of(ctx, old)}/rotate", who="merchant_b").json()["key"]
    assert api.client.get("/v1/merchants/mB", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    assert api.client.get("/v1/merchants/mB", headers={"Authorization": f"Bearer {new}"}).status_code == 200


def test_a_merchant_rotates_its_own_key(api: Any, ctx: Any) -> None:
    old = api.keys["merchant_a"]
    kid = key_id_of(ctx, old)
    r = api.post(f"/v1/api-keys/{kid}/rotate", who="merchant_a")
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["replaces"] == kid and new["role"] == "merchant" and new["subject_id"] == "mA" and new["key"] != old
    api.client.app.state.principals = PrincipalCache(ttl=0)  # as once the old key's cache entry expired
    assert api.client.get("/v1/merchants/mA", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    assert api.client.get("/v1/merchants/mA", headers={"Authorization": f"Bearer {new['key']}"}).status_code == 200
    gone = api.post(f"/v1/api-keys/{kid}/rotate")  # a revoked key is not rotated again
    assert gone.status_code == 409 and gone.headers["content-type"].startswith("application/problem+json")


def test_the_platform_lists_and_signs_out_staff_sessions(api: Any, ctx: Any) -> None:
    assert api.post("/v1/users", {"username": "alice", "password": "a long password 1", "role": "platform_agent"}).status_code == 201
    token = users.login(ctx, "alice", "a long password 1")
    assert users.session(ctx, token) is not None
    page = api.get("/v1/sessions")
    assert page.status_code == 200, page.text
    (item,) = page.json()["items"]
    assert item["username"] == "alice" and item["id"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in page.text
    assert api.get("/v1/sessions", who="merchant_a").status_code == 403
    assert api.post(f"/v1/sessions/{item['id']}/revoke", who="merchant_a").status_code == 403
    assert api.post(f"/v1/sessions/{item['id']}/revoke").status_code == 204
    assert users.session(ctx, token) is None  # signed out at once
    assert api.post(f"/v1/sessions/{item['id']}/revoke").status_code == 404
