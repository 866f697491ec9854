"""Files the server hands out — evidence (D3, K2) and exported records (D3) — for the API and the workbench alike:
the evidence store of the application, and responses that are always downloads, never rendered by this origin."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request, Response

from aftersales.config import Settings
from aftersales.service import evidence
from aftersales.store.evidence_store import EvidenceStore, LocalEvidenceStore

_PRIVATE = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}


def evidence_store(request: Request) -> EvidenceStore:
    """The application's evidence store (content-addressed files under ``<data_dir>/evidence``), made once."""
    store: EvidenceStore | None = getattr(request.app.state, "evidence_store", None)
    if store is None:
        settings: Settings = request.app.state.settings
        store = LocalEvidenceStore(settings.data_dir / "evidence")
        request.app.state.evidence_store = store
    return store


def attachment(name: str, fallback: str) -> str:
    """``Content-Disposition: attachment`` with an ASCII fallback name and the real one as RFC 5987 ``filename*``."""
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def evidence_response(meta: dict[str, Any], data: bytes) -> Response:
    """An evidence file as a download with its media type; its sha256 is the ETag."""
    fallback = f"{meta['id']}.{evidence.EXTENSIONS[meta['media_type']]}"
    return Response(data, media_type=meta["media_type"], headers={
        "Content-Disposition": attachment(meta["filename"], fallback), "ETag": f"\"{meta['sha256']}\"", **_PRIVATE})


def record_response(data: bytes, name: str) -> Response:
    """An exported record file (format aftersales-record; ``aftersales verify`` checks it) as a download."""
    return Response(data, media_type="application/json", headers={"Content-Disposition": attachment(name, name), **_PRIVATE})


def csv_response(text: str, name: str) -> Response:
    """A CSV report (the what-if replay's, issue 15) as a download."""
    return Response(text.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": attachment(name, name), **_PRIVATE})
