"""M1, M5: the shop's return-address book over HTTP, and the address an approved return goes to (both databases)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from helpers import act, advance_to, at, delivered_order, event, events, get_case, open_case, problem, try_act

BOOK = "/v1/merchants/{}/return-addresses"
H = timedelta(hours=1)


def book(api: Any, merchant: str = "mA", who: str = "merchant_a", **query: Any) -> list[dict[str, Any]]:
    r = api.get(BOOK.format(merchant), who=who, params=query)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def add(api: Any, body: dict[str, Any], merchant: str = "mA", who: str = "merchant_a") -> dict[str, Any]:
    r = api.post(BOOK.format(merchant), body, who=who)
    assert r.status_code == 201, r.text
    return dict(r.json())


def patch(api: Any, path: str, body: dict[str, Any], who: str = "merchant_a", **headers: str) -> Any:
    return api.client.patch(path, json=body, headers=api.h(who, **headers))


WAREHOUSE = {"label": "Warehouse", "contact_name": "Li Lei", "phone": "+86 571 8888 0000",
             "address": "12 Wensan Rd\nXihu, Hangzhou 310000"}


def test_M1_the_merchants_return_address_is_its_default_and_the_book_keeps_one_default(api):
    (first,) = book(api)
    assert first["address"] == "1 Return Rd" and first["is_default"] and not first["archived"]
    assert api.get("/v1/merchants/mA").json()["return_address"] == "1 Return Rd"

    second = add(api, {**WAREHOUSE, "is_default": True})
    assert second["is_default"] and second["text"] == "Li Lei +86 571 8888 0000\n12 Wensan Rd\nXihu, Hangzhou 310000"
    items = book(api)
    assert [a["id"] for a in items] == [second["id"], first["id"]]  # the default first
    assert [a["is_default"] for a in items] == [True, False]
    assert api.get("/v1/merchants/mA").json()["return_address"] == second["text"]

    r = api.post(BOOK.format("mA") + f"/{first['id']}/default", who="merchant_a")
    assert r.status_code == 200 and r.json()["is_default"]
    assert sum(a["is_default"] for a in book(api)) == 1


def test_M5_edits_archive_and_validation(api):
    (first,) = book(api)
    r = patch(api, BOOK.format("mA") + f"/{first['id']}", {"label": "HQ", "phone": "0571-8888"}, If_Match=str(first["version"]))
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["label"] == "HQ" and edited["address"] == "1 Return Rd" and edited["version"] == first["version"] + 1
    # a stale edit: 409, nothing changed
    r = patch(api, BOOK.format("mA") + f"/{first['id']}", {"label": "Old"}, If_Match=str(first["version"]))
    problem(r, 409)
    # bad fields: 422 with the rule, nothing changed
    problem(patch(api, BOOK.format("mA") + f"/{first['id']}", {"phone": "call me"}), 422, "M5")
    problem(patch(api, BOOK.format("mA") + f"/{first['id']}", {"address": "  "}), 422, "M5")
    problem(api.post(BOOK.format("mA"), {"address": "x" * 501}, who="merchant_a"), 422, "M5")
    problem(api.post(BOOK.format("mA"), {"address": "a\u202eb"}, who="merchant_a"), 422, "M5")
    problem(api.post(BOOK.format("mA"), {"label": "no address"}, who="merchant_a"), 422)
    problem(api.post(BOOK.format("mA"), {"address": "1 Rd", "extra": 1}, who="merchant_a"), 422)
    assert [a["label"] for a in book(api)] == ["HQ"]

    # the default cannot be archived while another address could be the default (M1)
    other = add(api, WAREHOUSE)
    assert not other["is_default"]
    problem(api.post(BOOK.format("mA") + f"/{first['id']}/archive", who="merchant_a"), 409, "M1")
    r = api.post(BOOK.format("mA") + f"/{other['id']}/archive", who="merchant_a")
    assert r.status_code == 200 and r.json()["archived"]
    assert [a["id"] for a in book(api)] == [first["id"]]
    assert {a["id"] for a in book(api, archived="true")} == {first["id"], other["id"]}
    # an archived address is neither edited nor made the default
    problem(patch(api, BOOK.format("mA") + f"/{other['id']}", {"label": "x"}), 409, "M5")
    problem(api.post(BOOK.format("mA") + f"/{other['id']}/default", who="merchant_a"), 409, "M5")


def test_T2_a_shop_sees_only_its_own_book(api):
    (mine,) = book(api, "mB", who="merchant_b")
    problem(api.get(BOOK.format("mA"), who="merchant_b"), 404)
    problem(api.post(BOOK.format("mA"), WAREHOUSE, who="merchant_b"), 404)
    problem(api.post(BOOK.format("mA") + f"/{mine['id']}/default", who="merchant_a"), 404)
    problem(patch(api, BOOK.format("mA") + f"/{mine['id']}", {"label": "x"}), 404)
    problem(api.get(BOOK.format("mA"), who="buyer_x"), 403)
    problem(api.get(BOOK.format("nobody"), who="platform"), 404)
    # the platform manages any shop's book
    assert add(api, WAREHOUSE, merchant="mB", who="platform")["merchant_id"] == "mB"


def test_M5_one_address_read_alone_with_an_etag_that_if_match_takes_back(api):
    (first,) = book(api)
    path = BOOK.format("mA") + f"/{first['id']}"
    r = api.get(path, who="merchant_a")
    assert r.status_code == 200, r.text
    assert r.json() == first and r.headers["etag"] == f'"{first["version"]}"'
    # the ETag, sent back as If-Match, edits the address as read; once edited, the old ETag is stale (409)
    edited = patch(api, path, {"label": "HQ"}, If_Match=r.headers["etag"])
    assert edited.status_code == 200, edited.text
    again = api.get(path, who="platform")
    assert again.json() == edited.json() and again.headers["etag"] == f'"{first["version"] + 1}"'
    problem(patch(api, path, {"label": "Old"}, If_Match=r.headers["etag"]), 409)
    assert api.get(path, who="merchant_a").json()["label"] == "HQ"
    # an archived address is still read, marked so
    other = add(api, WAREHOUSE)
    assert api.post(BOOK.format("mA") + f"/{other['id']}/archive", who="merchant_a").status_code == 200
    assert api.get(BOOK.format("mA") + f"/{other['id']}", who="merchant_a").json()["archived"] is True


def test_T2_one_address_of_another_shop_is_not_found(api):
    (of_a,) = book(api)
    (of_b,) = book(api, "mB", who="merchant_b")
    for who, merchant, aid, status in (("merchant_b", "mA", of_a["id"], 404), ("merchant_a", "mA", of_b["id"], 404),
                                       ("platform", "mB", of_a["id"], 404), ("platform", "nobody", of_a["id"], 404),
                                       ("merchant_a", "mA", "ra_unknown", 404), ("buyer_x", "mA", of_a["id"], 403)):
        r = api.get(BOOK.format(merchant) + f"/{aid}", who=who)
        body = problem(r, status)
        assert "etag" not in r.headers and of_a["address"] not in r.text and aid not in body["detail"], (who, aid)
    problem(api.get(BOOK.format("mA") + "/not%20an%20id", who="merchant_a"), 422)


def _return_case(api: Any, order_id: str = "o1") -> dict[str, Any]:
    delivered_order(api, order_id)
    return open_case(api, order_id, "return_refund", "quality_problem")


def test_M5_approve_to_a_chosen_address_the_record_keeps_its_copy(api):
    warehouse = add(api, WAREHOUSE)
    case = _return_case(api)
    # another shop's address, an archived one, or one on a refund: refused, nothing changed
    (theirs,) = book(api, "mB", who="merchant_b")
    problem(try_act(api, case["id"], "approve", {"return_address_id": theirs["id"]}), 422, "M5")
    assert get_case(api, case["id"])["status"] == "awaiting_merchant"

    approved = act(api, case["id"], "approve", {"return_address_id": warehouse["id"]})
    assert approved["status"] == "awaiting_return_shipment"
    assert approved["return_address"]["id"] == warehouse["id"]
    assert approved["return_address"]["text"] == warehouse["text"]
    # the buyer sees where to send it
    assert get_case(api, case["id"], who="buyer_x")["return_address"]["address"] == WAREHOUSE["address"]
    # the record keeps the copy: editing the book later changes neither the case nor its event
    r = patch(api, BOOK.format("mA") + f"/{warehouse['id']}", {"address": "Moved away"})
    assert r.status_code == 200
    assert get_case(api, case["id"])["return_address"]["address"] == WAREHOUSE["address"]
    approval = event(events(api, case["id"]), "approve")
    assert approval["data"]["return_address"]["address"] == WAREHOUSE["address"]
    assert "return_address_id" not in approval["data"]


def test_M5_approve_without_a_choice_goes_to_the_default(api):
    case = _return_case(api)
    approved = act(api, case["id"], "approve")
    assert approved["return_address"]["address"] == "1 Return Rd"


def test_M5_return_address_id_applies_only_to_returns(api):
    delivered_order(api, "o1")
    case = open_case(api, "o1", "refund_only", "not_as_described", refund_fen=1000)
    (default,) = book(api)
    problem(try_act(api, case["id"], "approve", {"return_address_id": default["id"]}), 422, "M5")
    assert get_case(api, case["id"])["status"] == "awaiting_merchant"


def test_M1_automatic_approval_goes_to_the_default_address(api):
    warehouse = add(api, {**WAREHOUSE, "is_default": True})
    case = _return_case(api)
    advance_to(api, at(case["opened_at"]) + 48 * H)
    case = get_case(api, case["id"], who="buyer_x")
    assert case["status"] == "awaiting_return_shipment"
    assert case["return_address"]["id"] == warehouse["id"]
    approval = event(events(api, case["id"]), "auto_approve")
    assert approval["data"]["return_address"]["text"] == warehouse["text"]


def test_M1_a_shop_without_an_address_approves_as_before_and_the_record_says_so(api):
    (only,) = book(api)
    r = api.post(BOOK.format("mA") + f"/{only['id']}/archive", who="merchant_a")
    assert r.status_code == 200
    assert api.get("/v1/merchants/mA").json()["return_address"] is None
    case = _return_case(api)
    approved = act(api, case["id"], "approve")
    assert approved["status"] == "awaiting_return_shipment" and approved["return_address"] is None
    approval = event(events(api, case["id"]), "approve")
    assert "return_address" in approval["data"] and approval["data"]["return_address"] is None


def test_M1_M4_M5_every_other_approval_path_goes_to_the_default_address(api):
    """The approval step (service/cases.py) addresses every return, whoever approves it: a bulk approval (S1), a case
    the merchant opens approved (E7), an exchange the buyer accepts or declines (M4), and an exchange offer that lapses
    (M4, automatic). Each case and its approval's event carry the shop's default."""
    warehouse = add(api, {**WAREHOUSE, "is_default": True})

    def addressed(case: dict[str, Any], kind: str) -> None:
        assert case["status"] == "awaiting_return_shipment" and case["return_address"]["id"] == warehouse["id"], case
        assert event(events(api, case["id"]), kind)["data"]["return_address"]["id"] == warehouse["id"]

    delivered_order(api, "o1")
    bulk = open_case(api, "o1", "return_refund", "no_reason")
    r = api.post("/v1/cases/bulk-actions", {"action": "approve", "case_ids": [bulk["id"]]}, who="merchant_a")
    assert r.status_code == 200 and r.json()["ok"] == 1, r.text
    addressed(get_case(api, bulk["id"]), "approve")

    delivered_order(api, "o2")
    r = api.post("/v1/cases", {"order_id": "o2", "type": "return_refund", "reason": "quality_problem",
                               "buyer_consent": True}, who="merchant_a")
    assert r.status_code == 201, r.text
    addressed(r.json(), "approve")

    for oid, answer in (("o3", "accept_offer"), ("o4", "decline_offer")):
        delivered_order(api, oid)
        case = open_case(api, oid, "return_refund", "quality_problem")
        act(api, case["id"], "offer_exchange")
        addressed(act(api, case["id"], answer), answer)

    delivered_order(api, "o5")
    lapsing = open_case(api, "o5", "return_refund", "quality_problem")
    offered = act(api, lapsing["id"], "offer_exchange")
    advance_to(api, at(offered["deadline"]["due_at"]))
    addressed(get_case(api, lapsing["id"]), "lapse_offer")
