"""ASGI middleware: a body size limit, and Idempotency-Key on every POST (API.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from fastapi import Request
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param

from aftersales import i18n
from aftersales.domain.messages import N_, Msg
from aftersales.service.context import IDEMPOTENCY_CLAIM, Answer, Context, IdempotencyClaim, Principal
from aftersales.store import idempotency as store

from .responses import Lean

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: A key is never taken again before this (a retry with another body is 422 until then); the worker removes records
#: from ``store.idempotency.KEEP`` (24 h) on (API.md: keys live at least 24 h).
KEY_TTL = timedelta(hours=48)
#: A request still unanswered after this long was abandoned (the server died while handling it).
IN_FLIGHT_TTL = timedelta(minutes=2)
#: D3 evidence uploads: the only requests allowed a larger body (``upload_limit``); every other keeps ``limit``.
UPLOAD_PATHS = re.compile(r"^/(v1|app)/(cases|complaints)/[^/]+/evidence$"  # /app: the workbench's upload forms
                          r"|^/app/buyer/cases/[^/]+/evidence$|^/app/orders/[^/]+/cases$")  # the buyer's (with a photo)
#: Room for the multipart framing and the optional note around an evidence file of the largest allowed size.
UPLOAD_OVERHEAD = 64 * 1024


def limit_for(scope: Scope, limit: int, upload_limit: int | None) -> int:
    if upload_limit is not None and scope["method"] == "POST" and UPLOAD_PATHS.match(scope["path"]):
        return upload_limit
    return limit


def _multipart_boundary(headers: dict[bytes, bytes]) -> bytes | None:
    ctype = headers.get(b"content-type", b"")
    match = re.match(rb'^multipart/form-data;.*\bboundary="?([^";]+)"?', ctype, re.IGNORECASE)
    return match.group(1) if match else None


def _problem(status: int, title: str, detail: str, kind: str, scope: Scope, **params: Any) -> tuple[int, bytes]:
    """A problem+json body whose ``title`` and ``detail`` (msgids, ``detail`` with ``params``) are in the language of
    the request's ``Accept-Language``; ``type`` comes from ``kind`` and never changes."""
    header = dict(scope["headers"]).get(b"accept-language", b"").decode("latin-1")
    lang = i18n.negotiate(header)
    body = {"type": f"https://aftersales.dev/problems/{kind}", "title": i18n.translate(title, lang), "status": status,
            "detail": i18n.render(Msg(detail, params), lang)}
    return status, json.dumps(body).encode()


def _too_large(scope: Scope, limit: int) -> tuple[int, bytes]:
    return _problem(413, N_("Payload too large"), N_("request bodies are limited to {limit} bytes"), "too-large", scope, limit=limit)


