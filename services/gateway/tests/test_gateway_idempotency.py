"""Idempotency-Key and `Prefer: wait` rules (pure functions)."""

from datetime import UTC, datetime, timedelta

import pytest
from genhub_gateway.domain.idempotency import (
    COMPLETED,
    IN_PROGRESS,
    Decision,
    InvalidPrefer,
    StoredKey,
    decide,
    fingerprint,
    format_wait,
    parse_prefer_wait,
    waited_status,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=24)
H = fingerprint("POST /v1/generate", "u1", {"model": "mock", "input": {"prompt": "x"}})


def stored(
    state: str = COMPLETED,
    request_hash: str = H,
    age: timedelta = timedelta(minutes=1),
    lease_left: timedelta = timedelta(seconds=30),
) -> StoredKey:
    return StoredKey(
        request_hash=request_hash,
        state=state,
        created_at=NOW - age,
        locked_until=NOW + lease_left,
    )


def test_fingerprint_is_canonical_and_covers_user_and_scope() -> None:
    a = fingerprint("s", "u1", {"a": 1, "b": {"c": [1, 2], "d": "é"}})
    assert a == fingerprint("s", "u1", {"b": {"d": "é", "c": [1, 2]}, "a": 1})
    assert len(a) == 64
    assert a != fingerprint("s", "u2", {"a": 1, "b": {"c": [1, 2], "d": "é"}})
    assert a != fingerprint("t", "u1", {"a": 1, "b": {"c": [1, 2], "d": "é"}})
    assert a != fingerprint("s", "u1", {"a": 2, "b": {"c": [1, 2], "d": "é"}})


@pytest.mark.parametrize(
    ("key", "request_hash", "expected"),
    [
        (None, H, Decision.PROCEED),
        (stored(), H, Decision.REPLAY),
        (stored(), "other", Decision.MISMATCH),
        (stored(state=IN_PROGRESS), H, Decision.IN_FLIGHT),
        (stored(state=IN_PROGRESS), "other", Decision.MISMATCH),
        (stored(state=IN_PROGRESS, lease_left=timedelta(0)), H, Decision.PROCEED),
        (stored(age=TTL), "other", Decision.PROCEED),
        (stored(age=TTL - timedelta(seconds=1)), "other", Decision.MISMATCH),
        (stored(state=IN_PROGRESS, age=TTL * 2), H, Decision.PROCEED),
        (stored(request_hash=""), "anything", Decision.REPLAY),  # recorded before hashing
    ],
)
def test_decide(key: StoredKey | None, request_hash: str, expected: Decision) -> None:
    assert decide(key, request_hash, NOW, TTL) is expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (None, None),
        ([], None),
        (["respond-async"], None),
        (["wait=10"], 10.0),
        (["respond-async, wait=5"], 5.0),
        (["respond-async", "Wait = 60"], 60.0),
        (['wait="2.5"'], 2.5),
        (["wait=7; foo=bar", "handling=lenient"], 7.0),
        (["wait=3, wait=3"], 3.0),
    ],
)
def test_parse_prefer_wait(values: list[str] | None, expected: float | None) -> None:
    assert parse_prefer_wait(values) == expected


@pytest.mark.parametrize(
    "value", ["wait=0", "wait=60.5", "wait=61", "wait=-1", "wait=abc", "wait", "wait=1, wait=2"]
)
def test_parse_prefer_wait_rejects(value: str) -> None:
    with pytest.raises(InvalidPrefer):
        parse_prefer_wait([value])


def test_format_wait() -> None:
    assert (format_wait(30.0), format_wait(0.5)) == ("wait=30", "wait=0.5")


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("queued", None, 202),
        ("reserved", None, 202),
        ("running", None, 202),
        ("succeeded", None, 200),
        ("failed", "provider_error", 200),
        ("cancelled", None, 200),
        ("rejected", "insufficient_tokens", 402),
        ("rejected", "user_disabled", 200),
    ],
)
def test_waited_status(status: str, code: str | None, expected: int) -> None:
    assert waited_status(status, code) == expected
