"""S4 for every error: the ``title`` and ``detail`` of a problem+json answer are in the caller's language
(``Accept-Language``: zh-CN, es, en), whether the domain, the service layer or the middleware refuses;
``type``, ``status`` and ``rule`` never change with the language (API.md)."""

from __future__ import annotations

from typing import Any

from helpers import create_order, delivered_order, get_case, open_case, problem, try_act, try_open

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}
ES = {"Accept-Language": "es-ES"}
EN = {"Accept-Language": "en-US"}


def ask(api: Any, path: str, lang: dict[str, str], who: str = "platform") -> Any:
    return api.client.get(path, headers={**api.h(who), **lang})


def test_S4_a_service_not_found_is_in_the_callers_language(api: Any) -> None:
    zh = problem(ask(api, "/v1/cases/cs_nowhere", ZH), 404)
    es = problem(ask(api, "/v1/cases/cs_nowhere", ES), 404)
    en = problem(ask(api, "/v1/cases/cs_nowhere", EN), 404)
    assert (zh["title"], zh["detail"]) == ("未找到", "未找到该售后单")
    assert (es["title"], es["detail"]) == ("No encontrado", "caso no encontrado")
    assert (en["title"], en["detail"]) == ("Not found", "case not found")
    assert zh["type"] == es["type"] == en["type"] == "https://aftersales.dev/problems/not-found"
    assert "rule" not in zh and "rule" not in en


def test_S4_a_service_refusal_with_a_value_keeps_the_value_in_every_language(api: Any) -> None:
    body = {"id": "mA", "name": "Shop mA again"}
    zh = problem(api.post("/v1/merchants", body, headers=ZH), 409)
    es = problem(api.post("/v1/merchants", body, headers=ES), 409)
    en = problem(api.post("/v1/merchants", body, headers=EN), 409)
    assert (zh["title"], zh["detail"]) == ("冲突", "商家 'mA' 已存在"), zh
    assert (es["title"], es["detail"]) == ("Conflicto", "el comerciante 'mA' ya existe"), es
    assert (en["title"], en["detail"]) == ("Conflict", "merchant 'mA' already exists"), en
    assert zh["type"] == en["type"] == "https://aftersales.dev/problems/conflict"


def test_T2_a_stale_if_match_conflict_is_explained_in_chinese_and_changes_nothing(api: Any) -> None:
    delivered_order(api, "o1")
    case = open_case(api, "o1", "return_refund", "quality_problem")
    stale = {"If-Match": str(case["version"] + 1)}
    zh = problem(try_act(api, case["id"], "approve", headers={**stale, **ZH}), 409)
    en = problem(try_act(api, case["id"], "approve", headers={**stale, **EN}), 409)
    assert zh["title"] == "冲突" and f"版本 {case['version']}" in zh["detail"] and "重新加载" in zh["detail"], zh
    assert en["title"] == "Conflict" and en["detail"] == (
        f"the case is at version {case['version']}, not {case['version'] + 1} (If-Match): reload it and try again")
    assert zh["type"] == en["type"]
    assert get_case(api, case["id"])["version"] == case["version"]


def test_S4_a_domain_refusal_has_its_title_translated_and_keeps_its_rule(api: Any) -> None:
    create_order(api, "o1")  # paid, not shipped: no return yet (E3)
    zh = problem(try_open(api, "o1", "return_refund", "quality_problem", lang=ZH["Accept-Language"]), 422)
    en = problem(try_open(api, "o1", "return_refund", "quality_problem", lang=EN["Accept-Language"]), 422)
    assert zh["rule"] == en["rule"] and zh["type"] == en["type"]
    assert en["title"] == f"Refused by rule {en['rule']}"
    assert zh["title"] == f"依据规则 {zh['rule']} 拒绝"


def test_S4_the_middlewares_idempotency_refusal_is_in_the_callers_language(api: Any) -> None:
    create_order(api, "o1")
    key = {"Idempotency-Key": "k-lang-1"}
    first = api.post("/v1/orders/o1/ship", {"carrier": "SF", "tracking_no": "1"}, who="merchant_a", headers=key)
    assert first.status_code == 200, first.text
    again = {"carrier": "SF", "tracking_no": "2"}
    zh = problem(api.post("/v1/orders/o1/ship", again, who="merchant_a", headers={**key, **ZH}), 422)
    en = problem(api.post("/v1/orders/o1/ship", again, who="merchant_a", headers={**key, **EN}), 422)
    assert zh["title"] == "Idempotency-Key 被重复使用" and zh["detail"] == "此 Idempotency-Key 已用于另一个请求", zh
    assert en["title"] == "Idempotency-Key reused" and en["detail"] == "this Idempotency-Key was used with a different request"
    assert zh["type"] == en["type"] == "https://aftersales.dev/problems/idempotency-mismatch"


