"""Async S3 PUT without a worker thread: SigV4 by minio-py's signer, HTTP/1.1 by the platform's
pooled client (`genhub_platform.http11`).

`ObjectStore.put` runs minio-py's synchronous `put_object` in a worker thread: a thread hop,
urllib3's request machinery and http.client's header parsing per object. For many small
objects (the orchestrator stages every provider output) that is most of the cost of a PUT.
`S3Putter` does only what a PUT needs, on the event loop:

- the AWS Signature V4 `Authorization` header comes from `minio.signer.sign_v4_s3` over
  host, `x-amz-content-sha256` and `x-amz-date`; the payload hash is signed, so the object
  stored is the one sent;
- keep-alive connections are pooled by `Http11Pool` (at most `max_connections` requests at
  once, idle ones reused); a reused connection the server closed meanwhile is retried once on
  a fresh one (a PUT is idempotent: the same key gets the same bytes);
- a non-2xx answer raises `S3PutError` with the HTTP status and S3's error `Code` (the first
  `ERROR_BYTES` of the error body are kept to find it).

Same settings as `ObjectStore` (`ObjectStoreSettings`): endpoint, TLS, region, keys, bucket.
"""

import hashlib
import re
from datetime import UTC, datetime
from urllib.parse import SplitResult, quote

from minio.credentials.credentials import Credentials
from minio.signer import sign_v4_s3

from genhub_platform.http11 import Http11Pool, Origin, request_head
from genhub_platform.objectstore import ObjectStoreSettings

ERROR_BYTES = 4096  # S3 error documents are a few hundred bytes; <Code> comes first
_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")


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
        self._credentials = Credentials(settings.access_key, settings.secret_key.get_secret_value())
        self._timeout_s = timeout_s

    def request_head(
        self, path: str, payload_hash: str, content_type: str, length: int, now: datetime
    ) -> bytes:
        """The signed request line and headers of a PUT of `length` bytes to `path`."""
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        signed = sign_v4_s3(
            method="PUT",
            url=SplitResult(self._scheme, self.host_header, path, "", ""),
            region=self._region,
            headers={
                "Host": self.host_header,
                "x-amz-content-sha256": payload_hash,
                "x-amz-date": amz_date,
            },
            credentials=self._credentials,
            content_sha256=payload_hash,
            date=now,
        )
        authorization = signed["Authorization"]
        assert isinstance(authorization, str)
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
