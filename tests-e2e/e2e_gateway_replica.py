"""A second gateway process (another replica) for tests that need two: same database, same
Kafka, same upstreams, another port. Started from .venv/bin like deploy/local/services.sh
starts the first, and always stopped at the end."""

import asyncio
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from e2e_support import ROOT

_LOCAL_PROFILE = {
    "GENHUB_ENV": "local",
    "GATEWAY_ALLOW_PRIVATE_URLS": "true",
    "BILLING_URL": "http://127.0.0.1:8081",
    "ORCHESTRATOR_URL": "http://127.0.0.1:8082",
    "STORAGE_URL": "http://127.0.0.1:8083",
    "NOTIFIER_URL": "http://127.0.0.1:8084",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _secrets(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


@asynccontextmanager
async def second_gateway(timeout_s: float = 45.0) -> AsyncIterator[str]:
    """Yield the base URL of a freshly started gateway replica; stop it afterwards."""
    port = _free_port()
    env = {**_LOCAL_PROFILE, **os.environ, **_secrets(ROOT / "var" / "secrets.env")}
    log_path = ROOT / "var" / "log" / f"gateway-replica-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            str(ROOT / ".venv" / "bin" / "genhub-gateway"),
            "serve",
            "--port",
            str(port),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"the second gateway exited; see {log_path}")
                try:
                    if (await client.get(f"{url}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"the second gateway was not ready in {timeout_s}s")
                await asyncio.sleep(0.3)
        yield url
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
