"""A demo marketplace, seeded through the same service functions as the API.

How the past is built: a demo needs orders paid days ago and cases opened 40 hours ago, but every service
function takes "now" from the context's clock. :func:`seed` therefore runs a *script*: a list of steps, each
at an instant relative to ``now`` (the real clock, or the manual clock of the database when the server runs
with ``AFTERSALES_CLOCK=manual``). The steps run in time order on a copy of the context whose clock is a
:class:`ScriptClock` — a manual clock kept in memory, so nothing about it is written to the database. Before
each step, every automatic action that fell due by then is applied (``deadlines.apply_due``), exactly as the
worker would have done, so that the history is the one the rules produce (a group that failed three days ago
was refunded three days ago; an unanswered case was approved by the system when its M1 deadline passed). At
the end the due actions up to ``now`` are applied and the script clock is dropped: the server then runs on
its own clock and the worker takes over.

Nothing is inserted with SQL: merchants, categories, keys, orders, shipments, deliveries, cases and their
actions all go through ``aftersales.service``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from aftersales.domain.errors import DomainError
from aftersales.service import cases, deadlines, deposits, orders, setup, users
from aftersales.service.context import PLATFORM, Clock, Context, Principal, read
from aftersales.service.errors import ServiceError
from aftersales.store import setup as setup_store

H = timedelta(hours=1)
D = timedelta(days=1)

MERCHANTS = (
    ("m-fruit", "Sunny Orchard (fresh and dried fruit)", "Sunny Orchard returns, 8 Guoyuan Rd, Shouguang, Shandong"),
    ("m-apparel", "Lotus Apparel", "Lotus Apparel returns, 21 Fangzhi St, Hangzhou, Zhejiang"),
    ("m-electronics", "Volt Electronics", "Volt Electronics service centre, 300 Huaqiang N Rd, Shenzhen"),
)

#: (code, name, no_reason_return, statutory_exclusion, after_sales_days, warranty_days)
CATEGORIES = (
    ("fresh_fruit", "Fresh fruit", False, "perishable", None, None),
    ("dried_fruit", "Dried fruit and nuts", True, None, None, None),
    ("apparel", "Clothing", True, None, None, None),
    ("custom_apparel", "Custom-printed clothing", False, "custom_made", None, None),
    ("underwear", "Underwear (shop exclusion: no no-reason returns once unsealed)", False, None, None, None),
    ("small_appliance", "Small household appliances", True, None, 15, 365),
    ("phone_accessory", "Phone accessories", True, None, None, 90),
)

BUYERS_WITH_KEYS = ("b-li", "b-ana")


@dataclass(frozen=True, slots=True)
class DemoKey:
    """One demo API key; ``key`` is the secret (shown once by the API, kept in the demo keys file)."""

    role: str
    subject_id: str | None
    label: str
    key: str


class ScriptClock(Clock):
    """A manual clock held in memory: the seed script moves it; the database never sees it."""

    def __init__(self, at: datetime) -> None:
        super().__init__(manual=True, start=at)
        self.at = at

    def now(self, conn: Connection | None = None) -> datetime:
        return self.at

    def set(self, conn: Connection | None, now: datetime) -> None:
        self.at = now


def is_empty(ctx: Context) -> bool:
    """True when the database has no merchant yet (the demo seeds only an empty marketplace)."""
    return read(ctx, lambda uow: setup_store.merchant_count(uow.conn)) == 0


# --- the script ----------------------------------------------------------------------------------------
Step = tuple[datetime, str, Callable[[Context], Any]]


def _item(sku: str, title: str, category: str, price_fen: int, quantity: int = 1, *, confirmed: bool = False) -> dict[str, Any]:
    return {"sku": sku, "title": title, "category": category, "quantity": quantity, "unit_price_fen": price_fen,
            "exclusion_confirmed": confirmed}


class _Script:
    """Collects steps; case ids are only known when a case opens, so later steps look them up by order."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.steps: list[Step] = []
        self.case_of: dict[str, str] = {}

    def at(self, ago: timedelta, what: str, fn: Callable[[Context], Any]) -> None:
        self.steps.append((self.now - ago, what, fn))

    def order(self, ago: timedelta, id: str, merchant: str, buyer: str, items: list[dict[str, Any]], *,
              shipping_fen: int = 0, insured: bool = False, group: dict[str, Any] | None = None) -> None:
        at = self.now - ago
        data = {"id": id, "merchant_id": merchant, "buyer_id": buyer, "paid_at": at, "shipping_fee_fen": shipping_fen,
                "return_shipping_insured": insured, "items": items, "group": group}
        self.at(ago, f"order {id} paid", lambda ctx: orders.create_order(ctx, PLATFORM, data))

    def ship(self, ago: timedelta, order_id: str, merchant: str, tracking: str) -> None:
        self.at(ago, f"order {order_id} shipped",
                lambda ctx: orders.ship_order(ctx, Principal("merchant", merchant), order_id, "SF Express", tracking))

    def deliver(self, ago: timedelta, order_id: str) -> None:
        self.at(ago, f"order {order_id} delivered", lambda ctx: orders.deliver_order(ctx, PLATFORM, order_id, None))

    def fulfil(self, order_id: str, merchant: str, *, shipped_ago: timedelta, delivered_ago: timedelta | None) -> None:
        self.ship(shipped_ago, order_id, merchant, "SF" + order_id.removeprefix("o-") + "000001")
        if delivered_ago is not None:
            self.deliver(delivered_ago, order_id)

    def open_case(self, ago: timedelta, who: Principal, data: dict[str, Any]) -> None:
        def step(ctx: Context) -> Any:
            case = cases.open_case(ctx, who, data, lang="en")
            self.case_of[data["order_id"]] = case["id"]
            return case

        self.at(ago, f"case opened on {data['order_id']}", step)

    def act(self, ago: timedelta, who: Principal, order_id: str, action: str, **params: Any) -> None:
        self.at(ago, f"{action} on the case of {order_id}",
                lambda ctx: cases.act(ctx, who, self.case_of[order_id], action, params, if_match=None, lang="en"))


