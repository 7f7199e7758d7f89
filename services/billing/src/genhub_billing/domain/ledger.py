"""Ledger vocabulary: account and transfer kinds, amount limits and deterministic ids.

Sign convention: an account's `balance` is the sum of the amounts credited to it minus the sum
debited from it, over *posting* transfers (grants and generation posts). Holds and voids are
*pending* movements: they change the debit account's `reserved`, never a balance. Each app has
one issuance account that is debited for every grant and credited for every charge, so per app
the balances always sum to zero and the issuance balance is minus the tokens outstanding.
"""

from enum import StrEnum
from functools import lru_cache
from uuid import UUID, uuid5

MAX_AMOUNT = 10**9
"""Largest amount one grant may carry (keeps sums far away from bigint overflow)."""

# Fixed namespace: ids derived from it must stay stable forever (they are idempotency keys).
_NAMESPACE = UUID("6d1f9a52-3c1e-4b7a-9f0e-2b8f5d6c7a11")


class AccountKind(StrEnum):
    ISSUANCE = "issuance"
    USER = "user"


class TransferKind(StrEnum):
    GRANT = "grant"
    BONUS = "bonus"
    PLAN_ALLOCATION = "plan_allocation"
    ADJUSTMENT = "adjustment"  # either direction: issuance → user (credit) or user → issuance
    EXPIRY = "expiry"  # user → issuance: what was left of an expired credit
    GENERATION_HOLD = "generation_hold"
    GENERATION_POST = "generation_post"
    GENERATION_VOID = "generation_void"

    @property
    def is_posting(self) -> bool:
        """Posting transfers move balances; holds and voids only move `reserved`."""
        return self in POSTING_KINDS


POSTING_KINDS = frozenset(
    {
        TransferKind.GRANT,
        TransferKind.BONUS,
        TransferKind.PLAN_ALLOCATION,
        TransferKind.ADJUSTMENT,
        TransferKind.EXPIRY,
        TransferKind.GENERATION_POST,
    }
)
GRANT_KINDS = frozenset({TransferKind.GRANT, TransferKind.BONUS})


@lru_cache(maxsize=1024)
def issuance_account_id(app_id: UUID) -> UUID:
    return uuid5(_NAMESPACE, f"account/{app_id}/issuance")


@lru_cache(maxsize=65536)  # hot users repeat; uuid5 (SHA-1) is a visible cost per hold
def user_account_id(app_id: UUID, user_id: str) -> UUID:
    return uuid5(_NAMESPACE, f"account/{app_id}/user/{user_id}")


def job_transfer_id(job_id: UUID, kind: TransferKind) -> UUID:
    """One transfer of each kind per job: a replayed event derives the same id."""
    return uuid5(_NAMESPACE, f"job/{job_id}/{kind.value}")


def hold_id_for(job_id: UUID) -> UUID:
    return uuid5(_NAMESPACE, f"hold/{job_id}")


def grant_transfer_id(app_id: UUID, user_id: str, idempotency_key: str) -> UUID:
    """Idempotency keys are scoped to one (app, user): tenants can never collide."""
    return uuid5(_NAMESPACE, f"grant/{app_id}/{user_id}/{idempotency_key}")


def adjustment_transfer_id(app_id: UUID, user_id: str, idempotency_key: str) -> UUID:
    return uuid5(_NAMESPACE, f"adjustment/{app_id}/{user_id}/{idempotency_key}")


def batch_grant_transfer_id(app_id: UUID, idempotency_key: str, index: int) -> UUID:
    """Row `index` of a batch grant: a replayed batch derives the same ids, row by row."""
    return uuid5(_NAMESPACE, f"grant-batch/{app_id}/{idempotency_key}/{index}")


def plan_transfer_id(app_id: UUID, user_id: str, period: str) -> UUID:
    """One plan allocation per (app, user, month), whichever replica or run makes it."""
    return uuid5(_NAMESPACE, f"plan/{app_id}/{user_id}/{period}")


def expiry_transfer_id(lot_id: UUID, remaining_before: int) -> UUID:
    """A lot may expire in steps (its reserved part waits for the hold); `remaining` only
    falls, so (lot, remaining before) names each step once."""
    return uuid5(_NAMESPACE, f"expiry/{lot_id}/{remaining_before}")


def advisory_lock_key(value: UUID) -> int:
    """A signed 64-bit key for `pg_advisory_xact_lock`, derived from a UUID."""
    return int.from_bytes(value.bytes[:8], "big", signed=True)


def balance_change(kind: TransferKind, amount: int, *, credited: bool) -> int:
    """How a transfer moved the balance of the account on the given side of it."""
    if not kind.is_posting:
        return 0
    return amount if credited else -amount
