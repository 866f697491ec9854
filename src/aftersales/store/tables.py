"""SQLAlchemy 2 tables. Money columns are BigInteger fen; instants are timezone-aware (stored UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text, TypeDecorator, text

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


merchants = Table(
    "merchants", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("return_address", Text),
    Column("closed", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
)

#: M1/M5: each shop's return addresses; exactly one active address of a shop is its default (the partial unique index),
#: archived ones stay for the record (a case keeps its own copy of the address it was approved to).
return_addresses = Table(
    "return_addresses", metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(64), ForeignKey("merchants.id"), nullable=False),
    Column("label", String(60), nullable=False),
    Column("contact_name", String(80), nullable=False),
    Column("phone", String(32), nullable=False),
    Column("address", Text, nullable=False),
    Column("is_default", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("archived_at", UtcDateTime),
    Index("ix_return_addresses_merchant_id", "merchant_id", "id"),
    Index("uq_return_addresses_default", "merchant_id", unique=True,
          sqlite_where=text("is_default"), postgresql_where=text("is_default")),
)

categories = Table(
    "categories", metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("no_reason_return", Boolean, nullable=False),
    Column("statutory_exclusion", String(32)),
    Column("after_sales_days", Integer),
    Column("warranty_days", Integer),
)

#: E4–E6 terms fixed at purchase: every version of a category's terms, kept for ever (never updated); an order
#: records the version in force when it was paid (migration 0017).
category_versions = Table(
    "category_versions", metadata,
    Column("code", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("no_reason_return", Boolean, nullable=False),
    Column("statutory_exclusion", String(32)),
    Column("after_sales_days", Integer),
    Column("warranty_days", Integer),
    Column("effective_at", UtcDateTime, nullable=False),
    #: The policy draft a scheduled version came from (None: an immediate PUT /v1/categories/{code}); migration 0025.
    Column("draft_id", String(40), index=True),
)

#: Change marks (migration 0027): a value that changes with every committed change of what it names, so that a
#: process may keep a copy of rarely changed rows and know, from one value read with something it reads anyway,
#: whether its copy is still what the database holds. ``terms``: categories and category_versions (PostgreSQL: set
#: from a sequence by a trigger on either table, store/terms.py's cache).
change_marks = Table(
    "change_marks", metadata,
    Column("name", String(40), primary_key=True),
    Column("mark", BigInteger, nullable=False),
)

#: The parameters of every platform policy version ever in force, by id (a hash of the parameters), so that an order
#: keeps its policy's windows and deadlines when the service restarts with another policy file (migration 0017).
policy_versions = Table(
    "policy_versions", metadata,
    Column("id", String(32), primary_key=True),
    Column("parameters", JSON, nullable=False),
    Column("effective_at", UtcDateTime, nullable=False),
)

#: T0, issue 15: drafts of a new platform policy version. A draft is ``draft`` until it is ``scheduled`` (a version
#: effective at ``effective_at``, never changed once in force) or ``withdrawn``; the row keeps its parameters.
policy_drafts = Table(
    "policy_drafts", metadata,
    Column("id", String(40), primary_key=True),
    #: The drafted policy parameters; None: the draft changes only category terms (migration 0025).
    Column("parameters", JSON),
    Column("version_id", String(32)),
    #: The drafted terms per category code (E4–E6): {code: {no_reason_return, statutory_exclusion, after_sales_days,
    #: warranty_days}}; None: the draft changes only the policy.
    Column("categories", JSON),
    Column("reason", Text, nullable=False),
    Column("effective_at", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("scheduled_at", UtcDateTime),
    Column("withdrawn_at", UtcDateTime),
    #: The policy file's version when the draft was scheduled (a file replaced since then is in force again).
    Column("file_version", String(32)),
    Index("ix_policy_drafts_status_effective_at", "status", "effective_at"),
)

#: Issue 15: what-if replay jobs of a policy draft over a period, run by the worker (migration 0023). ``queued`` until a
#: worker claims it (``running``, its ``heartbeat_at`` renewed with every batch), then ``done`` with the report and its
#: CSV rows, or ``failed`` with the error. The only row a replay ever writes.
replay_jobs = Table(
    "replay_jobs", metadata,
    Column("id", String(40), primary_key=True),
    Column("draft_id", String(40), ForeignKey("policy_drafts.id"), nullable=False, index=True),
    Column("start", UtcDateTime, nullable=False),
    Column("end", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("done", Integer, nullable=False, default=0),
    Column("total", Integer),
    #: How many processes replay the orders (migration 0025)
    Column("workers", Integer, nullable=False, default=1, server_default="1"),
    Column("report", JSON),
    Column("rows", JSON),
    Column("error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("started_at", UtcDateTime),
    Column("heartbeat_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Index("ix_replay_jobs_status_created_at", "status", "created_at"),
)

#: D3: every draft, schedule and withdrawal of a policy version, with who and why (append-only; exported hash-chained).
policy_events = Table(
    "policy_events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("draft_id", String(40), ForeignKey("policy_drafts.id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("actor", String(16), nullable=False),
    Column("actor_id", String(80)),
    Column("at", UtcDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("data", JSON, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(32), primary_key=True),
    Column("key_hash", String(128), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("subject_id", String(64)),
    Column("label", String(200)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)

groups = Table(
    "groups", metadata,
    Column("id", String(64), primary_key=True),
    Column("merchant_id", String(64), ForeignKey("merchants.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", JSON, nullable=False),
)

orders = Table(
    "orders", metadata,
    Column("id", String(64), primary_key=True),
    Column("merchant_id", String(64), ForeignKey("merchants.id"), nullable=False, index=True),
    Column("buyer_id", String(64), nullable=False, index=True),
    Column("group_id", String(64), ForeignKey("groups.id"), index=True),
    Column("status", String(24), nullable=False),
    Column("paid_fen", BigInteger, nullable=False),
    Column("refunded_fen", BigInteger, nullable=False),
    Column("paid_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", JSON, nullable=False),
    Index("ix_orders_paid", "paid_at"),  # insights: units sold in a window
    Index("ix_orders_merchant_paid", "merchant_id", "paid_at"),
)

#: Columns the insights read, carried in the window indexes of ``cases`` (PostgreSQL INCLUDE).
_CASE_INSIGHTS = ["merchant_id", "reason", "type", "closed_at", "first_response_at"]

cases = Table(
    "cases", metadata,
    Column("id", String(64), primary_key=True),
    Column("order_id", String(64), ForeignKey("orders.id"), nullable=False, index=True),
    Column("merchant_id", String(64), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("type", String(16), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("close_reason", String(32)),
    Column("refunded_fen", BigInteger, nullable=False),
    Column("stage", Integer, nullable=False, server_default="0"),  # timers of another stage are stale
    Column("due_action", String(32)),
    Column("due_at", UtcDateTime),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime),
    Column("version", Integer, nullable=False),
    Column("state", JSON, nullable=False),
    Column("first_response_at", UtcDateTime),  # S1: projected from the state for the insights (migration 0008)
    # S1: the shop's user handling the case (claim / assign, migration 0020). Not part of the case's state: only the
    # assignment writes it, with an ``assigned`` event.
    Column("assignee_id", String(64)),
    Index("ix_cases_merchant_status_due", "merchant_id", "status", "due_at"),
    Index("ix_cases_merchant_assignee_due", "merchant_id", "assignee_id", "due_at"),
    Index("ix_cases_buyer", "buyer_id", "id"),
    Index("ix_cases_status_due", "status", "due_at"),
    # Insights (S1, S3): a window of cases by opening or closing instant, all shops or one, read from the index alone.
    Index("ix_cases_opened", "opened_at", postgresql_include=_CASE_INSIGHTS),
    Index("ix_cases_merchant_opened", "merchant_id", "opened_at", postgresql_include=_CASE_INSIGHTS),
    Index("ix_cases_closed", "closed_at", postgresql_include=["merchant_id"]),
    Index("ix_cases_merchant_closed", "merchant_id", "closed_at"),
)

#: The case search index (S1, store/search.py): an order's findable terms, lower-cased, under its merchant. A prefix
#: search is a range scan of the primary key; the term compares by code point ("C" collation on PostgreSQL).
search_terms = Table(
    "search_terms", metadata,
    Column("merchant_id", String(64), primary_key=True),
    Column("term", String(64).with_variant(String(64, collation="C"), "postgresql"), primary_key=True),
    Column("order_id", String(64), primary_key=True),
)

refunds = Table(
    "refunds", metadata,
    Column("key", String(160), primary_key=True),
    Column("order_id", String(64), ForeignKey("orders.id"), nullable=False, index=True),
    Column("case_id", String(64), index=True),
    Column("kind", String(24), nullable=False),
    Column("payer", String(16), nullable=False),
    Column("rule", String(8), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("refund_fen", BigInteger, nullable=False),
    Column("return_shipping_fen", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("settled_at", UtcDateTime),
)

events = Table(
    "events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("order_id", String(64), index=True),
    Column("case_id", String(64), index=True),
    Column("group_id", String(64)),
    Column("kind", String(48), nullable=False),
    Column("actor", String(16), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("rules", JSON, nullable=False),
    Column("from_status", String(32)),
    Column("to_status", String(32)),
    Column("data", JSON, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

#: Buyers' (and shops') case openings refused by eligibility (E1–E9), kept for the what-if replay (issue 15): a draft
#: policy that would have allowed one shows it. Written in a transaction of its own; the refusal itself is unchanged.
refused_openings = Table(
    "refused_openings", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("merchant_id", String(64), nullable=False),
    Column("actor", String(16), nullable=False),
    Column("case_type", String(16), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("items", JSON),
    Column("refund_fen", BigInteger),
    Column("buyer_consent", Boolean, nullable=False, default=False),
    Column("rule", String(8), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    # Where the refusal falls in the order's history: how many of its events were stored before it.
    Column("events_before", Integer, nullable=False),
    Index("ix_refused_openings_at", "at"),
)

# Durable deadlines (M1–M7, P1, P2, G4): one row per pending automatic action, written with the state.
timers = Table(
    "timers", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("subject", String(16), nullable=False),  # "case" | "group" | "complaint" | "withdrawal"
    Column("subject_id", String(64), nullable=False),
    Column("order_id", String(64)),
    Column("action", String(32), nullable=False),
    Column("stage", Integer, nullable=False),
    Column("rule", String(8), nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    # F2: an action that could not apply stays, with its tries, its last error and when to try again; after
    # store/timers.py MAX_ATTEMPTS tries it is parked (stuck_at) for the platform and no longer claimed.
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", String(500)),
    Column("next_try_at", UtcDateTime),
    Column("stuck_at", UtcDateTime),
    Index("ix_timers_due", "due_at", "id"),
    Index("ix_timers_subject", "subject", "subject_id"),
    Index("ix_timers_stuck", "stuck_at", "id", postgresql_where=text("stuck_at IS NOT NULL"),
          sqlite_where=text("stuck_at IS NOT NULL")),
)

idempotency = Table(
    "idempotency_keys", metadata,
    Column("principal", String(80), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("method", String(8), nullable=False),
    Column("path", String(400), nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("status_code", Integer),
    Column("response", Text),
    Column("content_type", String(80)),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_idempotency_keys_created_at", "created_at"),  # the worker's purge (store/idempotency.py)
)

kv = Table(
    "kv", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# --- outbox: webhooks and payments (deliveries leave after the transaction that caused them commits) ------
webhook_subscriptions = Table(
    "webhook_subscriptions", metadata,
    Column("id", String(32), primary_key=True),
    Column("merchant_id", String(64), ForeignKey("merchants.id"), index=True),  # NULL: platform-wide
    Column("url", String(2000), nullable=False),
    Column("secret", String(200), nullable=False),
    Column("event_types", JSON, nullable=False),  # [] = every event
    Column("active", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # SEC1: when and why it stopped (``delivery_failed``: the retry schedule ran out; ``deleted`` by its owner).
    Column("disabled_at", UtcDateTime),
    Column("disabled_reason", String(40)),
)

# SEC2: one row per event, written in the event's transaction whatever the number of subscribers; the worker fans
# it out into ``webhook_deliveries`` and deletes it.
webhook_outbox = Table(
    "webhook_outbox", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", BigInteger, nullable=False),
    Column("merchant_id", String(64), nullable=False),
    Column("event_type", String(48), nullable=False),
    Column("ordering_key", String(80), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("subscription_id", String(32), ForeignKey("webhook_subscriptions.id"), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("event_type", String(48), nullable=False),
    Column("ordering_key", String(80), nullable=False),  # deliveries of one case (or order/group) go in order
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed (the retry schedule ran out)
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_status_code", Integer),
    Column("last_error", String(500)),  # SEC1: a coarse class (timeout, connection_error, …), never the socket's message
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_sub", "subscription_id", "id"),
    Index("ix_webhook_deliveries_order", "subscription_id", "ordering_key", "status", "id"),
)

webhook_attempts = Table(
    "webhook_attempts", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("delivery_id", BigInteger, ForeignKey("webhook_deliveries.id"), nullable=False, index=True),
    Column("at", UtcDateTime, nullable=False),
    Column("status_code", Integer),
    Column("error", String(500)),
    Column("duration_ms", Integer, nullable=False),
)

# F1: refunds for an external payment gateway wait here until the gateway confirms them.
payment_jobs = Table(
    "payment_jobs", metadata,
    Column("refund_key", String(160), ForeignKey("refunds.key"), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", String(500)),
    Index("ix_payment_jobs_due", "next_attempt_at"),
)

# --- D2 ledger: append-only, balanced; balances are sums of entries ---------------------------------------------
ledger_transactions = Table(
    "ledger_transactions", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False, unique=True),  # idempotency: one posting per key
    Column("kind", String(40), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("order_id", String(64), index=True),
    Column("case_id", String(64)),
    Column("rule", String(8)),
    Column("amount_fen", BigInteger, nullable=False),
)

ledger_entries = Table(
    "ledger_entries", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("transaction_id", BigInteger, ForeignKey("ledger_transactions.id"), nullable=False, index=True),
    Column("account", String(120), nullable=False),
    Column("debit_fen", BigInteger, nullable=False),
    Column("credit_fen", BigInteger, nullable=False),
    # The account's owner (D2, T2): every listing of a merchant's or buyer's money filters on these by equality.
    Column("owner_kind", String(16), nullable=False),  # merchant | buyer | platform
    Column("owner_id", String(64), nullable=False),  # "" for the platform
    Index("ix_ledger_entries_account", "account", "transaction_id"),
    Index("ix_ledger_entries_owner", "owner_kind", "owner_id", "transaction_id"),
)

# --- D1 deposits: withdrawal requests (the deposit balance itself is derived from the ledger) -----------------
withdrawals = Table(
    "withdrawals", metadata,
    Column("id", String(64), primary_key=True),
    Column("merchant_id", String(64), ForeignKey("merchants.id"), nullable=False, index=True),
    Column("amount_fen", BigInteger, nullable=False),  # fen, positive
    Column("status", String(16), nullable=False),  # pending | completed | cancelled | failed
    Column("reason", String(500)),  # why it failed, was cancelled, or is still waiting
    Column("requested_by", String(80), nullable=False),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),  # requested_at + deposit_withdrawal_hold_days, or later when waiting
    Column("completed_at", UtcDateTime),
    Column("version", Integer, nullable=False),
)

# --- K1/K2 complaints -------------------------------------------------------------------------------------------
complaints = Table(
    "complaints", metadata,
    Column("id", String(64), primary_key=True),
    Column("merchant_id", String(64), ForeignKey("merchants.id"), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("order_id", String(64), ForeignKey("orders.id"), index=True),
    Column("case_id", String(64)),
    Column("channel", String(32), nullable=False),
    Column("category", String(32), nullable=False),
    Column("description", Text, nullable=False),
    Column("filed_by", String(80), nullable=False),  # the principal that filed (a buyer, or the platform for a phone call)
    Column("status", String(16), nullable=False),
    Column("outcome", String(16)),
    Column("rationale", Text),  # the reason of a rejection, or the rationale of a resolution
    Column("response", Text),  # the merchant's answer
    Column("remedies", JSON, nullable=False),  # [{"type", "amount_fen"}]
    Column("flags", JSON, nullable=False),  # [{"rule", "kind", "at"}]: missed K2 limits
    Column("flagged", Boolean, nullable=False),
    Column("stage", Integer, nullable=False),  # timers of another stage are stale
    Column("due_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("accepted_at", UtcDateTime),
    Column("answered_at", UtcDateTime),
    Column("closed_at", UtcDateTime),
    Column("version", Integer, nullable=False),
    Index("ix_complaints_merchant_status", "merchant_id", "status"),
    Index("ix_complaints_buyer", "buyer_id", "id"),
)

complaint_events = Table(
    "complaint_events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("complaint_id", String(64), ForeignKey("complaints.id"), nullable=False, index=True),
    Column("kind", String(48), nullable=False),
    Column("actor", String(16), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("rules", JSON, nullable=False),
    Column("data", JSON, nullable=False),
)

# --- evidence, messages, dispute paths (D3) ---------------------------------------------------------------------
# Evidence attached to a case or a complaint; the bytes live in the content-addressed evidence store (sha256).
evidence = Table(
    "evidence", metadata,
    Column("id", String(40), primary_key=True),
    Column("subject", String(16), nullable=False),  # "case" | "complaint"
    Column("subject_id", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("media_type", String(64), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("note", Text),
    Column("uploaded_by", String(16), nullable=False),  # actor role
    Column("uploaded_by_id", String(64)),  # merchant or buyer id; NULL for the platform
    Column("at", UtcDateTime, nullable=False),
    Index("ix_evidence_subject", "subject", "subject_id", "id"),
)

# S5: the conversation on a case or a complaint; internal notes are seen only by the side that wrote them.
messages = Table(
    "messages", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("subject", String(16), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("author", String(16), nullable=False),
    Column("author_id", String(64)),
    Column("internal", Boolean, nullable=False),
    Column("body", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_messages_subject", "subject", "subject_id", "id"),
)

# D3 (ECL art. 60): each path taken to resolve a dispute, with its dates and outcome.
dispute_paths = Table(
    "dispute_paths", metadata,
    Column("id", String(40), primary_key=True),
    Column("subject", String(16), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("path", String(32), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("body", String(200)),  # the organisation, authority or court
    Column("note", Text),
    Column("recorded_by", String(16), nullable=False),
    Column("recorded_by_id", String(64)),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Column("outcome", Text),
    Column("outcome_by", String(16)),
    Column("outcome_by_id", String(64)),
    Column("outcome_recorded_at", UtcDateTime),
    Column("version", Integer, nullable=False),
    Index("ix_dispute_paths_subject", "subject", "subject_id", "id"),
)


# --- the workbench: staff users and browser sessions --------------------------------------------------------------
users = Table(
    "users", metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("role", String(24), nullable=False),  # merchant_agent | merchant_admin | platform_agent
    Column("merchant_id", String(64), ForeignKey("merchants.id")),  # for merchant roles
    Column("password_hash", String(200), nullable=False),  # argon2id
    Column("failed_logins", Integer, nullable=False, default=0),  # consecutive failures; each slows the next try
    Column("locked_until", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime),  # set: the user cannot sign in and their sessions stop working (0021)
)

web_sessions = Table(
    "web_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 of the cookie value: a stolen table logs nobody in
    Column("user_id", String(64), ForeignKey("users.id")),
    Column("buyer_id", String(64)),  # buyer portal sessions (signed link)
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

#: Failed logins counted per bucket: ``pair:<address> <username>`` and ``addr:<address>`` (service/users.py).
login_throttle = Table(
    "login_throttle", metadata,
    Column("bucket", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),  # counted failures since the bucket last went quiet or succeeded
    Column("last_failure_at", UtcDateTime),
    Column("next_attempt_at", UtcDateTime),  # no attempt is weighed before this (a delay, not a lock-out)
)
