"""Evidence, messages, dispute paths and the tamper-evident record of cases and complaints (D3, K2, S5).

Every route exists for ``/v1/cases/{case_id}/...`` and ``/v1/complaints/{complaint_id}/...`` alike: the same
service function with the subject kind. Parties and the platform only; anyone else gets the 404 of an unknown id.
"""

import importlib.util
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, File, Form, Path, Query, Request, Response, UploadFile
from pydantic import AfterValidator, BaseModel, Field

from aftersales.config import Settings
from aftersales.domain.messages import N_
from aftersales.service import disputes, evidence, messages, records

from . import schemas as s
from .app import CtxDep, IdempotencyKey, IfMatch, Lang, Who
from .downloads import evidence_response, evidence_store, record_response

router = APIRouter()
P = {"model": s.Problem}
ERRORS: dict[int | str, dict[str, Any]] = {401: P, 403: P, 404: P, 409: P, 422: P}
Cursor = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]*$")]
Limit = Annotated[int, Query(ge=1, le=200)]
NoteText = Annotated[str, Field(min_length=1, max_length=2000, pattern=s.NO_NUL)]


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC instant
        raise ValueError(N_("instant out of range")) from None


Instant = Annotated[s.Instant, AfterValidator(_utc)]


# --- models -------------------------------------------------------------------------------------------------
class Party(BaseModel):
    actor: str
    id: str | None


class EvidenceOut(BaseModel):
    id: str
    subject: str
    subject_id: str
    sha256: str
    size_bytes: int
    media_type: str
    filename: str
    note: str | None
    uploaded_by: Party
    at: str


class EvidencePage(BaseModel):
    items: list[EvidenceOut]
    next_cursor: str | None


class MessageIn(s.Strict):
    body: NoteText
    #: An internal note is seen only by the side that wrote it (merchant staff, or the platform).
    internal: Annotated[bool, Field(strict=True)] = False


class MessageOut(BaseModel):
    id: int
    author: str
    author_id: str | None
    internal: bool
    body: str
    at: str


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class DisputePathIn(s.Strict):
    path: Literal["negotiation", "mediation", "authority_complaint", "arbitration", "lawsuit"]
    started_at: Instant
    #: The consumer organisation, trade association, authority, arbitration commission or court.
    body: s.ShortText | None = None
    note: s.Text | None = None


class DisputeOutcomeIn(s.Strict):
    ended_at: Instant
    outcome: NoteText


class DisputePathOut(BaseModel):
    id: str
    path: str
    started_at: str
    body: str | None
    note: str | None
    recorded_by: Party
    recorded_at: str
    ended_at: str | None
    outcome: str | None
    outcome_by: Party | None
    outcome_recorded_at: str | None
    version: int


class DisputePathPage(BaseModel):
    items: list[DisputePathOut]
    next_cursor: str | None


# --- dependencies -------------------------------------------------------------------------------------------
def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


_RECORD: dict[int | str, dict[str, Any]] = {200: {"description": "The record file (format aftersales-record 1; check it with `aftersales verify FILE`).",
                 "content": {"application/json": {"schema": {"type": "object"}}}}}
_FILE: dict[int | str, dict[str, Any]] = {200: {"description": "The evidence file, served as its recognised media type.",
               "content": {m: {"schema": {"type": "string", "format": "binary"}} for m in evidence.MEDIA_TYPES}}}


