"""D3/K2 evidence files on cases: accepted by content, limited in size, stored once by content, shown only to parties."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from helpers import delivered_order, open_case, problem
from sqlalchemy import func, select

from aftersales.api.app import create_app
from aftersales.store import tables as t

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
FILES = {
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"j" * 40,
    "image/png": PNG,
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"w" * 40,
    "image/gif": b"GIF89a\x01\x00\x01\x00" + b"g" * 40,
    "application/pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"p" * 40,
}


def upload(api: Any, case_id: str, data: bytes, who: str = "buyer_x", name: str = "photo.png",
           ctype: str = "image/png", note: str | None = None, headers: dict[str, str] | None = None,
           client: TestClient | None = None) -> Any:
    form = {"note": note} if note is not None else None
    return (client or api.client).post(f"/v1/cases/{case_id}/evidence", files={"file": (name, data, ctype)}, data=form,
                                       headers={**api.h(who), **(headers or {})})


def a_case(api: Any) -> str:
    delivered_order(api, "o1")
    return open_case(api, "o1", "refund_only", "quality_problem")["id"]


def evidence_rows(ctx: Any) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.evidence)).scalar_one())


def stored_files(data_dir: Path) -> list[Path]:
    root = data_dir / "evidence"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_D3_each_image_type_and_pdf_is_recognised_by_its_content(api: Any) -> None:
    cid = a_case(api)
    for media_type, data in FILES.items():
        # The client's name and content type are ignored: the bytes decide.
        r = upload(api, cid, data, name="whatever.bin", ctype="application/octet-stream", note=f"a {media_type}")
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["media_type"] == media_type and body["size_bytes"] == len(data), body
        assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["note"] == f"a {media_type}"
        assert body["uploaded_by"] == {"actor": "buyer", "id": "bX"} and body["filename"] == "whatever.bin"
    listed = api.get(f"/v1/cases/{cid}/evidence", who="merchant_a").json()
    assert [e["media_type"] for e in listed["items"]] == list(FILES) and listed["next_cursor"] is None


def test_D3_a_file_that_is_not_an_image_or_pdf_is_refused_and_nothing_is_stored(api: Any, ctx: Any, _data_dir: Path) -> None:
    cid = a_case(api)
    for data in (b"<html><script>alert(1)</script></html>", b"MZ\x90\x00 an executable", b""):
        r = upload(api, cid, data, name="photo.png", ctype="image/png")
        problem(r, 422, "D3")
    r = api.client.post(f"/v1/cases/{cid}/evidence", data={"note": "no file"}, headers=api.h("buyer_x"))
    problem(r, 422)
    assert evidence_rows(ctx) == 0 and stored_files(_data_dir) == []


def test_D3_a_file_over_the_size_limit_is_refused_with_413(api: Any, ctx: Any, database: Any, _data_dir: Path) -> None:
    cid = a_case(api)
    small = create_app(database.settings(max_evidence_bytes=2048), ctx)
    with TestClient(small, raise_server_exceptions=False) as client:
        ok = upload(api, cid, PNG + b"\x00" * (2048 - len(PNG)), client=client)
        assert ok.status_code == 201, ok.text
        problem(upload(api, cid, PNG + b"\x00" * (2049 - len(PNG)), client=client), 413, "D3")
        # Far beyond the limit: refused by the body limit before the application reads it.
        problem(upload(api, cid, PNG + b"\x00" * 200_000, client=client), 413)
    assert evidence_rows(ctx) == 1 and len(stored_files(_data_dir)) == 1


def test_D3_uploads_may_exceed_the_general_body_limit_and_other_routes_may_not(api: Any, ctx: Any) -> None:
    cid = a_case(api)
    big = PNG + b"\x00" * 1_500_000  # over max_body_bytes (1,000,000), under the evidence limit (10 MiB)
    r = upload(api, cid, big, headers={"Idempotency-Key": "big-upload"})
    assert r.status_code == 201 and r.json()["size_bytes"] == len(big), r.text
    problem(api.client.post(f"/v1/cases/{cid}/messages", json={"body": "x" * 1_500_000}, headers=api.h("buyer_x")), 413)
    problem(api.client.post("/v1/orders", content=b"{" + b" " * 1_500_000 + b"}",
                            headers={**api.h(), "content-type": "application/json"}), 413)


def test_D3_the_same_bytes_are_stored_once(api: Any, ctx: Any, _data_dir: Path) -> None:
    cid = a_case(api)
    first = upload(api, cid, PNG, who="buyer_x", name="mine.png").json()
    second = upload(api, cid, PNG, who="merchant_a", name="theirs.png").json()
    assert first["id"] != second["id"] and first["sha256"] == second["sha256"]
    files = stored_files(_data_dir)
    assert len(files) == 1 and files[0].name == first["sha256"] and files[0].read_bytes() == PNG
    assert files[0].parent.name == first["sha256"][2:4] and files[0].parent.parent.name == first["sha256"][:2]
    assert evidence_rows(ctx) == 2


def test_D3_an_upload_with_an_idempotency_key_is_applied_once(api: Any, ctx: Any) -> None:
    cid = a_case(api)
    first = upload(api, cid, PNG, headers={"Idempotency-Key": "ev-1"})
    again = upload(api, cid, PNG, headers={"Idempotency-Key": "ev-1"})  # a new multipart boundary, same request
    assert first.status_code == again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    assert first.json() == again.json() and evidence_rows(ctx) == 1
    other = upload(api, cid, FILES["image/gif"], headers={"Idempotency-Key": "ev-1"})
    problem(other, 422)
    assert evidence_rows(ctx) == 1


def test_D3_evidence_is_served_only_to_the_parties_and_the_platform(api: Any) -> None:
    cid = a_case(api)
    ev = upload(api, cid, FILES["application/pdf"], name="收据 receipt.pdf").json()
    url = f"/v1/cases/{cid}/evidence/{ev['id']}"
    for who in ("buyer_x", "merchant_a", "platform"):
        r = api.get(url, who=who)
        assert r.status_code == 200 and r.content == FILES["application/pdf"], r.text
        assert r.headers["content-type"] == "application/pdf"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["etag"] == f"\"{ev['sha256']}\""
        disposition = r.headers["content-disposition"]
        assert disposition.startswith("attachment;") and "filename*=UTF-8''%E6%94%B6%E6%8D%AE%20receipt.pdf" in disposition
    for who in ("buyer_y", "merchant_b"):
        theirs, unknown = api.get(url, who=who), api.get(f"/v1/cases/{cid}/evidence/ev_unknown", who=who)
        assert theirs.status_code == unknown.status_code == 404 and theirs.json() == unknown.json()
        assert api.get(f"/v1/cases/{cid}/evidence", who=who).status_code == 404
        problem(upload(api, cid, PNG, who=who), 404)
    problem(api.get(f"/v1/cases/{cid}/evidence/ev_unknown", who="buyer_x"), 404)
    assert api.client.get(url).status_code == 401
