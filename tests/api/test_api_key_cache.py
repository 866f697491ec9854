"""API keys resolved once per process for a few seconds (issue 7, B1): a revoked key stops working within the TTL."""

from __future__ import annotations

from sqlalchemy import update

from aftersales.api.app import API_KEY_CACHE_SECONDS, PrincipalCache
from aftersales.service.context import Principal
from aftersales.service.setup import hash_key
from aftersales.store import tables as t


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_keeps_a_principal_for_its_ttl_only() -> None:
    clock = FakeClock()
    cache = PrincipalCache(ttl=5.0, clock=clock)
    who = Principal("merchant", "mA")
    assert cache.get("d1") is None
    cache.put("d1", who)
    clock.now += 4.9
    assert cache.get("d1") == who
    clock.now += 0.2
    assert cache.get("d1") is None
    assert cache.get("d1") is None  # expired entries are dropped, not resurrected


def test_cache_ttl_zero_caches_nothing_and_size_is_bounded() -> None:
    off = PrincipalCache(ttl=0)
    off.put("d", Principal("platform"))
    assert off.get("d") is None
    small = PrincipalCache(ttl=60, size=2)
    for i in range(5):
        small.put(f"d{i}", Principal("buyer", f"b{i}"))
        assert small.get(f"d{i}") == Principal("buyer", f"b{i}")
    assert len(small._entries) <= 2


def test_revoked_key_refused_once_its_cache_entry_expires(api, ctx) -> None:
    """API.md: a revoked key is refused. Cached resolutions make that take at most API_KEY_CACHE_SECONDS."""
    assert API_KEY_CACHE_SECONDS <= 5
    clock = FakeClock()
    api.client.app.state.principals = PrincipalCache(ttl=API_KEY_CACHE_SECONDS, clock=clock)
    key = api.key("merchant_c", "merchant", "mA")
    assert api.get("/v1/merchants/mA", who="merchant_c").status_code == 200
    with ctx.engine.begin() as conn:
        conn.execute(update(t.api_keys).where(t.api_keys.c.key_hash == hash_key(key)).values(revoked_at=ctx.now()))
    clock.now += API_KEY_CACHE_SECONDS - 0.5
    assert api.get("/v1/merchants/mA", who="merchant_c").status_code == 200  # still within the TTL: cached
    clock.now += 1.0
    r = api.get("/v1/merchants/mA", who="merchant_c")
    assert r.status_code == 401, r.text
    clock.now += 60  # and it stays refused: refusals are never cached, every call asks the database again
    assert api.get("/v1/merchants/mA", who="merchant_c").status_code == 401
    # The other keys were not affected.
    assert api.get("/v1/merchants/mA", who="merchant_a").status_code == 200
