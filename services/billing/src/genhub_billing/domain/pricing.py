"""Prices: tokens per output for each model, with per-app overrides on top of the defaults.

The later pricing-rules work (per-plan prices, multipliers by size) extends `PriceBook`; the
callers only ask it for `quote(model, num_outputs)`.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID


class UnknownModelError(LookupError):
    """No price exists for this model (for this app)."""


@dataclass(frozen=True, slots=True)
class PriceEntry:
    model: str
    tokens_per_output: int
    app_id: UUID | None = None  # None: the default for every app


@dataclass(frozen=True, slots=True)
class PriceBook:
    """The prices that apply to one app: its overrides win over the defaults."""

    tokens_per_output: dict[str, int]

    @classmethod
    def for_app(cls, entries: Iterable[PriceEntry], app_id: UUID | None) -> "PriceBook":
        defaults: dict[str, int] = {}
        overrides: dict[str, int] = {}
        for entry in entries:
            if entry.app_id is None:
                defaults[entry.model] = entry.tokens_per_output
            elif entry.app_id == app_id:
                overrides[entry.model] = entry.tokens_per_output
        return cls({**defaults, **overrides})

    def quote(self, model: str, num_outputs: int) -> int:
        """Tokens a job costs: tokens_per_output(model) * num_outputs."""
        if num_outputs < 1:
            raise ValueError("num_outputs must be at least 1")
        try:
            per_output = self.tokens_per_output[model]
        except KeyError:
            raise UnknownModelError(model) from None
        return per_output * num_outputs

    def listing(self) -> list[tuple[str, int]]:
        return sorted(self.tokens_per_output.items())
