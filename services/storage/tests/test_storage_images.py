import io

import pytest
from genhub_contracts.jobs import Watermark
from genhub_storage.domain.images import (
    EncodeFormat,
    ImageLimits,
    ImageRejected,
    RejectReason,
    RenderedImage,
    RenderOptions,
    clean_upload,
    describe,
    render_output,
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


def normalize_image(
    data: bytes, limits: ImageLimits = LIMITS, fmt: EncodeFormat = EncodeFormat.PNG
) -> RenderedImage:
    return render_output(data, limits, RenderOptions(format=fmt))


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


def test_describe_reads_the_header() -> None:
    assert describe(plain_png((12, 7)), EncodeFormat.PNG) == (12, 7)
    pdf = normalize_image(plain_png((12, 7), "RGB"), fmt=EncodeFormat.PDF).data
    assert describe(pdf, EncodeFormat.PDF) == (12, 7)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("png", EncodeFormat.PNG),
        ("PNG", EncodeFormat.PNG),
        ("jpeg", EncodeFormat.JPEG),
        ("jpg", EncodeFormat.JPEG),
        ("webp", EncodeFormat.WEBP),
        ("pdf", EncodeFormat.PDF),
        ("tiff", EncodeFormat.PNG),
        ("", EncodeFormat.PNG),
    ],
)
def test_requested_formats_resolve_and_unknown_falls_back_to_png(
    requested: str, expected: EncodeFormat
) -> None:
    assert resolve_format(requested) is expected


@pytest.mark.parametrize(
    ("fmt", "pil_format", "content_type", "ext"),
    [
        (EncodeFormat.PNG, "PNG", "image/png", "png"),
        (EncodeFormat.JPEG, "JPEG", "image/jpeg", "jpg"),
        (EncodeFormat.WEBP, "WEBP", "image/webp", "webp"),
    ],
)
def test_every_raster_format_is_encoded_without_metadata(
    fmt: EncodeFormat, pil_format: str, content_type: str, ext: str
) -> None:
    out = normalize_image(jpeg_with_exif((40, 20)), fmt=fmt)

    assert out.content_type == content_type and fmt.extension == ext
    img = reopen(out.data)
    assert img.format == pil_format
    assert img.size == (40, 20) == (out.width, out.height)
    assert not img.getexif()
    assert "exif" not in img.info and "icc_profile" not in img.info and "xmp" not in img.info
    assert b"SneakyCam" not in out.data and b"Editor 1.0" not in out.data


def test_jpeg_flattens_transparency_onto_white() -> None:
    out = normalize_image(plain_png((8, 8), "RGBA"), fmt=EncodeFormat.JPEG)  # fully transparent
    img = reopen(out.data)
    assert img.mode == "RGB"
    assert all(c > 245 for c in img.getpixel((4, 4)))


def test_webp_keeps_alpha() -> None:
    img = reopen(normalize_image(plain_png((8, 8), "RGBA"), fmt=EncodeFormat.WEBP).data)
    assert img.mode == "RGBA" and img.getpixel((4, 4))[3] == 0


@pytest.mark.parametrize("dpi", [72, 150, 300])
def test_pdf_page_size_follows_the_dpi(dpi: int) -> None:
    out = render_output(
        plain_png((300, 150), "RGB"), LIMITS, RenderOptions(format=EncodeFormat.PDF, dpi=dpi)
    )
    assert out.data.startswith(b"%PDF-") and out.content_type == "application/pdf"
    assert (out.width, out.height) == (300, 150)
    # MediaBox in points (1/72 in): pixels / dpi * 72.
    expected = f"/MediaBox [ 0 0 {300 * 72 / dpi:g} {150 * 72 / dpi:g} ]".encode()
    assert expected in out.data.replace(b".0 ", b" ").replace(b".0]", b" ]")
    # No creation time: identical pixels give identical bytes (dedupe works for pdf too).
    again = render_output(
        plain_png((300, 150), "RGB"), LIMITS, RenderOptions(format=EncodeFormat.PDF, dpi=dpi)
    )
    assert again.sha256 == out.sha256


def test_thumbnail_is_webp_with_256_px_long_side_and_never_enlarged() -> None:
    big = render_output(plain_png((1000, 500), "RGB"), LIMITS, RenderOptions())
    thumb = reopen(big.thumbnail)
    assert thumb.format == "WEBP" and thumb.size == (256, 128)
    small = reopen(render_output(plain_png((40, 30), "RGB"), LIMITS, RenderOptions()).thumbnail)
    assert small.size == (40, 30)


def _grey(size: tuple[int, int] = (400, 300)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 90, 90)).save(buf, format="PNG")
    return buf.getvalue()


def _changed_box(a: bytes, b: bytes) -> tuple[int, int, int, int] | None:
    from PIL import ImageChops

    return ImageChops.difference(reopen(a).convert("RGB"), reopen(b).convert("RGB")).getbbox()


@pytest.mark.parametrize(
    ("position", "region"),
    [
        ("bottom-right", lambda w, h, box: box[0] > w / 2 and box[1] > h / 2),
        ("top-left", lambda w, h, box: box[2] < w / 2 and box[3] < h / 2),
        ("center", lambda w, h, box: box[0] < w / 2 < box[2] and box[1] < h / 2 < box[3]),
    ],
)
def test_watermark_is_stamped_at_its_position(position: str, region) -> None:
    plain = render_output(_grey(), LIMITS, RenderOptions())
    marked = render_output(
        _grey(),
        LIMITS,
        RenderOptions(watermark=Watermark(text="genhub free", position=position, opacity=0.6)),
    )

    box = _changed_box(plain.data, marked.data)
    assert box is not None, "no pixel changed: watermark missing"
    assert region(400, 300, box), box
    assert marked.sha256 != plain.sha256
    assert _changed_box(plain.thumbnail, marked.thumbnail) is not None  # thumbnail marked too


def test_watermark_opacity_blends_with_the_picture() -> None:
    mark = Watermark(text="WM", position="center", opacity=0.3)
    img = reopen(render_output(_grey(), LIMITS, RenderOptions(watermark=mark)).data)
    values = {img.getpixel((x, y)) for x in range(150, 250) for y in range(120, 180)}
    # Semi-transparent: no pure white or pure black text pixel, only blends with the grey.
    assert (255, 255, 255) not in values and (0, 0, 0) not in values
    assert len(values) > 1


def test_long_watermark_text_shrinks_to_fit_small_images() -> None:
    mark = Watermark(text="x" * 64, position="bottom-left", opacity=1.0)
    out = render_output(_grey((80, 60)), LIMITS, RenderOptions(watermark=mark))
    assert (out.width, out.height) == (80, 60)


def test_upload_keeps_its_format_and_loses_metadata() -> None:
    jpeg = clean_upload(jpeg_with_exif((40, 20)), LIMITS)
    assert jpeg.format is EncodeFormat.JPEG and jpeg.content_type == "image/jpeg"
    assert b"SneakyCam" not in jpeg.data and not reopen(jpeg.data).getexif()
    png = clean_upload(png_with_metadata((10, 10)), LIMITS)
    assert png.format is EncodeFormat.PNG and b"secret prompt" not in png.data
