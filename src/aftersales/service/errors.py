"""Errors of the service layer (the domain's refusals are ``aftersales.domain.errors.DomainError``).

A service error carries its explanation as a translatable template with named values, like the domain's messages:
``Invalid(N_-extracted "limit must be between 1 and {limit}", limit=200)``. The class names are Babel keywords (the
Makefile's ``catalogs`` target), so the first argument of every ``Invalid(...)``, ``Conflict(...)``, … is extracted
into the catalogs; ``api.problems`` renders ``title`` and ``detail`` in the caller's language (``Accept-Language``).
``detail`` (and ``str(exc)``) is the English text, for logs and the command line.
"""

from __future__ import annotations

from typing import Any, Literal

from aftersales import i18n
from aftersales.domain.messages import N_, Msg


class ServiceError(Exception):
    status = 400
    title = N_("Bad request")
    rule: str | None = None

    def __init__(self, detail: str, /, **params: Any) -> None:
        self.msg = Msg(detail, dict(params))
        self.detail = i18n.render(self.msg, "en") if params else detail
        super().__init__(self.detail)

    def title_in(self, lang: str) -> str:
        return i18n.translate(self.title, lang)

    def detail_in(self, lang: str, tz: str = i18n.DEFAULT_TZ) -> str:
        return i18n.render(self.msg, lang, tz)


#: NotFound's explanation per kind of thing (the English text stays "<kind> not found").
_NOT_FOUND = {
    "account": N_("account not found"),
    "action": N_("action not found"),
    "api key": N_("api key not found"),
    "case": N_("case not found"),
    "category": N_("category not found"),
    "complaint": N_("complaint not found"),
    "dispute path": N_("dispute path not found"),
    "evidence": N_("evidence not found"),
    "figure": N_("figure not found"),
    "group": N_("group not found"),
    "merchant": N_("merchant not found"),
    "order": N_("order not found"),
    "replay": N_("replay not found"),
    "resource": N_("resource not found"),
    "return address": N_("return address not found"),
    "session": N_("session not found"),
    "stuck automatic action": N_("stuck automatic action not found"),
    "webhook": N_("webhook not found"),
    "withdrawal": N_("withdrawal not found"),
}


class NotFound(ServiceError):
    """Unknown id, or an id of another tenant (T2: never reveal that it exists)."""

    status = 404
    title = N_("Not found")

    def __init__(self, kind: str, ident: str) -> None:
        # The id is not echoed: an answer to another tenant carries none of its ids (API.md, T2).
        self.kind, self.ident = kind, ident
        if kind in _NOT_FOUND:
            super().__init__(_NOT_FOUND[kind])
        else:
            super().__init__(N_("{what} not found"), what=kind)


class Unauthorized(ServiceError):
    status = 401
    title = N_("Unauthorized")


class Forbidden(ServiceError):
    status = 403
    title = N_("Forbidden")


class Conflict(ServiceError):
    status = 409
    title = N_("Conflict")


class Invalid(ServiceError):
    status = 422
    title = N_("Invalid request")


Versioned = Literal["case", "complaint", "dispute path", "return address", "order", "group", "withdrawal"]


class StaleVersion(Conflict):
    """409: the action was sent for a version of the resource that is no longer the current one (If-Match). The API
    says so with the versions; a workbench page says it in plain words (:meth:`page_text`)."""

    def __init__(self, what: Versioned, current: int, sent: int) -> None:
        self.what = what
        super().__init__(_STALE[what], current=current, sent=sent)

    def page_text(self, lang: str) -> str:
        return i18n.translate(_STALE_PAGE[self.what], lang)


def require_version(what: Versioned, current: int, if_match: int | None) -> None:
    """API.md: an action sent with ``If-Match: <version>`` applies only to that version of the resource; a stale one
    is 409. The one place this is decided (cases, orders, groups, complaints, dispute paths, return addresses,
    withdrawals)."""
    if if_match is not None and if_match != current:
        raise StaleVersion(what, current, if_match)


#: The stale-version refusal per kind of resource (a translation needs the whole sentence, not "the {what}").
_STALE = {
    "case": N_("the case is at version {current}, not {sent} (If-Match): reload it and try again"),
    "complaint": N_("the complaint is at version {current}, not {sent} (If-Match): reload it and try again"),
    "dispute path": N_("the dispute path is at version {current}, not {sent} (If-Match): reload it and try again"),
    "return address": N_("the return address is at version {current}, not {sent} (If-Match): reload it and try again"),
    "order": N_("the order is at version {current}, not {sent} (If-Match): reload it and try again"),
    "group": N_("the group is at version {current}, not {sent} (If-Match): reload it and try again"),
    "withdrawal": N_("the withdrawal is at version {current}, not {sent} (If-Match): reload it and try again"),
}
#: The same on a workbench page, for a person: no versions, no header names.
_STALE_PAGE = {
    "case": N_("This case changed while you were looking at it — reload the page to see the latest."),
    "complaint": N_("This complaint changed while you were looking at it — reload the page to see the latest."),
    "dispute path": N_("This dispute path changed while you were looking at it — reload the page to see the latest."),
    "return address": N_("This return address changed while you were looking at it — reload the page to see the latest."),
    "order": N_("This order changed while you were looking at it — reload the page to see the latest."),
    "group": N_("This group changed while you were looking at it — reload the page to see the latest."),
    "withdrawal": N_("This withdrawal changed while you were looking at it — reload the page to see the latest."),
}
