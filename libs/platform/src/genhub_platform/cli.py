"""The command line every service shares: `serve`, `migrate`, plus the service's own commands."""

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import uvicorn

from genhub_platform.migrations import upgrade_to_head
from genhub_platform.settings import PlatformSettings

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int | None]]


def service_main(
    *,
    settings: PlatformSettings,
    app_import_path: str,
    migrations_dir: Path,
    commands: dict[str, tuple[Command, Callable[[argparse.ArgumentParser], None] | None]]
    | None = None,
    argv: list[str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(prog=f"genhub-{settings.service_name}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API and Kafka consumers")
    serve.add_argument("--port", type=int, default=settings.http_port)
    serve.add_argument("--host", default=settings.http_host)
    sub.add_parser("migrate", help="apply database migrations up to head")
    for name, (_, configure) in (commands or {}).items():
        command_parser = sub.add_parser(name)
        if configure:
            configure(command_parser)
    args = parser.parse_args(argv)

    if args.command == "serve":
        uvicorn.run(
            app_import_path,
            factory=True,
            host=args.host,
            port=args.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        return 0
    if args.command == "migrate":
        upgrade_to_head(migrations_dir, settings.async_database_url)
        return 0
    run, _ = (commands or {})[args.command]
    return asyncio.run(run(args)) or 0
