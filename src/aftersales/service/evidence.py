"""Evidence files on a case or a complaint (D3, K2 "evidence (order, screenshots, chat)").

A file is accepted by what it IS (its magic bytes), never by the name or content type the client claims, and only
up to ``Settings.max_evidence_bytes``. The bytes go to the content-addressed store before the row is committed: a
row never points at a missing file (a failed transaction at worst leaves an unreferenced file, which is harmless).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

from aftersales.domain.messages import N_
from aftersales.store import evidence_repo as repo
from aftersales.store.evidence_store import EvidenceStore

from . import subjects
from .context import Context, Principal, UnitOfWork, read, run
from .errors import Invalid, NotFound, ServiceError

#: What may be attached: images and PDF, recognised by their first bytes.
MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "application/pdf")
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif", "application/pdf": "pdf"}


class EvidenceTooLarge(ServiceError):
    status = 413
    title = N_("Payload too large")
    rule = "D3"


class UnsupportedEvidence(Invalid):
    rule = "D3"


def sniff(data: bytes) -> str | None:
    """The media type the bytes really are (one of :data:`MEDIA_TYPES`), or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def clean_filename(name: str | None, media_type: str) -> str:
    """The client's file name kept for the record: its last path segment, printable, at most 255 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in unicodedata.normalize("NFC", base) if ch.isprintable() and ch not in "\"'")
    return base.strip()[:255] or f"evidence.{EXTENSIONS[media_type]}"


def check(data: bytes, max_bytes: int) -> str:
    """Refuse an empty, oversized or unrecognised file (before anything is stored); return its media type."""
    if len(data) > max_bytes:
        raise EvidenceTooLarge("evidence files are limited to {limit} bytes", limit=max_bytes)
    if not data:
        raise UnsupportedEvidence("the evidence file is empty")
    media_type = sniff(data)
    if media_type is None:
        raise UnsupportedEvidence("evidence must be a JPEG, PNG, WebP or GIF image or a PDF document "
                                  "(recognised by its content, not its name)")
    return media_type


def view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "subject": row.subject, "subject_id": row.subject_id, "sha256": row.sha256,
            "size_bytes": row.size_bytes, "media_type": row.media_type, "filename": row.filename, "note": row.note,
            "uploaded_by": {"actor": row.uploaded_by, "id": row.uploaded_by_id}, "at": row.at.isoformat()}


def attach(ctx: Context, store: EvidenceStore, who: Principal, kind: str, subject_id: str, *, data: bytes,
           filename: str | None, note: str | None, max_bytes: int) -> dict[str, Any]:
    """Attach a file to a case or complaint the caller is a party to (or as the platform)."""
    who.require("platform", "merchant", "buyer")
    media_type = check(data, max_bytes)
    name = clean_filename(filename, media_type)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        subject = subjects.load(uow, who, kind, subject_id)
        digest = store.put(data)  # idempotent: a retried transaction stores nothing new
        actor, actor_id = subjects.party(who)
        values = {"id": subjects.new_id("ev"), "subject": subject.kind, "subject_id": subject.id, "sha256": digest,
                  "size_bytes": len(data), "media_type": media_type, "filename": name, "note": note,
                  "uploaded_by": actor, "uploaded_by_id": actor_id, "at": uow.now}
        return view(repo.add(uow.conn, values))

    return run(ctx, cmd)


def rows(uow: UnitOfWork, kind: str, subject_id: str, *, after: str | None = None, limit: int | None = None) -> list[Any]:
    return repo.rows(uow.conn, kind, subject_id, after=after, limit=limit)


def list_evidence(ctx: Context, who: Principal, kind: str, subject_id: str, *, cursor: str | None, limit: int) -> dict[str, Any]:
    """The evidence of a case or complaint, oldest first (metadata; the bytes are downloaded one by one)."""
    who.require("platform", "merchant", "buyer")
    start = subjects.after(cursor)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        subject = subjects.load(uow, who, kind, subject_id)
        return subjects.page(rows(uow, subject.kind, subject.id, after=start, limit=limit), limit, view)

    return read(ctx, q)


def download(ctx: Context, store: EvidenceStore, who: Principal, kind: str, subject_id: str,
             evidence_id: str) -> tuple[dict[str, Any], bytes]:
    """One evidence file and its metadata; only for the parties and the platform (others: 404)."""
    who.require("platform", "merchant", "buyer")

    def q(uow: UnitOfWork) -> Any:
        subject = subjects.load(uow, who, kind, subject_id)
        row = repo.one(uow.conn, subject.kind, subject.id, evidence_id)
        if row is None:
            raise NotFound("evidence", evidence_id)
        return row

    row = read(ctx, q)
    with store.open(row.sha256) as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != row.sha256:  # the file on disk was altered: never serve it as the evidence
        raise RuntimeError(f"evidence file {row.sha256} does not match its hash")
    return view(row), data
