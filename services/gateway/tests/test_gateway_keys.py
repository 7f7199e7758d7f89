"""API keys, identifier shapes, the key cache and the model catalog cache."""

import asyncio
import hashlib
from typing import Any
from uuid import uuid4

import httpx
import pytest
from genhub_gateway.adapters.catalog import ModelCatalog, PriceCache
from genhub_gateway.adapters.keystore import KeyStore
from genhub_gateway.adapters.repositories import KeyOwner
from genhub_gateway.adapters.upstream import (
    BillingClient,
    OrchestratorClient,
    UpstreamUnavailable,
)
from genhub_gateway.domain.identifiers import is_valid_user_id
from genhub_gateway.domain.keys import (
    KEY_PREFIX,
    display_prefix,
    generate_key,
    hash_key,
    hashes_match,
    looks_like_key,
)


def test_generated_keys_are_random_prefixed_and_hashed() -> None:
    keys = [generate_key() for _ in range(50)]
    assert len({k.secret for k in keys}) == 50
    for key in keys:
        assert key.secret.startswith(KEY_PREFIX)
        assert len(key.secret) == len(KEY_PREFIX) + 43  # 32 bytes, url-safe base64
        assert key.prefix == key.secret[: len(KEY_PREFIX) + 8]
        assert key.hash == hashlib.sha256(key.secret.encode()).hexdigest()
        assert key.secret not in key.hash
        assert looks_like_key(key.secret)


def test_hashing_and_constant_time_match() -> None:
    key = generate_key()
    assert hash_key(key.secret) == key.hash
    assert hashes_match(key.hash, hash_key(key.secret))
    assert not hashes_match(key.hash, hash_key(key.secret + "x"))
    assert display_prefix("gh_live_abcdefghijkl") == "gh_live_abcdefgh"


@pytest.mark.parametrize("value", ["sk_live_abcdefghijklmnop", "gh_live_", "", "gh_live_é" * 3])
def test_shapes_that_cannot_be_keys(value: str) -> None:
    assert not looks_like_key(value)


@pytest.mark.parametrize("value", ["u1", "user@example.com", "a:b.c-d_e", "x" * 128])
def test_valid_user_ids(value: str) -> None:
    assert is_valid_user_id(value)


@pytest.mark.parametrize("value", ["", "x" * 129, "a b", "a/b", "ü", ".", "..", "a\n"])
def test_invalid_user_ids(value: str) -> None:
    assert not is_valid_user_id(value)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def owner(revoked: bool = False) -> KeyOwner:
    import uuid

    return KeyOwner(
        key_id=uuid.uuid4(),
        key_hash="h",
        revoked=revoked,
        app_id=uuid.uuid4(),
        app_slug="a",
        plan="free",
        enabled=True,
        webhook_url=None,
    )


async def test_key_store_caches_found_keys_for_the_ttl_only() -> None:
    calls: list[str] = []
    current = owner()

    async def load(key_hash: str) -> KeyOwner | None:
        calls.append(key_hash)
        return current if key_hash == "h" else None

    clock = Clock()
    store = KeyStore(load, ttl_s=5, clock=clock)
    assert await store.owner("h") is current
    assert await store.owner("h") is current
    assert calls == ["h"]
    clock.now += 6
    current = owner(revoked=True)
    assert (await store.owner("h")).revoked  # type: ignore[union-attr]
    assert calls == ["h", "h"]
    # Unknown keys are not cached: a key created a moment later works at once.
    assert await store.owner("other") is None
    assert await store.owner("other") is None
    assert calls == ["h", "h", "other", "other"]
    store.invalidate()
    await store.owner("h")
    assert calls[-1] == "h"


async def test_concurrent_misses_share_one_load() -> None:
    calls: list[str] = []
    release = asyncio.Event()
    current = owner()

    async def load(key_hash: str) -> KeyOwner | None:
        calls.append(key_hash)
        await release.wait()
        return current if key_hash == "h" else None

    store = KeyStore(load, ttl_s=5, clock=Clock())
    waiting = [asyncio.create_task(store.owner(h)) for h in ["h"] * 5 + ["other"] * 3]
    await asyncio.sleep(0)
    waiting[0].cancel()  # a request that goes away does not cancel the others' load
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiting[1:])
    assert results == [current] * 4 + [None] * 3
    assert calls == ["h", "other"]
    assert await store.owner("h") is current and calls == ["h", "other"]  # cached
    assert await store.owner("other") is None and calls == ["h", "other", "other"]  # not


