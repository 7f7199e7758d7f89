"""Async S3 PUT without a worker thread: SigV4 by minio-py's signer, HTTP/1.1 by the platform's
pooled client (`genhub_platform.http11`).

`ObjectStore.put` runs minio-py's synchronous `put_object` in a worker thread: a thread hop,
urllib3's request machinery and http.client's header parsing per object. For many small
objects (the orchestrator stages every provider output) that is most of the cost of a PUT.
`S3Putter` does only what a PUT needs, on the event loop:

- the AWS Signature V4 `Authorization` header is signed over host, `x-amz-content-sha256`
  and `x-amz-date` (exactly what `minio.signer.sign_v4_s3` produces for these headers; the
  tests compare the two); the payload hash is signed, so the object stored is the one sent.
  The signing key (four HMACs over the secret, the day, the region and the service) is kept
  for the day instead of derived per request: a PUT costs one SHA-256 of the canonical
  request and one HMAC;
- keep-alive connections are pooled by `Http11Pool` (at most `max_connections` requests at
  once, idle ones reused); a reused connection the server closed meanwhile is retried once on
  a fresh one (a PUT is idempotent: the same key gets the same bytes);
- a non-2xx answer raises `S3PutError` with the HTTP status and S3's error `Code` (the first
  `ERROR_BYTES` of the error body are kept to find it).

Same settings as `ObjectStore` (`ObjectStoreSettings`): endpoint, TLS, region, keys, bucket.
"""

import hashlib
import hmac
import re
from datetime import UTC, datetime
from urllib.parse import quote

from genhub_platform.http11 import Http11Pool, Origin, request_head
from genhub_platform.objectstore import ObjectStoreSettings

ERROR_BYTES = 4096  # S3 error documents are a few hundred bytes; <Code> comes first
_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
_SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date"


class S3PutError(Exception):
    def __init__(self, status: int, code: str, key: str) -> None:
        super().__init__(f"PUT {key} failed: HTTP {status} {code}")
        self.status = status
        self.code = code


class S3Putter:
    def __init__(
        self,
        settings: ObjectStoreSettings,
        *,
        max_connections: int = 16,
        timeout_s: float = 30.0,
    ) -> None:
        endpoint = settings.endpoint
        secure = settings.secure
        for scheme, is_tls in (("https://", True), ("http://", False)):
            if endpoint.startswith(scheme):
                endpoint, secure = endpoint.removeprefix(scheme), is_tls
        self.host_header = endpoint.rstrip("/")
        host, _, port = self.host_header.partition(":")
        self._scheme = "https" if secure else "http"
        self.origin = Origin(
            self._scheme, host, int(port) if port else (443 if secure else 80), host
        )
        self.pool = Http11Pool(max_idle_per_origin=max_connections, max_open=max_connections)
        self.bucket = settings.bucket
        self._region = settings.region
        self._access_key = settings.access_key
        self._secret_key = settings.secret_key.get_secret_value()
        self._signing_day = ""
        self._signing_key = b""
        self._timeout_s = timeout_s

    def _key_for(self, day: str) -> bytes:
        """The SigV4 signing key of `day` (YYYYMMDD), derived once per day."""
        if day != self._signing_day:
            key = hmac.digest(f"AWS4{self._secret_key}".encode(), day.encode(), "sha256")
            for part in (self._region, "s3", "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._signing_day, self._signing_key = day, key
        return self._signing_key

    def request_head(
        self, path: str, payload_hash: str, content_type: str, length: int, now: datetime
    ) -> bytes:
        """The signed request line and headers of a PUT of `length` bytes to `path`."""
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        scope = f"{day}/{self._region}/s3/aws4_request"
        canonical = (
            f"PUT\n{path}\n\nhost:{self.host_header}\nx-amz-content-sha256:{payload_hash}\n"
            f"x-amz-date:{amz_date}\n\n{_SIGNED_HEADERS}\n{payload_hash}"
        )
        to_sign = (
            f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n"
            f"{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.digest(self._key_for(day), to_sign.encode(), "sha256").hex()
        authorization = (
            f"AWS4-HMAC-SHA256 Credential={self._access_key}/{scope}, "
            f"SignedHeaders={_SIGNED_HEADERS}, Signature={signature}"
        )
        return request_head(
            "PUT",
            path,
            (
                ("Host", self.host_header),
                ("Content-Type", content_type),
                ("Content-Length", str(length)),
                ("x-amz-content-sha256", payload_hash),
                ("x-amz-date", amz_date),
                ("Authorization", authorization),
            ),
        )

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` at `key` in the bucket (overwrites). Raises S3PutError, OSError."""
        path = "/" + quote(self.bucket, safe="") + "/" + quote(key, safe="/~")
        head = self.request_head(
            path, hashlib.sha256(data).hexdigest(), content_type, len(data), datetime.now(UTC)
        )
        answer = await self.pool.request(
            self.origin, head, data, keep_bytes=ERROR_BYTES, timeout_s=self._timeout_s
        )
        if 200 <= answer.status < 300:
            return
        match = _CODE.search(answer.body)
        raise S3PutError(answer.status, match.group(1).decode() if match else "", key)

    async def close(self) -> None:
        await self.pool.aclose()