# --- routes, once per subject kind --------------------------------------------------------------------------
def _routes(plural: str, kind: str, param: str) -> None:
    Id = Annotated[str, Path(alias=param, min_length=1, max_length=64, pattern=s.ID_PATTERN)]
    base = f"/v1/{plural}/{{{param}}}"
    tags: list[str | Enum] = [f"{kind} records"]

    def upload_evidence(subject_id: Id, ctx: CtxDep, who: Who, request: Request,
                        file: Annotated[UploadFile, File(description="JPEG, PNG, WebP, GIF or PDF (by content).")],
                        note: Annotated[str | None, Form(max_length=2000, pattern=s.NO_NUL)] = None,
                        idempotency_key: IdempotencyKey = None) -> Any:
        limit = _settings(request).max_evidence_bytes
        data = file.file.read(limit + 1)  # one byte more than allowed is enough to refuse
        return evidence.attach(ctx, evidence_store(request), who, kind, subject_id, data=data, filename=file.filename,
                               note=note, max_bytes=limit)

    def list_evidence(subject_id: Id, ctx: CtxDep, who: Who, cursor: Cursor = None, limit: Limit = 50) -> Any:
        return evidence.list_evidence(ctx, who, kind, subject_id, cursor=cursor, limit=limit)

    def download_evidence(subject_id: Id, ctx: CtxDep, who: Who, request: Request,
                          evidence_id: Annotated[str, Path(min_length=1, max_length=40, pattern=s.ID_PATTERN)]) -> Response:
        return evidence_response(*evidence.download(ctx, evidence_store(request), who, kind, subject_id, evidence_id))

    def post_message(subject_id: Id, body: MessageIn, ctx: CtxDep, who: Who, idempotency_key: IdempotencyKey = None) -> Any:
        return messages.post(ctx, who, kind, subject_id, body=body.body, internal=body.internal)

    def list_messages(subject_id: Id, ctx: CtxDep, who: Who, cursor: Cursor = None, limit: Limit = 50) -> Any:
        return messages.list_messages(ctx, who, kind, subject_id, cursor=cursor, limit=limit)

    def start_dispute_path(subject_id: Id, body: DisputePathIn, ctx: CtxDep, who: Who,
                           idempotency_key: IdempotencyKey = None) -> Any:
        return disputes.start(ctx, who, kind, subject_id, path=body.path, started_at=body.started_at, body=body.body,
                              note=body.note)

    def dispute_outcome(subject_id: Id, body: Annotated[DisputeOutcomeIn, Body()], ctx: CtxDep, who: Who, if_match: IfMatch,
                        path_id: Annotated[str, Path(min_length=1, max_length=40, pattern=s.ID_PATTERN)],
                        idempotency_key: IdempotencyKey = None) -> Any:
        return disputes.finish(ctx, who, kind, subject_id, path_id, ended_at=body.ended_at, outcome=body.outcome,
                               if_match=if_match)

    def list_dispute_paths(subject_id: Id, ctx: CtxDep, who: Who) -> Any:
        return disputes.list_paths(ctx, who, kind, subject_id)

    def export_record(subject_id: Id, ctx: CtxDep, who: Who, lang: Lang, request: Request) -> Response:
        secret = _settings(request).record_secret
        if kind == "case":
            data, name = records.case_record(ctx, who, subject_id, secret=secret, lang=lang)
        else:
            data, name = records.complaint_record(ctx, who, subject_id, secret=secret, lang=lang)
        return record_response(data, name)

    upload_errors = {**ERRORS, 413: P}
    add = router.add_api_route
    add(f"{base}/evidence", upload_evidence, methods=["POST"], status_code=201, response_model=EvidenceOut, tags=tags,
        responses=upload_errors, name=f"{kind}_upload_evidence", summary=f"Attach an evidence file to a {kind} (D3, K2)",
        description=f"Upload a photo, video or document to the {kind} (multipart); its type is checked and its SHA-256 kept in the record (D3).")
    add(f"{base}/evidence", list_evidence, methods=["GET"], response_model=EvidencePage, tags=tags, responses=ERRORS,
        name=f"{kind}_list_evidence", summary=f"The evidence of a {kind}",
        description=f"The evidence files of the {kind}: who attached what, when, with each file's hash.")
    add(f"{base}/evidence/{{evidence_id}}", download_evidence, methods=["GET"], response_class=Response, tags=tags,
        responses={**ERRORS, **_FILE}, name=f"{kind}_download_evidence", summary="Download one evidence file",
        description=f"One evidence file of the {kind}, as a download (never rendered inline).")
    add(f"{base}/messages", post_message, methods=["POST"], status_code=201, response_model=MessageOut, tags=tags,
        responses=ERRORS, name=f"{kind}_post_message", summary=f"Post a message or an internal note on a {kind} (S5)",
        description=f"A message to the other parties of the {kind}, or an internal note its author's side alone reads (S5).")
    add(f"{base}/messages", list_messages, methods=["GET"], response_model=MessagePage, tags=tags, responses=ERRORS,
        name=f"{kind}_list_messages", summary=f"The messages of a {kind} the caller may read",
        description=f"The messages of the {kind}, oldest first, without the other sides' internal notes (S5).")
    add(f"{base}/dispute-paths", start_dispute_path, methods=["POST"], status_code=201, response_model=DisputePathOut,
        tags=tags, responses=ERRORS, name=f"{kind}_start_dispute_path", summary="Record a dispute path taken (D3)",
        description=f"Record that a dispute path (mediation, arbitration, court …) was taken on the {kind} (D3).")
    add(f"{base}/dispute-paths/{{path_id}}/outcome", dispute_outcome, methods=["POST"], response_model=DisputePathOut,
        tags=tags, responses=ERRORS, name=f"{kind}_dispute_outcome", summary="Record the end and outcome of a dispute path (D3)",
        description=f"Record when a dispute path of the {kind} ended and with what outcome (D3).")
    add(f"{base}/dispute-paths", list_dispute_paths, methods=["GET"], response_model=DisputePathPage, tags=tags,
        responses=ERRORS, name=f"{kind}_list_dispute_paths", summary=f"The dispute paths of a {kind}",
        description=f"The dispute paths taken on the {kind}, with their outcomes.")
    add(f"{base}/record", export_record, methods=["GET"], response_class=Response, tags=tags, responses={**ERRORS, **_RECORD},
        name=f"{kind}_record", summary=f"Export the tamper-evident record of a {kind} (D3)",
        description=f"The exportable record of the {kind}: its events, messages, evidence hashes and dispute paths, signed so that any change shows (D3).")


_routes("cases", "case", "case_id")
# Complaints (K2) are written alongside; their record routes exist once the complaint service does.
if importlib.util.find_spec("aftersales.service.complaints") is not None:
    _routes("complaints", "complaint", "complaint_id")
