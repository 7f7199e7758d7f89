from datetime import UTC, datetime, timedelta
from uuid import uuid4

from genhub_storage.domain import files, keys
from genhub_storage.domain.images import EncodeFormat

APP, JOB = uuid4(), uuid4()


def test_output_key_layout() -> None:
    assert keys.output_key(APP, JOB, 2, EncodeFormat.PNG) == f"outputs/{APP}/{JOB}/2.png"


def test_staged_key_must_belong_to_the_job() -> None:
    assert keys.is_staged_for(f"staging/{APP}/{JOB}/0.png", APP, JOB)
    assert not keys.is_staged_for(f"staging/{uuid4()}/{JOB}/0.png", APP, JOB)
    assert not keys.is_staged_for(f"staging/{APP}/{uuid4()}/0.png", APP, JOB)
    assert not keys.is_staged_for(f"staging/{APP}/{JOB}/../../other/0.png", APP, JOB)
    assert not keys.is_staged_for(f"staging/{APP}/{JOB}/", APP, JOB)
    assert not keys.is_staged_for(f"outputs/{APP}/{JOB}/0.png", APP, JOB)


def test_expiry_and_url_ttl() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    expires = files.expiry(now, 90)
    assert expires == now + timedelta(days=90)
    assert not files.is_expired(expires, now)
    assert files.is_expired(now, now)
    assert files.url_ttl(now, expires, timedelta(hours=1)) == timedelta(hours=1)
    # A URL never outlives its object.
    soon = now + timedelta(minutes=5)
    assert files.url_ttl(now, soon, timedelta(hours=1)) == timedelta(minutes=5)