def _buyer(bid: str) -> Principal:
    return Principal("buyer", bid)


def _merchant(mid: str) -> Principal:
    return Principal("merchant", mid)


def _script(now: datetime) -> _Script:
    s = _Script(now)
    fruit, apparel, volt = _merchant("m-fruit"), _merchant("m-apparel"), _merchant("m-electronics")

    # --- group buys (G1–G5) ------------------------------------------------------------------------------
    # Pending: opened 20 h ago, expires in 4 h; automatic completion allowed, so the merchant may complete it (G5).
    mango = {"id": "g-mango-01", "size": 3, "auto_complete": True}
    s.order(20 * H, "o-1001", "m-fruit", "b-li", [_item("mango-5kg", "Hainan mango 5 kg", "fresh_fruit", 5990)], group=mango)
    s.order(6 * H, "o-1002", "m-fruit", "b-ana", [_item("mango-5kg", "Hainan mango 5 kg", "fresh_fruit", 5990)], group=mango)
    # Formed (both members paid): one member shipped, the other awaiting shipment.
    cherry = {"id": "g-cherry-02", "size": 2}
    s.order(30 * H, "o-1003", "m-fruit", "b-sam", [_item("cherry-2kg", "Yantai cherries 2 kg", "fresh_fruit", 8800)], group=cherry)
    s.order(26 * H, "o-1004", "m-fruit", "b-li", [_item("cherry-2kg", "Yantai cherries 2 kg", "fresh_fruit", 8800)], group=cherry)
    s.ship(3 * H, "o-1003", "m-fruit", "SF1003000001")
    # Failed: nobody joined within 24 h and no automatic completion, so G4 cancelled and refunded it in full.
    s.order(4 * D, "o-1005", "m-fruit", "b-ana", [_item("durian-1", "Musang King durian", "fresh_fruit", 19900)],
            shipping_fen=1000, group={"id": "g-durian-03", "size": 3})
    # Completed early by the merchant (G5), shipped and delivered: perishable, so no no-reason return (E4).
    s.order(50 * H, "o-1006", "m-fruit", "b-li", [_item("apple-10kg", "Aksu apples 10 kg", "fresh_fruit", 6900)],
            group={"id": "g-apple-04", "size": 5, "auto_complete": True})
    s.at(40 * H, "group g-apple-04 completed by the merchant", lambda ctx: orders.complete_group(ctx, fruit, "g-apple-04"))
    s.fulfil("o-1006", "m-fruit", shipped_ago=30 * H, delivered_ago=20 * H)

    # --- plain orders in every state ---------------------------------------------------------------------
    s.order(5 * H, "o-2001", "m-apparel", "b-li", [_item("dress-m", "Linen summer dress, M", "apparel", 15900)], shipping_fen=800)
    s.order(3 * D, "o-2002", "m-apparel", "b-ana", [_item("jeans-30", "Straight jeans, W30", "apparel", 19900)], shipping_fen=800)
    s.ship(2 * D, "o-2002", "m-apparel", "SF2002000001")
    # Delivered two days ago: inside the 7-day window, but the underwear (shop exclusion, confirmed at purchase)
    # and the custom-printed T-shirt (statutory exclusion) cannot be returned without a reason.
    s.order(5 * D, "o-2003", "m-apparel", "b-li", [
        _item("shirt-l", "Oxford shirt, L", "apparel", 12900),
        _item("briefs-3", "Cotton briefs, 3-pack", "underwear", 5900, confirmed=True),
        _item("tee-custom", "T-shirt printed with your photo", "custom_apparel", 7900),
    ], shipping_fen=0, insured=True)
    s.fulfil("o-2003", "m-apparel", shipped_ago=4 * D, delivered_ago=2 * D)
    # Delivered 10 days ago: no-reason window over, merchant-responsibility window (15 days) open.
    s.order(14 * D, "o-2004", "m-apparel", "b-sam", [_item("coat-m", "Wool coat, M", "apparel", 49900)], shipping_fen=1200)
    s.fulfil("o-2004", "m-apparel", shipped_ago=13 * D, delivered_ago=10 * D)
    # Delivered 40 days ago: outside every window (E7: only the merchant may open a case, with consent).
    s.order(45 * D, "o-2005", "m-apparel", "b-ana", [_item("scarf", "Silk scarf", "apparel", 8900)], shipping_fen=600)
    s.fulfil("o-2005", "m-apparel", shipped_ago=44 * D, delivered_ago=40 * D)
    # Delivered 60 days ago, 365-day warranty: repair only (E6).
    s.order(65 * D, "o-3001", "m-electronics", "b-li", [_item("kettle", "Electric kettle 1.7 L", "small_appliance", 12900)],
            shipping_fen=1000)
    s.fulfil("o-3001", "m-electronics", shipped_ago=64 * D, delivered_ago=60 * D)

    # --- open cases near their deadlines ---------------------------------------------------------------
    # Awaiting the merchant, opened 40 h ago: M1 auto-approves in 8 h.
    s.order(5 * D, "o-2006", "m-apparel", "b-ana", [_item("blouse-s", "Chiffon blouse, S", "apparel", 13900)], shipping_fen=800)
    s.fulfil("o-2006", "m-apparel", shipped_ago=4 * D, delivered_ago=3 * D)
    s.open_case(40 * H, _buyer("b-ana"), {"order_id": "o-2006", "type": "return_refund", "reason": "no_reason",
                                          "description": "The colour does not suit me."})
    # Awaiting the merchant, opened 30 h ago: partial refund for a quality problem, M1 in 18 h.
    s.order(12 * D, "o-3003", "m-electronics", "b-li", [_item("earbuds", "Wireless earbuds", "phone_accessory", 29900)],
            shipping_fen=0)
    s.fulfil("o-3003", "m-electronics", shipped_ago=11 * D, delivered_ago=9 * D)
    s.open_case(30 * H, _buyer("b-li"), {"order_id": "o-3003", "type": "refund_only", "reason": "quality_problem",
                                         "refund_fen": 8000, "description": "The left earbud crackles; I will keep them."})
    # Refused, escalated 20 h ago: the platform must take it within 24 h (P1), 4 h left.
    s.order(10 * D, "o-2007", "m-apparel", "b-sam", [_item("skirt-m", "Pleated skirt, M", "apparel", 16900)], shipping_fen=800)
    s.fulfil("o-2007", "m-apparel", shipped_ago=9 * D, delivered_ago=8 * D)
    s.open_case(5 * D, _buyer("b-sam"), {"order_id": "o-2007", "type": "return_refund", "reason": "not_as_described",
                                         "description": "The skirt is navy, the listing shows black."})
    s.act(4 * D, apparel, "o-2007", "reject", reason="The listing photos show navy; the colour matches.")
    s.act(20 * H, _buyer("b-sam"), "o-2007", "escalate", reason="The product title says black.")
    # A replacement to ship: exchange for a wrong item, return received 30 h ago, M7 in 18 h.
    s.order(9 * D, "o-3004", "m-electronics", "b-ana", [_item("cable-usbc", "USB-C cable 2 m", "phone_accessory", 3900, 2)],
            shipping_fen=0)
    s.fulfil("o-3004", "m-electronics", shipped_ago=8 * D, delivered_ago=7 * D)
    s.open_case(6 * D, _buyer("b-ana"), {"order_id": "o-3004", "type": "exchange", "reason": "wrong_item",
                                         "description": "Received 1 m cables instead of 2 m."})
    s.act(5 * D, volt, "o-3004", "approve")
    s.act(4 * D, _buyer("b-ana"), "o-3004", "ship_return", carrier="ZTO", tracking_no="ZTO3004000001", shipping_fee_fen=800)
    s.act(30 * H, volt, "o-3004", "confirm_return")
    # A return awaiting the buyer's shipment (approved 4 days ago, M5).
    s.order(8 * D, "o-3002", "m-electronics", "b-ana", [_item("charger-65w", "65 W charger", "phone_accessory", 14900)],
            shipping_fen=0, insured=True)
    s.fulfil("o-3002", "m-electronics", shipped_ago=7 * D, delivered_ago=6 * D)
    s.open_case(5 * D, _buyer("b-ana"), {"order_id": "o-3002", "type": "return_refund", "reason": "no_reason"})
    s.act(4 * D, volt, "o-3002", "approve")
    # A return in transit (the buyer shipped it 2 days ago; M6 refunds automatically if the shop does nothing).
    s.order(12 * D, "o-2008", "m-apparel", "b-li", [_item("sweater-l", "Cashmere sweater, L", "apparel", 39900)], shipping_fen=0)
    s.fulfil("o-2008", "m-apparel", shipped_ago=11 * D, delivered_ago=9 * D)
    s.open_case(8 * D, _buyer("b-li"), {"order_id": "o-2008", "type": "return_refund", "reason": "quality_problem",
                                        "description": "Pilling after one wear."})
    s.act(7 * D, apparel, "o-2008", "approve")
    s.act(2 * D, _buyer("b-li"), "o-2008", "ship_return", carrier="YTO", tracking_no="YT2008000001", shipping_fee_fen=1200)
    # Refused 6 days ago, waiting for the buyer (resubmit, escalate or accept; silence closes it, M2).
    s.order(12 * D, "o-1007", "m-fruit", "b-sam", [_item("walnut-1kg", "Xinjiang walnuts 1 kg", "dried_fruit", 4900)],
            shipping_fen=500)
    s.fulfil("o-1007", "m-fruit", shipped_ago=11 * D, delivered_ago=10 * D)
    s.open_case(7 * D, _buyer("b-sam"), {"order_id": "o-1007", "type": "refund_only", "reason": "quality_problem",
                                         "description": "Some walnuts are mouldy."})
    s.act(6 * D, fruit, "o-1007", "reject", reason="Please send photos of the mouldy walnuts.")

    # --- closed cases ----------------------------------------------------------------------------------
    # Refund before shipment (E2), approved: refunded in full, order cancelled.
    s.order(12 * D, "o-2009", "m-apparel", "b-ana", [_item("hoodie-m", "Hoodie, M", "apparel", 18900)], shipping_fen=800)
    s.open_case(11 * D + 20 * H, _buyer("b-ana"), {"order_id": "o-2009", "type": "refund_only", "reason": "no_reason"})
    s.act(11 * D + 18 * H, apparel, "o-2009", "approve")
    # Cancelled by the buyer (C1; E8 counts it: 2 cancellations left on that order).
    s.order(7 * D, "o-1008", "m-fruit", "b-li", [_item("dates-1kg", "Hetian jujubes 1 kg", "dried_fruit", 3900)], shipping_fen=0)
    s.fulfil("o-1008", "m-fruit", shipped_ago=6 * D, delivered_ago=5 * D)
    s.open_case(4 * D, _buyer("b-li"), {"order_id": "o-1008", "type": "return_refund", "reason": "no_reason"})
    s.act(3 * D, _buyer("b-li"), "o-1008", "cancel")
    # Nobody answered within 48 h: the system approved it (M1) and the partial refund was paid.
    s.order(16 * D, "o-3005", "m-electronics", "b-sam", [_item("powerbank", "Power bank 20000 mAh", "phone_accessory", 15900)],
            shipping_fen=0)
    s.fulfil("o-3005", "m-electronics", shipped_ago=15 * D, delivered_ago=12 * D)
    s.open_case(10 * D, _buyer("b-sam"), {"order_id": "o-3005", "type": "refund_only", "reason": "late_delivery",
                                          "refund_fen": 2000, "description": "Arrived three days late."})
    return s


