"""One validated settings object, read from ``AFTERSALES_*`` environment variables."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aftersales.domain import policy as policy_mod
from aftersales.domain.policy import Policy

DEV_SECRET = "dev-secret-change-me"  # noqa: S105 - the development default, refused outside development
DEV_RECORD_SECRET = "dev-record-secret-change-me"  # noqa: S105 - signs D3 records in development/test only


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

    @model_validator(mode="after")
    def _safe_outside_development(self) -> Settings:
        if self.env == "production":
            if self.secret_key == DEV_SECRET or len(self.secret_key) < 32:
                raise ValueError("AFTERSALES_SECRET_KEY must be set to a random value of at least 32 characters in production")
            if self.record_secret == DEV_RECORD_SECRET or len(self.record_secret) < 32:
                raise ValueError("AFTERSALES_RECORD_SECRET must be set to a random value of at least 32 characters in production")
            if self.clock == "manual":
                raise ValueError("AFTERSALES_CLOCK=manual is for tests and demos, not production")
            if self.bootstrap_platform_key and not self.allow_bootstrap_key_in_production:
                raise ValueError("AFTERSALES_BOOTSTRAP_PLATFORM_KEY is refused in production: create a platform key with "
                                 "`aftersales keys create --role platform` and unset it, or set "
                                 "AFTERSALES_ALLOW_BOOTSTRAP_KEY_IN_PRODUCTION=true to accept it anyway")
        return self

    def load_policy(self) -> Policy:
        return policy_mod.load(self.policy_file)

    @property
    def clock_start_utc(self) -> datetime:
        return (self.clock_start or datetime.now(UTC)).astimezone(UTC)
