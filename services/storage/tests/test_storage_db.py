"""Repository and processor against the real local PostgreSQL (database genhub_storage_test)."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from genhub_contracts import JobGenerated, StagedOutput
from genhub_contracts.events import JobGeneratedPayload
from genhub_platform.db import make_session_factory
from genhub_platform.outbox import OutboxMessage
from genhub_platform.uow import UnitOfWork
from genhub_storage.adapters.repository import ObjectRepository
from genhub_storage.adapters.tables import JobOutcome, OutputObject
from genhub_storage.domain.images import ImageLimits
from genhub_storage.services import OutputPolicy, OutputProcessor
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col, select

from .storage_fakes import FakeBlobs
from .storage_imagefactory import png_with_metadata
from .storage_infra import TEST_DATABASE_URL, require

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


async def _create_database_if_missing(url: str) -> None:
    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database="postgres",
    )
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", parsed.database):
            await conn.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def migrated() -> str:
    require("127.0.0.1", 5432, "PostgreSQL")
    asyncio.run(_create_database_if_missing(TEST_DATABASE_URL))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", TEST_DATABASE_URL)
    # Down to nothing and back up: both directions of the history work.
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    return TEST_DATABASE_URL


@pytest.fixture
async def sessions(migrated: str) -> AsyncIterator:
    engine = create_async_engine(migrated)
    yield make_session_factory(engine)
    await engine.dispose()


def row(app_id, job_id, index: int) -> OutputObject:
    return OutputObject(
        app_id=app_id,
        job_id=job_id,
        index=index,
        key=f"outputs/{app_id}/{job_id}/{index}.png",
        size_bytes=10,
        width=1,
        height=1,
        content_type="image/png",
        sha256="0" * 64,
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )


async def test_objects_are_unique_per_job_index_and_filtered_by_app(sessions) -> None:
    app, other_app, job = uuid4(), uuid4(), uuid4()
    async with sessions() as session:
        repo = ObjectRepository(session)
        assert await repo.add_objects([row(app, job, 0), row(app, job, 1)]) == 2
        assert await repo.add_objects([row(app, job, 0)]) == 0  # replay: nothing new
        await session.commit()
    async with sessions() as session:
        repo = ObjectRepository(session)
        assert [o.index for o in await repo.job_files(app, job)] == [0, 1]
        assert await repo.job_files(other_app, job) == []


async def test_outcome_is_recorded_once(sessions) -> None:
    app, job = uuid4(), uuid4()
    async with sessions() as session:
        repo = ObjectRepository(session)
        assert await repo.record_outcome(JobOutcome(job_id=job, app_id=app, status="succeeded"))
        assert not await repo.record_outcome(JobOutcome(job_id=job, app_id=app, status="failed"))
        await session.commit()
    async with sessions() as session:
        repo = ObjectRepository(session)
        assert (await repo.outcome(app, job)).status == "succeeded"
        assert await repo.outcome(uuid4(), job) is None  # another app sees nothing


async def test_processor_commits_rows_outcome_and_outbox_event_together(sessions) -> None:
    blobs = FakeBlobs()
    app, job = uuid4(), uuid4()
    key = f"staging/{app}/{job}/0.png"
    blobs.objects[key] = (png_with_metadata((20, 10)), "image/png")
    event = JobGenerated.new(
        app_id=app,
        job_id=job,
        payload=JobGeneratedPayload(
            user_id="u1",
            provider="mock",
            model="mock",
            requested_outputs=1,
            output_format="png",
            staged=[StagedOutput(index=0, bucket="genhub", key=key)],
        ),
    )
    processor = OutputProcessor(
        blobs, OutputPolicy(ImageLimits(10**7, 10**7), 90, spec_wait=timedelta(0))
    )

    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        await processor.complete_job(event, uow)
        await uow.commit()

    async with sessions() as session:
        files = await ObjectRepository(session).job_files(app, job)
        assert [(f.width, f.height) for f in files] == [(20, 10)]
        outbox = (
            await session.exec(
                select(OutboxMessage).where(col(OutboxMessage.key) == str(job).encode())
            )
        ).all()
    assert [m.topic for m in outbox] == ["job.completed"]
    body = json.loads(outbox[0].payload)
    assert body["payload"]["status"] == "succeeded"
    assert body["payload"]["outputs"][0]["sha256"] == files[0].sha256
