"""`genhub-notifier serve | migrate | gen-key`."""

import argparse
import sys
from pathlib import Path

from genhub_platform.cli import service_main

from genhub_notifier.adapters.secretbox import ConfigError, SecretBox
from genhub_notifier.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


async def _gen_key(_: argparse.Namespace) -> int:
    print(SecretBox.generate_key())
    return 0


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        # Refuse to start without a usable key, with the reason on stderr, not a traceback.
        try:
            SecretBox.from_setting(settings.encryption_key)
        except ConfigError as exc:
            print(f"genhub-notifier: {exc}", file=sys.stderr)
            return 2
    return service_main(
        settings=settings,
        app_import_path="genhub_notifier.main:create_app",
        migrations_dir=MIGRATIONS_DIR,
        commands={"gen-key": (_gen_key, None)},
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
