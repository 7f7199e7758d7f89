"""S3Putter against the real local MinIO (signed by minio-py's signer, sent by http11)."""

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from genhub_platform.objectstore import ObjectStore, ObjectStoreSettings
from genhub_platform.s3put import S3PutError, S3Putter

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
