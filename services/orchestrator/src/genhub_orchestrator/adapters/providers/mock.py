"""The built-in mock provider: draws a deterministic PNG per output, no network.

The picture depends only on (prompt, seed, index, size), so tests and demos can compare bytes.
Latency and failures are configurable per process (ORCHESTRATOR_MOCK_LATENCY_MS,
ORCHESTRATOR_MOCK_FAILURE_RATE), per catalog provider row (settings `latency_ms`,
`failure_rate`, `failure_kind`: several mock providers with different behaviour can be seeded
through the catalog API) and per request (`mock_latency_ms`, `mock_fail` provider params).
Failure kinds: `retryable` (provider_error), `timeout` (provider_timeout), `content_rejected`,
`invalid_input`, `terminal` (provider_error, not retried).
"""

import asyncio
import functools
import hashlib
import io
import random
import struct
import textwrap
import zlib
from typing import Any

from genhub_contracts import ErrorCode
from PIL import Image, ImageDraw, ImageFont

from genhub_orchestrator.domain.providers import (
    GeneratedImage,
    GenerationRequest,
    ProviderError,
    ProviderTimeout,
    RetryableProviderError,
    TaskCallback,
    TerminalProviderError,
)

MAX_MOCK_LATENCY_MS = 600_000
INLINE_RENDER_PIXELS = 128 * 128
MIN_CAPTION_SIDE = 128


def _rgb(raw: bytes) -> tuple[int, int, int]:
    return raw[0], raw[1], raw[2]


def _ramp_side(width: int, height: int) -> int:
    """The gradient is drawn at most twice the picture's size (small pictures stay cheap)."""
    return min(512, max(64, 2 * max(width, height)))


@functools.lru_cache(maxsize=8)
def _ramp(side: int) -> Image.Image:
    return Image.linear_gradient("L").resize((side, side))


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _banded_png(width: int, height: int, colours: bytes) -> bytes:
    """A thumbnail written directly: four horizontal bands in the digest's colours."""
    rows = []
    y = 0
    for n in range(4):  # band n covers the rows y with 4 * y // height == n
        end = -(-(n + 1) * height // 4)  # first row of the next band
        rows.append((b"\x00" + colours[3 * n : 3 * n + 3] * width) * (end - y))
        y = end
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows), 1))
        + _chunk(b"IEND", b"")
    )