async def test_a_failed_load_fails_its_waiters_and_the_next_request_loads_again() -> None:
    attempts: list[int] = []
    release = asyncio.Event()

    async def load(key_hash: str) -> KeyOwner | None:
        attempts.append(1)
        await release.wait()
        if len(attempts) == 1:
            raise ConnectionError("database down")
        return owner()

    store = KeyStore(load, ttl_s=5, clock=Clock())
    waiting = [asyncio.create_task(store.owner("h")) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes) and len(attempts) == 1
    assert await store.owner("h") is not None and len(attempts) == 2


async def test_a_load_started_before_invalidate_is_not_cached_nor_shared_after_it() -> None:
    release = asyncio.Event()
    versions = iter([owner(), owner(revoked=True)])
    calls: list[str] = []

    async def load(key_hash: str) -> KeyOwner | None:
        calls.append(key_hash)
        found = next(versions)
        if len(calls) == 1:
            await release.wait()
        return found

    store = KeyStore(load, ttl_s=5, clock=Clock())
    before = asyncio.create_task(store.owner("h"))
    await asyncio.sleep(0)
    store.invalidate()  # say this replica revoked the key meanwhile
    after = await store.owner("h")  # a load of its own, which sees the revocation
    assert after is not None and after.revoked
    release.set()
    assert not (await before).revoked  # answered from the older read, as before
    cached = await store.owner("h")
    assert cached is after and calls == ["h", "h"]


def flaky_upstream(body: dict[str, Any]) -> tuple[dict[str, Any], httpx.AsyncClient]:
    """A client whose upstream answers `body` while state["up"], refuses otherwise, and
    counts the calls in state["calls"]."""
    state: dict[str, Any] = {"up": True, "calls": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        state["calls"] += 1
        if not state["up"]:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json=body)

    return state, httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def test_model_catalog_caches_and_serves_stale_when_orchestrator_is_down() -> None:
    state, http = flaky_upstream({"models": [{"name": "mock", "max_outputs": 4}]})
    clock = Clock()
    catalog = ModelCatalog(
        OrchestratorClient(http, "http://orch", "orchestrator"), ttl_s=30, clock=clock
    )
    assert (await catalog.get("mock")) is not None
    assert await catalog.get("nope") is None
    assert state["calls"] == 1
    clock.now += 31
    state["up"] = False
    assert (await catalog.get("mock")) is not None  # stale beats down
    assert state["calls"] == 2
    # While it stays down, the stale catalog is served without asking on every request.
    clock.now += 4
    assert (await catalog.get("mock")) is not None
    assert state["calls"] == 2
    clock.now += 1
    state["up"] = True
    assert (await catalog.get("mock")) is not None  # asked again after retry_s
    assert state["calls"] == 3
    clock.now += 29
    assert (await catalog.get("mock")) is not None  # fresh again: a full TTL
    assert state["calls"] == 3

    await http.aclose()


async def test_a_fresh_catalog_with_the_orchestrator_down_refuses_without_asking_each_time() -> (
    None
):
    state, http = flaky_upstream({"models": [{"name": "mock", "max_outputs": 4}]})
    state["up"] = False
    clock = Clock()
    empty = ModelCatalog(OrchestratorClient(http, "http://orch", "orchestrator"), clock=clock)
    for _ in range(5):
        with pytest.raises(UpstreamUnavailable):
            await empty.get("mock")
    assert state["calls"] == 1  # the others were refused at once, not sent after it
    clock.now += 1
    state["up"] = True
    assert (await empty.get("mock")) is not None  # asked again after a second
    assert state["calls"] == 2
    await http.aclose()


async def test_price_cache_serves_stale_prices_and_retries_billing_only_after_retry_s() -> None:
    app_id = uuid4()
    state, http = flaky_upstream({"prices": [{"model": "mock", "tokens_per_output": 1}]})
    clock = Clock()
    prices = PriceCache(BillingClient(http, "http://billing", "billing"), ttl_s=30, clock=clock)
    assert await prices.for_app(app_id) == {"mock": 1}
    clock.now += 31
    state["up"] = False
    assert await prices.for_app(app_id) == {"mock": 1}  # stale beats down
    assert await prices.for_app(app_id) == {"mock": 1}
    assert state["calls"] == 2  # not asked again on the next request
    clock.now += 5
    assert await prices.for_app(app_id) == {"mock": 1}
    assert state["calls"] == 3
    with pytest.raises(UpstreamUnavailable):  # never known: nothing to serve
        await prices.for_app(uuid4())
    await http.aclose()
