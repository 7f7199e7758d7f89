"""`genhub-orchestrator serve | migrate`."""

import sys
from pathlib import Path

from genhub_platform.cli import service_main

from genhub_orchestrator.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def main() -> None:
    sys.exit(
        service_main(
            settings=Settings(),
            app_import_path="genhub_orchestrator.main:create_app",
            migrations_dir=MIGRATIONS_DIR,
        )
    )
