"""F2 in the platform console: parked automatic actions listed with why they failed, and a Retry button."""

from __future__ import annotations

import re
from typing import Any

import pytest
from test_platform_pages import agent, order
from webhelpers import browser, csrf_of, make_user, sign_in

from aftersales.domain import cases as dcases
from aftersales.domain.errors import RuleViolation
from aftersales.store.timers import MAX_ATTEMPTS


def _parked_case(api: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A refund-only case whose automatic approval (M1) fails until it is parked."""
    order(api, "o1")
    r = api.post("/v1/cases", {"order_id": "o1", "type": "refund_only", "reason": "quality_problem"}, who="buyer_x")
    assert r.status_code == 201, r.text

    def failing(case: Any, order: Any, timer: Any, policy: Any) -> Any:
        raise RuleViolation("E10", "Everything paid for this order has already been refunded.")

    monkeypatch.setitem(dcases._AUTO_HANDLERS, dcases.Auto.AUTO_APPROVE, failing)
    api.advance(48 * 3600)
    for _ in range(MAX_ATTEMPTS - 1):
        api.advance(3 * 3600)
    assert api.get("/v1/automatic-actions/stuck").json()["total"] == 1
    return str(r.json()["id"])


def test_F2_the_console_lists_stuck_actions_and_retries_one(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    original = dcases._AUTO_HANDLERS[dcases.Auto.AUTO_APPROVE]
    cid = _parked_case(api, monkeypatch)
    web = agent(api)
    page = web.get("/app/platform/automatic-actions")
    assert page.status_code == 200
    assert f'href="/app/platform/cases/{cid}"' in page.text
    assert "E10: Everything paid for this order has already been refunded." in page.text
    m = re.search(r'action="/app/platform/automatic-actions/(\d+)/retry"', page.text)
    assert m, "no Retry button"
    # Without the CSRF token nothing happens.
    r = web.post(f"/app/platform/automatic-actions/{m.group(1)}/retry", data={}, follow_redirects=False)
    assert r.status_code in (400, 403)
    assert api.get("/v1/automatic-actions/stuck").json()["total"] == 1

    monkeypatch.setitem(dcases._AUTO_HANDLERS, dcases.Auto.AUTO_APPROVE, original)  # the cause is fixed
    r = web.post(f"/app/platform/automatic-actions/{m.group(1)}/retry", data={"csrf_token": csrf_of(page.text)},
                 follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/app/platform/automatic-actions"
    after = web.get("/app/platform/automatic-actions").text
    assert "tried again on the next pass" in after and "No automatic action is stuck." in after
    assert api.advance(0)["fired"] == 1
    assert api.get(f"/v1/cases/{cid}").json()["close_reason"] == "refunded"
    # Retrying again: nothing parked under that id any more.
    assert web.post(f"/app/platform/automatic-actions/{m.group(1)}/retry",
                    data={"csrf_token": csrf_of(after)}, follow_redirects=False).status_code == 404


def test_F2_the_stuck_page_is_for_platform_staff_only(api: Any) -> None:
    make_user(api, "mia", role="merchant_agent", merchant="mA")
    web = browser(api)
    assert sign_in(web, "mia").status_code == 303
    assert web.get("/app/platform/automatic-actions").status_code == 404
