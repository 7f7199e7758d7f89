"""Validation and rendering of untrusted images: bytes in, clean output bytes out.

Provider outputs and uploads are untrusted. They are fully decoded (so a truncated or corrupt
file is caught here, not by an app's user), size-checked before any pixel is decoded
(decompression bombs), and re-encoded from raw pixels only, so EXIF, XMP, text chunks, ICC
profiles and anything else riding along never reaches a tenant. Pure: no I/O, safe to run in a
worker thread.
"""

import hashlib
import io
import re
import time
import zlib
from dataclasses import dataclass
from enum import StrEnum

from genhub_contracts.jobs import Watermark
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

# Parsers we let Pillow try. Keeping the list short keeps rarely-exercised decoders (and their
# bugs) away from untrusted input. Add formats here when providers start returning them.
ACCEPTED_INPUT_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP")

# Pixel modes PNG stores as they are; everything else is converted to one of them.
_PNG_NATIVE_MODES = frozenset({"1", "L", "LA", "RGB", "RGBA"})

DEFAULT_DPI = 150
THUMBNAIL_LONG_SIDE = 256
# Encoder effort, measured on 1024x1024 outputs (deploy/bench/bench_storage.py): PNG level 3 is
# ~2.5x faster than level 6 for ~9% more bytes; WebP method 2 ~2x faster than 4 for ~9% more.
PNG_COMPRESS_LEVEL = 3
WEBP_METHOD = 2
_FIXED_PDF_DATE = time.gmtime(0)  # same pixels → same PDF bytes (dedupe by content hash)
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error)


class RejectReason(StrEnum):
    """Why an image was refused; stable, machine-readable."""

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
    """Formats this service publishes (contracts' OutputFormat)."""

    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"
    PDF = "pdf"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]

    @property
    def extension(self) -> str:
        return "jpg" if self is EncodeFormat.JPEG else self.value

    @classmethod
    def from_content_type(cls, content_type: str) -> "EncodeFormat | None":
        return next((f for f, ct in _CONTENT_TYPES.items() if ct == content_type), None)


_CONTENT_TYPES = {
    EncodeFormat.PNG: "image/png",
    EncodeFormat.JPEG: "image/jpeg",
    EncodeFormat.WEBP: "image/webp",
    EncodeFormat.PDF: "application/pdf",
}
_PIL_TO_FORMAT = {"PNG": EncodeFormat.PNG, "JPEG": EncodeFormat.JPEG, "WEBP": EncodeFormat.WEBP}


def resolve_format(requested: str | None) -> EncodeFormat:
    """The format to publish for the job's requested `output_format` (`jpg` means jpeg).

    Unknown formats fall back to PNG: a lossless output is always acceptable, a failed job is not.
    """
    value = (requested or "").strip().lower()
    try:
        return EncodeFormat("jpeg" if value == "jpg" else value)
    except ValueError:
        return EncodeFormat.PNG


def watermark_signature(mark: Watermark | None) -> str | None:
    """A stable string naming a watermark, stored with each file (cache hits compare it)."""
    if mark is None:
        return None
    return f"{mark.text}\x1f{mark.position}\x1f{mark.opacity:g}"


@dataclass(frozen=True, slots=True)
class RenderOptions:
    format: EncodeFormat = EncodeFormat.PNG
    watermark: Watermark | None = None
    dpi: int = DEFAULT_DPI  # pdf only


@dataclass(frozen=True, slots=True)
class RenderedImage:
    data: bytes
    width: int
    height: int
    sha256: str
    format: EncodeFormat
    thumbnail: bytes  # webp, THUMBNAIL_LONG_SIDE on the long side (never enlarged)

    @property
    def content_type(self) -> str:
        return self.format.content_type


@dataclass(frozen=True, slots=True)
class CleanImage:
    """An upload: decoded, stripped and re-encoded in the format it arrived in."""

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


def render_output(data: bytes, limits: ImageLimits, options: RenderOptions) -> RenderedImage:
    """Decode `data` fully, drop all metadata, watermark if asked, encode + thumbnail."""
    pixels, _ = decode_image(data, limits)
    if options.watermark is not None:
        pixels = apply_watermark(pixels, options.watermark)
    encoded = encode(pixels, options.format, dpi=options.dpi)
    return RenderedImage(
        data=encoded,
        width=pixels.width,
        height=pixels.height,
        sha256=sha256_hex(encoded),
        format=options.format,
        thumbnail=make_thumbnail(pixels),
    )


def clean_upload(data: bytes, limits: ImageLimits) -> CleanImage:
    """An uploaded image in its own (sniffed) format, stripped of metadata. Raises ImageRejected."""
    pixels, source = decode_image(data, limits)
    encoded = encode(pixels, source)
    return CleanImage(
        data=encoded,
        width=pixels.width,
        height=pixels.height,
        sha256=sha256_hex(encoded),
        format=source,
    )


def decode_image(data: bytes, limits: ImageLimits) -> tuple[Image.Image, EncodeFormat]:
    """Validated pixels (EXIF orientation applied, nothing else kept) and the sniffed format."""
    if not data:
        raise ImageRejected(RejectReason.EMPTY, "the image is empty")
    if len(data) > limits.max_bytes:
        raise ImageRejected(
            RejectReason.TOO_MANY_BYTES, f"the image is larger than {limits.max_bytes} bytes"
        )
    img = _open(data)
    source = _PIL_TO_FORMAT[str(img.format)]
    return _pixels_only(_load(img, limits)), source


