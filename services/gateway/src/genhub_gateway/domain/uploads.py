"""Reading an upload's bytes from a request body: raw bytes, or the file part of a
multipart/form-data body (parsed with the standard library's MIME parser)."""

import email.parser
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage

FILE_FIELDS = ("file", "image")


class InvalidUpload(ValueError):
    pass


@dataclass(frozen=True)
class UploadBody:
    data: bytes
    filename: str | None


def read_upload(content_type: str | None, body: bytes) -> UploadBody:
    """Raw body → its bytes; multipart/form-data → the part named `file` (or `image`), or
    the only file part. The image type is sniffed from the bytes by storage, never trusted."""
    if not content_type or not content_type.lower().startswith("multipart/"):
        if not body:
            raise InvalidUpload("the body is empty")
        return UploadBody(body, None)
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise InvalidUpload("the multipart body has no parts (missing boundary?)")
    files: list[tuple[str | None, EmailMessage]] = []
    for part in message.iter_parts():
        if not isinstance(part, EmailMessage):
            continue
        disposition = part.get("Content-Disposition")
        if disposition is None:
            continue
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None or name in FILE_FIELDS:
            files.append((str(name) if name else None, part))
    chosen = next((p for n, p in files if n in FILE_FIELDS), None)
    if chosen is None and len(files) == 1:
        chosen = files[0][1]
    if chosen is None:
        raise InvalidUpload("send the image as the form field `file`")
    data = chosen.get_payload(decode=True)
    if not isinstance(data, bytes) or not data:
        raise InvalidUpload("the file part is empty")
    return UploadBody(data, chosen.get_filename())
