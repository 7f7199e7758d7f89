"""Reading an upload's bytes from raw and multipart bodies (pure, no I/O)."""

import httpx
import pytest
from genhub_gateway.domain.uploads import InvalidUpload, read_upload

PNG = b"\x89PNG\r\n\x1a\n\x00\x01\r\n--boundary-looking bytes\r\n\x00"


def _multipart(**files: tuple[str, bytes, str]) -> tuple[str, bytes]:
    request = httpx.Request("POST", "http://x/", files=files, data={"note": "hello"})
    request.read()
    return request.headers["content-type"], request.content


def test_raw_body_is_the_image() -> None:
    upload = read_upload("image/png", PNG)
    assert (upload.data, upload.filename) == (PNG, None)
    assert read_upload(None, PNG).data == PNG


def test_multipart_file_field_keeps_binary_bytes_and_filename() -> None:
    content_type, body = _multipart(file=("cat.png", PNG, "image/png"))
    upload = read_upload(content_type, body)
    assert (upload.data, upload.filename) == (PNG, "cat.png")


def test_the_only_file_part_is_taken_whatever_its_name() -> None:
    content_type, body = _multipart(picture=("a.webp", b"RIFF1234WEBP", "image/webp"))
    assert read_upload(content_type, body).data == b"RIFF1234WEBP"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/octet-stream", b""),
        ("multipart/form-data", b"no boundary"),
        (*_multipart(a=("a.png", b"1", "image/png"), b=("b.png", b"2", "image/png")),),
    ],
)
def test_unreadable_uploads_are_refused(content_type: str, body: bytes) -> None:
    with pytest.raises(InvalidUpload):
        read_upload(content_type, body)
