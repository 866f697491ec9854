"""Languages, translation and rendering of domain messages (S2, S4; zh-CN, es, en by ``Accept-Language``).

The domain returns :class:`~aftersales.domain.messages.Msg` values: an English gettext msgid with ``{named}``
placeholders and the values to put in them. This module chooses the language (:func:`negotiate`), translates
the msgid through the compiled catalogs under ``aftersales/locales`` (:func:`translate`) and formats the values
for the language (:func:`render`):

* ``datetime`` values are instants, shown in the platform time zone with its UTC offset (T0);
* values of placeholders whose name ends in ``_fen`` are money in fen, shown in yuan (T1);
* nested ``Msg`` values are rendered the same way; ``None`` shows as an em dash;
* a few code-valued placeholders (``status``, ``type``, ``reason``, ``reasons``, ``exclusion``, ``actor``,
  ``action``) show a translated label for the codes listed in :data:`LABELS`; unknown codes show as they are.

:func:`render` never raises on a bad catalog entry or a missing value: it is used by error handlers.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency

from .domain.errors import DomainError
from .domain.messages import N_, Msg

#: Languages the catalogs cover, in order of preference when a client accepts several equally.
LANGUAGES: tuple[str, ...] = ("zh_CN", "es", "en")
#: Language used when the client names none we have.
DEFAULT = "en"
#: Where the compiled catalogs live: ``<lang>/LC_MESSAGES/messages.mo``.
LOCALE_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"
#: Shown for a placeholder whose value is ``None``.
NONE_TEXT = "—"
#: Platform time zone (T0 default), used when the caller gives none.
DEFAULT_TZ = "Asia/Shanghai"

# --- negotiation -----------------------------------------------------------------------------------------

_PRIMARY = {"zh": "zh_CN", "es": "es", "en": "en"}
_RANGE = re.compile(r"^(?:\*|[a-z]{1,8}(?:[-_][a-z0-9]{1,8})*)$")


def _match(tag: str) -> str | None:
    """The language of :data:`LANGUAGES` for one language tag (``zh-TW`` → ``zh_CN``), or ``None``."""
    primary = tag.replace("_", "-").split("-", 1)[0]
    return _PRIMARY.get(primary)


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def negotiate(accept_language: str | None) -> str:
    """The best of :data:`LANGUAGES` for an HTTP ``Accept-Language`` header, or :data:`DEFAULT`.

    Understands q-values and plain codes: ``"zh-CN,zh;q=0.9,en;q=0.8"``, ``"es-MX"``, ``"zh_CN"``, ``"zh-Hant"``.
    Every Chinese tag maps to ``zh_CN`` (the only Chinese catalog), every ``es-*`` to ``es``, every ``en-*`` to
    ``en``. Malformed input never raises; it yields the default.
    """
    if not accept_language:
        return DEFAULT
    ranked: list[tuple[float, int, str]] = []
    refused: set[str] = set()
    for position, part in enumerate(accept_language.split(",")):
        tag, *params = (p.strip() for p in part.split(";"))
        tag = tag.lower()
        if not tag or not _RANGE.match(tag):
            continue
        q = _quality(params)
        if tag == "*":
            candidates = [DEFAULT, *(lang for lang in LANGUAGES if lang != DEFAULT)]
        else:
            lang = _match(tag)
            candidates = [lang] if lang else []
        for lang in candidates:
            if q <= 0.0:
                if tag != "*":
                    refused.add(lang)
            else:
                ranked.append((q, position, lang))
    ranked.sort(key=lambda entry: (-entry[0], entry[1]))
    for _q, _position, lang in ranked:
        if lang not in refused:
            return lang
    return DEFAULT


def _lang(lang: str | None) -> str:
    """Normalise a language argument (``"zh-CN"``, ``"zh_CN"``, ``"es"``, a header) to one of :data:`LANGUAGES`."""
    if lang in LANGUAGES:
        return lang
    return negotiate(lang)


# --- translation -----------------------------------------------------------------------------------------


@lru_cache(maxsize=len(LANGUAGES) + 1)
def _translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of ``lang``, loaded once (a ``NullTranslations`` when there is none)."""
    return gettext.translation(DOMAIN, localedir=str(LOCALE_DIR), languages=[lang], fallback=True)


def translate(text: str, lang: str) -> str:
    """``text`` (an English msgid) in ``lang``; the msgid itself when the catalog lacks it."""
    if not text:
        return text
    return _translations(_lang(lang)).gettext(text)


# --- labels for code-valued placeholders -------------------------------------------------------------------

