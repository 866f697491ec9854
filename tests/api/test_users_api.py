"""Staff users through the API (README "Workbench accounts"), on SQLite and PostgreSQL: the platform lists everyone,
a merchant its own shop's staff; the platform disables (every session of theirs stops working at once, and they
cannot sign in) and enables them again; refusals are problem+json and change nothing."""

from __future__ import annotations

import re
from typing import Any

from aftersales.service import users

PASSWORD = "correct horse battery"
PROBLEM = "application/problem+json"


def _user(api: Any, username: str, role: str = "merchant_agent", merchant: str | None = "mA") -> str:
    body: dict[str, Any] = {"username": username, "password": PASSWORD, "role": role}
    if merchant is not None:
        body["merchant_id"] = merchant
    r = api.post("/v1/users", body)
    assert r.status_code == 201, r.text
    assert r.json()["disabled_at"] is None
    return str(r.json()["id"])


def _login(api: Any, username: str) -> Any:
    """Post the workbench's login form (with the form's CSRF token); the TestClient keeps the session cookie."""
    api.client.cookies.clear()
    form = api.client.get("/app/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf, "no CSRF field on the login page"
    return api.client.post("/app/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf.group(1)},
                           follow_redirects=False)


def _sign_in(api: Any, username: str) -> None:
    r = _login(api, username)
    assert r.status_code == 303 and "as_session" in api.client.cookies, r.text


def _signed_in(api: Any) -> bool:
    r = api.client.get("/app/queue", follow_redirects=False)
    assert r.status_code in (200, 303), r.text
    return r.status_code == 200


def test_the_platform_lists_every_staff_user_and_a_merchant_only_its_own(api: Any) -> None:
    _user(api, "anna.a")
    _user(api, "boris.b", merchant="mB")
    _user(api, "carla.a", role="merchant_admin")
    _user(api, "pat", role="platform_agent", merchant=None)
    r = api.get("/v1/users")
    assert r.status_code == 200, r.text
    page = r.json()
    assert [u["username"] for u in page["items"]] == ["anna.a", "boris.b", "carla.a", "pat"]
    assert page["next_cursor"] is None
    assert set(page["items"][0]) == {"id", "username", "display_name", "role", "merchant_id", "created_at", "disabled_at"}
    assert PASSWORD not in r.text and "argon2" not in r.text
    # the platform filters on a shop; pages of one, by username, until the end
    assert [u["username"] for u in api.get("/v1/users", params={"merchant_id": "mA"}).json()["items"]] == ["anna.a", "carla.a"]
    seen, cursor = [], None
    while True:
        chunk = api.get("/v1/users", params={"limit": 1, **({"cursor": cursor} if cursor else {})}).json()
        seen += [u["username"] for u in chunk["items"]]
        cursor = chunk["next_cursor"]
        if cursor is None:
            break
    assert seen == ["anna.a", "boris.b", "carla.a", "pat"]
    # a merchant: its own shop's staff (the ids a case can be assigned to), another shop's is an empty page
    assert [u["username"] for u in api.get("/v1/users", who="merchant_a").json()["items"]] == ["anna.a", "carla.a"]
    assert [u["username"] for u in api.get("/v1/users", who="merchant_b").json()["items"]] == ["boris.b"]
    assert api.get("/v1/users", who="merchant_b", params={"merchant_id": "mA"}).json() == {"items": [], "next_cursor": None}
    # buyers and callers without a key: refused
    assert api.get("/v1/users", who="buyer_x").status_code == 403
    assert api.get("/v1/users", who="anonymous").status_code == 401


def test_a_disabled_users_sessions_stop_working_and_enabling_lets_them_sign_in_again(api: Any) -> None:
    uid = _user(api, "anna.a")
    _sign_in(api, "anna.a")
    assert _signed_in(api)
    assert [s["username"] for s in api.get("/v1/sessions", params={"user_id": uid}).json()["items"]] == ["anna.a"]

    r = api.post(f"/v1/users/{uid}/disable")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == uid and r.json()["disabled_at"] == api.now().isoformat()
    assert not _signed_in(api)  # the very session in the browser is signed out on its next request
    assert api.get("/v1/sessions", params={"user_id": uid}).json()["items"] == []
    # the login answers as for a wrong password (the page says nothing about the account)
    refused = _login(api, "anna.a")
    assert refused.status_code == 401 and users.GENERIC_LOGIN_ERROR in refused.text
    listed = api.get("/v1/users").json()["items"]
    assert listed[0]["disabled_at"] == r.json()["disabled_at"]
    # disabling again changes nothing (the first instant stays)
    api.advance(60)
    assert api.post(f"/v1/users/{uid}/disable").json()["disabled_at"] == r.json()["disabled_at"]

    enabled = api.post(f"/v1/users/{uid}/enable")
    assert enabled.status_code == 200 and enabled.json()["disabled_at"] is None
    _sign_in(api, "anna.a")
    assert _signed_in(api)


def test_refusals_are_problems_and_change_nothing(api: Any) -> None:
    uid = _user(api, "anna.a")
    for who, status in (("merchant_a", 403), ("merchant_b", 403), ("buyer_x", 403), ("anonymous", 401)):
        for verb in ("disable", "enable"):
            r = api.post(f"/v1/users/{uid}/{verb}", who=who)
            assert r.status_code == status, (who, verb, r.text)
            assert r.headers["content-type"].startswith(PROBLEM) and r.json()["status"] == status
    unknown = api.post("/v1/users/u_0000000000000000/disable")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith(PROBLEM)
    bad = api.post("/v1/users/not%20an%20id/disable")
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(PROBLEM)
    assert api.get("/v1/users", params={"limit": 0}).status_code == 422
    assert api.get("/v1/users", params={"cursor": "a b"}).status_code == 422
    assert api.get("/v1/users").json()["items"][0]["disabled_at"] is None  # nothing changed


def test_the_language_of_a_refusal_follows_accept_language(api: Any) -> None:
    r = api.client.post("/v1/users/u_0000000000000000/disable",
                        headers={**api.h("platform"), "Accept-Language": "zh-CN"})
    assert r.status_code == 404 and r.json()["type"].endswith("not-found")
    assert r.json()["detail"] != api.post("/v1/users/u_0000000000000000/disable").json()["detail"]


# --- passwords: reset by the platform or the user's shop, changed by the user ----------------------------------
NEW = "a brand new passphrase"


def _change(api: Any, username: str, current: str, new: str, headers: dict[str, str] | None = None) -> Any:
    return api.client.post("/v1/password-changes", json={"username": username, "current_password": current,
                                                         "new_password": new}, headers=headers or {})


def _login_with(api: Any, username: str, password: str) -> int:
    api.client.cookies.clear()
    form = api.client.get("/app/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf
    r = api.client.post("/app/login", data={"username": username, "password": password, "csrf_token": csrf.group(1)},
                        follow_redirects=False)
    return int(r.status_code)


def test_a_reset_gives_a_new_password_once_and_signs_the_user_out(api: Any) -> None:
    uid = _user(api, "anna.a")
    _sign_in(api, "anna.a")
    assert _signed_in(api)
    r = api.post(f"/v1/users/{uid}/reset-password")
    assert r.status_code == 200, r.text
    fresh = r.json()["password"]
    assert r.json()["id"] == uid and len(fresh) >= 20 and r.headers["cache-control"] == "no-store"
    assert not _signed_in(api)  # the session in the browser ended with the reset
    assert api.get("/v1/sessions", params={"user_id": uid}).json()["items"] == []
    assert _login_with(api, "anna.a", PASSWORD) == 401  # the old password is gone
    assert _login_with(api, "anna.a", fresh) == 303
    # the shop resets its own staff's password (the platform's service decides, as on the console)
    again = api.post(f"/v1/users/{uid}/reset-password", who="merchant_a")
    assert again.status_code == 200 and again.json()["password"] not in (None, fresh)


def test_a_replayed_reset_never_carries_the_password_and_the_record_keeps_none(api: Any) -> None:
    from sqlalchemy import select

    from aftersales.store import tables as t

    uid = _user(api, "anna.a")
    headers = {"Idempotency-Key": "reset-anna-1"}
    first = api.post(f"/v1/users/{uid}/reset-password", headers=headers)
    assert first.status_code == 200, first.text
    fresh = first.json()["password"]
    replay = api.post(f"/v1/users/{uid}/reset-password", headers=headers)
    assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["password"] is None and replay.json()["id"] == uid
    assert set(replay.json()["redacted"]["sha256"]) == {"password"}
    assert fresh not in replay.text
    with api.client.app.state.ctx.engine.connect() as conn:
        stored = [r.response for r in conn.execute(select(t.idempotency))]
    assert stored and all(fresh not in (s or "") for s in stored)
    assert _login_with(api, "anna.a", fresh) == 303  # the replay reset nothing: the first password still works


def test_who_may_reset_a_password(api: Any) -> None:
    of_a = _user(api, "anna.a")
    of_b = _user(api, "boris.b", merchant="mB")
    agent = _user(api, "pat", role="platform_agent", merchant=None)
    for who, target, status in (("merchant_b", of_a, 404), ("merchant_a", of_b, 404), ("merchant_a", agent, 404),
                                ("buyer_x", of_a, 403), ("anonymous", of_a, 401)):
        r = api.post(f"/v1/users/{target}/reset-password", who=who)
        assert r.status_code == status, (who, target, r.text)
        assert r.headers["content-type"].startswith(PROBLEM) and "password" not in r.json()
    assert api.post("/v1/users/u_0000000000000000/reset-password").status_code == 404
    # nobody's password changed: each still signs in with the first one
    for name in ("anna.a", "boris.b", "pat"):
        assert _login_with(api, name, PASSWORD) == 303, name


def test_a_user_changes_their_own_password_and_every_session_ends(api: Any) -> None:
    uid = _user(api, "anna.a")
    _sign_in(api, "anna.a")
    r = _change(api, "anna.a", PASSWORD, NEW)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == uid and "password" not in r.json() and NEW not in r.text
    assert not _signed_in(api)
    assert _login_with(api, "anna.a", PASSWORD) == 401
    assert _login_with(api, "anna.a", NEW) == 303


def test_a_refused_password_change_says_nothing_and_changes_nothing(api: Any) -> None:
    uid = _user(api, "anna.a")
    wrong = _change(api, "anna.a", "not the password", NEW)
    unknown = _change(api, "nobody", PASSWORD, NEW)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == users.GENERIC_LOGIN_ERROR
    short = _change(api, "anna.a", PASSWORD, "short")
    assert short.status_code == 422 and short.json()["errors"][0]["field"].endswith("new_password")
    same = _change(api, "anna.a", PASSWORD, PASSWORD)
    assert same.status_code == 422 and same.headers["content-type"].startswith(PROBLEM)
    assert api.post(f"/v1/users/{uid}/disable").status_code == 200
    disabled = _change(api, "anna.a", PASSWORD, NEW)
    assert disabled.status_code == 401 and disabled.json()["detail"] == users.GENERIC_LOGIN_ERROR
    assert api.post(f"/v1/users/{uid}/enable").status_code == 200
    assert _login_with(api, "anna.a", PASSWORD) == 303  # the first password still works


def test_a_password_change_refuses_an_idempotency_key_and_stores_nothing(api: Any) -> None:
    from sqlalchemy import func, select

    from aftersales.store import tables as t

    _user(api, "anna.a")
    table = t.idempotency
    with api.client.app.state.ctx.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(table)).scalar_one()
    for headers in ({"Idempotency-Key": "change-1"}, {"Idempotency-Key": "change-1", **api.h("platform")}):
        r = _change(api, "anna.a", PASSWORD, NEW, headers=headers)
        assert r.status_code == 422 and r.json()["type"].endswith("/idempotency-secret"), r.text
    with api.client.app.state.ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(table)).scalar_one() == before
    assert _login_with(api, "anna.a", PASSWORD) == 303  # refused before anything was done


