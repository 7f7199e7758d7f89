"""At-least-once delivery: the same event delivered again to every consumer changes nothing."""

import asyncio

import httpx
from e2e_kafka import find_event, redeliver, wait_consumed
from e2e_receiver import WebhookReceiver
from e2e_support import Endpoints, Tenant, settled_job


async def test_redelivered_events_change_nothing(
    tenant: Tenant, user_id: str, receiver: WebhookReceiver, endpoints: Endpoints
) -> None:
    await tenant.client.grant_tokens(user_id, 100, "e2e grant")
    accepted = await tenant.client.generate(
        user_id, "mock", "once only", webhook_url=receiver.url()
    )
    job = await settled_job(tenant.client, str(accepted.job_id))
    assert job.status == "succeeded"
    await receiver.wait_for(1)
    before = await tenant.client.get_user(user_id)
    assert (before.balance, before.reserved) == (90, 0)

    # Deliver job.requested and job.completed again, byte for byte, twice each.
    job_id = str(accepted.job_id)
    for topic, groups in (
        ("job.requested", ("billing", "notifier")),
        ("job.completed", ("billing", "gateway", "notifier")),
    ):
        original = await find_event(endpoints.kafka, topic, job_id)
        for _ in range(2):
            offset = await redeliver(endpoints.kafka, original)
            for group in groups:
                await wait_consumed(endpoints.kafka, group, topic, original.partition, offset)

    await asyncio.sleep(1.0)  # give a wrongly created second delivery time to be sent
    after = await tenant.client.get_user(user_id)
    assert (after.balance, after.reserved, after.available) == (90, 0, 90)
    again = await tenant.client.get_job(job_id)
    assert again.status == "succeeded"
    assert again.tokens is not None and again.tokens.charged == 10
    assert len(receiver.received) == 1

    async with httpx.AsyncClient(base_url=endpoints.notifier, timeout=10) as http:
        response = await http.get(
            f"/internal/apps/{tenant.app_id}/deliveries", params={"job_id": job_id}
        )
    response.raise_for_status()
    assert len(response.json()["deliveries"]) == 1
