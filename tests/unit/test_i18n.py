"""Languages and messages (S2, S4): Accept-Language negotiation, rendering, and the gettext catalogs.

The catalog tests re-extract the msgids from the sources with Babel (babel.cfg, as ``make catalogs`` does), so
they cannot go stale: every msgid must have a zh_CN and an es translation with the same placeholders, and the
committed ``.mo`` files must hold exactly what compiling the committed ``.po`` files gives.
"""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po
from factories import DAY_3, PAID, categories, delivered_order, group_with_orders, new_case, paid_order, policy

from aftersales import i18n
from aftersales.domain.cases import Action, act
from aftersales.domain.catalog import CaseType, Reason
from aftersales.domain.errors import DomainError, InvalidInput, RuleViolation, StateConflict
from aftersales.domain.events import Actor
from aftersales.domain.messages import Msg

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
LOCALES = SRC / "aftersales" / "locales"
TRANSLATED = ("zh_CN", "es")
CJK = re.compile(r"[\u4e00-\u9fff]")


# --- negotiate ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("header", "lang"), [
    (None, "en"),
    ("", "en"),
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"),
    ("zh", "zh_CN"),
    ("zh-Hans", "zh_CN"),
    ("zh-Hans-CN", "zh_CN"),
    ("zh-TW", "zh_CN"),
    ("zh_CN", "zh_CN"),
    ("ZH-cn", "zh_CN"),
    ("es", "es"),
    ("es-MX,es;q=0.9", "es"),
    ("es-419", "es"),
    ("en-GB", "en"),
    ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
    ("fr-FR,fr;q=0.9,es;q=0.5,zh;q=0.4", "es"),
    ("en;q=0.3, zh-CN;q=0.7, es;q=0.5", "zh_CN"),
    ("es;q=0.8, zh;q=0.8", "es"),  # equal quality: the first listed wins
    ("de, *;q=0.1", "en"),
    ("zh;q=0, es;q=0.2", "es"),
    ("es;q=0", "en"),
    ("fr", "en"),
    ("garbage;;;,,q=?", "en"),
    ("zh;q=abc, es", "es"),
])
def test_negotiate_accept_language(header: str | None, lang: str) -> None:
    assert i18n.negotiate(header) == lang


def test_languages_and_default() -> None:
    assert i18n.LANGUAGES == ("zh_CN", "es", "en")
    assert i18n.DEFAULT == "en"


# --- render ------------------------------------------------------------------------------------------------
#: T0 worked example: delivered 2026-03-01T23:30+08:00; the 7-day window is open until 2026-03-09T00:00+08:00.
NO_REASON_END = datetime(2026, 3, 8, 16, 0, tzinfo=UTC)
UNTIL = Msg("Until {no_reason_deadline} you can return the goods without giving a reason, if they are intact.",
            {"no_reason_deadline": NO_REASON_END})


@pytest.mark.parametrize(("lang", "expected"), [
    ("zh_CN", "在2026年3月9日 00:00:00 (UTC+08:00)之前，只要商品完好，您可以申请无理由退货。"),
    ("es", "Hasta el 9 mar 2026, 0:00:00 (UTC+08:00) puede devolver la mercancía sin dar motivo, siempre que esté intacta."),
    ("en", "Until Mar 9, 2026, 12:00:00\u202fAM (UTC+08:00) you can return the goods without giving a reason, if they are intact."),
])
def test_render_datetime_in_the_platform_zone_with_its_offset(lang: str, expected: str) -> None:
    assert i18n.render(UNTIL, lang) == expected.replace("\u202f", _am_space())


def _am_space() -> str:
    """CLDR versions differ on the space before AM (narrow no-break space or plain)."""
    sample = i18n.format_instant(NO_REASON_END, "en")
    return sample[sample.index("00:00") + 5]


def test_render_datetime_in_another_zone_shows_that_zone() -> None:
    text = i18n.render(UNTIL, "en", "Europe/Madrid")
    assert "Mar 8, 2026, 5:00:00" in text and "(UTC+01:00)" in text
    summer = Msg("Group {group_id} expired at {expires_at}.", {"group_id": "g1", "expires_at": datetime(2026, 7, 1, 12, tzinfo=UTC)})
    assert "(UTC+02:00)" in i18n.render(summer, "es", "Europe/Madrid")
    assert "(UTC+08:00)" in i18n.render(summer, "es", "Not/AZone")  # an unknown zone falls back to the platform's


