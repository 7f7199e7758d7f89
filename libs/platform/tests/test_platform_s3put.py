"""S3Putter against the real local MinIO (signed by minio-py's signer, sent by http11)."""

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import SplitResult
from uuid import uuid4

import pytest
from genhub_platform.objectstore import ObjectStore, ObjectStoreSettings
from genhub_platform.s3put import S3PutError, S3Putter
from minio.credentials.credentials import Credentials
from minio.signer import sign_v4_s3

BUCKET = "genhub-platform-test"


@pytest.fixture
async def store() -> AsyncIterator[ObjectStore]:
    store = ObjectStore(ObjectStoreSettings(S3_BUCKET=BUCKET))
    await store.ensure_bucket()  # fails (not skips) without MinIO
    yield store


def test_the_head_carries_what_was_signed() -> None:
    settings = ObjectStoreSettings(S3_BUCKET=BUCKET, S3_ENDPOINT="http://minio.local:9000")
    putter = S3Putter(settings)
    now = datetime(2026, 11, 21, 20, 30, 5, tzinfo=UTC)
    payload_hash = hashlib.sha256(b"png bytes").hexdigest()
    path = f"/{BUCKET}/staging/a%20b/0.png"
    head = putter.request_head(path, payload_hash, "image/png", 9, now).decode()
    lines = head.split("\r\n")
    assert lines[0] == f"PUT {path} HTTP/1.1" and head.endswith("\r\n\r\n")
    sent = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert sent["Host"] == "minio.local:9000" and sent["Content-Length"] == "9"
    assert sent["Content-Type"] == "image/png" and sent["x-amz-date"] == "20261121T203005Z"
    assert sent["x-amz-content-sha256"] == payload_hash
    assert sent["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={settings.access_key}/20261121/{settings.region}/s3/"
        "aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
    )


@pytest.mark.parametrize(
    ("region", "when"),
    [
        ("us-east-1", datetime(2026, 11, 21, 23, 59, 59, tzinfo=UTC)),
        ("us-east-1", datetime(2026, 11, 22, 0, 0, 1, tzinfo=UTC)),  # next day: new key
        ("eu-west-3", datetime(2026, 11, 22, 0, 0, 2, tzinfo=timezone(timedelta(hours=2)))),
        ("eu-west-3", datetime(2027, 1, 1, 12, 0, 0)),  # naive: taken as UTC, like minio
    ],
)
def test_the_signature_is_the_one_minio_computes(region: str, when: datetime) -> None:
    settings = ObjectStoreSettings(
        S3_BUCKET=BUCKET, S3_ENDPOINT="http://127.0.0.1:9000", S3_REGION=region
    )
    putter = S3Putter(settings)
    credentials = Credentials(settings.access_key, settings.secret_key.get_secret_value())
    for path in (f"/{BUCKET}/staging/x/0.png", f"/{BUCKET}/a%20b%2Bc~%C3%A9/1.webp"):
        for body in (b"", b"png bytes", bytes(range(256)) * 40):
            payload_hash = hashlib.sha256(body).hexdigest()
            amz_date = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
            expected = sign_v4_s3(
                method="PUT",
                url=SplitResult("http", "127.0.0.1:9000", path, "", ""),
                region=region,
                headers={
                    "Host": "127.0.0.1:9000",
                    "x-amz-content-sha256": payload_hash,
                    "x-amz-date": amz_date.strftime("%Y%m%dT%H%M%SZ"),
                },
                credentials=credentials,
                content_sha256=payload_hash,
                date=amz_date,
            )["Authorization"]
            head = putter.request_head(path, payload_hash, "image/png", len(body), when).decode()
            assert f"\r\nAuthorization: {expected}\r\n" in head


async def test_put_stores_the_bytes_and_reuses_connections(store: ObjectStore) -> None:
    putter = S3Putter(ObjectStoreSettings(S3_BUCKET=BUCKET), max_connections=2)
    prefix = f"s3put/{uuid4()}"
    keys = [f"{prefix}/{i} a+b~é.png" for i in range(6)]
    big = bytes(range(256)) * 2000  # larger than one socket write
    try:
        await asyncio.gather(*(putter.put(k, k.encode(), "image/png") for k in keys))
        await putter.put(f"{prefix}/big.bin", big, "application/octet-stream")
        assert putter.pool.idle_count(putter.origin) <= 2  # at most max_connections kept
        for key in keys:
            assert await store.get(key) == key.encode()
            stat = await store.stat(key)
            assert stat is not None and stat.content_type == "image/png"
        assert await store.get(f"{prefix}/big.bin") == big

        # An idle connection the server closed meanwhile: retried once on a fresh one.
        for conn in putter.pool._idle[putter.origin]:
            conn.writer.close()
        await putter.put(keys[0], b"again", "image/png")
        assert await store.get(keys[0]) == b"again"
    finally:
        await putter.close()
        for key in [*keys, f"{prefix}/big.bin"]:
            await store.delete(key)


async def test_rejected_put_raises_with_the_s3_code(store: ObjectStore) -> None:
    wrong = ObjectStoreSettings(S3_BUCKET=BUCKET, S3_SECRET_KEY="not-the-secret")
    putter = S3Putter(wrong)
    key = f"s3put/{uuid4()}.png"
    try:
        with pytest.raises(S3PutError) as raised:
            await putter.put(key, b"data", "image/png")
        assert raised.value.status == 403
        assert raised.value.code == "SignatureDoesNotMatch"
        assert await store.stat(key) is None
        # the connection stays usable after an error answer (its body was read)
        missing = S3Putter(ObjectStoreSettings(S3_BUCKET=f"missing-{uuid4().hex[:12]}"))
        with pytest.raises(S3PutError) as raised:
            await missing.put(key, b"data", "image/png")
        assert raised.value.code == "NoSuchBucket"
        with pytest.raises(S3PutError):
            await missing.put(key, b"data", "image/png")
        assert missing.pool.idle_count(missing.origin) == 1
        await missing.close()
    finally:
        await putter.close()
