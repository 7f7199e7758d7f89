"""App signing secrets (for jobs' own webhook_url): created once, rotated with a grace period."""

import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID

from genhub_platform.errors import ApiError
from genhub_platform.uow import UnitOfWork

from genhub_notifier.adapters import repository as repo
from genhub_notifier.adapters.secretbox import SecretBox
from genhub_notifier.domain.signing import encode_secret

SECRET_BYTES = 32


def new_secret() -> str:
    return encode_secret(secrets.token_bytes(SECRET_BYTES))


async def create_signing_secret(
    uow: UnitOfWork,
    box: SecretBox,
    app_id: UUID,
    *,
    rotate: bool,
    grace: timedelta = timedelta(hours=24),
    now: datetime | None = None,
) -> str:
    """Returns the new plaintext secret (shown once); 409 secret_exists unless rotating.
    Rotating keeps the old secret signing (second signature) for `grace`."""
    secret = new_secret()
    encrypted = box.encrypt(secret)
    moment = now or datetime.now(UTC)
    if rotate:
        await repo.rotate_secret(uow.session, app_id, encrypted, moment + grace, moment)
    elif not await repo.insert_secret(uow.session, app_id, encrypted):
        raise ApiError(
            409,
            "secret_exists",
            "This app already has a signing secret; pass rotate=true to replace it.",
        )
    await uow.commit()
    return secret
