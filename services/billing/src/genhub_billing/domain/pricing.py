"""Prices: base tokens per output for each model x resolution x quality x outputs.

The common image-pricing formula: a 1024x1024 standard-quality output costs the model's base
tokens; larger images cost proportionally more (`width x height / 1024²`, never below 1.0, so a
smaller image costs the base price); `hd` multiplies by the rule's hd multiplier (1.5 by
default). The per-output price is rounded up to whole tokens, then multiplied by the number of
outputs. Per-app rules override the defaults model by model.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Literal
from uuid import UUID

REFERENCE_PIXELS = 1024 * 1024
DEFAULT_HD_MULTIPLIER = Decimal("1.5")
MAX_TOKENS_PER_OUTPUT = 10**7

Quality = Literal["standard", "hd"]


class UnknownModelError(LookupError):
    """No price exists for this model (for this app)."""


@dataclass(frozen=True, slots=True)
class PriceEntry:
    model: str
    tokens_per_output: int  # base tokens: one 1024² standard output
    app_id: UUID | None = None  # None: the default for every app
    hd_multiplier: Decimal = DEFAULT_HD_MULTIPLIER


@dataclass(frozen=True, slots=True)
class ImageSize:
    """What the job asked for: explicit pixels, or only an aspect ratio ("16:9")."""

    width: int | None = None
    height: int | None = None
    aspect_ratio: str = "1:1"

    def resolution_multiplier(self) -> Fraction:
        """`w x h / 1024²`, at least 1. With one side given, the other follows the aspect
        ratio; with neither, the image is the reference area, so the multiplier is 1."""
        a, _, b = self.aspect_ratio.partition(":")
        ratio = Fraction(int(a), int(b)) if a.isdigit() and b.isdigit() and int(b) else None
        width, height = self.width, self.height
        if width is None and height is None:
            return Fraction(1)
        if width is None:
            assert height is not None
            width_f = Fraction(height) * (ratio or 1)
            height_f = Fraction(height)
        elif height is None:
            width_f = Fraction(width)
            height_f = Fraction(width) / (ratio or 1)
        else:
            width_f, height_f = Fraction(width), Fraction(height)
        return max(Fraction(1), width_f * height_f / REFERENCE_PIXELS)


def quality_multiplier(quality: Quality, hd_multiplier: Decimal) -> Fraction:
    return Fraction(hd_multiplier) if quality == "hd" else Fraction(1)


@lru_cache(maxsize=4096)  # pure, and a handful of (rule, size, quality) combinations repeat
def price_per_output(base_tokens: int, size: ImageSize, quality: Quality, hd: Decimal) -> int:
    """Whole tokens for one output, rounded up (exact rational arithmetic, no float drift)."""
    exact = base_tokens * size.resolution_multiplier() * quality_multiplier(quality, hd)
    return math.ceil(exact)


@dataclass(frozen=True, slots=True)
class PriceBook:
    """The prices that apply to one app: its overrides win over the defaults."""

    rules: dict[str, PriceEntry]
    overridden: frozenset[str] = frozenset()

    @classmethod
    def for_app(cls, entries: Iterable[PriceEntry], app_id: UUID | None) -> "PriceBook":
        defaults: dict[str, PriceEntry] = {}
        overrides: dict[str, PriceEntry] = {}
        for entry in entries:
            if entry.app_id is None:
                defaults[entry.model] = entry
            elif entry.app_id == app_id:
                overrides[entry.model] = entry
        return cls({**defaults, **overrides}, frozenset(overrides))

    @property
    def tokens_per_output(self) -> dict[str, int]:
        return {model: rule.tokens_per_output for model, rule in self.rules.items()}

    def quote(
        self,
        model: str,
        num_outputs: int,
        size: ImageSize | None = None,
        quality: Quality = "standard",
    ) -> int:
        """Tokens a job costs: price_per_output x num_outputs."""
        if num_outputs < 1:
            raise ValueError("num_outputs must be at least 1")
        try:
            rule = self.rules[model]
        except KeyError:
            raise UnknownModelError(model) from None
        per_output = price_per_output(
            rule.tokens_per_output, size or ImageSize(), quality, rule.hd_multiplier
        )
        return per_output * num_outputs

    def listing(self) -> list[PriceEntry]:
        return [self.rules[model] for model in sorted(self.rules)]
