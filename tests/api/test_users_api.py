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
