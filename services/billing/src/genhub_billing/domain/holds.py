"""Hold states and settlement arithmetic.

A hold is created `pending` and ends exactly once, `posted` (the job succeeded: charge for the
outputs delivered, release the rest) or `voided` (failed, cancelled or expired: release all).
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from genhub_contracts import JobStatus


class HoldStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"

    @property
    def is_final(self) -> bool:
        return self is not HoldStatus.PENDING


class HoldAlreadySettledError(Exception):
    """The hold already reached a final state; settling it again must change nothing."""


def transition(current: HoldStatus, target: HoldStatus) -> HoldStatus:
    """The only legal moves are pending → posted and pending → voided."""
    if target is HoldStatus.PENDING:
        raise ValueError("a hold cannot go back to pending")
    if current.is_final:
        raise HoldAlreadySettledError(f"hold is already {current.value}")
    return target


@dataclass(frozen=True, slots=True)
class Settlement:
    outcome: Literal["posted", "voided"]
    charged: int
    refunded: int

    @property
    def status(self) -> HoldStatus:
        return HoldStatus(self.outcome)


def post(held: int, delivered: int, requested: int) -> Settlement:
    """Charge pro rata for the outputs delivered: floor(held * delivered / requested).

    Integer arithmetic only; never more than the hold (a provider returning extra outputs does
    not cost the user more).
    """
    if held < 0 or delivered < 0 or requested < 1:
        raise ValueError("held and delivered must be >= 0, requested >= 1")
    charged = held * min(delivered, requested) // requested
    return Settlement("posted", charged, held - charged)


def void(held: int) -> Settlement:
    if held < 0:
        raise ValueError("held must be >= 0")
    return Settlement("voided", 0, held)


def settle(
    held: int, status: JobStatus, delivered: int, requested: int, *, free_of_charge: bool = False
) -> Settlement:
    """How a job's terminal status settles its hold.

    `free_of_charge`: a success that costs nothing (a cache hit in an app that does not charge
    for cache hits) is posted at 0, releasing the whole hold.
    """
    if status is JobStatus.SUCCEEDED:
        return post(held, 0 if free_of_charge else delivered, requested)
    if status in (JobStatus.FAILED, JobStatus.CANCELLED):
        return void(held)
    raise ValueError(f"status {status.value!r} does not settle a hold")
