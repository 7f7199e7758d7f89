"""The job saga end to end: happy path, provider failure with refund, insufficient tokens."""

import io
import json

from e2e_receiver import WebhookReceiver
from e2e_support import Tenant, eventually, settled_job
from genhub_client import verify_webhook
from PIL import Image

MOCK_PRICE = 10  # tokens per output for the seeded `mock` model


async def test_happy_path_charges_once_and_sends_a_signed_webhook(
    tenant: Tenant, user_id: str, receiver: WebhookReceiver
) -> None:
    granted = await tenant.client.grant_tokens(user_id, 100, "e2e grant")
    assert granted.available == 100

    accepted = await tenant.client.generate(
        user_id,
        "mock",
        "a red fox in the snow",
        webhook_url=receiver.url(),
        metadata={"order": "A-1"},
    )
    assert accepted.status == "queued"

    job = await settled_job(tenant.client, accepted.job_id)
    assert job.status == "succeeded", job
    assert job.error is None
    assert len(job.outputs) == 1
    assert job.tokens is not None
    assert (job.tokens.reserved, job.tokens.charged, job.tokens.refunded) == (MOCK_PRICE, 10, 0)

    # The output URL serves a real PNG that pillow can decode.
    output = job.outputs[0]
    png = await tenant.client.download(output.url)
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    assert (image.width, image.height) == (output.width, output.height)
    assert len(png) == output.bytes

    balance = await tenant.client.get_user(user_id)
    assert (balance.balance, balance.reserved, balance.available) == (90, 0, 90)

    [webhook] = await receiver.wait_for(1)
    payload = verify_webhook(tenant.webhook_secret, webhook.headers, webhook.body)
    assert payload["type"] == "job.succeeded"
    data = payload["data"]
    assert data["job_id"] == str(accepted.job_id)
    assert data["user_id"] == user_id
    assert data["status"] == "succeeded"
    assert data["metadata"] == {"order": "A-1"}
    assert [o["index"] for o in data["outputs"]] == [0]
    assert webhook.headers["webhook-id"]


async def test_provider_failure_voids_the_hold_and_sends_a_failure_webhook(
    tenant: Tenant, user_id: str, receiver: WebhookReceiver
) -> None:
    await tenant.client.grant_tokens(user_id, 50, "e2e grant")

    accepted = await tenant.client.generate(
        user_id, "mock", "this one fails", webhook_url=receiver.url(), mock_fail=True
    )
    job = await settled_job(tenant.client, accepted.job_id)
    assert job.status == "failed"
    assert job.error is not None and job.error.code == "provider_error"
    assert job.outputs == []
    assert job.tokens is not None
    assert (job.tokens.charged, job.tokens.refunded) == (0, MOCK_PRICE)

    balance = await tenant.client.get_user(user_id)
    assert (balance.balance, balance.reserved, balance.available) == (50, 0, 50)

    [webhook] = await receiver.wait_for(1)
    payload = verify_webhook(tenant.webhook_secret, webhook.headers, webhook.body)
    assert payload["type"] == "job.failed"
    assert payload["data"]["error"]["code"] == "provider_error"


async def test_too_few_tokens_rejects_the_job_and_charges_nothing(
    tenant: Tenant, user_id: str, receiver: WebhookReceiver
) -> None:
    await tenant.client.grant_tokens(user_id, MOCK_PRICE - 1, "e2e grant")

    accepted = await tenant.client.generate(
        user_id, "mock", "too expensive", webhook_url=receiver.url()
    )
    job = await settled_job(tenant.client, accepted.job_id)
    assert job.status == "rejected"
    assert job.error is not None and job.error.code == "insufficient_tokens"

    balance = await tenant.client.get_user(user_id)
    assert (balance.balance, balance.reserved, balance.available) == (9, 0, 9)

    [webhook] = await receiver.wait_for(1)
    payload = verify_webhook(tenant.webhook_secret, webhook.headers, webhook.body)
    assert payload["type"] == "job.rejected"
    assert payload["data"]["error"]["code"] == "insufficient_tokens"


async def test_two_outputs_are_both_stored_and_charged(tenant: Tenant, user_id: str) -> None:
    await tenant.client.grant_tokens(user_id, 100, "e2e grant")
    accepted = await tenant.client.generate(user_id, "mock", "two cats", num_outputs=2)
    job = await settled_job(tenant.client, accepted.job_id)
    assert job.status == "succeeded"
    assert [o.index for o in job.outputs] == [0, 1]
    first, second = [await tenant.client.download(o.url) for o in job.outputs]
    assert first != second
    balance = await eventually(lambda: tenant.client.get_user(user_id), lambda b: b.reserved == 0)
    assert balance.available == 100 - 2 * MOCK_PRICE
    assert json.loads(json.dumps(job.metadata)) == {}
