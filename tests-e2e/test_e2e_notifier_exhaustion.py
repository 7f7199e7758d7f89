"""Notifier end to end: a delivery that exhausts its (compressed) schedule is dead-lettered and
the app's other endpoints hear about it through a signed `delivery.exhausted` webhook.

The local stack runs NOTIFIER_RETRY_SCHEDULE="0,1,2,3,4" (±20 % jitter): five attempts in
about 10 s.
"""

import json
import uuid

from e2e_notifier_support import NotifierApi, Publisher, ScriptedReceiver
from e2e_support import eventually
from genhub_client import verify_webhook
from starlette.requests import Request
from starlette.responses import Response

# The fixtures of the notifier's other e2e module (receiver, Kafka publisher, internal API).
from test_e2e_notifier_webhooks import hooks, notifier, publisher  # noqa: F401

WATCHED = ["delivery.exhausted"]


async def test_an_exhausted_delivery_is_dead_lettered_and_announced_to_the_app(
    hooks: ScriptedReceiver,  # noqa: F811
    publisher: Publisher,  # noqa: F811
    notifier: NotifierApi,  # noqa: F811
) -> None:
    app, other_app = uuid.uuid4(), uuid.uuid4()
    # The failing endpoint also subscribes to exhaustion notices: it must not get its own.
    dead_id, _ = await notifier.endpoint(app, hooks.url("/dead"), ["job.failed", *WATCHED])
    _, watch_secret = await notifier.endpoint(app, hooks.url("/watch"), WATCHED)
    await notifier.endpoint(other_app, hooks.url("/theirs"), ["job.failed", *WATCHED])

    async def script(request: Request, seen: int) -> Response:
        return Response(status_code=500 if request.url.path == "/dead" else 200)

    hooks.script = script
    job = await publisher.finished_job(app)

    [notice] = await hooks.wait_on("/watch", 1, timeout=30)
    payload = verify_webhook(watch_secret, notice.hook.headers, notice.hook.body)
    assert payload["type"] == "delivery.exhausted"
    dead_attempts = hooks.on("/dead")
    assert len(dead_attempts) == 5  # 0, 1, 2, 3, 4 s: the whole schedule
    assert {a.hook.headers["webhook-id"] for a in dead_attempts} == {payload["data"]["webhook_id"]}

    [dead] = await eventually(
        lambda: notifier.deliveries(app, status="dead_lettered"), lambda d: len(d) == 1
    )
    assert dead["endpoint_id"] == dead_id and dead["job_id"] == str(job)
    assert dead["attempt_count"] == 5 and len(dead["attempts"]) == 5
    data = payload["data"]
    assert data["delivery_id"] == dead["id"] and data["webhook_id"] == dead["webhook_id"]
    assert data["endpoint_id"] == dead_id and data["url"] == hooks.url("/dead")
    assert data["event_type"] == "job.failed" and data["job_id"] == str(job)
    assert data["attempts"] == 5 and data["last_error"] == dead["last_error"]
    assert data["last_error"].startswith("retries_exhausted")
    assert notice.hook.headers["webhook-id"] != dead["webhook_id"]

    # Nothing for the endpoint that failed, nothing for another app.
    assert len(hooks.on("/dead")) == 5
    assert hooks.on("/theirs") == []
    assert await notifier.deliveries(other_app) == []
    assert all(json.loads(a.hook.body)["type"] == "job.failed" for a in hooks.on("/dead"))
