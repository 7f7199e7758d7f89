"""Real infrastructure for storage tests: the genhub_storage_test database (fresh, migrated) and
a dedicated MinIO bucket that is emptied after each test. Both fail, never skip, when down."""

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from genhub_platform.db import SessionFactory, make_session_factory
from genhub_platform.objectstore import ObjectStore, ObjectStoreSettings
from genhub_platform.testing import fresh_migrated_database
from genhub_storage.adapters.blobs import BlobStore
from sqlalchemy.ext.asyncio import create_async_engine

from .storage_infra import TEST_DATABASE_URL, require

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
TEST_BUCKET = "genhub-storage-test"


@pytest.fixture(scope="session")
def storage_db() -> str:
    require("127.0.0.1", 5432, "PostgreSQL")
    return fresh_migrated_database(TEST_DATABASE_URL, MIGRATIONS)


@pytest.fixture
async def db_sessions(storage_db: str) -> AsyncIterator[SessionFactory]:
    engine = create_async_engine(storage_db)
    yield make_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def s3() -> AsyncIterator[BlobStore]:
    settings = ObjectStoreSettings().model_copy(update={"bucket": TEST_BUCKET})
    endpoint = urlparse(f"//{settings.endpoint.split('://')[-1]}")
    require(endpoint.hostname or "127.0.0.1", endpoint.port or 9000, "MinIO")
    store = ObjectStore(settings)
    await store.ensure_bucket()
    blobs = BlobStore(store, settings)
    yield blobs
    for listed in await blobs.list(""):
        await blobs.delete(listed.key)
