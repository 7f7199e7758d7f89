"""End users: created the first time an app names them, when the app's welcome grant is
applied exactly once through billing."""

import logging
from collections.abc import Callable

from genhub_platform.uow import UnitOfWork

from genhub_gateway import audit
from genhub_gateway.adapters.repositories import EndUserRepository, KeyOwner
from genhub_gateway.adapters.upstream import BillingClient

log = logging.getLogger(__name__)

WELCOME_ACTOR = "system:welcome"
# Billing dedupes grants by (app, user, key): whoever calls, whenever, it applies once.
WELCOME_IDEMPOTENCY_KEY = "gateway:welcome"


async def ensure_end_user(
    uow_factory: Callable[[], UnitOfWork],
    billing: BillingClient,
    caller: KeyOwner,
    user_id: str,
    request_id: str,
) -> None:
    """Record the end user on first sight and apply the app's welcome grant once.

    The row is committed first with the welcome amount decided now; the grant goes to billing
    with a deterministic idempotency key, and is marked done afterwards. A crash or a billing
    outage in between leaves it pending, and the next request retries with the same key and
    amount, so billing applies it exactly once. Raises 503 while billing is unreachable (the
    caller's request fails rather than running without the user's welcome tokens).
    """
    async with uow_factory() as uow:
        user = await EndUserRepository(uow.session).first_sight(
            caller.app_id, user_id, caller.welcome_grant
        )
        await uow.commit()
    if user.welcome_tokens <= 0 or user.welcome_granted_at is not None:
        return
    answer = await billing.grant(
        caller.app_id, user_id, user.welcome_tokens, "welcome grant", WELCOME_IDEMPOTENCY_KEY
    )
    transfer_id = answer.get("transfer_id")
    async with uow_factory() as uow:
        if await EndUserRepository(uow.session).mark_welcomed(
            caller.app_id, user_id, str(transfer_id) if transfer_id else None
        ):
            audit.record(
                uow.session,
                actor=WELCOME_ACTOR,
                request_id=request_id,
                action="tokens.grant",
                target_type="user",
                target_id=user_id,
                app_id=caller.app_id,
                after={
                    "amount": user.welcome_tokens,
                    "reason": "welcome grant",
                    "transfer_id": str(transfer_id) if transfer_id else None,
                    "balance": answer.get("balance"),
                },
            )
        await uow.commit()