def describe(data: bytes, fmt: EncodeFormat) -> tuple[int, int]:
    """Width and height of an output this service wrote earlier (header only)."""
    if fmt is EncodeFormat.PDF:
        width = re.search(rb"/Width (\d+)", data)
        height = re.search(rb"/Height (\d+)", data)
        if width is None or height is None:
            raise ImageRejected(RejectReason.CORRUPT, "stored pdf has no image dimensions")
        return int(width.group(1)), int(height.group(1))
    try:
        with Image.open(io.BytesIO(data), formats=list(ACCEPTED_INPUT_FORMATS)) as img:
            return img.width, img.height
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        raise ImageRejected(RejectReason.CORRUPT, f"stored output is unreadable: {exc}") from exc


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=list(ACCEPTED_INPUT_FORMATS))
    except UnidentifiedImageError as exc:
        raise ImageRejected(
            RejectReason.NOT_AN_IMAGE,
            f"not a {', '.join(ACCEPTED_INPUT_FORMATS[:-1])} or {ACCEPTED_INPUT_FORMATS[-1]} image",
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageRejected(RejectReason.TOO_MANY_PIXELS, str(exc)) from exc
    except _DECODE_ERRORS as exc:
        raise ImageRejected(RejectReason.CORRUPT, f"cannot read the image header: {exc}") from exc


def _load(img: Image.Image, limits: ImageLimits) -> Image.Image:
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
    except (*_DECODE_ERRORS, MemoryError) as exc:
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


def _opaque(img: Image.Image) -> Image.Image:
    """Formats without alpha (jpeg, pdf): transparent areas become white, as viewers show them."""
    if img.mode in ("RGBA", "LA"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img.convert("RGBA"), mask=img.getchannel("A"))
        return background
    if img.mode == "1":
        return img.convert("L")
    return img


def encode(img: Image.Image, fmt: EncodeFormat, *, dpi: int = DEFAULT_DPI) -> bytes:
    """Encode pixels only: no pnginfo, exif, xmp or icc_profile is ever passed to an encoder."""
    buf = io.BytesIO()
    if fmt is EncodeFormat.PNG:
        img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif fmt is EncodeFormat.JPEG:
        _opaque(img).save(buf, format="JPEG", quality=90)
    elif fmt is EncodeFormat.WEBP:
        webp = (
            img
            if img.mode in ("RGB", "RGBA")
            else img.convert("RGBA" if "A" in img.mode else "RGB")
        )
        webp.save(buf, format="WEBP", quality=90, method=WEBP_METHOD)
    else:
        # Page size = pixels / dpi inches. Fixed dates keep identical pixels identical bytes.
        _opaque(img).save(
            buf,
            format="PDF",
            resolution=float(dpi),
            quality=92,
            creationDate=_FIXED_PDF_DATE,
            modDate=_FIXED_PDF_DATE,
        )
    return buf.getvalue()


def make_thumbnail(img: Image.Image, long_side: int = THUMBNAIL_LONG_SIDE) -> bytes:
    thumb = img.convert("RGBA" if "A" in img.mode else "RGB")
    thumb.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    thumb.save(buf, format="WEBP", quality=80, method=WEBP_METHOD)
    return buf.getvalue()


_MIN_FONT_PX = 8


def apply_watermark(img: Image.Image, mark: Watermark) -> Image.Image:
    """Stamp `mark.text` (white, dark outline, `mark.opacity`) at `mark.position`.

    The font scales with the image (1/16 of the short side) and shrinks until the text fits.
    """
    base = img.convert("RGBA")
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    margin = max(2, min(base.size) // 40)
    size = max(_MIN_FONT_PX, min(base.size) // 16)
    while True:
        font = ImageFont.load_default(size=size)
        stroke = max(1, size // 16)
        left, top, right, bottom = draw.textbbox((0, 0), mark.text, font=font, stroke_width=stroke)
        text_w, text_h = int(right - left), int(bottom - top)
        if text_w <= base.width - 2 * margin or size <= _MIN_FONT_PX:
            break
        size = max(_MIN_FONT_PX, size * 3 // 4)
    x, y = _place(mark.position, base.size, (text_w, text_h), margin)
    alpha = round(255 * mark.opacity)
    draw.text(
        (x - int(left), y - int(top)),
        mark.text,
        font=font,
        fill=(255, 255, 255, alpha),
        stroke_width=stroke,
        stroke_fill=(0, 0, 0, alpha),
    )
    stamped = Image.alpha_composite(base, overlay)
    return stamped if "A" in img.mode else stamped.convert("RGB")


def _place(
    position: str, canvas: tuple[int, int], text: tuple[int, int], margin: int
) -> tuple[int, int]:
    (cw, ch), (tw, th) = canvas, text
    xs = {"left": margin, "right": cw - tw - margin, "center": (cw - tw) // 2}
    ys = {"top": margin, "bottom": ch - th - margin, "center": (ch - th) // 2}
    if position == "center":
        return xs["center"], ys["center"]
    vertical, horizontal = position.split("-")
    return xs[horizontal], ys[vertical]
