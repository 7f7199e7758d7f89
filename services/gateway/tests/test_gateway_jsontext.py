"""domain/jsontext.py writes exactly what the stdlib json calls it replaces would: the
Idempotency-Key fingerprints of keys recorded before (or by a replica running the previous
version) must still match, and the metadata limit must count the same characters."""

import hashlib
import json
import random
import sys
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from genhub_gateway.domain import jsontext
from genhub_gateway.domain.idempotency import fingerprint
from genhub_gateway.schemas import GenerateRequest


def stdlib_canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def stdlib_length(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def assert_same(value: Any) -> None:
    assert jsontext.canonical(value) == stdlib_canonical(value)
    try:
        expected = stdlib_length(value)
    except TypeError:  # not JSON (no default=str here): refused alike
        with pytest.raises(TypeError):
            jsontext.compact_length(value)
        return
    assert jsontext.compact_length(value) == expected


EVERY_CHARACTER = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)


def test_every_character_is_written_and_counted_the_same() -> None:
    assert_same({"s": EVERY_CHARACTER})
    assert_same({"s": "".join(chr(c) for c in range(128))})  # ASCII only: orjson's count
    for chunk in range(0, len(EVERY_CHARACTER), 4096):  # each character as a key, sorted
        assert_same({c: 1 for c in EVERY_CHARACTER[chunk : chunk + 4096]})


@pytest.mark.parametrize(
    "value",
    [
        {"n": [0, -1, 2**63 - 1, -(2**63), 2**64 - 1]},
        {"n": [2**64, -(2**63) - 1, 10**40]},  # beyond orjson: the stdlib writes them
        {"f": [0.1, 1.0, 1e16, 1e-7, -0.0, 123456789.125, 1e300]},
        {"b": [True, False, None], "": {}, "l": [[], [{}]]},
        {"u": UUID(int=7), "t": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "p": (1, "a")},
        {"z": 1, "a": {"y": [3, {"b": 2, "a": 1}], "x": 'é😀\n\t"\\'}},
    ],
)
def test_values_of_every_kind(value: Any) -> None:
    assert_same(value)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([rng.randrange(-1000, 1000), rng.randrange(-(2**70), 2**70)])
    if kind == 2:
        return rng.choice([rng.random() * 10 ** rng.randrange(-20, 20), float(rng.randrange(9))])
    if kind in (3, 4, 5):
        alphabet = 'ab"\\\n\x00\x1f\x7fé€😀\u2028'
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["".join(rng.choice("aBé😀_1") for _ in range(rng.randrange(1, 4))) for _ in range(4)]
    return {k: random_value(rng, depth + 1) for k in keys}


def test_random_values() -> None:
    rng = random.Random(20261121)
    for _ in range(3000):
        assert_same({"v": random_value(rng)})


def test_fingerprint_of_a_request_is_the_stdlib_one() -> None:
    body = GenerateRequest.model_validate(
        {
            "model": "mock",
            "input": {"prompt": "un phare au crépuscule", "num_outputs": 2, "seed": 42},
            "metadata": {"campaign": "été", "weights": [0.5, 1e-7], "n": 3},
        }
    ).model_dump(mode="json")
    expected = stdlib_canonical({"scope": "POST /v1/generate", "user_id": "u1", "body": body})
    assert fingerprint("POST /v1/generate", "u1", body) == hashlib.sha256(expected).hexdigest()
