"""Benchmark: 1024x1024 provider outputs processed per second by storage's OutputProcessor.

Each image is staged in real MinIO first (not timed); the timed part is what storage does for a
job.generated: read the staged object, fully decode and validate it, strip metadata, encode the
requested format, make the 256 px thumbnail, write both to MinIO and delete the staged object.
The database is replaced by an in-memory repository (rows and outcome), so the figure is the
image pipeline plus object storage, not PostgreSQL or Kafka.

    uv run --no-sync python deploy/bench/bench_storage.py [--images 40] [--concurrency 2]
        [--format png|jpeg|webp|pdf]

`--specs` measures the other path every accepted job takes through storage instead: a real
storage process of its own (`genhub-storage serve` through bench_support.ServiceProcess, port
18083, database `genhub_storage_bench` created afresh, `bench-stor.` Kafka topics, MinIO bucket
genhub-bench) consuming `job.requested` published at a steady --rate for --seconds (as the
gateway publishes them; bench_billing's helpers). It ends when every job's spec row is written
and prints the process's CPU-seconds (/proc/<pid>/stat) and SQL statements
(`genhub_db_statements_total`) per event, and events per batch transaction.

    uv run --no-sync python deploy/bench/bench_storage.py --specs [--rate 300] [--seconds 5]
        [--py-spy OUT]
"""

import argparse
import asyncio
import io
import logging
import random
import statistics
import time
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID, uuid4

import asyncpg
import bench_billing
import bench_support as bench
from aiokafka import AIOKafkaProducer
from genhub_contracts import JobGenerated, JobRequested, StagedOutput
from genhub_contracts.events import JobGeneratedPayload
from genhub_platform.objectstore import ObjectStore, ObjectStoreSettings
from genhub_storage.adapters.blobs import BlobStore
from genhub_storage.adapters.tables import JobOutcome, JobSpecRow, OutputObject
from genhub_storage.domain.images import ImageLimits
from genhub_storage.services import OutputPolicy, OutputProcessor
from PIL import Image, ImageFilter

BUCKET = "genhub-bench"


class MemoryRepo:
    """Just enough repository for the processor (no database in this benchmark)."""

    def __init__(self) -> None:
        self.outcomes: dict[UUID, JobOutcome] = {}
        self.rows: list[OutputObject] = []

    async def outcome(self, app_id: UUID, job_id: UUID) -> JobOutcome | None:
        return self.outcomes.get(job_id)

    async def record_outcome(self, outcome: JobOutcome) -> bool:
        return self.outcomes.setdefault(outcome.job_id, outcome) is outcome

    async def add_objects(self, objects: Sequence[OutputObject]) -> int:
        self.rows.extend(objects)
        return len(objects)

    async def spec(self, app_id: UUID, job_id: UUID) -> JobSpecRow | None:
        return None

    async def save_spec(self, spec: JobSpecRow) -> None:
        return None

    async def lock_content(self, app_id: UUID, sha256: str) -> None:
        return None

    async def file_with_content(self, app_id: UUID, sha256: str) -> OutputObject | None:
        return None

    async def file_by_key(self, app_id: UUID, key: str) -> OutputObject | None:
        return None


class NullUow:
    def publish(self, event: object) -> None:
        pass


def provider_like_png(seed: int) -> bytes:
    """A 1024x1024 PNG that compresses like a generated picture (smooth shapes plus grain)."""
    rng = random.Random(seed)
    base = Image.radial_gradient("L").resize((1024, 1024))
    channels = [Image.eval(base, lambda v, k=rng.randint(1, 4): (v * k) % 256) for _ in range(3)]
    img = Image.merge("RGB", channels).filter(ImageFilter.GaussianBlur(3))
    grain = Image.effect_noise((1024, 1024), 12).convert("RGB")
    img = Image.blend(img, grain, 0.08)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


SPECS_PREFIX = "bench-stor."
SPECS_DB = "genhub_storage_bench"
SPECS_PORT = 18083


