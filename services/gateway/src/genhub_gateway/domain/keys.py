"""API keys: generation, display prefix and hashing.

A key is `gh_live_` + 32 random bytes (url-safe base64). Only its SHA-256 is stored: with that
much entropy a fast hash cannot be brute-forced, and lookups stay one indexed equality.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_PREFIX = "gh_live_"
ADMIN_TOKEN_PREFIX = "gh_admin_"  # noqa: S105 (a prefix, not a secret)
_RANDOM_BYTES = 32
_DISPLAY_CHARS = 8


@dataclass(frozen=True)
class NewKey:
    secret: str  # shown once, to the admin who created it
    prefix: str  # safe to display: identifies the key without revealing it
    hash: str


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def display_prefix(api_key: str) -> str:
    return api_key[: len(KEY_PREFIX) + _DISPLAY_CHARS]


def generate_key(kind: str = KEY_PREFIX) -> NewKey:
    """An API key, or with `kind=ADMIN_TOKEN_PREFIX` an admin token (same strength)."""
    secret = kind + secrets.token_urlsafe(_RANDOM_BYTES)
    prefix = secret[: len(kind) + _DISPLAY_CHARS]
    return NewKey(secret=secret, prefix=prefix, hash=hash_key(secret))


def hashes_match(stored: str, presented: str) -> bool:
    # Constant time, so response timing does not reveal how much of a hash matched.
    return hmac.compare_digest(stored.encode(), presented.encode())


def looks_like_key(value: str) -> bool:
    """Cheap shape check before touching the database (keys are ~51 ASCII chars)."""
    return value.startswith(KEY_PREFIX) and 16 <= len(value) <= 128 and value.isascii()


def looks_like_admin_token(value: str) -> bool:
    return value.startswith(ADMIN_TOKEN_PREFIX) and 24 <= len(value) <= 128 and value.isascii()
