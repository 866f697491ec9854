"""Reasons (§2 table) and product categories (E4–E6)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from .errors import InvalidInput
from .messages import N_


class CaseType(StrEnum):
    REFUND_ONLY = "refund_only"
    RETURN_REFUND = "return_refund"
    EXCHANGE = "exchange"
    RESHIP = "reship"
    REPAIR = "repair"


class Reason(StrEnum):
    NO_REASON = "no_reason"
    QUALITY_PROBLEM = "quality_problem"
    NOT_AS_DESCRIBED = "not_as_described"
    WRONG_ITEM = "wrong_item"
    MISSING_PARTS = "missing_parts"
    COUNTERFEIT = "counterfeit"
    DAMAGED_IN_TRANSIT = "damaged_in_transit"
    NOT_RECEIVED = "not_received"
    LATE_DELIVERY = "late_delivery"
    SERVICE_ATTITUDE = "service_attitude"
    OTHER = "other"


class Responsible(StrEnum):
    BUYER = "buyer"
    MERCHANT = "merchant"
    DECIDED_BY_MERCHANT = "decided_by_merchant"


class ReasonCategory(StrEnum):
    """S3 analytics category of a reason."""

    BUYER = "buyer"
    PRODUCT = "product"
    LOGISTICS = "logistics"
    SERVICE = "service"
    OTHER = "other"


REASON_TABLE: dict[Reason, tuple[Responsible, ReasonCategory]] = {
    Reason.NO_REASON: (Responsible.BUYER, ReasonCategory.BUYER),
    Reason.QUALITY_PROBLEM: (Responsible.MERCHANT, ReasonCategory.PRODUCT),
    Reason.NOT_AS_DESCRIBED: (Responsible.MERCHANT, ReasonCategory.PRODUCT),
    Reason.WRONG_ITEM: (Responsible.MERCHANT, ReasonCategory.PRODUCT),
    Reason.MISSING_PARTS: (Responsible.MERCHANT, ReasonCategory.PRODUCT),
    Reason.COUNTERFEIT: (Responsible.MERCHANT, ReasonCategory.PRODUCT),
    Reason.DAMAGED_IN_TRANSIT: (Responsible.MERCHANT, ReasonCategory.LOGISTICS),
    Reason.NOT_RECEIVED: (Responsible.MERCHANT, ReasonCategory.LOGISTICS),
    Reason.LATE_DELIVERY: (Responsible.MERCHANT, ReasonCategory.LOGISTICS),
    Reason.SERVICE_ATTITUDE: (Responsible.MERCHANT, ReasonCategory.SERVICE),
    Reason.OTHER: (Responsible.DECIDED_BY_MERCHANT, ReasonCategory.OTHER),
}

ALL_REASONS: tuple[Reason, ...] = tuple(Reason)
MERCHANT_REASONS: tuple[Reason, ...] = tuple(r for r, (resp, _) in REASON_TABLE.items() if resp is Responsible.MERCHANT)
#: E5: reasons a buyer may give within the after-sales window (merchant responsibility, or `other`).
AFTER_SALES_REASONS: tuple[Reason, ...] = (*MERCHANT_REASONS, Reason.OTHER)
#: E5/M4: reasons for which an exchange makes sense.
EXCHANGE_REASONS: tuple[Reason, ...] = (
    Reason.QUALITY_PROBLEM,
    Reason.NOT_AS_DESCRIBED,
    Reason.WRONG_ITEM,
    Reason.DAMAGED_IN_TRANSIT,
    Reason.OTHER,
)
#: E5: reship is for missing items.
RESHIP_REASONS: tuple[Reason, ...] = (Reason.MISSING_PARTS, Reason.NOT_RECEIVED)
#: E6: warranty repairs.
REPAIR_REASONS: tuple[Reason, ...] = (Reason.QUALITY_PROBLEM,)
#: M4: the merchant may offer an exchange first for these.
EXCHANGE_FIRST_REASONS: frozenset[Reason] = frozenset({Reason.QUALITY_PROBLEM, Reason.WRONG_ITEM})


def is_merchant_responsibility(reason: Reason) -> bool:
    """True when the §2 table makes the merchant responsible for ``reason``."""
    return REASON_TABLE[reason][0] is Responsible.MERCHANT


def reason_category(reason: Reason) -> ReasonCategory:
    """S3 analytics category of ``reason``."""
    return REASON_TABLE[reason][1]


class StatutoryExclusion(StrEnum):
    """E4: goods the law excludes from no-reason returns (CRPL art. 25)."""

    CUSTOM_MADE = "custom_made"
    PERISHABLE = "perishable"
    DIGITAL = "digital"
    PERIODICAL = "periodical"


@dataclass(frozen=True, slots=True)
class Category:
    """A product category and its after-sales terms.

    ``no_reason_return=False`` is the shop's (or platform's) own exclusion: it binds the buyer only when the
    order item carries ``exclusion_confirmed`` (E4). A ``statutory_exclusion`` always binds.
    ``after_sales_days``/``warranty_days`` of ``None`` fall back to the policy.
    ``version`` numbers the category's terms (1, 2, … each change of terms by the platform); an order keeps the
    version in force when it was paid (E4–E6 terms fixed at purchase). ``None``: the category was never configured.
    """

    code: str
    name: str
    no_reason_return: bool = True
    statutory_exclusion: StatutoryExclusion | None = None
    after_sales_days: int | None = None
    warranty_days: int | None = None
    version: int | None = None

    def same_terms(self, other: Category) -> bool:
        """True when ``other`` grants the same E4–E6 terms (the name is not a term)."""
        return (self.no_reason_return, self.statutory_exclusion, self.after_sales_days, self.warranty_days) == (
            other.no_reason_return, other.statutory_exclusion, other.after_sales_days, other.warranty_days)


def default_category(code: str) -> Category:
    """The terms used for a category nobody has configured: returnable, policy windows."""
    return Category(code=code, name=code)


#: E4: how many known category codes a refusal lists (sorted; the rest are counted).
LISTED_CATEGORIES = 20


def require_known_category(sku: str, code: str, known: Collection[str]) -> None:
    """E4: an order item's category must have been created (``PUT /v1/categories/{code}``): an unknown code would
    silently take the default terms and lose a statutory exclusion to a typo. The refusal lists the known codes."""
    if code in known:
        return
    codes = sorted(known)
    listed = ", ".join(codes[:LISTED_CATEGORIES])
    if len(codes) > LISTED_CATEGORIES:
        listed += f", … ({len(codes)} in all)"
    raise InvalidInput("E4", N_("Item {sku} has the category {category}, which has not been created, so its terms "
                                "(E4 exclusions, E5/E6 windows) are unknown; known categories: {known}."),
                       sku=sku, category=code, known=listed or None)
