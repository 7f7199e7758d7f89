"""Small polling helpers: the saga is asynchronous, so tests wait for real state to appear."""

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from genhub_client import AsyncGenhub, AsyncGenhubAdmin, CreatedApp, Job

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]


def _env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


@dataclass(frozen=True)
class Endpoints:
    gateway: str
    billing: str
    orchestrator: str
    storage: str
    notifier: str
    kafka: str
    postgres_dsn: str
    s3: str
    admin_token: str

    @classmethod
    def from_env(cls) -> "Endpoints":
        local = _env_file(ROOT / "var" / "secrets.env")
        env = {**local, **os.environ}
        pg = (
            f"postgresql://{env.get('PGUSER', 'genhub')}:{env.get('PGPASSWORD', 'genhub')}"
            f"@{env.get('PGHOST', '127.0.0.1')}:{env.get('PGPORT', '5432')}/genhub_billing"
        )
        return cls(
            gateway=env.get("GENHUB_URL", "http://127.0.0.1:8080"),
            billing=env.get("BILLING_URL", "http://127.0.0.1:8081"),
            orchestrator=env.get("ORCHESTRATOR_URL", "http://127.0.0.1:8082"),
            storage=env.get("STORAGE_URL", "http://127.0.0.1:8083"),
            notifier=env.get("NOTIFIER_URL", "http://127.0.0.1:8084"),
            kafka=env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            postgres_dsn=env.get("BILLING_DATABASE_URL", pg),
            s3=env.get("S3_ENDPOINT", "127.0.0.1:9000"),
            admin_token=env.get("GENHUB_ADMIN_TOKEN", ""),
        )


@dataclass
class Tenant:
    app_id: str
    slug: str
    api_key: str
    webhook_secret: str
    client: AsyncGenhub


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
) -> T:
    """Call `probe` until `accept(result)`; raise with the last result on timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await probe()
        if accept(result):
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last: {result!r}")
        await asyncio.sleep(interval)


async def settled_job(client: AsyncGenhub, job_id: str, timeout: float = 60.0) -> Job:
    """Wait until the job is terminal and billing has settled its tokens (if any were held)."""

    def done(job: Job) -> bool:
        if not job.is_terminal:
            return False
        if job.status == "rejected":
            return True
        tokens = job.tokens
        return tokens is not None and (tokens.charged > 0 or tokens.refunded > 0)

    return await eventually(lambda: client.get_job(job_id), done, timeout=timeout)


async def new_app(
    admin: AsyncGenhubAdmin, slug: str, *, plan: str = "pro", **settings: Any
) -> CreatedApp:
    """A fresh app whose users get no monthly plan tokens: billing allocates plans by default,
    on its own schedule, which would land in a test's exact balances at a random moment.
    Tests of plan allocation create their app themselves."""
    created = await admin.create_app(slug, slug, plan=plan, **settings)
    await admin.update_billing_settings(created.app.id, monthly_allocations=False)
    return created
