import io

import pytest
from genhub_storage.domain.images import (
    EncodeFormat,
    ImageLimits,
    ImageRejected,
    RejectReason,
    describe_png,
    normalize_image,
    resolve_format,
    sha256_hex,
)
from PIL import Image

from .storage_imagefactory import (
    jpeg_with_exif,
    plain_png,
    png_header_only,
    png_with_metadata,
)

LIMITS = ImageLimits(max_bytes=5 * 1024 * 1024, max_pixels=4_000_000)


def reopen(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_valid_png_passes_and_loses_text_chunks_and_exif() -> None:
    source = png_with_metadata((32, 24))
    assert b"secret prompt" in source and b"SneakyCam" in source  # the test input is dirty

    out = normalize_image(source, LIMITS)

    assert (out.width, out.height) == (32, 24)
    assert out.content_type == "image/png"
    assert out.sha256 == sha256_hex(out.data)
    img = reopen(out.data)
    assert img.format == "PNG"
    assert img.getpixel((0, 0)) == (200, 30, 40)
    assert img.info == {} or set(img.info) <= {"dpi"}  # no text, no exif, no icc
    assert not img.getexif()
    assert b"secret prompt" not in out.data
    assert b"SneakyCam" not in out.data
    for chunk in (b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"iCCP"):
        assert chunk not in out.data


def test_jpeg_with_exif_is_converted_to_png_and_stripped() -> None:
    out = normalize_image(jpeg_with_exif((40, 20)), LIMITS)

    img = reopen(out.data)
    assert img.format == "PNG"
    assert img.mode == "RGB"
    assert (out.width, out.height) == (40, 20)
    assert not img.getexif()
    assert b"SneakyCam" not in out.data and b"Editor 1.0" not in out.data


def test_exif_orientation_is_applied_before_the_tag_is_dropped() -> None:
    # Orientation 6: viewers rotate 90° clockwise, so a 40x20 JPEG is shown 20x40.
    out = normalize_image(jpeg_with_exif((40, 20), orientation=6), LIMITS)
    assert (out.width, out.height) == (20, 40)


def test_output_is_deterministic() -> None:
    source = png_with_metadata()
    assert normalize_image(source, LIMITS).sha256 == normalize_image(source, LIMITS).sha256


@pytest.mark.parametrize("mode", ["RGBA", "L", "LA", "P", "1", "I;16"])
def test_pixel_modes_are_normalised_to_png_modes(mode: str) -> None:
    img = reopen(normalize_image(plain_png((8, 8), mode=mode), LIMITS).data)
    assert img.mode in {"1", "L", "LA", "RGB", "RGBA"}


def test_non_image_bytes_are_refused() -> None:
    with pytest.raises(ImageRejected) as exc:
        normalize_image(b"<html>definitely not a picture</html>", LIMITS)
    assert exc.value.reason is RejectReason.NOT_AN_IMAGE


def test_empty_bytes_are_refused() -> None:
    with pytest.raises(ImageRejected) as exc:
        normalize_image(b"", LIMITS)
    assert exc.value.reason is RejectReason.EMPTY


def test_unaccepted_format_is_refused() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="GIF")
    with pytest.raises(ImageRejected) as exc:
        normalize_image(buf.getvalue(), LIMITS)
    assert exc.value.reason is RejectReason.NOT_AN_IMAGE


def test_truncated_png_is_refused_as_corrupt() -> None:
    # Noise does not compress, so cutting the file removes most of the pixel data.
    img = Image.frombytes("RGB", (64, 64), bytes((i * 7919) % 256 for i in range(64 * 64 * 3)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    data = buf.getvalue()
    with pytest.raises(ImageRejected) as exc:
        normalize_image(data[: len(data) // 2], LIMITS)
    assert exc.value.reason is RejectReason.CORRUPT
    assert not isinstance(exc.value, OSError)  # never mistaken for a transient failure


def test_oversized_pixel_count_is_refused_before_decoding() -> None:
    bomb = png_header_only(5_000, 5_000)  # 25 MP claimed, a few bytes of data
    assert len(bomb) < 200
    with pytest.raises(ImageRejected) as exc:
        normalize_image(bomb, LIMITS)
    assert exc.value.reason is RejectReason.TOO_MANY_PIXELS
    assert "5000x5000" in exc.value.message


def test_pillow_decompression_bomb_error_is_refused() -> None:
    # Far past Pillow's own global guard: Image.open itself raises DecompressionBombError.
    with pytest.raises(ImageRejected) as exc:
        normalize_image(png_header_only(100_000, 100_000), ImageLimits(10**9, 10**12))
    assert exc.value.reason is RejectReason.TOO_MANY_PIXELS


def test_too_many_bytes_is_refused_without_decoding() -> None:
    data = plain_png((8, 8))
    with pytest.raises(ImageRejected) as exc:
        normalize_image(data, ImageLimits(max_bytes=len(data) - 1, max_pixels=10**6))
    assert exc.value.reason is RejectReason.TOO_MANY_BYTES


def test_describe_png_reads_the_header() -> None:
    assert describe_png(plain_png((12, 7))) == (12, 7)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("png", EncodeFormat.PNG),
        ("PNG", EncodeFormat.PNG),
        ("jpeg", EncodeFormat.PNG),
        ("webp", EncodeFormat.PNG),
        ("pdf", EncodeFormat.PNG),
        ("", EncodeFormat.PNG),
    ],
)
def test_unsupported_output_formats_fall_back_to_png(
    requested: str, expected: EncodeFormat
) -> None:
    assert resolve_format(requested) is expected