_STATUS_LABELS = {
    # cases (CaseStatus, CloseReason)
    "awaiting_merchant": N_("awaiting the shop's answer"),
    "awaiting_buyer": N_("awaiting the buyer's answer"),
    "awaiting_return_shipment": N_("awaiting the return parcel"),
    "return_in_transit": N_("return on its way"),
    "awaiting_merchant_receipt": N_("awaiting the shop's check of the return"),
    "awaiting_replacement_shipment": N_("awaiting the shop's shipment"),
    "replacement_in_transit": N_("replacement on its way"),
    "platform_review": N_("under platform review"),
    "refund_pending": N_("refund in progress"),
    "closed": N_("closed"),
    # orders (OrderStatus)
    "group_pending": N_("waiting for the group to form"),
    "awaiting_shipment": N_("awaiting shipment"),
    "shipped": N_("shipped"),
    "delivered": N_("delivered"),
    "cancelled": N_("cancelled"),
    # groups (GroupStatus)
    "pending": N_("pending"),
    "formed": N_("formed"),
    "failed": N_("failed"),
}
_TYPE_LABELS = {
    "refund_only": N_("refund only"),
    "return_refund": N_("return and refund"),
    "exchange": N_("exchange"),
    "reship": N_("reshipment of missing items"),
    "repair": N_("repair"),
}
_REASON_LABELS = {
    "no_reason": N_("no reason (7-day no-reason return)"),
    "quality_problem": N_("quality problem"),
    "not_as_described": N_("not as described"),
    "wrong_item": N_("wrong item"),
    "missing_parts": N_("missing parts"),
    "counterfeit": N_("counterfeit"),
    "damaged_in_transit": N_("damaged in transit"),
    "not_received": N_("not received"),
    "late_delivery": N_("late delivery"),
    "service_attitude": N_("service attitude"),
    "other": N_("other"),
}
_EXCLUSION_LABELS = {
    "custom_made": N_("custom-made goods"),
    "perishable": N_("fresh or perishable goods"),
    "digital": N_("digital goods downloaded or unsealed"),
    "periodical": N_("delivered newspapers and periodicals"),
}
_ACTOR_LABELS = {
    "buyer": N_("buyer"),
    "merchant": N_("shop"),
    "platform": N_("platform"),
    "system": N_("system"),
}
_ACTION_LABELS = {
    "approve": N_("approve"),
    "reject": N_("refuse"),
    "offer_exchange": N_("offer an exchange"),
    "offer_partial_refund": N_("offer a partial refund"),
    "accept_offer": N_("accept the offer"),
    "decline_offer": N_("decline the offer"),
    "ship_return": N_("ship the return"),
    "mark_return_delivered": N_("record the return's delivery"),
    "confirm_return": N_("confirm the return"),
    "reject_return": N_("reject the returned goods"),
    "ship_replacement": N_("ship the replacement"),
    "mark_replacement_delivered": N_("record the replacement's delivery"),
    "confirm_received": N_("confirm receipt"),
    "resubmit": N_("modify and resubmit"),
    "accept_rejection": N_("accept the refusal"),
    "cancel": N_("cancel"),
    "escalate": N_("ask the platform to step in"),
    "rule": N_("rule"),
    "pay_ruling": N_("pay the ruling"),
    "advance_compensate": N_("pay the ruling in advance (platform)"),
}

#: K2: the events of a complaint's timeline (``complaint_<status>``, and a missed limit).
_COMPLAINT_EVENT_LABELS = {
    "complaint_submitted": N_("submitted"),
    "complaint_accepted": N_("accepted, awaiting the shop"),
    "complaint_rejected": N_("rejected"),
    "complaint_answered": N_("answered by the shop"),
    "complaint_resolved": N_("resolved"),
    "complaint_flagged": N_("a limit was missed (flagged)"),
}

