"""D3/S5 over HTTP: messages and internal notes, dispute paths, and the exported tamper-evident record."""

from __future__ import annotations

import json
from typing import Any

from helpers import act, delivered_order, hours, open_case, problem

from aftersales.config import DEV_RECORD_SECRET
from aftersales.domain import record

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(48))
HEX = b"0123456789abcdef"


def a_case(api: Any, order_id: str = "o1") -> str:
    delivered_order(api, order_id)
    return open_case(api, order_id, "refund_only", "quality_problem", description="坏了 broken")["id"]


def post(api: Any, path: str, body: Any, who: str, status: int = 201) -> dict[str, Any]:
    r = api.post(path, body, who=who)
    assert r.status_code == status, r.text
    return dict(r.json())


def bodies(api: Any, path: str, who: str) -> list[str]:
    r = api.get(path, who=who)
    assert r.status_code == 200, r.text
    return [m["body"] for m in r.json()["items"]]


# --- messages (S5) ------------------------------------------------------------------------------------------
def test_S5_internal_notes_are_seen_only_by_the_side_that_wrote_them(api: Any) -> None:
    cid = a_case(api)
    url = f"/v1/cases/{cid}/messages"
    post(api, url, {"body": "it arrived broken"}, "buyer_x")
    post(api, url, {"body": "sorry, we will check"}, "merchant_a")
    note = post(api, url, {"body": "staff: the batch was bad", "internal": True}, "merchant_a")
    post(api, url, {"body": "agent: watch this shop", "internal": True}, "platform")
    assert note["internal"] is True and note["author"] == "merchant" and note["author_id"] == "mA"
    public = ["it arrived broken", "sorry, we will check"]
    assert bodies(api, url, "buyer_x") == public
    assert bodies(api, url, "merchant_a") == [*public, "staff: the batch was bad"]
    assert bodies(api, url, "platform") == [*public, "agent: watch this shop"]
    problem(api.post(url, {"body": "secret", "internal": True}, who="buyer_x"), 422)
    for who in ("buyer_y", "merchant_b"):
        problem(api.get(url, who=who), 404)
        problem(api.post(url, {"body": "hi"}, who=who), 404)


