"""Grant lots: spending order and expiry arithmetic.

Every credit to a user (grant, bonus, plan allocation, positive adjustment) opens a lot; the
lots' `remaining` sum to the account's balance. Spending takes from the soonest-expiring lot
first (lots that never expire last, older before newer). Reservations are attributed to lots
in the same order, so when a lot expires only its *unreserved* part is taken: a job already
holding tokens from it can still be charged, and if that job is voided instead, the sweep
takes the released part on its next pass.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Lot:
    id: UUID
    remaining: int
    expires_at: datetime | None
    created_at: datetime

    @property
    def sort_key(self) -> tuple[bool, datetime, datetime, str]:
        # (never expires?, expiry, creation, id): soonest expiry first, "never" last.
        far = self.created_at
        return (self.expires_at is None, self.expires_at or far, self.created_at, str(self.id))


def spending_order(lots: Sequence[Lot]) -> list[Lot]:
    return sorted((lot for lot in lots if lot.remaining > 0), key=lambda lot: lot.sort_key)


def consume(lots: Sequence[Lot], amount: int) -> list[tuple[UUID, int]]:
    """Which lots pay `amount`, soonest-expiring first: [(lot id, taken)].

    Raises ValueError when the lots do not hold that much (the ledger would be inconsistent).
    """
    if amount < 0:
        raise ValueError("amount must be >= 0")
    taken: list[tuple[UUID, int]] = []
    left = amount
    for lot in spending_order(lots):
        if left == 0:
            break
        take = min(lot.remaining, left)
        taken.append((lot.id, take))
        left -= take
    if left:
        raise ValueError(f"lots hold {amount - left}, cannot pay {amount}")
    return taken


def expirable(lots: Sequence[Lot], reserved: int, now: datetime) -> list[tuple[Lot, int]]:
    """The expired lots and how much of each may be expired now: [(lot, amount > 0)].

    The account's `reserved` tokens are attributed to lots in spending order; what an expired
    lot still covers for a pending hold stays until the hold settles.
    """
    if reserved < 0:
        raise ValueError("reserved must be >= 0")
    out: list[tuple[Lot, int]] = []
    covered_left = reserved
    for lot in spending_order(lots):
        covered = min(lot.remaining, covered_left)
        covered_left -= covered
        free = lot.remaining - covered
        if lot.expires_at is not None and lot.expires_at <= now and free > 0:
            out.append((lot, free))
    return out