@pytest.mark.parametrize(("lang", "expected"), [
    ("en", "CN¥1,999.00"),
    ("zh_CN", "¥1,999.00"),
    ("es", "1999,00"),
])
def test_render_money_in_fen_as_yuan(lang: str, expected: str) -> None:
    msg = Msg("Before delivery the refund is of the whole order: {left_fen}.", {"left_fen": 199900})
    text = i18n.render(msg, lang)
    assert expected.replace("1999", "1.999") in text or expected in text
    assert "199900" not in text
    if lang != "es":
        assert "¥" in text
    assert "1,999.00" in i18n.render(msg, "en")


def test_render_nested_messages_none_and_labels() -> None:
    inner = Msg("{title} is excluded from no-reason returns by law ({exclusion}).", {"title": "Fresh fish", "exclusion": "perishable"})
    outer = Msg("Until {no_reason_deadline} you can return the eligible items without giving a reason; {excluded}",
                {"no_reason_deadline": None, "excluded": inner})
    zh = i18n.render(outer, "zh_CN")
    assert "「Fresh fish」属于鲜活易腐商品" in zh and i18n.NONE_TEXT in zh
    en = i18n.render(outer, "en")
    assert en.endswith("Fresh fish is excluded from no-reason returns by law (fresh or perishable goods).")
    status = Msg("{action} is not possible while the case is {status}.", {"action": "approve", "status": "closed"})
    assert i18n.render(status, "zh_CN") == "售后单处于「已关闭」状态时，无法执行「同意」。"
    assert i18n.render(status, "en") == "Approve is not possible while the case is closed."
    reasons = Msg("The reason {reason} is not accepted for {type} now; accepted reasons: {reasons}.",
                  {"reason": "no_reason", "type": "repair", "reasons": "quality_problem, made_up_code"})
    assert i18n.render(reasons, "es") == ("El motivo «sin motivo (devolución sin motivo de 7 días)» no se acepta ahora para "
                                          "«reparación»; motivos aceptados: problema de calidad, made_up_code.")


def test_render_never_raises_on_bad_placeholders_or_values() -> None:
    assert i18n.render(Msg("Refund {key} was already issued."), "zh_CN") == "退款 {key} 已经发起过了。"
    assert i18n.render(Msg("Hello {0} and {a.b} and {c:%Q}", {"c": 1}), "es") == "Hello {0} and {a.b} and {c:%Q}"
    assert i18n.render(Msg("Unknown {x}", {"x": object()}), "en").startswith("Unknown <object")
    assert i18n.render(Msg("", {}), "zh_CN") == ""
    assert i18n.render(Msg("{amount_fen}", {"amount_fen": "n/a"}), "en") == "n/a"


def test_translate_falls_back_to_the_msgid() -> None:
    assert i18n.translate("The shipping fee can be refunded only once.", "zh_CN") == "运费只能退还一次。"
    assert i18n.translate("The shipping fee can be refunded only once.", "zh-CN") == "运费只能退还一次。"
    assert i18n.translate("The shipping fee can be refunded only once.", "en") == "The shipping fee can be refunded only once."
    assert i18n.translate("The shipping fee can be refunded only once.", "fr") == "The shipping fee can be refunded only once."
    assert i18n.translate("Not a msgid at all", "es") == "Not a msgid at all"


# --- real refusals in Chinese ---------------------------------------------------------------------------
def _refusals() -> list[DomainError]:
    pol, cats = policy(), categories()
    errors: list[DomainError] = []
    group, (pending,) = group_with_orders(size=3)
    with pytest.raises(RuleViolation) as e1:
        new_case(pending, CaseType.REFUND_ONLY, Reason.OTHER, PAID + timedelta(hours=1), group=group)
    errors.append(e1.value)
    with pytest.raises(StateConflict) as g2:
        pending.ship(Actor.MERCHANT, "SF", "SF1", PAID + timedelta(hours=1))
    errors.append(g2.value)
    order = paid_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.OTHER, PAID + timedelta(hours=1))
    with pytest.raises(RuleViolation) as m2:
        act(order, case.id, Action.REJECT, Actor.MERCHANT, PAID + timedelta(hours=2), pol, reason="no")
    errors.append(m2.value)
    with pytest.raises(StateConflict) as state:
        act(order, case.id, Action.SHIP_RETURN, Actor.BUYER, PAID + timedelta(hours=2), pol, carrier="SF", tracking_no="1")
    errors.append(state.value)
    delivered = delivered_order()
    with pytest.raises(RuleViolation) as e10:
        new_case(delivered, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_3, refund_fen=10**7, cats=cats)
    errors.append(e10.value)
    with pytest.raises(InvalidInput) as bad:
        new_case(delivered, "swap", Reason.OTHER, DAY_3)
    errors.append(bad.value)
    return errors