#: The events of a case's timeline (S4: what happened, in words, never the event's code): a person's action
#: (``Action``), an automatic action of the system when a deadline passed (``Auto``), and the money events.
_CASE_EVENT_LABELS = {
    "opened": N_("case opened"),
    "assigned": N_("case assigned"),  # S1: claimed by, or given to, an agent of the shop
    "complaint_refund": N_("refunded as a complaint's remedy"),  # K2: paid through the open case
    "refund_issued": N_("refund issued"),
    "refund_settled": N_("refund settled"),
    "refund_failed": N_("refund failed"),
    # Action
    "approve": N_("approved"),
    "reject": N_("refused"),
    "offer_exchange": N_("exchange offered"),
    "offer_partial_refund": N_("partial refund offered"),
    "accept_offer": N_("offer accepted"),
    "decline_offer": N_("offer declined"),
    "ship_return": N_("return shipped"),
    "mark_return_delivered": N_("return delivered to the shop"),
    "confirm_return": N_("returned goods accepted"),
    "reject_return": N_("returned goods rejected"),
    "ship_replacement": N_("replacement shipped"),
    "mark_replacement_delivered": N_("replacement delivered"),
    "confirm_received": N_("receipt confirmed"),
    "resubmit": N_("request modified and resubmitted"),
    "accept_rejection": N_("refusal accepted"),
    "cancel": N_("request cancelled"),
    "escalate": N_("platform asked to step in"),
    "rule": N_("platform ruled"),
    "pay_ruling": N_("ruling paid by the shop"),
    "advance_compensate": N_("ruling paid in advance by the platform"),
    # Auto (actor: system)
    "remind_merchant": N_("shop reminded to answer"),
    "auto_approve": N_("approved automatically: the shop did not answer in time"),
    "close_unanswered": N_("closed: the buyer did not answer the refusal in time"),
    "lapse_offer": N_("offer lapsed: not answered in time"),
    "close_buyer_overdue": N_("closed: the return was not shipped in time"),
    "return_timeout": N_("settled automatically: the shop did not check the return in time"),
    "ship_timeout": N_("turned into a refund: the shop did not ship in time"),
    "auto_confirm_received": N_("receipt confirmed automatically"),
    "flag_platform_overdue": N_("platform review flagged as late"),
    "advance_compensation": N_("ruling paid by the platform: the shop did not pay in time"),
}

#: D2: the kinds of ledger transactions, as the ledger page names them.
_LEDGER_KIND_LABELS = {
    "payment": N_("buyer's payment"),
    "refund": N_("refund"),
    "group_failure_refund": N_("refund of a group that did not form"),
    "return_shipping_reimbursement": N_("return shipping reimbursed"),
    "complaint_refund": N_("complaint refund"),
    "advance_compensation": N_("paid in advance by the platform"),
    "deposit_recovery": N_("recovered from the shop's deposit"),
    "deposit_cover": N_("covered by the shop's deposit"),
    "deposit_top_up": N_("deposit top-up"),
    "deposit_withdrawal": N_("deposit withdrawal"),
    "complaint_compensation": N_("complaint compensation"),
    "complaint_penalty": N_("complaint penalty"),
}

#: Placeholder name → {code: English label msgid}. ``reasons`` is a comma-separated list of reason codes.
LABELS: Mapping[str, Mapping[str, str]] = {
    "status": _STATUS_LABELS,
    "type": _TYPE_LABELS,
    "reason": _REASON_LABELS,
    "reasons": _REASON_LABELS,
    "exclusion": _EXCLUSION_LABELS,
    "actor": _ACTOR_LABELS,
    "action": _ACTION_LABELS,
    "complaint_event": _COMPLAINT_EVENT_LABELS,
    "case_event": _CASE_EVENT_LABELS,
    "ledger_kind": _LEDGER_KIND_LABELS,
}
#: The notice after a person's action succeeded, as a sentence (a case's actions; a complaint's verbs).
_DONE_NOTICES: Mapping[str, Mapping[str, str]] = {
    "case": {
        "approve": N_("The request is approved."),
        "reject": N_("The request is refused."),
        "offer_exchange": N_("An exchange is offered to the buyer."),
        "offer_partial_refund": N_("A partial refund is offered to the buyer."),
        "accept_offer": N_("The offer is accepted."),
        "decline_offer": N_("The offer is declined."),
        "ship_return": N_("The return is recorded as shipped."),
        "mark_return_delivered": N_("The return is recorded as delivered to the shop."),
        "confirm_return": N_("The returned goods are accepted."),
        "reject_return": N_("The returned goods are rejected."),
        "ship_replacement": N_("The replacement is recorded as shipped."),
        "mark_replacement_delivered": N_("The replacement is recorded as delivered."),
        "confirm_received": N_("Receipt is confirmed."),
        "resubmit": N_("The request is modified and sent again."),
        "accept_rejection": N_("The refusal is accepted."),
        "cancel": N_("The request is cancelled."),
        "escalate": N_("The platform is asked to step in."),
        "rule": N_("The ruling is recorded."),
        "pay_ruling": N_("The ruling is paid."),
        "advance_compensate": N_("The platform paid the ruling in advance."),
    },
    "complaint": {
        "accept": N_("The complaint is accepted."),
        "reject": N_("The complaint is rejected."),
        "respond": N_("The answer is sent."),
        "resolve": N_("The complaint is resolved."),
    },
}


def done_notice(action: str, lang: str, subject: str = "case") -> str:
    """The one-off notice shown after ``action`` on a case (or a complaint's verb) succeeded, in ``lang``."""
    return translate(_DONE_NOTICES.get(subject, {}).get(action, N_("Done.")), lang)


