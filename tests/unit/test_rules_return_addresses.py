"""M1, M5: the address an approved return goes to — which approvals need one, the copy the case and its event keep,
the address-book fields, and the M5 reply that names the address instead of promising one."""

from __future__ import annotations

from typing import Any

import pytest
from factories import DAY_3, approved_return, delivered_order, hours, new_case, policy

from aftersales import i18n
from aftersales.domain.addresses import ReturnAddress, clean_fields
from aftersales.domain.cases import Action, Auto, CaseStatus, act, fire, returns_to_address, ship_return_to
from aftersales.domain.catalog import CaseType, Reason
from aftersales.domain.errors import InvalidInput
from aftersales.domain.events import Actor
from aftersales.domain.replies import Situation, Voice, suggested_replies

DOCK = ReturnAddress("ra_1", "Dock", "Li Lei", "0571 8888", "9 Dock St\nNingbo")


def test_M5_a_merchant_approval_of_a_return_waits_for_its_address_and_keeps_a_copy() -> None:
    order = delivered_order()
    case = approved_return(order)
    ((found, approval),) = returns_to_address(order)
    assert found is case and approval.kind == "approve" and approval.to_status == CaseStatus.AWAITING_RETURN_SHIPMENT
    ship_return_to(case, approval, DOCK)
    assert case.return_address == DOCK
    assert approval.data["return_address"] == {"id": "ra_1", "label": "Dock", "contact_name": "Li Lei",
                                               "phone": "0571 8888", "address": "9 Dock St\nNingbo",
                                               "text": "Li Lei 0571 8888\n9 Dock St\nNingbo"}
    assert returns_to_address(order) == []  # addressed once


def test_M1_the_automatic_approval_of_a_return_needs_the_default_address_too() -> None:
    order = delivered_order()
    pol = policy()
    case = new_case(order, CaseType.EXCHANGE, Reason.QUALITY_PROBLEM, DAY_3, pol=pol)
    due = case.due_at
    assert due is not None and case.due_action is Auto.AUTO_APPROVE
    order.pending_events.clear()
    assert fire(order, case.id, Auto.AUTO_APPROVE, case.stage, due, pol)
    ((found, approval),) = returns_to_address(order)
    assert found is case and approval.kind == "auto_approve"
    ship_return_to(case, approval, None)  # a shop without an address: the record says so
    assert case.return_address is None and approval.data["return_address"] is None
    assert returns_to_address(order) == []


def test_M1_a_refund_without_return_needs_no_address() -> None:
    order = delivered_order()
    pol = policy()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_3, pol=pol, refund_fen=1000)
    act(order, case.id, Action.APPROVE, Actor.MERCHANT, DAY_3 + hours(1), pol)
    assert returns_to_address(order) == []


@pytest.mark.parametrize(("fields", "field"), [
    ({"address": ""}, "address"), ({"address": "x" * 501}, "address"), ({"address": "ok", "phone": "12"}, "phone"),
    ({"address": "ok", "phone": "call me 12345"}, "phone"), ({"address": "ok", "label": "a\nb"}, "label"),
    ({"address": "a\x07b"}, "address"), ({"address": "a\u202eb"}, "address"), ({"address": 5}, "address"),
    ({"address": "ok", "contact_name": "y" * 81}, "contact_name"),
])
def test_M5_address_fields_must_be_printable_on_a_parcel_label(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        clean_fields(fields)
    assert exc.value.rule == "M5" and exc.value.msg.params["field"] == field


def test_M5_address_fields_are_trimmed_and_blank_lines_dropped() -> None:
    assert clean_fields({"address": "  9 Dock St \r\n\n Ningbo ", "phone": " +86 (571) 8888-0000 "}) == {
        "label": "", "contact_name": "", "phone": "+86 (571) 8888-0000", "address": "9 Dock St\nNingbo"}
    assert clean_fields({"label": "HQ"}, partial=True) == {"label": "HQ"}


@pytest.mark.parametrize("voice", list(Voice))
def test_M5_the_reply_names_the_address_the_return_goes_to(voice: Voice) -> None:
    order = delivered_order()
    case = approved_return(order)
    ((_, approval),) = returns_to_address(order)
    now = DAY_3 + hours(3)
    ship_return_to(case, approval, None)
    (reply,) = [r for r in suggested_replies(order, case, None, now, policy(), voice=voice)
                if r.situation == Situation.AWAITING_RETURN_SHIPMENT]
    assert "will be sent to you in a message" in i18n.render(reply.msg, "en")
    ship_return_to(case, approval, DOCK)
    (reply,) = [r for r in suggested_replies(order, case, None, now, policy(), voice=voice)
                if r.situation == Situation.AWAITING_RETURN_SHIPMENT]
    texts = {lang: i18n.render(reply.msg, lang) for lang in ("en", "zh_CN", "es")}
    assert texts["en"].endswith("Return address: Li Lei 0571 8888, 9 Dock St, Ningbo.")
    assert "退货地址：Li Lei 0571 8888, 9 Dock St, Ningbo。" in texts["zh_CN"]
    assert "Dirección de devolución: Li Lei 0571 8888, 9 Dock St, Ningbo." in texts["es"]
    assert "{" not in "".join(texts.values())