def test_real_domain_refusals_render_in_chinese() -> None:
    errors = _refusals()
    assert [e.rule for e in errors][:3] == ["E1", "G2", "M2"]
    for exc in errors:
        zh = i18n.render_error(exc, "zh_CN")
        assert CJK.search(zh), zh
        assert zh != exc.msg.text and "{" not in zh, zh
        assert i18n.render_error(exc, "es") != exc.msg.text
        assert "{" not in i18n.render_error(exc, "en")
    pending_group = i18n.render_error(errors[0], "zh_CN")
    assert "拼团" in pending_group and "(UTC+08:00)" in pending_group
    assert "¥" in i18n.render_error(errors[4], "zh_CN")


# --- the catalogs ------------------------------------------------------------------------------------------
def _error_keywords() -> list[str]:
    """The service's error classes the Makefile's ``catalogs`` target extracts like ``N_`` (``ERROR_KEYWORDS``)."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^ERROR_KEYWORDS :=((?:.*\\\n)*.*)$", makefile, re.MULTILINE)
    assert match, "the Makefile defines ERROR_KEYWORDS"
    return re.findall(r"-k (\w+)", match.group(1))


def _extract(tmp_path: Path) -> Catalog:
    """The msgids of the sources now, extracted as ``make catalogs`` does (babel.cfg, keywords N_, _ and the
    service's error classes)."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    keywords = {**DEFAULT_KEYWORDS, "N_": None, "_": None, **dict.fromkeys(_error_keywords())}
    catalog = Catalog(project="aftersales")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(SRC), method_map, options_map, keywords=keywords, comment_tags=("TRANSLATORS:",), strip_comment_tags=True
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    pot = tmp_path / "messages.pot"
    with pot.open("wb") as f:
        write_po(f, catalog)
    with pot.open("rb") as f:
        return read_po(f)


def _po(lang: str) -> Catalog:
    with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=lang)


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.fixture(scope="module")
def msgids(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    ids = [m.id for m in _extract(tmp_path_factory.mktemp("pot")) if m.id]
    assert len(ids) > 150, "extraction found too few messages: check babel.cfg"
    return [i if isinstance(i, str) else i[0] for i in ids]


def test_extraction_finds_domain_and_reply_messages(msgids: list[str]) -> None:
    assert "The shipping fee can be refunded only once." in msgids
    assert any("rule G2" in m and "{deadline}" in m for m in msgids)


def test_extraction_finds_the_workbench_notices_given_to_translate(msgids: list[str]) -> None:
    """A literal passed to ``i18n.translate`` (a flash, the sign-in's and the error pages' messages) is in the
    catalogs: it used to be missed, and showed in English on a Chinese page."""
    for text in ("Evidence attached.", "The form expired; please try again.", "There is nothing here for you.",
                 "Your request was opened."):
        assert text in msgids, text


def test_S4_extraction_finds_the_service_errors_templates(msgids: list[str]) -> None:
    assert {"Invalid", "Conflict", "Forbidden", "Unauthorized"} <= set(_error_keywords())
    assert "limit must be between 1 and {limit}" in msgids  # Invalid("…", limit=…)
    assert "cursor is not one this server issued" in msgids and "case not found" in msgids


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_msgid_has_a_translation_with_the_same_placeholders(lang: str, msgids: list[str]) -> None:
    catalog = _po(lang)
    problems = []
    for msgid in msgids:
        entry = catalog.get(msgid)
        if entry is None or not entry.string:
            problems.append(f"untranslated: {msgid!r}")
        elif entry.fuzzy:
            problems.append(f"fuzzy (review it, then drop the flag): {msgid!r}")
        elif _placeholders(str(entry.string)) != _placeholders(msgid):
            problems.append(f"placeholders differ: {msgid!r} -> {entry.string!r}")
    assert not problems, f"{lang}: run `make catalogs`, translate, and run it again:\n" + "\n".join(problems)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_translations_are_in_the_right_language(lang: str, msgids: list[str]) -> None:
    catalog = _po(lang)
    for msgid in msgids:
        entry = catalog.get(msgid)
        if entry is None or not entry.string:
            continue  # reported by the test above
        text = str(entry.string)
        if lang == "zh_CN":
            assert CJK.search(text), text
        else:
            assert text != msgid or len(msgid) < 12, text


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_committed_mo_files_are_compiled_from_the_committed_po_files(lang: str, tmp_path: Path) -> None:
    po = _po(lang)
    fresh = tmp_path / "messages.mo"
    with fresh.open("wb") as f:
        write_mo(f, po)
    committed = LOCALES / lang / "LC_MESSAGES" / "messages.mo"
    assert committed.exists(), f"{committed} is missing: run `make catalogs`"

    def entries(path: Path) -> dict[object, object]:
        with path.open("rb") as f:
            return {m.id: m.string for m in read_mo(f) if m.id}

    assert entries(committed) == entries(fresh), f"{committed} is stale: run `make catalogs` and commit the .mo"
