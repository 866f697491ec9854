"""store.db.make_engine: a PostgreSQL URL's own ``options`` are kept next to the schema's search_path (the schema used
to replace them); the test suite's URL relies on it to commit without waiting for the WAL's flush."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from aftersales.store.db import make_engine


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_url_options_and_schema_both_reach_the_connection(database: Any) -> None:
    assert "options=" in database.url
    engine = make_engine(database.url, schema=database.schema)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "off"
            assert conn.execute(text("SELECT current_schema()")).scalar() == database.schema
    finally:
        engine.dispose()