def _invalid(api: Any, lang: dict[str, str]) -> dict[str, Any]:
    """One request with five kinds of field error: missing, too long, a pattern, a number out of range, unknown."""
    body = {"id": "bad id", "name": "x" * 201, "surprise": 1}
    return problem(api.post("/v1/merchants", body, headers=lang), 422)


def test_S4_validation_messages_are_in_the_callers_language_and_the_errors_keep_their_shape(api: Any) -> None:
    zh, es, en = _invalid(api, ZH), _invalid(api, ES), _invalid(api, EN)
    for p in (zh, es, en):
        assert p["type"] == "https://aftersales.dev/problems/validation"
        assert all(set(e) == {"field", "in", "message", "type"} for e in p["errors"])
    # field, in and type never change with the language; only the message does
    assert [(e["field"], e["in"], e["type"]) for e in zh["errors"]] == [(e["field"], e["in"], e["type"]) for e in en["errors"]]
    by = {lang: {e["type"]: e["message"] for e in p["errors"]} for lang, p in (("zh", zh), ("es", es), ("en", en))}
    assert set(by["en"]) == {"string_pattern_mismatch", "string_too_long", "extra_forbidden"}
    assert by["en"]["string_too_long"] == "Too long (maximum length 200)"
    assert by["zh"]["string_too_long"] == "太长（最大长度 200）"
    assert by["es"]["string_too_long"] == "Demasiado largo (longitud máxima 200)"
    assert by["zh"]["extra_forbidden"] == "未知字段（此处不允许）"
    assert by["es"]["extra_forbidden"] == "Campo desconocido (no permitido aquí)"
    assert by["zh"]["string_pattern_mismatch"].startswith("格式不符") and "^" in by["zh"]["string_pattern_mismatch"]
    assert (zh["title"], es["title"], en["title"]) == ("请求无效", "Solicitud no válida", "Invalid request")
    assert "太长（最大长度 200）" in zh["detail"] and "name" in zh["detail"]
    assert "Demasiado largo" in es["detail"] and "Too long" not in es["detail"]


def test_S4_missing_fields_numbers_choices_and_instants_in_chinese_and_spanish(api: Any) -> None:
    zh = problem(api.client.get("/v1/cases", params={"limit": "0"}, headers={**api.h(), **ZH}), 422)
    es = problem(api.client.get("/v1/cases", params={"limit": "x"}, headers={**api.h(), **ES}), 422)
    assert zh["errors"] == [{"field": "limit", "in": "query", "message": "应至少为 1", "type": "greater_than_equal"}]
    assert es["errors"] == [{"field": "limit", "in": "query", "message": "Debe ser un número entero", "type": "int_parsing"}]
    missing = problem(api.post("/v1/api-keys", {}, headers=ZH), 422)
    assert missing["errors"] == [{"field": "role", "in": "body", "message": "必填字段", "type": "missing"}]
    choice = problem(api.post("/v1/api-keys", {"role": "boss"}, headers=ES), 422)
    assert choice["errors"][0]["type"] == "literal_error"
    assert choice["errors"][0]["message"] == "Debe ser uno de: 'merchant', 'buyer', 'platform'"
    # a custom validator's own text (schemas.Instant, API.md: naive timestamps are rejected) is translated too
    naive = problem(api.post("/v1/orders", {"id": "o9", "merchant_id": "mA", "buyer_id": "bX", "paid_at": 1700000000,
                                           "items": []}, headers=ZH), 422)
    paid_at = [e for e in naive["errors"] if e["field"] == "paid_at"]
    assert paid_at and paid_at[0]["type"] == "value_error" and "RFC 3339" in paid_at[0]["message"]
    assert paid_at[0]["message"] != "must be an RFC 3339 instant with an offset, e.g. 2026-03-01T10:00:00+08:00"
