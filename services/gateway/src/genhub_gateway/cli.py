"""`genhub-gateway serve | migrate`."""

from pathlib import Path

from genhub_platform.cli import service_main

from genhub_gateway.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def main() -> int:
    return service_main(
        settings=Settings(),  # the environment supplies GENHUB_ADMIN_TOKEN
        app_import_path="genhub_gateway.main:create_app",
        migrations_dir=MIGRATIONS_DIR,
    )
