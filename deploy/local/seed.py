"""Seed the local stack with a demo app and a demo user who has tokens.

Idempotent: when var/demo.env holds a key that still works, nothing changes. Everything goes
through the public admin and app APIs, as an operator would do it.
"""

import asyncio
import os
import sys
from pathlib import Path

from genhub_client import AsyncGenhub, AsyncGenhubAdmin, GenhubError

ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = Path(os.environ.get("GENHUB_VAR_DIR", ROOT / "var"))
DEMO_ENV = VAR_DIR / "demo.env"
GATEWAY_URL = os.environ.get("GENHUB_URL", "http://127.0.0.1:8080")
DEMO_SLUG = "demo"
DEMO_USER = "demo-user"
DEMO_GRANT = 1000


def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


async def key_works(api_key: str) -> bool:
    async with AsyncGenhub(GATEWAY_URL, api_key) as client:
        try:
            await client.list_models()
        except GenhubError:
            return False
    return True


async def demo_api_key(admin: AsyncGenhubAdmin) -> str:
    try:
        created = await admin.create_app("Demo app", DEMO_SLUG, plan="pro")
        return created.api_key
    except GenhubError as exc:
        if exc.code != "slug_taken":
            raise
    # The app exists but its key was lost with var/: issue a fresh key for it.
    apps = await admin.list_apps()
    app = next(app for app in apps if app.slug == DEMO_SLUG)
    return await admin.create_key(app.id)


async def main() -> int:
    existing = read_env_file(DEMO_ENV)
    api_key = existing.get("GENHUB_API_KEY")
    if not api_key or not await key_works(api_key):
        admin_token = os.environ["GENHUB_ADMIN_TOKEN"]
        async with AsyncGenhubAdmin(GATEWAY_URL, admin_token) as admin:
            api_key = await demo_api_key(admin)
    async with AsyncGenhub(GATEWAY_URL, api_key) as client:
        # Idempotent: a second `make up` replays the first grant instead of adding tokens.
        await client.grant_tokens(
            DEMO_USER, DEMO_GRANT, "demo seed", idempotency_key="demo-seed-grant"
        )
        balance = await client.get_user(DEMO_USER)
    DEMO_ENV.write_text(
        f"GENHUB_URL={GATEWAY_URL}\nGENHUB_API_KEY={api_key}\nGENHUB_USER_ID={DEMO_USER}\n"
    )
    DEMO_ENV.chmod(0o600)
    print(f"demo app ready: user {DEMO_USER} has {balance.available} tokens available")
    print(f"demo API key: {api_key}  (also in {DEMO_ENV})")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
