"""The console's what-if replay (issue 15): "Replay a period…" on a draft, a page that polls the progress while the
worker runs the job, then the report — counts by kind, shop, category and rule, differing cases with both timelines,
the CSV — in the reader's language; platform agents only, CSRF on the form, bad dates said and nothing queued."""

from __future__ import annotations

import html
import re
from typing import Any

from tests.api.helpers import days, delivered_order, problem, try_open
from webhelpers import browser, csrf_of, make_user, sign_in

from aftersales.service import replay_jobs
from aftersales.service.context import Context


def agent(api: Any, username: str = "pat", role: str = "platform_agent", merchant: str | None = None) -> Any:
    make_user(api, username, role=role, merchant=merchant)
    web = browser(api)
    assert sign_in(web, username).status_code == 303
    return web


def _draft(api: Any, **changes: Any) -> dict[str, Any]:
    current = api.get("/v1/policy").json()
    body = {k: v for k, v in current.items() if k not in ("version", "effective_at", "draft_id")}
    r = api.put("/v1/policy", {**body, **changes, "reason": "longer no-reason window"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_E4_replay_page_polls_while_running_then_shows_the_report(api: Any, ctx: Context) -> None:
    delivered_order(api, "o-d8")
    api.advance(days(8))
    problem(try_open(api, "o-d8", "return_refund", "no_reason"), 422, "E4")  # day 8: outside 7 days, inside 10
    d = _draft(api, no_reason_days=10)
    web = agent(api)
    page = web.get("/app/platform/policy")
    url = "/app/platform/policy/replays"
    assert "Replay a period…" in page.text and f'action="{url}"' in page.text
    assert f'name="draft_id" value="{d["id"]}"' in page.text
    token = csrf_of(page.text)

    period = {"draft_id": d["id"], "from": "2020-01-01", "to": "2030-01-01"}
    assert web.post(url, data=period, follow_redirects=False).status_code == 403
    bad = web.post(url, data={**period, "csrf_token": token, "from": "2030-01-01", "to": "2020-01-01"})
    assert bad.status_code == 422 and "to must come after from" in html.unescape(bad.text)
    assert replay_jobs.run_next(ctx) == 0  # nothing queued

    r = web.post(url, data={**period, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    page_url = r.headers["location"]
    job_id = page_url.rsplit("/", 1)[1]
    waiting = web.get(page_url)
    assert waiting.status_code == 200
    assert f'hx-get="/app/platform/policy/replays/{job_id}/progress"' in waiting.text and 'hx-trigger="every 2s"' in waiting.text
    assert "waiting for the worker" in waiting.text

    assert replay_jobs.run_next(ctx) == 1  # the worker's step
    fragment = web.get(f"{page_url}/progress")
    assert fragment.status_code == 200 and "hx-trigger" not in fragment.text  # done: the polling stops
    done = web.get(page_url).text
    text = html.unescape(done)
    report = api.get(f"/v1/policy/replays/{job_id}").json()["report"]
    assert "hx-trigger" not in done and "eligibility changed" in text
    assert f"Cases that differ under the draft: {report['differing_cases']}." in text
    for title in ("By kind", "By rule", "By shop", "By category"):
        assert title in text
    assert "<code>E4</code>" in done and "<code>mA</code>" in done and "<code>apparel</code>" in done
    assert "Under the version in force" in text and "Under the draft" in text
    assert "<code>skipped open</code>" in done and "<code>opened</code>" in done  # both timelines side by side
    csv_link = f"/app/platform/policy/replays/{job_id}/report.csv"
    assert csv_link in done
    got = web.get(csv_link)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert got.text == api.get(f"/v1/policy/replays/{job_id}/report.csv").text and "o-d8" in got.text

    zh = web.get(page_url, headers={"Accept-Language": "zh-CN"}).text
    es = html.unescape(web.get(page_url, headers={"Accept-Language": "es-ES"}).text)
    assert "按规则" in zh and "Por regla" in es
    # The differences' instants in the platform zone and the reader's language (T0); the CSV keeps RFC 3339.
    deadlines = [x for s in report["samples"] for x in s["differences"] if x["kind"] == "deadlines_changed"]
    assert deadlines and re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", deadlines[0]["after"])
    for page_text in (text, html.unescape(zh), es):
        assert _differences(page_text) and not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", _differences(page_text))
    assert "(UTC+08:00)" in _differences(text) and "年" in _differences(html.unescape(zh))
    assert re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", got.text)


def _differences(page: str) -> str:
    """The text of the differences' lists (before → after) of a replay page."""
    return " ".join(re.findall(r'<ul class="small">(.*?)</ul>', page, flags=re.S))


def test_T0_replay_pages_are_for_platform_agents_only(api: Any) -> None:
    d = _draft(api, no_reason_days=10)
    job = api.post(f"/v1/policy/drafts/{d['id']}/replays", {"from": "2020-01-01", "to": "2030-01-01"}).json()
    web = agent(api, "mia", role="merchant_agent", merchant="mA")
    for path in (f"/app/platform/policy/replays/{job['id']}", f"/app/platform/policy/replays/{job['id']}/progress",
                 f"/app/platform/policy/replays/{job['id']}/report.csv"):
        assert web.get(path).status_code == 404
    assert agent(api).get("/app/platform/policy/replays/rj_nosuch").status_code == 404
