"""Output image size from what the app asked: explicit width/height, else the aspect ratio."""

from dataclasses import dataclass

DEFAULT_LONG_SIDE = 1024
MIN_SIDE = 64
MAX_SIDE = 4096
# Providers want sizes on an 8-pixel grid (latent diffusion works in 8x8 blocks).
GRID = 8


class InvalidSize(ValueError):
    """The requested aspect ratio or size cannot be rendered."""


@dataclass(frozen=True)
class ImageSize:
    width: int
    height: int


def parse_aspect_ratio(aspect_ratio: str) -> tuple[int, int]:
    """`"16:9"` → (16, 9). Raises InvalidSize on anything else (zero sides included)."""
    left, sep, right = aspect_ratio.partition(":")
    if not sep or not left.isdigit() or not right.isdigit():
        raise InvalidSize(f"aspect_ratio must look like '16:9', got {aspect_ratio!r}")
    w, h = int(left), int(right)
    if w <= 0 or h <= 0:
        raise InvalidSize(f"aspect_ratio sides must be positive, got {aspect_ratio!r}")
    if max(w, h) / min(w, h) > MAX_SIDE / MIN_SIDE:
        raise InvalidSize(f"aspect_ratio {aspect_ratio!r} is too extreme")
    return w, h


def _snap(value: float) -> int:
    snapped = round(value / GRID) * GRID
    return max(MIN_SIDE, min(MAX_SIDE, snapped))


def image_size(
    aspect_ratio: str = "1:1",
    width: int | None = None,
    height: int | None = None,
    *,
    long_side: int = DEFAULT_LONG_SIDE,
) -> ImageSize:
    """Resolve the output size.

    - width and height both given: used as they are (snapped to the grid, clamped);
    - one of them given: the other follows the aspect ratio;
    - neither: the long side is `long_side` and the short side follows the aspect ratio.
    """
    w_ratio, h_ratio = parse_aspect_ratio(aspect_ratio)
    if width is not None and height is not None:
        return ImageSize(_snap(width), _snap(height))
    if width is not None:
        return ImageSize(_snap(width), _snap(width * h_ratio / w_ratio))
    if height is not None:
        return ImageSize(_snap(height * w_ratio / h_ratio), _snap(height))
    if w_ratio >= h_ratio:
        return ImageSize(_snap(long_side), _snap(long_side * h_ratio / w_ratio))
    return ImageSize(_snap(long_side * w_ratio / h_ratio), _snap(long_side))
