"""`genhub-storage serve | migrate | sweep`."""

import argparse
import json
from pathlib import Path

from genhub_platform.cli import service_main
from genhub_platform.db import make_engine, make_session_factory
from genhub_platform.objectstore import ObjectStore, ObjectStoreSettings

from genhub_storage.adapters.blobs import BlobStore
from genhub_storage.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


async def sweep(_: argparse.Namespace) -> int:
    """One retention sweep (what the service runs every STORAGE_SWEEP_INTERVAL_S)."""
    from genhub_storage.main import build_lifecycle

    settings = Settings()
    engine = make_engine(settings)
    try:
        s3 = ObjectStoreSettings()
        lifecycle = build_lifecycle(
            settings, make_session_factory(engine), BlobStore(ObjectStore(s3), s3)
        )
        report = await lifecycle.sweep()
    finally:
        await engine.dispose()
    print(
        json.dumps(
            {
                "files_deleted": report.files_deleted,
                "objects_deleted": report.objects_deleted,
                "uploads_deleted": report.uploads_deleted,
                "staging_deleted": report.staging_deleted,
                "specs_deleted": report.specs_deleted,
            }
        )
    )
    return 0


def main() -> int:
    return service_main(
        settings=Settings(),
        app_import_path="genhub_storage.main:create_app",
        migrations_dir=MIGRATIONS_DIR,
        commands={"sweep": (sweep, None)},
    )