def test_S5_messages_are_paged_in_order(api: Any) -> None:
    cid = a_case(api)
    url = f"/v1/cases/{cid}/messages"
    for i in range(5):
        post(api, url, {"body": f"m{i}"}, "buyer_x")
    first = api.get(url, who="merchant_a", params={"limit": 3}).json()
    rest = api.get(url, who="merchant_a", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [m["body"] for m in first["items"] + rest["items"]] == [f"m{i}" for i in range(5)] and rest["next_cursor"] is None


# --- dispute paths (D3) -------------------------------------------------------------------------------------
def test_D3_dispute_paths_are_recorded_with_dates_and_outcome(api: Any) -> None:
    cid = a_case(api)
    url = f"/v1/cases/{cid}/dispute-paths"
    now = api.now()
    started = (now.replace(microsecond=0)).isoformat()
    path = post(api, url, {"path": "mediation", "started_at": started, "body": "Shanghai Consumer Council"}, "buyer_x")
    assert path["recorded_by"] == {"actor": "buyer", "id": "bX"} and path["outcome"] is None and path["version"] == 1
    api.advance(hours(48))
    ended = api.now().isoformat()
    done = post(api, f"{url}/{path['id']}/outcome", {"ended_at": ended, "outcome": "settled: refund 50%"}, "merchant_a", 200)
    assert done["ended_at"] == ended and done["outcome"] == "settled: refund 50%" and done["version"] == 2
    assert done["outcome_by"] == {"actor": "merchant", "id": "mA"}
    post(api, url, {"path": "lawsuit", "started_at": ended, "body": "Xuhui District Court"}, "platform")
    listed = api.get(url, who="buyer_x").json()["items"]
    assert [p["path"] for p in listed] == ["mediation", "lawsuit"]


def test_D3_dispute_path_dates_are_checked(api: Any) -> None:
    cid = a_case(api)
    url = f"/v1/cases/{cid}/dispute-paths"
    now = api.now()
    future = now.replace(year=now.year + 1).isoformat()
    problem(api.post(url, {"path": "arbitration", "started_at": future}, who="buyer_x"), 422, "D3")
    problem(api.post(url, {"path": "duel", "started_at": now.isoformat()}, who="buyer_x"), 422)
    problem(api.post(url, {"path": "arbitration", "started_at": "2026-03-01T00:00:00"}, who="buyer_x"), 422)
    path = post(api, url, {"path": "negotiation", "started_at": now.isoformat()}, "buyer_x")
    outcome = f"{url}/{path['id']}/outcome"
    before = now.replace(year=now.year - 1).isoformat()
    problem(api.post(outcome, {"ended_at": before, "outcome": "x"}, who="buyer_x"), 422, "D3")
    problem(api.post(outcome, {"ended_at": future, "outcome": "x"}, who="buyer_x"), 422, "D3")
    problem(api.post(outcome, {"ended_at": now.isoformat(), "outcome": "x"}, who="buyer_x",
                     headers={"If-Match": "7"}), 409)
    post(api, outcome, {"ended_at": now.isoformat(), "outcome": "agreed"}, "buyer_x", 200)
    problem(api.post(outcome, {"ended_at": now.isoformat(), "outcome": "again"}, who="buyer_x"), 409, "D3")
    problem(api.post(f"{url}/dp_unknown/outcome", {"ended_at": now.isoformat(), "outcome": "x"}, who="buyer_x"), 404)
    other = a_case(api, "o2")
    problem(api.post(f"/v1/cases/{other}/dispute-paths/{path['id']}/outcome", {"ended_at": now.isoformat(), "outcome": "x"},
                     who="buyer_x"), 404)
    problem(api.post(url, {"path": "negotiation", "started_at": now.isoformat()}, who="merchant_b"), 404)


# --- the record (D3) ----------------------------------------------------------------------------------------
def busy_case(api: Any) -> str:
    """A case with events, public and internal messages, an evidence file and a dispute path."""
    cid = a_case(api)
    act(api, cid, "reject", {"reason": "使用痕迹 signs of use"})
    api.client.post(f"/v1/cases/{cid}/evidence", files={"file": ("破损.png", PNG, "image/png")}, data={"note": "the crack"},
                    headers=api.h("buyer_x")).raise_for_status()
    post(api, f"/v1/cases/{cid}/messages", {"body": "请退款 please refund"}, "buyer_x")
    post(api, f"/v1/cases/{cid}/messages", {"body": "staff only", "internal": True}, "merchant_a")
    post(api, f"/v1/cases/{cid}/messages", {"body": "agent only", "internal": True}, "platform")
    post(api, f"/v1/cases/{cid}/dispute-paths", {"path": "negotiation", "started_at": api.now().isoformat()}, "buyer_x")
    return cid


def export(api: Any, cid: str, who: str = "platform") -> bytes:
    r = api.get(f"/v1/cases/{cid}/record", who=who)
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].startswith("attachment;") and r.headers["content-type"] == "application/json"
    return bytes(r.content)


def kinds(data: bytes) -> list[str]:
    return [link["kind"] for link in json.loads(data)["links"]]


def test_D3_the_record_holds_the_order_case_events_messages_evidence_and_dispute_paths(api: Any) -> None:
    cid = busy_case(api)
    data = export(api, cid)
    v = record.verify(data, DEV_RECORD_SECRET)
    assert v.ok and v.signature == "valid" and v.subject == f"case {cid}", v.problems
    doc = json.loads(data)
    assert doc["header"]["subject"] == {"kind": "case", "id": cid} and doc["header"]["exported_by"]["actor"] == "platform"
    ks = kinds(data)
    assert ks[:2] == ["order", "case"] and {"event", "message", "evidence", "dispute_path"} <= set(ks)
    events = [link["item"]["kind"] for link in doc["links"] if link["kind"] == "event"]
    assert "rejected" in events or any("reject" in e for e in events), events
    evidence = next(link["item"] for link in doc["links"] if link["kind"] == "evidence")
    assert evidence["filename"] == "破损.png" and len(evidence["sha256"]) == 64
    messages = [link["item"]["body"] for link in doc["links"] if link["kind"] == "message"]
    assert messages == ["请退款 please refund", "staff only", "agent only"]  # the platform's export is complete
    # A party's export holds what that party can read.
    assert [link["item"]["body"] for link in json.loads(export(api, cid, "merchant_a"))["links"]
            if link["kind"] == "message"] == ["请退款 please refund", "staff only"]
    assert [link["item"]["body"] for link in json.loads(export(api, cid, "buyer_x"))["links"]
            if link["kind"] == "message"] == ["请退款 please refund"]
    for who in ("buyer_y", "merchant_b"):
        theirs, unknown = api.get(f"/v1/cases/{cid}/record", who=who), api.get("/v1/cases/cs_unknown/record", who=who)
        assert theirs.status_code == unknown.status_code == 404 and theirs.json() == unknown.json()