def test_creating_a_user_under_an_idempotency_key_keeps_no_plain_digest_of_the_password(api: Any) -> None:
    """The record's digest of the request is an HMAC under the server's secret: the SHA-256 of the body (which holds
    the password a person chose) is nowhere in the table, and the same request still replays, another still refuses."""
    import hashlib
    import json

    from sqlalchemy import select

    from aftersales.store import tables as t

    body = {"username": "ming.w", "password": PASSWORD, "role": "merchant_agent", "merchant_id": "mA"}
    headers = {"Idempotency-Key": "create-ming-1"}
    first = api.post("/v1/users", body, headers=headers)
    assert first.status_code == 201, first.text
    replay = api.post("/v1/users", body, headers=headers)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    other = api.post("/v1/users", {**body, "password": "another long passphrase"}, headers=headers)
    assert other.status_code == 422
    with api.client.app.state.ctx.engine.connect() as conn:
        hashes = [r.body_hash for r in conn.execute(select(t.idempotency.c.body_hash))]
    plain = {hashlib.sha256(b"POST /v1/users\n" + json.dumps(body, separators=sep).encode()).hexdigest()
             for sep in ((",", ":"), (", ", ": "))}
    assert hashes and not plain & set(hashes) and all(len(h) == 64 for h in hashes)
