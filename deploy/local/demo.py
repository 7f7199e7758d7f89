"""Submit one job to the running stack, wait for it, save the PNG and print its path."""

import asyncio
import sys
from pathlib import Path

from genhub_client import AsyncGenhub
from seed import DEMO_ENV, VAR_DIR, read_env_file


async def main() -> int:
    env = read_env_file(DEMO_ENV)
    if not env:
        print("no var/demo.env: run `make up` first", file=sys.stderr)
        return 1
    async with AsyncGenhub(env["GENHUB_URL"], env["GENHUB_API_KEY"]) as client:
        job = await client.generate(
            env["GENHUB_USER_ID"], "mock", "a lighthouse on a cliff at dawn, watercolor"
        )
        print(f"submitted job {job.job_id}")
        job = await client.wait_for_job(job.job_id, timeout=60)
        if job.status != "succeeded" or not job.outputs:
            error = job.error.code if job.error else "no outputs"
            print(f"job ended {job.status}: {error}", file=sys.stderr)
            return 1
        image = await client.download(job.outputs[0].url)
    out = Path(VAR_DIR) / "demo" / f"{job.job_id}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(image)
    print(f"job {job.job_id} succeeded; image saved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
