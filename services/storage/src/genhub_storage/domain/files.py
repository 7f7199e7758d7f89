"""Rules for published files: retention and how long a download URL may live."""

from datetime import datetime, timedelta

MIN_URL_TTL = timedelta(seconds=1)


def expiry(now: datetime, retention_days: int) -> datetime:
    return now + timedelta(days=retention_days)


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now


def url_ttl(now: datetime, expires_at: datetime | None, ttl: timedelta) -> timedelta:
    """A URL never outlives its object: the TTL is capped at the object's remaining lifetime."""
    if expires_at is None:
        return ttl
    return max(MIN_URL_TTL, min(ttl, expires_at - now))
