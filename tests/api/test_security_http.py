"""Safe defaults over HTTP, on SQLite and PostgreSQL: crafted cursors are refused as problem+json on every list
endpoint, OPTIONS and 405 carry a correct Allow, the documentation loads nothing from a CDN, and production sends
HSTS and Secure cookies."""

from __future__ import annotations

import base64
import re

import pytest
from fastapi.testclient import TestClient
from helpers import create_order, open_case

from aftersales.api.app import create_app


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


#: Cursors no server issued: a number beyond BIGINT, a non-ASCII digit ("²".isdigit() is True, int("²") fails),
#: each as it is and base64-encoded, NUL, garbage.
CRAFTED = ["99999999999999999999", "²", b64("²"), b64("-1"), b64("\x00"), b64("a b"), "!!!", "%00", "a" * 300,
           b64("2026-13-45T99:00:00|c"), b64("|")]
#: Lists paged by integer ids also refuse a well-formed number beyond BIGINT (SQLite cannot even bind it).
NUMERIC = {"/v1/cases/{case}/events", "/v1/cases/{case}/messages", "/v1/complaints/{complaint}/events",
           "/v1/complaints/{complaint}/messages"}


@pytest.fixture
def world(api):
    create_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "no_reason")
    complaint = api.post("/v1/complaints", {"channel": "in_app_chat", "category": "after_sales_not_handled",
                                            "description": "The shop ignores me.", "order_id": "o1"}, who="buyer_x")
    assert complaint.status_code == 201, complaint.text
    hook = api.post("/v1/webhooks", {"url": "https://hooks.example/in"}, who="merchant_a")
    assert hook.status_code == 201, hook.text
    return {"case": case["id"], "complaint": complaint.json()["id"], "hook": hook.json()["id"]}


LISTS = ["/v1/cases", "/v1/cases?sort=deadline", "/v1/cases/{case}/events", "/v1/cases/{case}/messages", "/v1/cases/{case}/evidence",
         "/v1/complaints", "/v1/complaints/{complaint}/events", "/v1/complaints/{complaint}/messages",
         "/v1/complaints/{complaint}/evidence", "/v1/ledger/transactions", "/v1/webhooks", "/v1/webhooks/{hook}/deliveries"]


@pytest.mark.parametrize("path", LISTS)
def test_crafted_cursors_are_problems_never_server_errors(api, world, path):
    url = path.format(**world)
    for cursor in CRAFTED + ([b64("99999999999999999999"), b64("9223372036854775808")] if path in NUMERIC else []):
        sep = "&" if "?" in url else "?"
        r = api.client.get(f"{url}{sep}cursor={cursor}", headers=api.h("platform"))
        assert r.status_code in (400, 422), (url, cursor, r.status_code, r.text[:200])
        assert r.headers["content-type"] == "application/problem+json", (url, cursor)
    assert api.get(url).status_code == 200


@pytest.mark.parametrize(("path", "allow"), [
    ("/v1/cases", "GET, OPTIONS, POST"),
    ("/v1/cases/c1/approve", "OPTIONS, POST"),
    ("/v1/webhooks/wh_1", "DELETE, GET, OPTIONS"),
    ("/v1/categories/fresh", "OPTIONS, PUT"),
    ("/healthz", "GET, OPTIONS"),
    ("/app/static/app.css", "GET, HEAD, OPTIONS"),
])
def test_options_and_405_answer_every_method_of_the_path(api, path, allow):
    r = api.client.options(path)
    assert r.status_code == 204 and r.headers["allow"] == allow and r.content == b""
    wrong = api.client.patch(path)
    assert wrong.status_code == 405 and wrong.headers["allow"] == allow


def test_options_on_an_unknown_path_is_404(api):
    assert api.client.options("/v1/nothing-here").status_code == 404


def test_docs_and_redoc_load_nothing_from_another_origin(api):
    for page in ("/docs", "/redoc"):
        r = api.client.get(page)
        assert r.status_code == 200 and "default-src 'none'" in r.headers["content-security-policy"]
        urls = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert urls and all(u.startswith("/docs-static/") for u in urls), urls
        assert "cdn" not in r.text.lower() and "googleapis" not in r.text
        for u in urls:
            assert api.client.get(u).status_code == 200, u


SECRET = "q3Vd9-LxT0pZr7hYkW2nBf5sJc8aUeGm4oRi1tXyQvE"


def test_production_sends_hsts_and_secure_cookies(database, ctx):
    settings = database.settings(env="production", clock="real", secret_key=SECRET, record_secret=SECRET[::-1],
                                bootstrap_platform_key=None)
    with TestClient(create_app(settings, ctx)) as client:
        r = client.get("/app/login")
        assert r.status_code == 200
        assert r.headers["strict-transport-security"].startswith("max-age=")
        cookies = r.headers.get_list("set-cookie")
        assert cookies and all("; Secure" in c for c in cookies)
        assert client.get("/healthz").headers["strict-transport-security"]


def test_development_sends_no_hsts(api):
    assert "strict-transport-security" not in api.client.get("/healthz").headers