async def specs(args: argparse.Namespace) -> None:
    """job.requested -> job_specs rows through a storage process of its own."""
    await bench_billing.fresh_database(SPECS_DB)
    service = bench.ServiceProcess(
        "storage",
        SPECS_PORT,
        {
            "STORAGE_DATABASE_URL": f"{bench.PG}/{SPECS_DB}",
            "KAFKA_TOPIC_PREFIX": SPECS_PREFIX,
            "S3_BUCKET": BUCKET,
            "STORAGE_SWEEP_INTERVAL_S": "0",
            "LOG_LEVEL": "WARNING",
        },
        bench.ROOT / "var" / "log" / "bench-storage.log",
    )
    service.start()
    producer = AIOKafkaProducer(bootstrap_servers=bench.KAFKA, acks="all", linger_ms=2)
    conn = await asyncpg.connect(f"{bench.PG}/{SPECS_DB}")
    spy = None
    try:
        await service.wait_ready()
        await producer.start()
        topic = SPECS_PREFIX + JobRequested.TOPIC
        users = [f"user-{i}" for i in range(1000)]
        rounds = [("warm-up", 1.0), ("measured", args.seconds)]
        for name, seconds in rounds:
            app = uuid4()
            count = int(args.rate * seconds)
            events = [bench_billing.gateway_like(app, users[i % 1000], i) for i in range(count)]
            if name == "measured" and args.py_spy:
                spy = bench.start_py_spy(service.pid, args.py_spy)
            cpu0 = bench.cpu_seconds(service.pid)
            sql0 = bench.metric(SPECS_PORT, "genhub_db_statements_total")
            sent_s = await bench_billing.publish_paced(producer, events, topic, args.rate)
            deadline = time.monotonic() + 120
            query = "SELECT count(*), count(DISTINCT created_at) FROM job_specs WHERE app_id = $1"
            while (row := await conn.fetchrow(query, app))[0] < count:
                if time.monotonic() > deadline:
                    raise SystemExit("storage did not record every job.requested within 120 s")
                await asyncio.sleep(0.05)
            cpu = bench.cpu_seconds(service.pid) - cpu0
            sql = bench.metric(SPECS_PORT, "genhub_db_statements_total") - sql0
        print(
            f"storage job.requested: own process ({SPECS_PORT}, topics {SPECS_PREFIX}*, database"
            f" {SPECS_DB}); {count} events at {count / sent_s:.0f}/s, all recorded;"
            f" {count / row[1]:.1f} events/batch; CPU {cpu * 1000 / count:.3f} ms/event;"
            f" SQL {sql / count:.3f} statements/event; load {bench.loadavg()}"
        )
    finally:
        await bench_billing.tear_down(spy, producer, conn, service)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--format", default="png", choices=["png", "jpeg", "webp", "pdf"])
    parser.add_argument("--specs", action="store_true", help="the job.requested path instead")
    parser.add_argument("--rate", type=float, default=300.0, help="--specs: events per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="--specs: how long")
    parser.add_argument("--py-spy", default=None, help="--specs: write py-spy samples")
    args = parser.parse_args()
    if args.specs:
        await specs(args)
        return
    # No job.requested in this benchmark: silence the per-job 'using defaults' warning.
    logging.getLogger("genhub_storage").setLevel(logging.ERROR)

    settings = ObjectStoreSettings().model_copy(update={"bucket": BUCKET})
    store = ObjectStore(settings)
    await store.ensure_bucket()
    blobs = BlobStore(store, settings)
    processor = OutputProcessor(
        blobs,
        OutputPolicy(ImageLimits(25 * 1024 * 1024, 40_000_000), 90, spec_wait=timedelta(0)),
        repo_for=lambda _: MemoryRepo(),  # type: ignore[arg-type,return-value]
    )

    app = uuid4()
    sources = [provider_like_png(i) for i in range(min(args.images, 8))]
    print(
        f"staging {args.images} 1024x1024 PNGs (~{sum(map(len, sources)) // len(sources) // 1024}"
        f" KiB each) into MinIO bucket {BUCKET} ..."
    )
    events: list[JobGenerated] = []
    for i in range(args.images):
        job = uuid4()
        key = f"staging/{app}/{job}/0.png"
        # Different bytes per job (one pixel row differs), so dedupe never short-cuts the work.
        img = Image.open(io.BytesIO(sources[i % len(sources)]))
        img.putpixel((0, 0), (i % 256, (i // 256) % 256, 7))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        await blobs.write(key, buf.getvalue(), "image/png")
        events.append(
            JobGenerated.new(
                app_id=app,
                job_id=job,
                payload=JobGeneratedPayload(
                    user_id="bench",
                    provider="mock",
                    model="mock",
                    requested_outputs=1,
                    output_format=args.format,
                    staged=[StagedOutput(index=0, bucket=BUCKET, key=key)],
                ),
            )
        )

    latencies: list[float] = []
    queue: asyncio.Queue[JobGenerated] = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)

    async def worker() -> None:
        while not queue.empty():
            event = queue.get_nowait()
            started = time.perf_counter()
            await processor.complete_job(event, NullUow())  # type: ignore[arg-type]
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - began

    for listed in await blobs.list(""):
        await blobs.delete(listed.key)

    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    print(
        f"format={args.format} images={len(ms)} concurrency={args.concurrency} "
        f"elapsed={elapsed:.2f}s"
    )
    print(
        f"{len(ms) / elapsed:.2f} images/s  p50={statistics.median(ms):.1f} ms  "
        f"p95={ms[round(0.95 * (len(ms) - 1))]:.1f} ms  p99={p99:.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