async def _send_problem(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413 before the application reads them."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int | None = None) -> None:
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = limit_for(scope, self.limit, self.upload_limit)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            status, body = _too_large(scope, limit)
            return await _send_problem(send, status, body)
        if length is None:  # a streamed (chunked) body declares no length: count it before the application reads it
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > limit:
                    status, body = _too_large(scope, limit)
                    return await _send_problem(send, status, body)
                if not message.get("more_body"):
                    break
            receive = replay_body(b"".join(chunks), receive)
        await self.app(scope, receive, send)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over an already read body once, then defers to the server's."""
    done = False

    async def replay() -> Message:
        nonlocal done
        if done:
            return await receive()
        done = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


#: Fields of an answer that hand out a secret once (API key creation and rotation, webhook subscriptions, buyers'
#: portal links), each recognised by the shape of what we issue: the idempotency record never keeps them in clear.
SECRET_FIELDS: dict[str, re.Pattern[str]] = {
    "key": re.compile(r"^as_[pmb]_"),  # API keys (service/setup.py)
    "secret": re.compile(r"^whsec_"),  # webhook signing secrets (service/webhooks.py)
    "path": re.compile(r"[?&]token="),  # buyers' portal links (service/users.py)
    "url": re.compile(r"[?&]token="),
    "token": re.compile(r"."),
    "password": re.compile(r"."),  # a staff user's new password after a reset (service/users.py)
}
#: Requests whose body carries a password (a staff user's own password change): no idempotency record may keep
#: them, not even as the body's digest (a fast hash of a password can be guessed offline), so an Idempotency-Key on
#: them is refused before anything is read or claimed.
SECRET_REQUESTS = re.compile(r"^/v1/password-changes$")
REDACTED_NOTE = ("This is a replay (Idempotent-Replayed: true) of a response that carried a secret. A secret is shown "
                 "once: it was not stored, so its fields are null here; `redacted` gives the SHA-256 of each.")


def stored_form(content_type: str, body: bytes) -> str:
    """The body as the idempotency record keeps it: unchanged, unless it carries a secret (:data:`SECRET_FIELDS`):
    then each secret is null, and ``redacted`` lists their SHA-256 digests with :data:`REDACTED_NOTE`."""
    text = body.decode("utf-8", "replace")
    if not content_type.startswith("application/json"):
        return text
    try:
        data = json.loads(text)
    except ValueError:
        return text
    digests: dict[str, str] = {}

    def scrub(value: Any, where: str) -> Any:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for name, item in value.items():
                pattern = SECRET_FIELDS.get(name)
                if pattern is not None and isinstance(item, str) and pattern.search(item):
                    digests[where + name] = hashlib.sha256(item.encode()).hexdigest()
                    out[name] = None
                else:
                    out[name] = scrub(item, f"{where}{name}.")
            return out
        if isinstance(value, list):
            return [scrub(item, f"{where}{i}.") for i, item in enumerate(value)]
        return value

    clean = scrub(data, "")
    if not digests:
        return text
    if isinstance(clean, dict):
        clean["redacted"] = {"note": REDACTED_NOTE, "sha256": digests}
    return json.dumps(clean, ensure_ascii=False, separators=(",", ":"))


def route_answer(route: APIRoute) -> Callable[[object], Answer | None] | None:
    """How FastAPI answers ``route`` with a result (its status, response model and JSON), so that a commit can record
    the answer with the effect. Best effort: the middleware checks the record against what was sent."""
    how: Lean | None = getattr(route.endpoint, "lean", None)
    if how is not None:  # the route sends its result serialised once (api/responses.py): record those very bytes

        def lean_answer(result: object) -> Answer | None:
            try:
                body = how.dumps(result)
            except Exception:  # the route answers (or fails) on its own; the middleware records what it sent
                return None
            return Answer(how.status, "application/json", body, stored_form("application/json", body))

        return lean_answer
    field = route.response_field
    if field is None or not isinstance(route.response_class, DefaultPlaceholder) or not hasattr(field, "serialize_json"):
        return None
    status = route.status_code or 200

    def answer(result: object) -> Answer | None:
        try:
            value, errors = field.validate(result, {}, loc=("response",))
            if errors:
                return None
            body = field.serialize_json(value, include=route.response_model_include, exclude=route.response_model_exclude,
                                        by_alias=route.response_model_by_alias,
                                        exclude_unset=route.response_model_exclude_unset,
                                        exclude_defaults=route.response_model_exclude_defaults,
                                        exclude_none=route.response_model_exclude_none)
        except Exception:  # the route answers (or fails) on its own; the middleware records what it sent
            return None
        return Answer(status, "application/json", body, stored_form("application/json", body))

    return answer


async def bind_answer(request: Request) -> None:
    """An application-wide dependency: once a request under an Idempotency-Key is routed, its commits can record
    the route's answer (:class:`IdempotencyClaim`)."""
    claim = IDEMPOTENCY_CLAIM.get()
    route = request.scope.get("route")
    if claim is not None and claim.answer is None and isinstance(route, APIRoute):
        claim.answer = route_answer(route)


def bearer_key(authorization: str | None) -> str | None:
    """The API key of an ``Authorization`` header, read as FastAPI's HTTPBearer reads it (scheme in any case, any
    spaces around the key): ``Bearer k``, ``bearer k`` and ``BEARER  k`` are one key."""
    scheme, param = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer":
        return None
    return param.strip() or None


Authenticate = Callable[[Any, str | None], Awaitable[Principal]]


def _recorded(claim: IdempotencyClaim, captured: dict[str, Any]) -> bool:
    """The commit of the request's effect recorded this very answer (status and bytes): nothing left to write."""
    recorded = claim.recorded
    return recorded is not None and recorded.status == captured["status"] and recorded.body == b"".join(captured["body"])


class Idempotency:
    """Same key + same request → the first response again; same key + another request → 422 (API.md).

    Only for an authenticated caller: the key is scoped by the principal the API key resolves to (``Principal.key``),
    and a request without a valid key goes on to its 401 without touching the idempotency table. The answer is
    recorded before it is sent — by the commit of the request's effect when there is one (:class:`IdempotencyClaim`),
    else here — so a retry that arrives as soon as the answer has left replays it."""

    def __init__(self, app: ASGIApp, ctx: Context, limit: int, authenticate: Authenticate,
                 in_flight: timedelta = IN_FLIGHT_TTL, upload_limit: int | None = None, digest_key: bytes = b"") -> None:
        self.app, self.ctx, self.limit, self.in_flight, self.upload_limit = app, ctx, limit, in_flight, upload_limit
        #: The request's digest is an HMAC-SHA256 under the server's secret (AFTERSALES_SECRET_KEY): a body that
        #: carries a password a person chose (POST /v1/users) cannot be guessed back from the stored digest by
        #: anyone who reads the table without the secret, as a plain SHA-256 of it could be.
        self.digest_key = digest_key
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key")
        if key is None:
            return await self.app(scope, receive, send)
        if SECRET_REQUESTS.match(scope["path"]):
            status, out = _problem(422, N_("Idempotency-Key not accepted"),
                                   N_("this request carries a password, which is never stored; send it without "
                                      "Idempotency-Key"), "idempotency-secret", scope)
            return await _send_problem(send, status, out)
        chunks = []
        size = 0
        limit = limit_for(scope, self.limit, self.upload_limit)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                status, body = _too_large(scope, limit)
                return await _send_problem(send, status, body)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            principal = await self.authenticate(scope["app"].state, bearer_key(headers.get(b"authorization", b"").decode("latin-1")))
        except Exception:  # no valid key: the route answers 401 (or the error it meets); nothing is claimed
            return await self.app(scope, replay, send)
        if len(key) > 200 or not key.strip() or b"\x00" in key:
            status, out = _problem(422, N_("Invalid Idempotency-Key"), N_("Idempotency-Key must be 1–200 characters"), "validation", scope)
            return await _send_problem(send, status, out)
        path = scope["path"]
        boundary = _multipart_boundary(headers)
        # A retried upload is the same request even if the client drew a new multipart boundary for it.
        hashed = body.replace(b"--" + boundary, b"--<boundary>") if boundary else body
        digest = hmac.new(self.digest_key, scope["method"].encode() + b" " + path.encode() + b"\n" + hashed,
                          hashlib.sha256).hexdigest()
        claim = IdempotencyClaim(principal.key, key.decode("latin-1"), datetime.now(UTC))
        holder = await anyio.to_thread.run_sync(self._claim, claim, path, digest)
        if holder is not None:
            return await self._answer_holder(send, scope, holder, path, digest, claim.created_at)

        captured: dict[str, Any] = {"status": 500, "ctype": "application/json", "body": [], "messages": []}

        async def capture(message: Message) -> None:  # held back until the answer is recorded
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        captured["ctype"] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            captured["messages"].append(message)

        token = IDEMPOTENCY_CLAIM.set(claim)
        try:
            await self.app(scope, replay, capture)
        finally:
            IDEMPOTENCY_CLAIM.reset(token)
            if not _recorded(claim, captured):  # else the commit of the effect recorded it: no thread hop for nothing
                await anyio.to_thread.run_sync(self._finish, claim, captured)
        for message in captured["messages"]:
            await send(message)

    async def _answer_holder(self, send: Send, scope: Scope, row: Any, path: str, digest: str, now: datetime) -> None:
        if row.body_hash != digest or row.path != path:
            s, out = _problem(422, N_("Idempotency-Key reused"), N_("this Idempotency-Key was used with a different request"),
                              "idempotency-mismatch", scope)
            return await _send_problem(send, s, out)
        if row.status_code is None or (row.status_code == 0 and row.created_at >= now - self.in_flight):
            s, out = _problem(409, N_("Request in progress"), N_("a request with this Idempotency-Key is still being processed"),
                              "idempotency-in-progress", scope)
            return await _send_problem(send, s, out)
        if row.status_code == 0:  # applied, then the server died before recording the response
            s, out = _problem(409, N_("Request applied, response lost"),
                              N_("a request with this Idempotency-Key was applied, but the server stopped before recording its "
                                 "response; read the resource to see the outcome"), "idempotency-applied", scope)
            return await _send_problem(send, s, out)
        data = (row.response or "").encode()
        await send({"type": "http.response.start", "status": row.status_code,
                    "headers": [(b"content-type", (row.content_type or "application/json").encode()),
                                (b"content-length", str(len(data)).encode()), (b"idempotent-replayed", b"true")]})
        await send({"type": "http.response.body", "body": data})

    def _writer(self) -> AbstractContextManager[object]:
        """SQLite: queue with this process's other writers (Context.writer_lock); PostgreSQL: nothing to wait for."""
        return self.ctx.writer_lock or nullcontext()

    def _claim(self, claim: IdempotencyClaim, path: str, digest: str) -> Any:
        now = claim.created_at
        with self._writer(), self.ctx.engine.connect() as conn:
            return store.claim(conn, principal=claim.principal, key=claim.key, path=path, body_hash=digest, now=now,
                               expired_before=now - KEY_TTL, abandoned_before=now - self.in_flight)

    def _finish(self, claim: IdempotencyClaim, captured: dict[str, Any]) -> None:
        """Record (or, after a failure, release) the answer the commit of the effect did not record."""
        status, body = captured["status"], b"".join(captured["body"])
        recorded = claim.recorded
        with self._writer(), self.ctx.engine.begin() as conn:
            if status >= 500:  # not a result: let the client retry with the same key, unless it was applied
                if recorded is None:
                    store.release(conn, claim.principal, claim.key, claim.created_at)
            else:
                store.record(conn, claim.principal, claim.key, claim.created_at, status=status,
                             content_type=captured["ctype"], response=stored_form(captured["ctype"], body))

