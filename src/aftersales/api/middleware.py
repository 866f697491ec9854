"""ASGI middleware: a body size limit, and Idempotency-Key on every POST (API.md)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from aftersales.service.context import IDEMPOTENCY_CLAIM, Context
from aftersales.store import tables as t

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
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


def _problem(status: int, title: str, detail: str, kind: str) -> tuple[int, bytes]:
    body = {"type": f"https://aftersales.dev/problems/{kind}", "title": title, "status": status, "detail": detail}
    return status, json.dumps(body).encode()


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
            status, body = _problem(413, "Payload too large", f"request bodies are limited to {limit} bytes", "too-large")
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
                    status, body = _problem(413, "Payload too large", f"request bodies are limited to {limit} bytes", "too-large")
                    return await _send_problem(send, status, body)
                if not message.get("more_body"):
                    break
            receive = _replay(b"".join(chunks), receive)
        await self.app(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over an already read body once, then defers to the server's."""
    done = False

    async def replay() -> Message:
        nonlocal done
        if done:
            return await receive()
        done = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class Idempotency:
    """Same key + same request → the first response again; same key + another request → 422 (API.md)."""

    def __init__(self, app: ASGIApp, ctx: Context, limit: int, in_flight: timedelta = IN_FLIGHT_TTL,
                 upload_limit: int | None = None) -> None:
        self.app, self.ctx, self.limit, self.in_flight, self.upload_limit = app, ctx, limit, in_flight, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key")
        if key is None:
            return await self.app(scope, receive, send)
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
                status, body = _problem(413, "Payload too large", f"request bodies are limited to {limit} bytes", "too-large")
                return await _send_problem(send, status, body)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if len(key) > 200 or not key.strip() or b"\x00" in key:
            status, out = _problem(422, "Invalid Idempotency-Key", "Idempotency-Key must be 1–200 characters", "validation")
            return await _send_problem(send, status, out)
        principal = hashlib.sha256(headers.get(b"authorization", b"")).hexdigest()[:64]
        path = scope["path"]
        boundary = _multipart_boundary(headers)
        # A retried upload is the same request even if the client drew a new multipart boundary for it.
        hashed = body.replace(b"--" + boundary, b"--<boundary>") if boundary else body
        digest = hashlib.sha256(scope["method"].encode() + b" " + path.encode() + b"\n" + hashed).hexdigest()
        skey = key.decode("latin-1")

        claimed_at = datetime.now(UTC)
        stored = await anyio.to_thread.run_sync(self._claim, principal, skey, path, digest, claimed_at)
        if stored is not None:
            kind, status, payload, ctype = stored
            if kind == "mismatch":
                s, out = _problem(422, "Idempotency-Key reused", "this Idempotency-Key was used with a different request", "idempotency-mismatch")
                return await _send_problem(send, s, out)
            if kind == "in_progress":
                s, out = _problem(409, "Request in progress", "a request with this Idempotency-Key is still being processed", "idempotency-in-progress")
                return await _send_problem(send, s, out)
            if kind == "applied":
                s, out = _problem(409, "Request applied, response lost",
                                  "a request with this Idempotency-Key was applied, but the server stopped before recording its "
                                  "response; read the resource to see the outcome", "idempotency-applied")
                return await _send_problem(send, s, out)
            data = payload.encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(data)).encode()),
                                    (b"idempotent-replayed", b"true")]})
            await send({"type": "http.response.body", "body": data})
            return

        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        captured: dict[str, Any] = {"status": 500, "ctype": "application/json", "body": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        captured["ctype"] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        # Every commit of this request marks the claim as applied, in the same transaction (UnitOfWork.commit).
        token = IDEMPOTENCY_CLAIM.set((principal, skey, claimed_at))
        try:
            await self.app(scope, replay, capture)
        finally:
            IDEMPOTENCY_CLAIM.reset(token)
            await anyio.to_thread.run_sync(self._finish, principal, skey, captured, claimed_at)

    def _writer(self) -> AbstractContextManager[object]:
        """SQLite: queue with this process's other writers (Context.writer_lock); PostgreSQL: nothing to wait for."""
        return self.ctx.writer_lock or nullcontext()

    def _claim(self, principal: str, key: str, path: str, digest: str, now: datetime) -> tuple[str, int, str, str] | None:
        claim = insert(t.idempotency).values(principal=principal, key=key, method="POST", path=path, body_hash=digest,
                                             created_at=now)
        with self._writer(), self.ctx.engine.connect() as conn:
            # The common case, a new key: one INSERT. Only when the key is taken do we look at the holder.
            try:
                with conn.begin():
                    conn.execute(claim)
                return None
            except IntegrityError:
                pass
            try:
                with conn.begin():
                    # Expired keys, and claims abandoned by a server that died mid-request, can be claimed again.
                    # Only claims that were not applied (status_code 0 marks a commit): a request takes effect once.
                    freed = conn.execute(delete(t.idempotency).where(
                        t.idempotency.c.principal == principal, t.idempotency.c.key == key,
                        (t.idempotency.c.created_at < now - KEY_TTL)
                        | (t.idempotency.c.status_code.is_(None) & (t.idempotency.c.created_at < now - self.in_flight))))
                    if freed.rowcount:
                        conn.execute(claim)
                        return None
            except IntegrityError:
                pass
            with conn.begin():
                row = conn.execute(select(t.idempotency).where(t.idempotency.c.principal == principal, t.idempotency.c.key == key)).first()
        if row is None:
            return ("in_progress", 409, "", "")
        if row.body_hash != digest or row.path != path:
            return ("mismatch", 422, "", "")
        if row.status_code is None or (row.status_code == 0 and row.created_at >= now - self.in_flight):
            return ("in_progress", 409, "", "")
        if row.status_code == 0:  # applied, then the server died before recording the response
            return ("applied", 409, "", "")
        return ("replay", row.status_code, row.response or "", row.content_type or "application/json")

    def _finish(self, principal: str, key: str, captured: dict[str, Any], claimed_at: datetime) -> None:
        # Only this request's own claim (a retry may have taken an abandoned one over).
        where = (t.idempotency.c.principal == principal, t.idempotency.c.key == key, t.idempotency.c.created_at == claimed_at)
        with self._writer(), self.ctx.engine.begin() as conn:
            if captured["status"] >= 500:  # not a result: let the client retry with the same key, unless it was applied
                conn.execute(delete(t.idempotency).where(*where, t.idempotency.c.status_code.is_(None)))
            else:
                conn.execute(update(t.idempotency).where(*where).values(
                    status_code=captured["status"], response=b"".join(captured["body"]).decode("utf-8", "replace"),
                    content_type=captured["ctype"]))
