"""T0, E4–E6, M1 at the service level: restarting with another policy file does not rewrite past orders' windows.

Each order records the policy version in force when it was paid; the parameters of every version are stored, so a
process started with a changed AFTERSALES_POLICY_FILE judges old orders by their own version and new ones by the new.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from aftersales.domain import policy as policy_mod
from aftersales.domain.catalog import CaseType, Reason
from aftersales.service import cases as case_service
from aftersales.service import orders, setup
from aftersales.service.context import PLATFORM, Context, Principal
from aftersales.testing import ensure_merchant

MERCHANT = Principal("merchant", "mA")
BUYER = Principal("buyer", "bX")


def _order(ctx: Context, oid: str, paid_at: datetime) -> None:
    orders.create_order(ctx, PLATFORM, {
        "id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": paid_at, "shipping_fee_fen": 800,
        "items": [{"sku": "s1", "title": "Kettle", "category": "kettles", "quantity": 1, "unit_price_fen": 10000}],
    })
    orders.ship_order(ctx, MERCHANT, oid, "SF Express", f"SF{oid}")
    orders.deliver_order(ctx, MERCHANT, oid, None)


def _option(ctx: Context, oid: str, case_type: str) -> dict[str, Any]:
    view = orders.options(ctx, BUYER, oid, lang="en")
    return next(o for o in view["options"] if o["type"] == case_type) | {"_view": view}


def test_T0_restart_with_new_policy_file_keeps_old_orders_windows(ctx: Context, tmp_path: Path) -> None:
    now = ctx.now()
    ensure_merchant(ctx, "mA", now)
    setup.put_category(ctx, PLATFORM, code="kettles", name="Kettles", no_reason_return=True, statutory_exclusion=None,
                       after_sales_days=None, warranty_days=None)  # E4: an order names only created categories
    _order(ctx, "old", now - timedelta(hours=1))
    old_before = _option(ctx, "old", "refund_only")
    assert old_before["_view"]["policy_version"] == policy_mod.version_id(ctx.policy)

    # The operator edits the policy file and restarts: a new process with other parameters, the same database.
    text = resources.files("aftersales.policy").joinpath("default.toml").read_text("utf-8")
    text = text.replace("after_sales_days = 15", "after_sales_days = 20").replace(
        "merchant_response_hours = 48", "merchant_response_hours = 36")
    path = tmp_path / "policy.toml"
    path.write_text(text, "utf-8")
    new_policy = policy_mod.load(path)
    assert new_policy.after_sales_days == 20 and new_policy.merchant_response_hours == 36
    restarted = Context(engine=ctx.engine, policy=new_policy, clock=ctx.clock)

    # The old order keeps its window (E5: 15 days), its policy version, and its automatic actions' deadlines (M1: 48 h).
    old_after = _option(restarted, "old", "refund_only")
    assert old_after == old_before
    assert old_after["_view"]["policy_version"] != policy_mod.version_id(new_policy)
    opened = case_service.open_case(restarted, BUYER, {"order_id": "old", "type": CaseType.REFUND_ONLY.value,
                                                        "reason": Reason.QUALITY_PROBLEM.value, "refund_fen": 1000},
                                    lang="en")
    due = datetime.fromisoformat(opened["deadline"]["due_at"]).astimezone(UTC)
    assert due == restarted.now() + timedelta(hours=48)

    # A new order, paid under the new file, gets the new terms: 20 days, and M1's 36 hours.
    _order(restarted, "new", restarted.now())
    new = _option(restarted, "new", "refund_only")
    assert new["_view"]["policy_version"] == policy_mod.version_id(new_policy)
    assert datetime.fromisoformat(new["deadline"]) - datetime.fromisoformat(old_after["deadline"]) == timedelta(days=5)
    # A third process, back on the first file, still judges each order by its own version.
    again = Context(engine=ctx.engine, policy=policy_mod.load(), clock=ctx.clock)
    assert _option(again, "new", "refund_only")["deadline"] == new["deadline"] is not None
    opened = case_service.open_case(again, BUYER, {"order_id": "new", "type": CaseType.REFUND_ONLY.value,
                                                        "reason": Reason.QUALITY_PROBLEM.value, "refund_fen": 1000},
                                    lang="en")
    assert datetime.fromisoformat(opened["deadline"]["due_at"]).astimezone(UTC) == again.now() + timedelta(hours=36)
