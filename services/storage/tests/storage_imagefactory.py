"""Test images built in memory (no fixtures on disk)."""

import io
import struct
import zlib

from PIL import Image
from PIL.PngImagePlugin import PngInfo


def png_with_metadata(size: tuple[int, int] = (32, 24)) -> bytes:
    img = Image.new("RGB", size, (200, 30, 40))
    info = PngInfo()
    info.add_text("Comment", "secret prompt: a cat")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>gps</x:xmpmeta>")
    exif = Image.Exif()
    exif[0x010F] = "SneakyCam"  # Make
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info, exif=exif.tobytes())
    return buf.getvalue()


def jpeg_with_exif(size: tuple[int, int] = (40, 20), orientation: int = 1) -> bytes:
    img = Image.new("RGB", size, (10, 120, 250))
    exif = Image.Exif()
    exif[0x010F] = "SneakyCam"  # Make
    exif[0x0131] = "Editor 1.0"  # Software
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), quality=90)
    return buf.getvalue()


def plain_png(size: tuple[int, int] = (16, 16), mode: str = "RGBA") -> bytes:
    img = Image.new(mode, size)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge canvas with almost no data: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )
