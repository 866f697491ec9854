"""Safe defaults: production refuses weak secrets, start-up warns about the public defaults; CSV exports guard formulas."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aftersales.config import DEV_RECORD_SECRET, DEV_SECRET, Settings, weak_secret
from aftersales.web.insights import csv_cell

#: Fixed strings (tests are deterministic): one made by secrets.token_urlsafe(32) once, one by token_hex(16).
GOOD = "q3Vd9-LxT0pZr7hYkW2nBf5sJc8aUeGm4oRi1tXyQvE"
GOOD_HEX = "0c789dcffc36f3823103f897a91b896d"


def production(**overrides):
    values = {"env": "production", "secret_key": GOOD, "record_secret": GOOD_HEX, "clock": "real"}
    return Settings(**{**values, **overrides})


@pytest.mark.parametrize("secret", [DEV_SECRET, "a" * 32, "ab" * 16, "abcdefgh" * 4, "x" * 64, "short-but-random-7Hq", "0123" * 8])
def test_production_refuses_weak_secrets(secret):
    with pytest.raises(ValidationError, match="AFTERSALES_SECRET_KEY"):
        production(secret_key=secret)
    with pytest.raises(ValidationError, match="AFTERSALES_RECORD_SECRET"):
        production(record_secret=secret)


def test_production_accepts_random_secrets_and_warns_about_nothing():
    assert weak_secret(GOOD, DEV_SECRET) is None and weak_secret(GOOD_HEX, DEV_SECRET) is None
    assert production().warnings() == []


def test_default_secrets_are_warned_about_loudly():
    warnings = Settings(env="development").warnings()
    assert any("AFTERSALES_SECRET_KEY" in w and "forge" in w for w in warnings)
    assert any("AFTERSALES_RECORD_SECRET" in w for w in warnings)
    assert any("AFTERSALES_ENV" in w for w in warnings)
    assert Settings(env="development", secret_key=GOOD, record_secret=DEV_RECORD_SECRET).warnings() == [
        w for w in warnings if "RECORD" in w]


def test_production_refuses_the_manual_clock():
    with pytest.raises(ValidationError, match="manual"):
        production(clock="manual")


@pytest.mark.parametrize(("value", "cell"), [
    ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
    ("+1", "'+1"),
    ("-2+3", "'-2+3"),
    ("@cmd", "'@cmd"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("\nx", "'\nx"),
    ("  =HYPERLINK(\"http://x\")", "'  =HYPERLINK(\"http://x\")"),
    ("\u00a0=1+1", "'\u00a0=1+1"),
    ("\u3000@x", "'\u3000@x"),
    ("\u200b=1", "'\u200b=1"),
    ("\uff1d1+1", "'\uff1d1+1"),
    ("Shirt = nice", "Shirt = nice"),
    ("T-shirt", "T-shirt"),
    ("", ""),
    (None, ""),
    (-5, "-5"),
    (12, "12"),
    ("61.5", "61.5"),
])
def test_csv_cells_never_start_a_formula(value, cell):
    assert csv_cell(value) == cell