_LIST_SEPARATOR = {"zh_CN": "、", "es": ", ", "en": ", "}


# --- rendering -------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _locale(lang: str) -> Locale:
    return Locale.parse(lang)


@lru_cache(maxsize=16)
def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return ZoneInfo(DEFAULT_TZ)


def _offset(delta: timedelta | None) -> str:
    minutes = int((delta or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{mins:02d}"


def format_instant(value: datetime, lang: str, tz: str = DEFAULT_TZ) -> str:
    """An instant in ``tz`` for ``lang``, with the UTC offset so it is unambiguous: ``Mar 9, 2026, 12:00:00 AM (UTC+08:00)``."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)  # T0: instants are UTC
    zone = _zone(tz)
    local = value.astimezone(zone)
    text = format_datetime(local, "medium", tzinfo=zone, locale=_locale(_lang(lang)))
    return f"{text} ({_offset(local.utcoffset())})"


#: An RFC 3339 instant inside a text (``2026-03-09T00:00:00+08:00``): the replay's differences carry them.
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})")


def format_instants(text: str, lang: str, tz: str = DEFAULT_TZ) -> str:
    """``text`` with every RFC 3339 instant in it shown as :func:`format_instant` shows one (the rest unchanged)."""
    return _INSTANT.sub(lambda m: format_instant(datetime.fromisoformat(m.group(0).replace("Z", "+00:00")), lang, tz),
                        text)


def format_fen(value: int, lang: str) -> str:
    """An amount in fen shown in yuan for ``lang`` (T1): 199900 → ``CN¥1,999.00`` (en), ``¥1,999.00`` (zh_CN)."""
    return format_currency(Decimal(value) / 100, "CNY", locale=_locale(_lang(lang)))


def _label(name: str, value: str, lang: str) -> str:
    labels = LABELS[name]
    if name == "reasons":
        parts = [p.strip() for p in value.split(",") if p.strip()]
        return _LIST_SEPARATOR.get(lang, ", ").join(translate(labels[p], lang) if p in labels else p for p in parts)
    label = labels.get(value)
    return translate(label, lang) if label is not None else value


def _value(name: str, value: Any, lang: str, tz: str, depth: int) -> str:
    """One placeholder value formatted for ``lang`` (see the module docstring)."""
    if value is None:
        return NONE_TEXT
    if isinstance(value, Msg):
        return _render(value, lang, tz, depth + 1)
    if isinstance(value, datetime):
        return format_instant(value, lang, tz)
    if isinstance(value, date):
        return format_date(value, "medium", locale=_locale(lang))
    if name.endswith("_fen") and isinstance(value, int | Decimal) and not isinstance(value, bool):
        return format_fen(int(value), lang)
    if name in LABELS and isinstance(value, str):
        return _label(name, value, lang)
    return str(value)


class _Values(dict[str, str]):
    """Formatted values; a placeholder without a value stays as written (``{name}``) instead of failing."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(text: str, values: _Values) -> str | None:
    try:
        return text.format_map(values)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError):
        return None


def _render(msg: Msg, lang: str, tz: str, depth: int) -> str:
    if depth > 8:  # a message nested in itself: show the source text rather than recurse forever
        return msg.text
    values = _Values()
    for name, value in (msg.params or {}).items():
        try:
            values[str(name)] = _value(str(name), value, lang, tz, depth)
        except Exception:  # a value Babel cannot format must not break an error handler
            values[str(name)] = str(value)
    translated = translate(msg.text, lang)
    result = _fill(translated, values)
    if result is None and translated != msg.text:  # a broken translation: fall back to the English source
        result = _fill(msg.text, values)
    if result is None:
        return msg.text
    if _starts_with_label(translated) and result[:1].islower():
        result = result[0].upper() + result[1:]  # "{action} is not possible…" → "Approve is not possible…"
    return result


_LEADING = re.compile(r"^\{(\w+)\}")


def _starts_with_label(text: str) -> bool:
    """True when ``text`` opens with a labelled placeholder (a sentence that starts with a lower-case label)."""
    match = _LEADING.match(text)
    return match is not None and match.group(1) in LABELS


def render(msg: Msg, lang: str, tz: str = DEFAULT_TZ) -> str:
    """``msg`` translated into ``lang`` with its values formatted for it; never raises on a bad placeholder."""
    try:
        return _render(msg, _lang(lang), tz, 0)
    except Exception:  # last resort for error handlers: the untranslated source text
        return str(msg.text)


def render_error(exc: DomainError, lang: str, tz: str = DEFAULT_TZ) -> str:
    """The explanation of a refusal in ``lang`` (S4)."""
    return render(exc.msg, lang, tz)
