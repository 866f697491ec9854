"""API tests keep server files (D3 evidence) in the test's own directory, never in ./var of the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Autouse fixtures run before the `api` fixture builds its Settings, which read AFTERSALES_DATA_DIR.
    monkeypatch.setenv("AFTERSALES_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"
