"""Two orchestrator processes in one consumer group: kill the one running a job mid-call and
the other finishes it after the lease runs out (ORCHESTRATOR_LEASE_S, 10 s by default).

Next to the main process (deploy/local/services.sh) a second one is started from
.venv/bin/genhub-orchestrator on a free port with the same environment; whichever of them
claims the job is SIGKILLed; the job still succeeds, charged once, finished by the other. The
main process is restored with `services.sh start orchestrator` and the extra one stopped,
whatever the outcome."""

import asyncio
import os
import signal
import socket

import httpx
from e2e_orchestrator_support import NEVER_OPEN, TOKENS, ensure_model, run_view, submit
from e2e_support import ROOT, Endpoints, Tenant, eventually, settled_job

PIDFILE = ROOT / "var" / "run" / "orchestrator.pid"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def _owner(url: str) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        return str((await client.get(f"{url}/internal/worker")).json()["owner"])


async def test_second_process_finishes_the_job_of_a_killed_one(
    endpoints: Endpoints, tenant: Tenant, user_id: str
) -> None:
    model = "e2e-orch-failover"
    await ensure_model(
        endpoints,
        model,
        [("e2e-orch-failover", 1)],
        providers={"e2e-orch-failover": {"settings": {"latency_ms": 4000, **NEVER_OPEN}}},
    )
    await tenant.client.grant_tokens(user_id, 100, "e2e")
    port = _free_port()
    second_url = f"http://127.0.0.1:{port}"
    log = (ROOT / "var" / "log" / "orchestrator-failover.log").open("ab")
    second = await asyncio.create_subprocess_exec(
        str(ROOT / ".venv" / "bin" / "genhub-orchestrator"),
        "serve",
        "--port",
        str(port),
        env=dict(os.environ),
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )
    main_pid = int(PIDFILE.read_text().strip())
    try:
        await eventually(lambda: _ready(second_url), bool, timeout=60, interval=0.3)
        # Whichever process claims the job (its Kafka partition's owner is woken at once, the
        # other polls) is killed mid-call: the provider takes 4 s.
        job = await submit(tenant, user_id, model, "survives a crash")
        run = await eventually(
            lambda: run_view(endpoints, tenant, job.job_id), lambda r: r["status"] == "running"
        )
        if run["worker"] == await _owner(endpoints.orchestrator):
            os.kill(main_pid, signal.SIGKILL)
            survivor = second_url
        else:
            assert run["worker"] == await _owner(second_url), run
            second.kill()
            survivor = endpoints.orchestrator

        done = await settled_job(tenant.client, job.job_id, timeout=45)
        assert done.status == "succeeded", done
        assert done.tokens is not None and done.tokens.charged == TOKENS  # once
        async with httpx.AsyncClient(base_url=survivor, timeout=10) as client:
            run = (await client.get(f"/internal/apps/{tenant.app_id}/runs/{job.job_id}")).json()
        assert run["status"] == "generated" and run["claims"] == 2
        assert [a["outcome"] for a in run["provider_attempts"]] == ["succeeded"]
    finally:
        restore = await asyncio.create_subprocess_exec(
            "bash", str(ROOT / "deploy" / "local" / "services.sh"), "start", "orchestrator"
        )
        await restore.wait()
        if second.returncode is None:
            second.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(second.wait(), timeout=20)
        except TimeoutError:
            second.kill()
            await second.wait()
        log.close()
    assert await _ready(endpoints.orchestrator)