def render_mock_image(
    prompt: str, seed: int, index: int, width: int, height: int, extra: str = ""
) -> bytes:
    """A cheap, deterministic PNG: colour gradient, a few shapes, the prompt as text.

    Thumbnails (shorter side under 128 px) are four flat colour bands from the same digest,
    written without pillow: still a valid, deterministic PNG per (prompt, seed, index, size),
    at a few microseconds (what a benchmark at 0 ms latency should pay for the picture)."""
    material = f"{prompt}\x00{seed}\x00{index}" + (f"\x00{extra}" if extra else "")
    digest = hashlib.sha256(material.encode()).digest()
    if min(width, height) < MIN_CAPTION_SIDE:
        return _banded_png(width, height, digest[:12])
    rng = random.Random(digest)  # seeded from the digest: same inputs, same drawing

    # Gradient: pillow's ramp, rotated and cropped to its centre (no empty corners), stretched
    # and coloured: fast, no per-pixel Python loop.
    side = _ramp_side(width, height)
    ramp = (
        _ramp(side)
        .rotate(rng.uniform(0, 360))
        .crop((side // 4, side // 4, side * 3 // 4, side * 3 // 4))
    )
    base = _colorize(ramp.resize((width, height)), _rgb(digest[0:3]), _rgb(digest[3:6]))
    draw = ImageDraw.Draw(base)

    short = min(width, height)
    for _ in range(rng.randint(4, 9)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        size = rng.randint(short // 12, short // 3)
        box = (x0, y0, x0 + size, y0 + size)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        outline = (255 - colour[0], 255 - colour[1], 255 - colour[2])
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour, outline=outline, width=max(1, short // 200))
        else:
            draw.rectangle(box, fill=colour, outline=outline, width=max(1, short // 200))

    font = _font(max(10, short // 28))
    caption = textwrap.fill(prompt[:160], width=36) + f"\n#{index}  seed {seed}  {width}x{height}"
    margin = max(4, short // 40)
    text_box = draw.multiline_textbbox((margin, margin), caption, font=font)
    pad = margin // 2
    draw.rectangle(
        (text_box[0] - pad, text_box[1] - pad, text_box[2] + pad, text_box[3] + pad),
        fill=(0, 0, 0),
    )
    draw.multiline_text((margin, margin), caption, font=font, fill=(255, 255, 255))
    return _png(base)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)  # fast; the bytes are throwaway test data
    return out.getvalue()


def _colorize(
    grey: Image.Image, black: tuple[int, int, int], white: tuple[int, int, int]
) -> Image.Image:
    """Map a greyscale ramp linearly from `black` to `white`: one 768-entry lookup table."""
    table = [
        lo + (hi - lo) * i // 255 for lo, hi in zip(black, white, strict=True) for i in range(256)
    ]
    return grey.convert("RGB").point(table)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return False


def _latency_ms(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TerminalProviderError(ErrorCode.INVALID_INPUT, "mock_latency_ms must be a number")
    try:
        latency = int(float(value))
    except ValueError as exc:
        raise TerminalProviderError(
            ErrorCode.INVALID_INPUT, "mock_latency_ms must be a number"
        ) from exc
    if not 0 <= latency <= MAX_MOCK_LATENCY_MS:
        raise TerminalProviderError(
            ErrorCode.INVALID_INPUT, f"mock_latency_ms must be within 0..{MAX_MOCK_LATENCY_MS}"
        )
    return latency


FAILURE_KINDS = ("retryable", "timeout", "content_rejected", "invalid_input", "terminal")


def mock_failure(kind: str, reason: str) -> ProviderError:
    if kind == "timeout":
        return ProviderTimeout(f"mock provider timed out ({reason})")
    if kind == "content_rejected":
        return TerminalProviderError(
            ErrorCode.CONTENT_REJECTED, f"mock refused the prompt ({reason})"
        )
    if kind == "invalid_input":
        return TerminalProviderError(ErrorCode.INVALID_INPUT, f"mock refused the input ({reason})")
    if kind == "terminal":
        return TerminalProviderError(ErrorCode.PROVIDER_ERROR, f"mock provider failed ({reason})")
    return RetryableProviderError(ErrorCode.PROVIDER_ERROR, f"mock provider failed ({reason})")


class MockProvider:
    def __init__(
        self,
        *,
        name: str = "mock",
        latency_ms: int = 200,
        failure_rate: float = 0.0,
        failure_kind: str = "retryable",
        rng: random.Random | None = None,
    ) -> None:
        if failure_kind not in FAILURE_KINDS:
            raise ValueError(f"failure_kind must be one of {', '.join(FAILURE_KINDS)}")
        self.name = name
        self._latency_ms = latency_ms
        self._failure_rate = failure_rate
        self._failure_kind = failure_kind
        self._rng = rng or random.Random()
        self.calls = 0

    async def generate(
        self, request: GenerationRequest, on_task: TaskCallback | None = None
    ) -> list[GeneratedImage]:
        self.calls += 1
        params = request.provider_params
        if on_task:
            on_task(f"mock-{request.job_id}-{self.calls}")
        latency = _latency_ms(params.get("mock_latency_ms"), self._latency_ms)
        if latency:
            await asyncio.sleep(latency / 1000)
        if _flag(params.get("mock_fail")):
            raise TerminalProviderError(
                ErrorCode.PROVIDER_ERROR, "mock provider failed as requested (mock_fail)"
            )
        if self._failure_rate and self._rng.random() < self._failure_rate:
            raise mock_failure(self._failure_kind, "simulated failure rate")
        seed = request.input.seed or 0
        prompt = request.effective_prompt
        extra = ",".join(hashlib.sha256(i.data).hexdigest()[:16] for i in request.images)

        def render() -> list[bytes]:
            return [
                render_mock_image(prompt, seed, i, request.width, request.height, extra)
                for i in range(request.num_outputs)
            ]

        # Thumbnail-sized pictures take well under a millisecond: a thread hop costs more.
        small = request.width * request.height <= INLINE_RENDER_PIXELS
        images = render() if small else await asyncio.to_thread(render)
        return [GeneratedImage(data=data, content_type="image/png") for data in images]
