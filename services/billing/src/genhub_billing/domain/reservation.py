"""Why a job is refused: the rejection a reservation attempt turns into."""

from dataclasses import dataclass

from genhub_contracts import RejectReason


@dataclass(frozen=True, slots=True)
class Reject:
    reason: RejectReason
    message: str
    available: int | None = None
    required: int | None = None


def insufficient(available: int, price: int) -> Reject:
    return Reject(
        RejectReason.INSUFFICIENT_TOKENS,
        f"this job needs {price} tokens; {available} available",
        available=available,
        required=price,
    )


def unknown_model(model: str) -> Reject:
    return Reject(RejectReason.UNKNOWN_MODEL, f"no price for model {model!r}")
