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