def test_D3_a_change_of_any_byte_of_an_exported_record_is_refused_and_located(api: Any) -> None:
    data = export(api, busy_case(api))
    assert record.verify(data, DEV_RECORD_SECRET).ok
    missed = []
    for pos in range(len(data)):
        replacements = [data[pos] ^ 0x01] + ([HEX[(HEX.index(data[pos]) + 5) % 16]] if data[pos] in HEX else [])
        for new in replacements:
            tampered = bytearray(data)
            tampered[pos] = new
            v = record.verify(bytes(tampered), DEV_RECORD_SECRET)
            if v.ok or not v.problems[0]:
                missed.append(pos)
    assert not missed, f"undetected changes at byte(s) {missed[:10]}"


def test_D3_a_recomputed_chain_without_the_secret_fails_the_signature(api: Any) -> None:
    doc = json.loads(export(api, busy_case(api)))
    items = [(link["kind"], link["item"]) for link in doc["links"]]
    items[1][1]["status"] = "closed"  # the forger's change
    header = {k: v for k, v in doc["header"].items() if k not in ("format", "version")}
    forged = record.serialise(record.build(header, items, "a-guess-at-the-secret"))
    assert record.verify(forged).ok  # a self-consistent chain...
    v = record.verify(forged, DEV_RECORD_SECRET)
    assert not v.ok and v.signature == "invalid"  # ...that the server never signed


def test_D3_a_changed_event_is_named_in_the_verdict(api: Any) -> None:
    data = export(api, busy_case(api))
    doc = json.loads(data)
    index = next(link["index"] for link in doc["links"] if link["kind"] == "event" and link["item"]["kind"] == "opened")
    doc["links"][index]["item"]["actor"] = "platform"
    problems = record.verify(record.serialise(doc), DEV_RECORD_SECRET).problems
    assert problems == [f"link {index} (event 'opened' at {doc['links'][index]['item']['at']}) was changed: "
                        "its content no longer matches its hash"]


# --- complaints (K2) ----------------------------------------------------------------------------------------
def test_K2_D3_a_complaint_has_messages_evidence_dispute_paths_and_a_record(api: Any) -> None:
    delivered_order(api, "o1")
    r = api.post("/v1/complaints", {"order_id": "o1", "channel": "order_button", "category": "product_quality",
                                    "description": "the shop ignores me"}, who="buyer_x")
    assert r.status_code == 201, r.text
    kid = r.json()["id"]
    base = f"/v1/complaints/{kid}"
    post(api, f"{base}/messages", {"body": "still nothing"}, "buyer_x")
    r = api.client.post(f"{base}/evidence", files={"file": ("chat.png", PNG, "image/png")}, headers=api.h("buyer_x"))
    assert r.status_code == 201, r.text
    ev = r.json()
    assert api.get(f"{base}/evidence/{ev['id']}", who="buyer_x").content == PNG
    post(api, f"{base}/dispute-paths", {"path": "authority_complaint", "started_at": api.now().isoformat(), "body": "12315"}, "buyer_x")
    for who in ("buyer_y", "merchant_b"):
        problem(api.get(f"{base}/record", who=who), 404)
        problem(api.get(f"{base}/evidence/{ev['id']}", who=who), 404)
    r = api.get(f"{base}/record", who="buyer_x")
    assert r.status_code == 200, r.text
    v = record.verify(r.content, DEV_RECORD_SECRET)
    assert v.ok and v.subject == f"complaint {kid}", v.problems
    assert {"order", "complaint", "event", "message", "evidence", "dispute_path"} <= set(kinds(r.content))
