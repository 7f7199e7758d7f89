"""The gateway's two stdlib-JSON texts, written by orjson when that gives the same result.

The Idempotency-Key fingerprint hashes `json.dumps(..., sort_keys=True, separators=(",", ":"),
ensure_ascii=False)` of the request, and the metadata limit counts the characters of
`json.dumps(..., separators=(",", ":"))`. Both run on every accepted request, and the stdlib
encoder cost more than the rest of the request's validation. orjson writes the very same text
for strings (UTF-8, the same escapes), integers that fit in 64 bits, booleans, null, lists and
dicts with string keys (sorted by code point either way), but not for floats (`1e16` vs
`1e+16`), larger integers (refused) or other types (json's `default=str`). So a value made only
of the former is written by orjson, anything else by the stdlib exactly as before: the
fingerprints of keys recorded earlier (and by replicas running the previous version) match.
"""

import json
from typing import Any

import orjson

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _orjson_same(value: Any) -> bool:
    """True when orjson writes `value` as the stdlib json module does."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(_INT_MIN <= value <= _INT_MAX)
    if kind is dict:
        return all(type(k) is str and _orjson_same(v) for k, v in value.items())
    if kind is list:
        return all(_orjson_same(v) for v in value)
    return False


def canonical(value: Any) -> bytes:
    """UTF-8 of `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    default=str)`."""
    if _orjson_same(value):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def compact_length(value: Any) -> int:
    """`len(json.dumps(value, separators=(",", ":")))`: characters, non-ASCII escaped."""
    if _orjson_same(value):
        text = orjson.dumps(value)
        # Printable ASCII only (json escapes DEL and everything above it): one character
        # per byte, as orjson wrote them.
        if text.isascii() and b"\x7f" not in text:
            return len(text)
    return len(json.dumps(value, separators=(",", ":")))
