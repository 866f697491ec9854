"""Errors of the service layer (the domain's refusals are ``aftersales.domain.errors.DomainError``)."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    title = "Bad request"
    rule: str | None = None

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class NotFound(ServiceError):
    """Unknown id, or an id of another tenant (T2: never reveal that it exists)."""

    status = 404
    title = "Not found"

    def __init__(self, kind: str, ident: str) -> None:
        # The id is not echoed: an answer to another tenant carries none of its ids (API.md, T2).
        self.kind, self.ident = kind, ident
        super().__init__(f"{kind} not found")


class Unauthorized(ServiceError):
    status = 401
    title = "Unauthorized"


class Forbidden(ServiceError):
    status = 403
    title = "Forbidden"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


class Invalid(ServiceError):
    status = 422
    title = "Invalid request"


def require_version(what: str, current: int, if_match: int | None) -> None:
    """API.md: an action sent with ``If-Match: <version>`` applies only to that version of the resource; a stale one
    is 409. The one place this is decided (cases, complaints, dispute paths)."""
    if if_match is not None and if_match != current:
        raise Conflict(f"the {what} is at version {current}, not {if_match} (If-Match): reload it and try again")
