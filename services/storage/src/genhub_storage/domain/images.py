"""Validation and normalisation of provider output images: bytes in, clean PNG out.

Provider bytes are untrusted. They are fully decoded (so a truncated or corrupt file is caught
here, not by an app's user), size-checked before any pixel is decoded (decompression bombs),
and re-encoded from raw pixels only, so EXIF, XMP, text chunks, ICC profiles and anything else
riding along never reaches a tenant. Pure: no I/O, safe to run in a worker thread.
"""

import hashlib
import io
import zlib
from dataclasses import dataclass
from enum import StrEnum

from PIL import Image, ImageOps, UnidentifiedImageError

# Parsers we let Pillow try. Keeping the list short keeps rarely-exercised decoders (and their
# bugs) away from untrusted input. Add formats here when providers start returning them.
ACCEPTED_INPUT_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP")

# Pixel modes PNG stores as they are; everything else is converted to one of them.
_PNG_NATIVE_MODES = frozenset({"1", "L", "LA", "RGB", "RGBA"})


class RejectReason(StrEnum):
    """Why an output image was refused; stable, machine-readable."""

    EMPTY = "empty"
    TOO_MANY_BYTES = "too_many_bytes"
    NOT_AN_IMAGE = "not_an_image"
    TOO_MANY_PIXELS = "too_many_pixels"
    CORRUPT = "corrupt_image"
    UNSUPPORTED_MODE = "unsupported_mode"


class ImageRejected(Exception):
    """The bytes are not an acceptable image. Never an OSError: a bad image is not transient."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int


class EncodeFormat(StrEnum):
    """Formats this service can publish. Only PNG for now; jpeg/webp slot in here."""

    PNG = "png"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]

    @property
    def extension(self) -> str:
        return self.value


_CONTENT_TYPES = {EncodeFormat.PNG: "image/png"}


def resolve_format(requested: str | None) -> EncodeFormat:
    """The format to publish for the job's requested `output_format`.

    Unknown or not-yet-supported formats (jpeg, webp, ...) fall back to PNG: a lossless output is
    always acceptable, a failed job is not.
    """
    try:
        return EncodeFormat((requested or "").strip().lower())
    except ValueError:
        return EncodeFormat.PNG


@dataclass(frozen=True, slots=True)
class NormalizedImage:
    data: bytes
    width: int
    height: int
    sha256: str
    format: EncodeFormat

    @property
    def content_type(self) -> str:
        return self.format.content_type


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalize_image(
    data: bytes, limits: ImageLimits, fmt: EncodeFormat = EncodeFormat.PNG
) -> NormalizedImage:
    """Decode `data` fully, drop all metadata, re-encode as `fmt`. Raises ImageRejected."""
    if not data:
        raise ImageRejected(RejectReason.EMPTY, "the output is empty")
    if len(data) > limits.max_bytes:
        raise ImageRejected(
            RejectReason.TOO_MANY_BYTES,
            f"the output is larger than {limits.max_bytes} bytes",
        )
    pixels = _decode(data, limits)
    clean = _pixels_only(pixels)
    encoded = _encode(clean, fmt)
    return NormalizedImage(
        data=encoded, width=clean.width, height=clean.height, sha256=sha256_hex(encoded), format=fmt
    )


def describe_png(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG this service wrote earlier (header only, no pixel decode)."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
            return img.width, img.height
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(RejectReason.CORRUPT, f"stored output is unreadable: {exc}") from exc


def _decode(data: bytes, limits: ImageLimits) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data), formats=list(ACCEPTED_INPUT_FORMATS))
    except UnidentifiedImageError as exc:
        raise ImageRejected(
            RejectReason.NOT_AN_IMAGE,
            f"not a {', '.join(ACCEPTED_INPUT_FORMATS[:-1])} or {ACCEPTED_INPUT_FORMATS[-1]} image",
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageRejected(RejectReason.TOO_MANY_PIXELS, str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as exc:
        raise ImageRejected(RejectReason.CORRUPT, f"cannot read the image header: {exc}") from exc

    try:
        # Image.open only parsed the header: refuse huge canvases before decoding any pixel.
        width, height = img.size
        if width <= 0 or height <= 0:
            raise ImageRejected(RejectReason.CORRUPT, f"invalid dimensions {width}x{height}")
        if width * height > limits.max_pixels:
            raise ImageRejected(
                RejectReason.TOO_MANY_PIXELS,
                f"{width}x{height} exceeds the limit of {limits.max_pixels} pixels",
            )
        img.load()  # full decode: truncated or corrupt data fails here
        # Keep the picture the way viewers showed it: apply the EXIF orientation before the
        # EXIF block (and its orientation tag) is dropped.
        oriented = ImageOps.exif_transpose(img)
        return oriented if oriented is not None else img
    except ImageRejected:
        img.close()
        raise
    except Image.DecompressionBombError as exc:
        img.close()
        raise ImageRejected(RejectReason.TOO_MANY_PIXELS, str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, MemoryError) as exc:
        img.close()
        raise ImageRejected(RejectReason.CORRUPT, f"cannot decode the image: {exc}") from exc


def _pixels_only(img: Image.Image) -> Image.Image:
    """A fresh image built from raw pixels: no info dict, no EXIF, no ICC, no palette tricks."""
    try:
        if img.mode in ("P", "PA"):
            has_alpha = img.mode == "PA" or "transparency" in img.info
            img = img.convert("RGBA" if has_alpha else "RGB")
        elif img.mode not in _PNG_NATIVE_MODES:
            has_alpha = "A" in img.getbands()
            img = img.convert("RGBA" if has_alpha else "RGB")
        return Image.frombytes(img.mode, img.size, img.tobytes())
    except (ValueError, OSError) as exc:
        raise ImageRejected(
            RejectReason.UNSUPPORTED_MODE, f"cannot convert pixel mode {img.mode}: {exc}"
        ) from exc


def _encode(img: Image.Image, fmt: EncodeFormat) -> bytes:
    buf = io.BytesIO()
    if fmt is EncodeFormat.PNG:
        # No pnginfo, no exif, no icc_profile: the encoder writes pixel data and nothing else.
        img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