def seed(ctx: Context, on_skip: Callable[[str], None] | None = None) -> list[DemoKey]:
    """Seed the demo marketplace (see the module docstring) and create its API keys; returns the keys.

    Does nothing and returns ``[]`` when the database already has merchants. The stories are timed for the shipped
    policy; under another policy a step the rules refuse (say, a refusal after a shorter M1 window has passed) is
    skipped and reported to ``on_skip`` (with the steps of its story that depend on it), and the rest goes on.
    """
    if not is_empty(ctx):
        return []
    now = ctx.now()
    clock = ScriptClock(now - 90 * D)
    sctx = replace(ctx, clock=clock)
    setup_at = now - 90 * D
    for i, (mid, name, address) in enumerate(MERCHANTS):
        setup.create_merchant(sctx, PLATFORM, id=mid, name=name, return_address=address)
        # D1: two shops hold their full deposit; the last is short of it, so the workbench shows a restricted shop.
        short = i == len(MERCHANTS) - 1
        deposits.top_up(sctx, PLATFORM, mid, ctx.policy.deposit_required_fen // (4 if short else 1))
    for code, name, no_reason, statutory, as_days, w_days in CATEGORIES:
        setup.put_category(sctx, PLATFORM, code=code, name=name, no_reason_return=no_reason, statutory_exclusion=statutory,
                           after_sales_days=as_days, warranty_days=w_days)
    script = _script(now)
    for at, what, fn in sorted(script.steps, key=lambda step: step[0]):
        assert at >= setup_at, what
        clock.set(None, at)
        deadlines.apply_due(sctx, at)
        try:
            fn(sctx)
        except (ServiceError, DomainError, KeyError) as exc:
            detail = exc.detail if isinstance(exc, ServiceError) else str(exc)
            if on_skip is not None:
                on_skip(f"demo step {what!r} skipped: {detail}")
    clock.set(None, now)
    deadlines.apply_due(sctx, now)
    return _create_keys(ctx)


def _create_keys(ctx: Context) -> list[DemoKey]:
    wanted: list[tuple[str, str | None, str]] = [("platform", None, "demo platform agent")]
    wanted += [("merchant", mid, f"demo {name}") for mid, name, _ in MERCHANTS]
    wanted += [("buyer", bid, f"demo buyer {bid}") for bid in BUYERS_WITH_KEYS]
    out = []
    for role, subject, label in wanted:
        created = setup.create_api_key(ctx, None, role=role, subject_id=subject, label=label)
        out.append(DemoKey(role, subject, label, created["key"]))
    return out + _create_logins(ctx)


#: Workbench logins of the demo: (username, role, merchant). Their passwords are random, printed by `make run`.
LOGINS = (("platform.agent", "platform_agent", None), ("fruit.agent", "merchant_agent", "m-fruit"),
          ("apparel.agent", "merchant_agent", "m-apparel"), ("electronics.admin", "merchant_admin", "m-electronics"))


def _create_logins(ctx: Context) -> list[DemoKey]:
    """One workbench user per role (kept like the keys, as ``DemoKey(role="workbench", subject=username)``)."""
    out = []
    for username, role, merchant in LOGINS:
        password = secrets.token_urlsafe(12)
        users.create_user(ctx, None, username=username, password=password, role=role, merchant_id=merchant)
        out.append(DemoKey("workbench", username, f"{role}{' of ' + merchant if merchant else ''}", password))
    return out


# --- the demo keys file (development only) -----------------------------------------------------------
# `aftersales run` keeps the plaintext of the demo keys (./var/demo-keys.json) so that a second run can print them
# again; the database keeps only their hashes.
def save_keys(path: Path, keys: list[DemoKey]) -> None:
    """Write the keys' plaintext to ``path``, readable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"note": "Demo API keys (development only). The database stores only their hashes.",
            "created_at": datetime.now(UTC).isoformat(), "keys": [asdict(k) for k in keys]}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.chmod(path, 0o600)


def load_keys(path: Path, ctx: Context) -> list[DemoKey]:
    """The keys of ``path`` that this database still accepts (a file left from another database is ignored)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = [DemoKey(k["role"], k.get("subject_id"), k.get("label", ""), k["key"]) for k in data["keys"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    valid = []
    for k in keys:
        if k.role == "workbench":
            if users.exists(ctx, k.subject_id or ""):
                valid.append(k)
            continue
        try:
            setup.authenticate(ctx, k.key, None)
        except ServiceError:
            continue
        valid.append(k)
    return valid
