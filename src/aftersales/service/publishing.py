"""Publishing a policy change (T0, D3; issue 15): a draft, its difference from the version in force, scheduling it
as a version effective at an instant, withdrawing it, and the record of who did each and why.

A draft carries the policy's parameters, category terms (E4–E6), or both: the category terms are published the same
way — scheduled, each becomes a new version of its category effective at the draft's instant (a row of
``category_versions`` naming the draft), which the orders paid from then on are stamped with; withdrawn before that
instant, those versions are removed (no order was judged by them). ``PUT /v1/categories/{code}`` stays an immediate
change (a version effective now).

A version takes effect by being the newest scheduled one whose ``effective_at`` has come (read at the start of every
unit of work, :meth:`Context.policy_at`): no timer is needed, and an order paid from that instant is stamped with it
(:func:`aftersales.service.terms.stamp`) while orders paid before keep theirs. A scheduled version can be withdrawn
only until it takes effect: a version in force never changes.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from aftersales.domain import policy as dpolicy
from aftersales.domain import record as drecord
from aftersales.domain.catalog import Category, StatutoryExclusion
from aftersales.domain.errors import PolicyError
from aftersales.domain.ids import valid_id
from aftersales.domain.policy import Policy, version_id
from aftersales.store import repositories as repo
from aftersales.store import terms as store

from .context import Context, Principal, UnitOfWork, read, run
from .errors import Conflict, Invalid, NotFound
from .records import CANONICAL, CHAIN
from .subjects import new_id

PARAMETERS = tuple(Policy().as_dict())
#: Keys of the GET /v1/policy shape that are not parameters (a client may send the shape back as it got it).
READ_ONLY = frozenset({"version", "effective_at", "effective_from", "draft_id"})
#: The terms of a category a draft may change (E4–E6), with the rule each belongs to; a category's ``code``, ``name``
#: and ``version`` (the GET /v1/categories shape) are ignored.
TERMS = {"no_reason_return": "E4", "statutory_exclusion": "E4", "after_sales_days": "E5", "warranty_days": "E6"}
_TERMS_IGNORED = frozenset({"code", "name", "version"})
_DAYS_MAX = {"after_sales_days": 3650, "warranty_days": 36500}


def _problem_field(problem: str) -> str:
    if problem.startswith("categories"):
        return problem.split(" ", 1)[0]
    return dpolicy.problem_parameter(problem) or "body"


class InvalidPolicy(Invalid):
    """422 naming every parameter or category term that is wrong (the checks of ``aftersales policy check``)."""

    def __init__(self, problems: list[str]) -> None:
        rules = [r for r in (dpolicy.problem_rule(p) for p in problems) if r]
        self.rule = rules[0] if rules else "T0"
        self.errors = [{"field": _problem_field(p), "message": p} for p in problems]
        super().__init__("invalid policy: " + "; ".join(problems))


def check_parameters(raw: dict[str, Any]) -> Policy:
    """The full set of parameters, validated like a policy file; InvalidPolicy listing every problem."""
    values = {k: v for k, v in raw.items() if k not in READ_ONLY}
    missing = [f"{k} is missing: a draft gives every parameter" for k in PARAMETERS if k not in values]
    try:
        policy = dpolicy.validate(values)
    except PolicyError as exc:
        raise InvalidPolicy(missing + exc.problems) from None
    if missing:
        raise InvalidPolicy(missing)
    return policy


def window_problem(after_sales_days: int | None, no_reason_days: int) -> bool:
    """E4/E5: an after-sales window may not end before the no-reason window (one check for every way terms change)."""
    return after_sales_days is not None and after_sales_days < no_reason_days


def check_categories(raw: Any, known: Collection[str], no_reason_days: int) -> dict[str, dict[str, Any]]:
    """Drafted category terms, ``{code: {no_reason_return, statutory_exclusion?, after_sales_days?, warranty_days?}}``,
    validated like ``PUT /v1/categories/{code}`` (E4–E6); InvalidPolicy listing every problem. A category must exist
    (E4: it is created, with its name, by ``PUT /v1/categories/{code}``)."""
    if not isinstance(raw, dict) or not raw:
        raise InvalidPolicy(["categories (E4) must map category codes to their terms"])
    problems: list[str] = []
    out: dict[str, dict[str, Any]] = {}
    for code in sorted(raw, key=str):
        terms, where = raw[code], f"categories.{code}"
        if not valid_id(code):
            problems.append(f"categories.? (T2) {code!r} is not a category code")
            continue
        if code not in known:
            problems.append(f"{where} (E4) is not a category: create it with PUT /v1/categories/{code} first")
            continue
        if not isinstance(terms, dict):
            problems.append(f"{where} (E4) must be a table of terms")
            continue
        problems += [f"{where}.{k} (E4) is not a term of a category" for k in sorted(map(str, terms))
                     if k not in TERMS and k not in _TERMS_IGNORED]
        values = {k: terms.get(k) for k in TERMS}
        if not isinstance(values["no_reason_return"], bool):
            problems.append(f"{where}.no_reason_return (E4) must be true or false")
        excl = values["statutory_exclusion"]
        if excl is not None and excl not in {e.value for e in StatutoryExclusion}:
            problems.append(f"{where}.statutory_exclusion (E4) must be one of "
                            f"{', '.join(e.value for e in StatutoryExclusion)} or absent, got {excl!r}")
        for k, top in _DAYS_MAX.items():
            v = values[k]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top):
                problems.append(f"{where}.{k} ({TERMS[k]}) must be a whole number of days from 0 to {top}, got {v!r}")
                values[k] = None
        if window_problem(values["after_sales_days"], no_reason_days):
            problems.append(f"{where}.after_sales_days (E5) must not end before the {no_reason_days}-day no-reason "
                            "window (E4)")
        out[code] = values
    if problems:
        raise InvalidPolicy(problems)
    return out


def _by(who: Principal, by: str | None) -> str:
    return by or who.key


def _event(uow: UnitOfWork, who: Principal, by: str | None, draft_id: str, kind: str, reason: str,
           data: dict[str, Any]) -> None:
    store.add_policy_event(uow.conn, {"draft_id": draft_id, "kind": kind, "actor": who.role, "actor_id": _by(who, by),
                                      "at": uow.now, "reason": reason, "data": data})


def _in_force(ctx: Context, uow: UnitOfWork) -> tuple[Policy, datetime | None, str | None]:
    return ctx.policy_in_force(uow.conn, uow.now)


def category_difference(book: store.TermsBook, drafted: dict[str, dict[str, Any]] | None,
                        instant: datetime) -> list[dict[str, Any]]:
    """E4–E6: per drafted category, each term whose value differs from the version in force at ``instant``:
    ``{category, name, in_force, draft}`` (categories by code, terms in their order)."""
    out: list[dict[str, Any]] = []
    for code, terms in sorted((drafted or {}).items()):
        cat = book.at(code, instant)
        now = {"no_reason_return": cat.no_reason_return,
               "statutory_exclusion": cat.statutory_exclusion.value if cat.statutory_exclusion else None,
               "after_sales_days": cat.after_sales_days, "warranty_days": cat.warranty_days}
        out += [{"category": code, "name": k, "in_force": now[k], "draft": terms[k]} for k in TERMS if now[k] != terms[k]]
    return out


def drafted_categories(drafted: dict[str, dict[str, Any]] | None) -> dict[str, Category]:
    """Checked category terms of a draft (:func:`check_categories`) as categories, unnumbered (a draft is no version
    yet), for the what-if replay."""
    return {code: Category(code, code, t["no_reason_return"],
                           StatutoryExclusion(t["statutory_exclusion"]) if t["statutory_exclusion"] else None,
                           t["after_sales_days"], t["warranty_days"])
            for code, t in (drafted or {}).items()}


def replay_terms(ctx: Context, drafted: Any, no_reason_days: int) -> dict[str, Category]:
    """Category terms from a draft file (``[categories.CODE]`` tables), checked against the categories that exist,
    as the replay takes them; InvalidPolicy listing every problem."""
    known = read(ctx, lambda uow: set(repo.categories(uow.conn)))
    return drafted_categories(check_categories(drafted, known, no_reason_days))


def _view(ctx: Context, uow: UnitOfWork, row: Any) -> dict[str, Any]:
    current, _, current_draft = _in_force(ctx, uow)
    draft = dpolicy.from_parameters(row.parameters) if row.parameters is not None else None
    book = store.terms_book(uow.conn, row.categories) if row.categories else store.TermsBook({})
    effective = row.status == "scheduled" and row.effective_at <= uow.now
    in_force = effective and (
        (draft is not None and current_draft == row.id)
        or (bool(row.categories) and any(book.at(code, uow.now).version == v
                                         for code, v in store.draft_category_versions(uow.conn, row.id).items())))
    status = "in_force" if in_force else ("superseded" if effective else row.status)
    return {"id": row.id, "status": status, "version": row.version_id, "reason": row.reason,
            "effective_at": row.effective_at.isoformat(), "created_at": row.created_at.isoformat(),
            "created_by": row.created_by,
            "scheduled_at": row.scheduled_at.isoformat() if row.scheduled_at else None,
            "withdrawn_at": row.withdrawn_at.isoformat() if row.withdrawn_at else None,
            "parameters": draft.as_dict() if draft is not None else None, "in_force_version": version_id(current),
            "difference": dpolicy.difference(current, draft) if draft is not None else [],
            "categories": row.categories or {},
            "category_difference": category_difference(book, row.categories, uow.now),
            "allowed_actions": [a for a, ok in (("schedule", row.status == "draft"),
                                                ("withdraw", row.status == "draft" or (row.status == "scheduled"
                                                                                       and row.effective_at > uow.now)))
                                if ok]}


def _load(uow: UnitOfWork, draft_id: str, *, lock: bool = False) -> Any:
    row = store.policy_draft(uow.conn, draft_id, lock=lock)
    if row is None:
        raise NotFound("policy draft", draft_id)
    return row


def create_draft(ctx: Context, who: Principal, parameters: dict[str, Any] | None, *, reason: str,
                 effective_at: datetime | None = None, categories: dict[str, Any] | None = None,
                 by: str | None = None) -> dict[str, Any]:
    """A draft of a new policy version and/or new category terms (nothing changes until it is scheduled) and its
    difference from what is in force. ``parameters``: every parameter, or None to leave the policy as it is;
    ``categories``: ``{code: terms}`` of existing categories, or None."""
    who.require("platform")
    if not parameters and not categories:
        raise InvalidPolicy(["body (T0) a draft gives every parameter of the policy, the terms of categories, or both"])
    policy = check_parameters(parameters) if parameters else None
    if not reason.strip():
        raise Invalid("reason: say why the policy changes (it is kept in the record, D3)")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        current = _in_force(ctx, uow)[0]
        drafted = None
        if categories:
            known = set(repo.categories(uow.conn))
            drafted = check_categories(categories, known, (policy or current).no_reason_days)
        did = new_id("pd")
        at = max(effective_at, uow.now) if effective_at is not None else uow.now
        values: dict[str, Any] = {"id": did, "reason": reason, "effective_at": at, "status": "draft",
                                  "created_at": uow.now, "created_by": _by(who, by)}
        data: dict[str, Any] = {"effective_at": at.isoformat(), "in_force_version": version_id(current)}
        if policy is not None:
            values |= {"parameters": policy.as_dict(), "version_id": version_id(policy)}
            data |= {"version": version_id(policy), "difference": dpolicy.difference(current, policy)}
        if drafted is not None:
            values["categories"] = drafted
            data |= {"categories": drafted, "category_difference": category_difference(
                store.terms_book(uow.conn, drafted), drafted, uow.now)}
        store.insert_policy_draft(uow.conn, values)
        _event(uow, who, by, did, "policy_drafted", reason, data)
        return _view(ctx, uow, _load(uow, did))

    return run(ctx, cmd)


def list_drafts(ctx: Context, who: Principal, status: str | None = None, *, by: str | None = None) -> dict[str, Any]:
    who.require("platform")
    return read(ctx, lambda uow: {"items": [_view(ctx, uow, r) for r in store.policy_drafts(uow.conn, status)]})


def get_draft(ctx: Context, who: Principal, draft_id: str) -> dict[str, Any]:
    who.require("platform")
    return read(ctx, lambda uow: _view(ctx, uow, _load(uow, draft_id)))


def schedule(ctx: Context, who: Principal, draft_id: str, *, reason: str | None = None,
             by: str | None = None) -> dict[str, Any]:
    """Make the draft a version effective at its ``effective_at`` (now if that has passed); it cannot change after."""
    who.require("platform")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = _load(uow, draft_id, lock=True)
        if row.status != "draft":
            raise Conflict("the draft is {status}: only a draft can be scheduled (T0)", status=row.status)
        at = max(row.effective_at, uow.now)
        assert ctx.file_policy is not None
        if not store.set_policy_draft_status(uow.conn, draft_id, "draft", "scheduled",
                                             {"effective_at": at, "scheduled_at": uow.now,
                                              "file_version": version_id(ctx.file_policy)}):
            raise Conflict("the draft was changed meanwhile: reload it")
        # E4–E6: each drafted category gets a version effective at the draft's instant (none when its terms are
        # those already in force then); orders paid from that instant are stamped with it.
        versions = {code: store.add_category_version(uow.conn, code, terms, at, draft_id=draft_id)
                    for code, terms in sorted((row.categories or {}).items())}
        data: dict[str, Any] = {"version": row.version_id, "effective_at": at.isoformat()}
        if versions:
            data["category_versions"] = versions
        _event(uow, who, by, draft_id, "policy_scheduled", reason or row.reason, data)
        ctx.forget_schedule()
        return _view(ctx, uow, _load(uow, draft_id))

    try:
        return run(ctx, cmd)
    finally:
        ctx.forget_schedule()  # this process sees the new schedule at once; others within SCHEDULE_TTL_SECONDS


def withdraw(ctx: Context, who: Principal, draft_id: str, *, reason: str | None = None,
             by: str | None = None) -> dict[str, Any]:
    """Withdraw a draft, or a scheduled version that has not taken effect yet (a version in force never changes)."""
    who.require("platform")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = _load(uow, draft_id, lock=True)
        if row.status == "scheduled" and row.effective_at <= uow.now:
            raise Conflict("this version is in force since {since}: a version never changes once in force; publish a "
                           "new one instead (T0)", since=row.effective_at.isoformat())
        if row.status not in ("draft", "scheduled"):
            raise Conflict("the draft is {status} already", status=row.status)
        if not store.set_policy_draft_status(uow.conn, draft_id, row.status, "withdrawn", {"withdrawn_at": uow.now}):
            raise Conflict("the draft was changed meanwhile: reload it")
        data: dict[str, Any] = {"version": row.version_id, "was": row.status}
        if row.status == "scheduled" and row.categories:
            # Not in force yet (checked above): no order was stamped with these versions.
            data["category_versions"] = store.draft_category_versions(uow.conn, draft_id)
            store.remove_draft_category_versions(uow.conn, draft_id, uow.now)
        _event(uow, who, by, draft_id, "policy_withdrawn", reason or row.reason, data)
        ctx.forget_schedule()
        return _view(ctx, uow, _load(uow, draft_id))

    try:
        return run(ctx, cmd)
    finally:
        ctx.forget_schedule()


def record_items(uow: UnitOfWork) -> list[tuple[str, Any]]:
    return [("event", {"id": r.id, "draft_id": r.draft_id, "kind": r.kind, "actor": r.actor, "actor_id": r.actor_id,
                       "at": r.at.isoformat(), "reason": r.reason, "data": r.data, "rules": ["T0", "D3"]})
            for r in store.policy_events(uow.conn)]


def record(ctx: Context, who: Principal, *, secret: str) -> tuple[bytes, str]:
    """D3: every draft, schedule and withdrawal of the policy, hash-chained and signed like a case's record."""
    who.require("platform")

    def q(uow: UnitOfWork) -> tuple[bytes, str]:
        items = record_items(uow)
        header = {"subject": {"kind": "policy", "id": "platform"}, "exported_at": uow.now.isoformat(),
                  "exported_by": {"actor": who.role, "id": who.subject_id},
                  "includes": {"contents": sorted({k for k, _ in items})},
                  "chain": CHAIN, "canonical": CANONICAL,
                  "signature": "HMAC-SHA256 under the server's record secret of 'aftersales-record/1:' + head",
                  "rules": ["D3", "T0"]}
        doc = drecord.build(header, items, secret)
        return drecord.serialise(doc), f"record-policy-{uow.now:%Y%m%dT%H%M%SZ}.json"

    return read(ctx, q)

