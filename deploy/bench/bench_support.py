"""What the service benchmarks share: a service process of their own, /proc figures, percentiles.

A benchmark that measures one service starts that service's real entry point
(`genhub-<service> migrate`, then `serve`) on its own port, its own database and its own Kafka
namespace (`KAFKA_TOPIC_PREFIX`), so the stack's other services neither compete for its events
nor react to the benchmark's fake ones; Kafka, PostgreSQL and MinIO are the stack's own.
"""

import asyncio
import contextlib
import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PG = "postgresql://{u}:{p}@{h}:{port}".format(
    u=os.environ.get("PGUSER", "genhub"),
    p=os.environ.get("PGPASSWORD", "genhub"),
    h=os.environ.get("PGHOST", "127.0.0.1"),
    port=os.environ.get("PGPORT", "5432"),
)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_py_spy(pid: int, out: str) -> subprocess.Popen[bytes]:
    """Sample a process into `out` (collapsed stacks, `--format raw`, GIL holders at 200 Hz)
    until it gets SIGINT."""
    command = ["uvx", "py-spy", "record", "-p", str(pid), "-o", out, "--format", "raw"]
    spy = subprocess.Popen(  # noqa: S603
        [*command, "-r", "200", "--gil"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(1.0)  # attached before the first event is sent
    return spy


class CoreOfItsOwn:
    """Give one process a CPU of its own for a while, as a cpuset or Kubernetes' static CPU
    manager (a Guaranteed pod with whole CPUs) would: its threads run on the CPU that serves
    the fewest device interrupts (on this VM the disk's go to one CPU: PostgreSQL's and
    Kafka's writes would interrupt the process there), every other thread on the machine on
    the others; the threads' previous CPUs come back on exit.
    Threads started meanwhile inherit their parent's placement (a PostgreSQL backend the
    postmaster's). Threads this user may not move are left where they are and counted."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise RuntimeError("a core of its own needs at least 2 CPUs")
        own = _fewest_device_interrupts(cpus)
        self.own, self.rest = {own}, set(cpus) - {own}
        self._previous: dict[int, set[int]] = {}
        self.unmoved = 0

    def __enter__(self) -> "CoreOfItsOwn":
        for pid, tid in _threads():
            try:
                previous = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, self.own if pid == self.pid else self.rest)
            except OSError:  # gone meanwhile, or not ours to move
                self.unmoved += 1
                continue
            self._previous[tid] = previous
        return self

    def __exit__(self, *exc: object) -> None:
        for tid, previous in self._previous.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, previous)
        everything = self.own | self.rest
        for _, tid in _threads():  # the threads started meanwhile: every CPU again
            if tid not in self._previous:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(tid, everything)


def _fewest_device_interrupts(cpus: list[int]) -> int:
    """Of these CPUs, the one that has served the fewest device interrupts (numbered IRQs in
    /proc/interrupts; the first CPU when that cannot be read)."""
    try:
        lines = Path("/proc/interrupts").read_text().splitlines()
    except OSError:
        return cpus[0]
    columns = [int(name.removeprefix("CPU")) for name in lines[0].split()]
    served = dict.fromkeys(columns, 0)
    for line in lines[1:]:
        irq, _, counts = line.partition(":")
        if irq.strip().isdigit():
            for cpu, count in zip(columns, counts.split(), strict=False):
                if count.isdigit():
                    served[cpu] += int(count)
    return min(cpus, key=lambda cpu: served.get(cpu, 0))


def _threads() -> list[tuple[int, int]]:
    """(process id, thread id) of every thread on the machine."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            found.extend((int(proc.name), int(task.name)) for task in (proc / "task").iterdir())
    return found


def _process_cpu(pid: str) -> tuple[str, float] | None:
    """(comm, utime + stime) of a live process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return comm, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StackCpu:
    """CPU seconds of each part of the local stack (`make up`) over a window.

    Parts: the processes in var/run/*.pid (the five services, Kafka, MinIO), PostgreSQL (every
    `postgres` process: server and backends), `extra` processes by name (a benchmark's own
    service process), and kernel workers (`kworker`: page writeback and I/O completion of what
    the stack writes; attributed late, since dirty pages are flushed seconds after the write).
    A benchmark's figure per unit of work is then the whole box's, not one process's.
    """

    def __init__(self, extra: dict[str, int] | None = None) -> None:
        self._extra = extra or {}
        self._start: dict[str, float] = {}

    def _pids(self) -> dict[str, list[str]]:
        parts: dict[str, list[str]] = {}
        for pidfile in sorted((ROOT / "var/run").glob("*.pid")):
            with contextlib.suppress(OSError, ValueError):
                parts[pidfile.stem] = [str(int(pidfile.read_text().split()[0]))]
        for name, pid in self._extra.items():
            parts[name] = [str(pid)]
        for pid in filter(str.isdigit, os.listdir("/proc")):
            taken = _process_cpu(pid)
            if taken and taken[0].startswith("postgres"):
                parts.setdefault("postgres", []).append(pid)
            elif taken and taken[0].startswith("kworker"):
                parts.setdefault("kernel workers", []).append(pid)
        return parts

    def snapshot(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for part, pids in self._pids().items():
            for pid in pids:
                if taken := _process_cpu(pid):
                    totals[part] = totals.get(part, 0.0) + taken[1]
        return totals

    def start(self) -> None:
        self._start = self.snapshot()

    def stop(self) -> dict[str, float]:
        """CPU seconds per part since `start`, busiest first (parts that used none left out)."""
        end = self.snapshot()
        used = {part: end[part] - self._start.get(part, 0.0) for part in end}
        return dict(sorted(((p, s) for p, s in used.items() if s > 0), key=lambda x: -x[1]))


def stack_cpu_lines(used: dict[str, float], units: int, unit: str, wall_s: float) -> list[str]:
    """The whole box's CPU per unit of work, and what 2 cores could sustain at that cost."""
    total = sum(used.values())
    per = total / max(1, units) * 1000
    parts = ", ".join(f"{part} {s / max(1, units) * 1000:.2f}" for part, s in used.items())
    cores = os.cpu_count() or 1
    return [
        f"stack CPU      {per:.2f} ms per {unit} ({total / max(wall_s, 1e-9):.2f} of {cores} cores"
        f" busy over {wall_s:.1f} s)",
        f"  by part (ms per {unit}): {parts}",
        f"  at that cost {cores} cores saturate at ~{units / max(total, 1e-9) * cores:,.0f}"
        f" {unit}s/s",
    ]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def metric(port: int, name: str) -> float:
    """One unlabelled counter or gauge from a service's /metrics (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def histogram(base_url: str, name: str, **labels: str) -> dict[float, float]:
    """A histogram from a service's /metrics, summed over the series that carry `labels`:
    bucket upper bound -> cumulative count."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


async def ensure_database(name: str) -> None:
    admin = await asyncpg.connect(f"{PG}/postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def truncate(database: str, tables: list[str]) -> None:
    conn = await asyncpg.connect(f"{PG}/{database}")
    try:
        await conn.execute(f"TRUNCATE {', '.join(tables)}")
    finally:
        await conn.close()


@dataclass
class ServiceProcess:
    """`genhub-<service>` migrated and serving on `port` with `env` on top of ours."""

    service: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": KAFKA, **self.env}
        binary = str(ROOT / f".venv/bin/genhub-{self.service}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            subprocess.run(  # noqa: S603
                [binary, "migrate"], env=env, check=True, stdout=log, stderr=log
            )
            self.process = subprocess.Popen(  # noqa: S603
                [binary, "serve", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def _ready(self) -> bool:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as response,
        ):
            return bool(response.status == 200)
        return False

    async def wait_ready(self, timeout_s: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.service} exited during start-up (see {self.log_path})")
            if await asyncio.to_thread(self._ready):
                return
            await asyncio.sleep(0.3)
        raise RuntimeError(f"{self.service} was not ready in time (see {self.log_path})")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
