"""Alembic, driven from code: the same migrations for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text

from .db import make_engine, normalise_url


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("aftersales.store").joinpath("migrations")))
    cfg.attributes["engine"] = engine
    return cfg


def pending(engine: Engine) -> tuple[str, str] | None:
    """``(the database's revision or "none", the code's head)`` when the schema is not at head; None when it is."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if current == heads:
        return None
    return ", ".join(sorted(current)) or "none", ", ".join(sorted(heads))


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


@contextmanager
def migrated_schema(url: str, schema: str) -> Iterator[str]:
    """PostgreSQL: the schema ``schema`` created and migrated to head for the block, then dropped with everything in
    it — the tests' and benchmarks' own databases, side by side on one server."""
    admin = create_engine(normalise_url(url))
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            engine = make_engine(url, schema=schema)
            try:
                upgrade(engine)
            finally:
                engine.dispose()
            yield schema
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
