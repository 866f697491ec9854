"""D3: the tamper-evident record — hash chain, canonical file, signature — on a synthetic record (no database)."""

from __future__ import annotations

import json

from aftersales.domain import record

SECRET = "unit-test-record-secret-" + "s" * 16
HEX = b"0123456789abcdef"


def sample() -> bytes:
    items = [
        ("order", {"id": "o1", "paid_fen": 2499, "items": [{"sku": "s1", "title": "苹果 Äpfel", "quantity": 2}]}),
        ("case", {"id": "cs_1", "status": "awaiting_merchant", "description": "坏了 \"broken\"\n\ttab", "refund_fen": None}),
        ("event", {"id": 1, "kind": "opened", "at": "2026-03-01T02:00:00+00:00", "rules": ["E1"], "data": {}}),
        ("event", {"id": 2, "kind": "approved", "at": "2026-03-01T03:00:00+00:00", "rules": ["M1"], "data": {"x": True}}),
        ("message", {"id": 1, "author": "buyer", "internal": False, "body": "你好", "at": "2026-03-01T02:05:00+00:00"}),
        ("evidence", {"id": "ev_1", "sha256": "ab" * 32, "filename": "photo.png", "at": "2026-03-01T02:06:00+00:00"}),
        ("dispute_path", {"id": "dp_1", "path": "mediation", "started_at": "2026-03-01T01:00:00+00:00"}),
    ]
    header = {"subject": {"kind": "case", "id": "cs_1"}, "exported_at": "2026-03-02T00:00:00+00:00",
              "exported_by": {"actor": "platform", "id": None}}
    return record.serialise(record.build(header, items, SECRET))


def variants(byte: int) -> list[int]:
    """Replacements for one byte: a flipped bit, another hex digit (keeps a hash well-formed), JSON whitespace."""
    out = [byte ^ 0x01]
    if byte in HEX:
        out.append(HEX[(HEX.index(byte) + 7) % 16])
    if byte in b" \n":
        out.append(ord("\t"))
    return out


def test_D3_an_untouched_record_verifies_with_and_without_the_secret() -> None:
    data = sample()
    v = record.verify(data, SECRET)
    assert v.ok and v.signature == "valid" and v.links == 7 and v.subject == "case cs_1", v.problems
    unsigned = record.verify(data)
    assert unsigned.ok and unsigned.signature == "not checked"


def test_D3_a_change_of_any_single_byte_is_refused_and_located() -> None:
    data = sample()
    missed = []
    for pos in range(len(data)):
        for new in variants(data[pos]):
            tampered = bytearray(data)
            tampered[pos] = new
            v = record.verify(bytes(tampered), SECRET)
            if v.ok or not all(v.problems):
                missed.append((pos, chr(data[pos]), chr(new)))
    assert not missed, f"{len(missed)} undetected single-byte changes, e.g. {missed[:5]}"


def _doc() -> dict:
    return json.loads(sample())


def test_D3_a_changed_link_is_named_by_index_and_kind() -> None:
    doc = _doc()
    doc["links"][3]["item"]["kind"] = "rejected"
    v = record.verify(record.serialise(doc), SECRET)
    assert v.problems == ["link 3 (event 'rejected' at 2026-03-01T03:00:00+00:00) was changed: its content no longer matches its hash"]


def test_D3_a_changed_hash_breaks_the_chain_there() -> None:
    doc = _doc()
    doc["links"][2]["hash"] = "0" * 64
    v = record.verify(record.serialise(doc), SECRET)
    assert len(v.problems) == 1 and v.problems[0].startswith("the hash of link 2 (event 'opened'"), v.problems


def test_D3_a_changed_header_and_a_wrong_head_are_found() -> None:
    doc = _doc()
    doc["header"]["exported_by"]["actor"] = "buyer"
    assert record.verify(record.serialise(doc), SECRET).problems == ["the header was changed: its content no longer matches its hash"]
    doc = _doc()
    doc["head"] = doc["links"][5]["hash"]
    problems = record.verify(record.serialise(doc), SECRET).problems
    assert problems[0].startswith("the head hash is wrong"), problems


def test_D3_a_removed_or_reordered_link_is_refused() -> None:
    doc = _doc()
    del doc["links"][4]
    assert "links were removed, added or reordered" in record.verify(record.serialise(doc), SECRET).problems[0]


def test_D3_a_recomputed_chain_passes_the_chain_check_but_not_the_signature() -> None:
    """A forger can rebuild every hash after a change, but cannot sign the new head without the server's secret."""
    doc = _doc()
    items = [(link["kind"], link["item"]) for link in doc["links"]]
    items[1][1]["status"] = "closed"
    header = {k: v for k, v in doc["header"].items() if k not in ("format", "version")}
    forged = record.serialise(record.build(header, items, "not-the-server-secret"))
    assert record.verify(forged).ok  # the chain itself is consistent
    v = record.verify(forged, SECRET)
    assert v.signature == "invalid" and not v.ok and "signature does not match" in v.problems[0]


def test_D3_encoding_json_and_canonical_form_errors_say_where() -> None:
    data = sample()
    pos = data.index("苹".encode())
    v = record.verify(data[:pos] + b"\xff" + data[pos + 1:])
    nl = b"\n"
    line, column = data.count(nl, 0, pos) + 1, pos - data.rfind(nl, 0, pos)
    assert v.problems == [f"not valid UTF-8 at byte {pos} (line {line}, column {column})"]
    broken = data.replace(b'"head": ', b'"head" ', 1)
    assert record.verify(broken).problems[0].startswith("not valid JSON at byte 10 (line 2, column 9)")
    reindented = json.dumps(json.loads(data), ensure_ascii=False, indent=2, sort_keys=True).encode() + b"\n"
    v = record.verify(reindented, SECRET)
    assert v.problems == ["the file is not in its canonical form from byte 3 (line 2, column 2): it was edited"]
    duplicate = data.replace(b'"head": ', b'"head": "x", "head": ', 1)
    assert "duplicate key 'head'" in record.verify(duplicate).problems[0]
