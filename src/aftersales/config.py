"""One validated settings object, read from ``AFTERSALES_*`` environment variables."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aftersales.domain import policy as policy_mod
from aftersales.domain.policy import Policy

DEV_SECRET = "dev-secret-change-me"  # noqa: S105 - the development default, refused outside development
DEV_RECORD_SECRET = "dev-record-secret-change-me"  # noqa: S105 - signs D3 records in development/test only
MIN_SECRET_LENGTH = 32
#: A production secret needs this many distinct characters and this many bits by its own character frequencies
#: (``"a" * 32`` has 1 and 0 bits; 32 random hex digits about 13 and 110, never below 9 and 90 in 20,000 draws).
#: ``python -c 'import secrets; print(secrets.token_urlsafe(32))'`` makes one.
MIN_SECRET_DISTINCT = 8
MIN_SECRET_BITS = 80


def secret_bits(value: str) -> float:
    """An estimate of a secret's entropy: its length times the Shannon entropy of its own character frequencies.
    Generous to a random string, harsh to a repeated or short-alphabet one."""
    if not value:
        return 0.0
    counts = Counter(value)
    return -len(value) * sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def weak_secret(value: str, default: str) -> str | None:
    """Why ``value`` is not a production secret, or None."""
    if value == default:
        return "it is the public development default"
    if len(value) < MIN_SECRET_LENGTH:
        return f"it has {len(value)} characters"
    if (value + value).find(value, 1) < len(value):
        return "it is one short sequence repeated"
    distinct = len(set(value))
    if distinct < MIN_SECRET_DISTINCT or secret_bits(value) < MIN_SECRET_BITS:
        return f"it is not random enough ({distinct} distinct characters, about {int(secret_bits(value))} bits)"
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AFTERSALES_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///./var/aftersales.db"
    #: PostgreSQL only: use this schema (tests give every run its own).
    database_schema: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    policy_file: Path | None = None
    clock: Literal["real", "manual"] = "real"
    clock_start: AwareDatetime | None = None
    bootstrap_platform_key: str | None = Field(default=None, min_length=24)
    #: Production refuses to start with a bootstrap platform key (a static secret in the environment, not listed,
    #: not revocable through the API) unless this says it is meant.
    allow_bootstrap_key_in_production: bool = False
    secret_key: str = DEV_SECRET
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    #: Run the deadline worker inside `aftersales serve`.
    worker_in_process: bool = True
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    db_pool_size: int = Field(default=10, ge=1)
    #: Requests handled at once per server process (the thread pool the synchronous endpoints run in). More threads
    #: than this only fight over the GIL and the database: the rest wait their turn (issue 7, B1; bench/README.md).
    server_threads: int = Field(default=8, ge=1, le=1000)
    #: An Idempotency-Key request unanswered after this long was abandoned (its server died): a retry may take it over.
    idempotency_in_flight_seconds: float = Field(default=120.0, gt=0)
    #: Files the server keeps (D3 evidence under ``<data_dir>/evidence``).
    data_dir: Path = Path("var")
    #: D3/K2: the largest evidence file accepted (bytes); uploads are exempt from ``max_body_bytes``.
    max_evidence_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    #: D3: the HMAC-SHA256 key signing the head hash of exported records (``aftersales verify`` checks it).
    record_secret: str = DEV_RECORD_SECRET
    #: SEC1: let webhooks reach loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local and CGNAT
    #: addresses. Off by default: a merchant's URL must not reach into the operator's network. Metadata, multicast,
    #: unspecified and reserved addresses stay refused whatever this says.
    webhook_allow_private: bool = False
    #: SEC2: webhook subscriptions one merchant (or the platform, for its platform-wide ones) may keep.
    webhook_max_subscriptions: int = Field(default=10, ge=1, le=1000)

    @model_validator(mode="after")
    def _safe_outside_development(self) -> Settings:
        if self.env == "production":
            for name, value, default in (("AFTERSALES_SECRET_KEY", self.secret_key, DEV_SECRET),
                                         ("AFTERSALES_RECORD_SECRET", self.record_secret, DEV_RECORD_SECRET)):
                problem = weak_secret(value, default)
                if problem:
                    raise ValueError(f"{name} must be a random value of at least {MIN_SECRET_LENGTH} characters in production: {problem}")
            if self.clock == "manual":
                raise ValueError("AFTERSALES_CLOCK=manual is for tests and demos, not production")
            if self.bootstrap_platform_key and not self.allow_bootstrap_key_in_production:
                raise ValueError("AFTERSALES_BOOTSTRAP_PLATFORM_KEY is refused in production: create a platform key with "
                                 "`aftersales keys create --role platform` and unset it, or set "
                                 "AFTERSALES_ALLOW_BOOTSTRAP_KEY_IN_PRODUCTION=true to accept it anyway")
        return self

    def warnings(self) -> list[str]:
        """What is unsafe about this configuration (outside production, where it would not start): said loudly at
        start-up by ``aftersales run`` / ``serve`` and logged by the application."""
        out = []
        if self.secret_key == DEV_SECRET:
            out.append("AFTERSALES_SECRET_KEY is the public development default: buyers' portal links are signed with a key "
                       "anyone can read, so anyone can forge one. Set a random value of 32+ characters.")
        if self.record_secret == DEV_RECORD_SECRET:
            out.append("AFTERSALES_RECORD_SECRET is the public development default: exported records (D3) are signed with a key "
                       "anyone can read. Set a random value of 32+ characters.")
        if self.env != "production" and self.secret_key == DEV_SECRET:
            out.append(f"AFTERSALES_ENV is {self.env!r}: cookies are not forced Secure, no HSTS, http webhooks are accepted. "
                       "Set AFTERSALES_ENV=production for a real deployment.")
        if self.webhook_allow_private:
            out.append("AFTERSALES_WEBHOOK_ALLOW_PRIVATE is on: webhooks may reach loopback and private addresses of this network.")
        return out

    def load_policy(self) -> Policy:
        return policy_mod.load(self.policy_file)

    @property
    def clock_start_utc(self) -> datetime:
        return (self.clock_start or datetime.now(UTC)).astimezone(UTC)
