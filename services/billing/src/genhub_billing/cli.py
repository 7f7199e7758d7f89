"""`genhub-billing serve | migrate | reconcile | expire-grants | allocate-plans`."""

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from uuid import UUID

from genhub_platform.cli import service_main
from genhub_platform.db import make_engine, make_session_factory
from genhub_platform.uow import UnitOfWork

from genhub_billing import services, sweeps
from genhub_billing.config import Settings
from genhub_billing.domain.reconcile import ReconcileReport

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def format_report(report: ReconcileReport) -> str:
    lines = [
        f"reconcile: {report.accounts_checked} accounts, {report.holds_checked} holds checked",
    ]
    for p in report.problems:
        lines.append(f"  {p.subject} {p.subject_id} (account {p.account_id}): {p.message}")
    if report.ok:
        lines.append("OK: every cached balance and reservation matches the ledger")
    else:
        lines.append(f"FAULTY ACCOUNTS ({len(report.faulty_accounts)}):")
        lines.extend(f"  {account_id}" for account_id in report.faulty_accounts)
    return "\n".join(lines)


async def reconcile_command(args: argparse.Namespace) -> int:
    settings = Settings()
    engine = make_engine(settings)
    try:
        async with UnitOfWork(make_session_factory(engine), on_commit=lambda: None) as uow:
            report = await services.run_reconcile(uow, app_id=args.app_id)
    finally:
        await engine.dispose()
    print(format_report(report))
    return 0 if report.ok else 1


async def _in_uow(work: Callable[[UnitOfWork], Awaitable[int]]) -> int:
    settings = Settings()
    engine = make_engine(settings)
    total = 0
    try:
        while True:  # batches until one comes back short
            async with UnitOfWork(make_session_factory(engine), on_commit=lambda: None) as uow:
                done = await work(uow)
                await uow.commit()
            total += done
            if done < BATCH:
                return total
    finally:
        await engine.dispose()


BATCH = 500


async def expire_grants_command(_: argparse.Namespace) -> int:
    """Expire what is left of expired grants now (the server also does it periodically)."""
    written = await _in_uow(lambda uow: sweeps.expire_lots(uow, limit=BATCH))
    print(f"expire-grants: {written} expiry transfer(s) written")
    return 0


async def allocate_plans_command(_: argparse.Namespace) -> int:
    """Allocate this month's plan tokens to every user not yet allocated (idempotent)."""

    async def step(uow: UnitOfWork) -> int:
        return (await sweeps.allocate_plans(uow, limit=BATCH)).users

    users = await _in_uow(step)
    print(f"allocate-plans: {users} user(s) allocated for this month")
    return 0


def _configure_reconcile(parser: argparse.ArgumentParser) -> None:
    parser.description = "check the ledger; exits 1 and names the faulty accounts on a mismatch"
    parser.add_argument("--app-id", type=UUID, default=None, help="check one app only")


def main(argv: list[str] | None = None) -> int:
    return service_main(
        settings=Settings(),
        app_import_path="genhub_billing.main:create_app",
        migrations_dir=MIGRATIONS_DIR,
        commands={
            "reconcile": (reconcile_command, _configure_reconcile),
            "expire-grants": (expire_grants_command, None),
            "allocate-plans": (allocate_plans_command, None),
        },
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
