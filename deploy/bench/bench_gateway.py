"""Accept-path throughput and latency of one running gateway process.

    make bench-gateway        # the accept path alone, then against the running stack
    python deploy/bench/bench_gateway.py [--url http://127.0.0.1:8080] [--seconds 5]
        [--concurrency 32] [--users 200] [--warmup 1] [--rate R] [--alone] [--timeline]

Two settings:

- `--alone`: the benchmark starts a gateway process of its own (`genhub-gateway serve` on port
  18080, database `genhub_gateway_bench`, Kafka namespace `bench-gw.`), so the accept path
  runs with only Kafka and PostgreSQL alongside: no other service consumes its `job.requested`
  events, none of the jobs' downstream work shares the two cores. This is the setting the
  gateway's target (1,000 accepted jobs/s, p99 < 25 ms) is stated for.
- otherwise, the running stack's gateway (`--url`): every accepted job also costs billing, the
  notifier, storage and the gateway's projection their share of the same cores.

Every request is a real `POST /v1/generate` through the whole accept path: API-key
authentication, the shared rate limiter (app and end-user buckets), a fresh Idempotency-Key,
body validation, the model check, the job row + outbox row in one transaction, and the
outbox relay's publish of `job.requested` to Kafka. The benchmark creates its own app (with
rate limits high enough not to refuse) through the admin API (GENHUB_ADMIN_TOKEN, sourced from
var/secrets.env by the Makefile) and keeps its key and id in var/bench-gateway-key for later
runs. Its end users have no tokens (the benchmark turns billing's monthly plan allocations off
for its app, on by default), so billing rejects the jobs downstream: the benchmark measures
acceptance, not generation.

The load generator is a minimal HTTP/1.1 keep-alive client on raw asyncio streams (httpx
would spend more CPU than the gateway on this shared 2-core machine). Each connection starts at its
own end user (connections in step would name the same user at once). It prints requests/s,
the status counts, p50/p95/p99 and in how many of the run's seconds p99 was over 25 ms (with
`--timeline`, each second's p50 and p99: a tail made of a few bad seconds points at a burst of
other work on the machine, such as an autovacuum ANALYZE). Two ways to load the gateway:

- closed loop (the default): `--concurrency` connections each send their next request as soon
  as the previous answer arrived, so it measures the most the gateway does with that many
  requests in flight; latency (from write to the end of the answer) is then mostly queueing:
  by Little's law, 32 in flight at 1,000/s is 32 ms on average, so p99 < 25 ms cannot be
  reached at 32 connections whatever the server does.
- open loop (`--rate R`): requests are *scheduled* at R per second whatever the answers do
  (the way independent clients arrive), over up to `--concurrency` connections; latency is
  measured from each request's scheduled time, so time spent waiting for a free connection
  when the gateway falls behind counts (no coordinated omission). This is what "N jobs/s
  with p99 under X ms" means; the achieved rate is printed next to the offered one.

With `--pid` (by default the local stack's var/run/gateway.pid, when the URL
is on this machine) it also prints the server's CPU per request, from /proc/<pid>/stat over
the measured run (not the warm-up, but whatever else the process does meanwhile: the outbox
relay, the event projection), and the load generator's own CPU per request. Against the
local stack it also prints the whole box's CPU per request (every service, Kafka, PostgreSQL,
MinIO, kernel workers, until the gateway has settled) and the rate two cores saturate at: what
every accepted job costs downstream shares the same cores as the accept path.
"""

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import bench_support
import httpx
import uvloop


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


def generate_request(host: str, api_key: str, user: str, key: str, body: bytes) -> bytes:
    return (
        f"POST /v1/generate HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {api_key}\r\n"
        f"X-User-ID: {user}\r\nIdempotency-Key: {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


KEY_FILE = bench_support.ROOT / "var" / "bench-gateway-key"
ALONE_KEY_FILE = bench_support.ROOT / "var" / "bench-gateway-alone-key"
PID_FILE = bench_support.ROOT / "var" / "run" / "gateway.pid"
ALONE_PORT = 18080
ALONE_DB = "genhub_gateway_bench"
# What a run leaves behind; emptied before each run so runs start alike (apps and keys stay).
ALONE_RUN_TABLES = ["jobs", "idempotency_keys", "outbox", "rate_limit_counters", "end_users"]


def alone_gateway_process(admin_token: str) -> bench_support.ServiceProcess:
    """The benchmark's own gateway: its own database and Kafka namespace, nothing downstream."""
    return bench_support.ServiceProcess(
        "gateway",
        ALONE_PORT,
        {
            "GATEWAY_DATABASE_URL": f"{bench_support.PG}/{ALONE_DB}",
            "KAFKA_TOPIC_PREFIX": "bench-gw.",
            "GENHUB_ADMIN_TOKEN": admin_token,
            "LOG_LEVEL": "WARNING",
            "GENHUB_ENV": "local",
        },
        bench_support.ROOT / "var/log/bench-gateway.log",
    )


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds the process has used so far (Linux), None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def background_cpu(pid: int, seconds: float) -> float | None:
    """The server's CPU use without this load (CPU-seconds per second), None if unknown."""
    before = process_cpu_s(pid)
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    after = process_cpu_s(pid)
    if before is None or after is None or seconds <= 0:
        return None
    return (after - before) / (time.perf_counter() - started)


async def settle_tail(pid: int, background: float, limit_s: float = 15.0) -> float:
    """Wait until the server is back at its background rate (its consumers have projected
    the run's events: billing's `tokens.rejected` arrive after the answers); the seconds
    waited. The CPU spent meanwhile belongs to the run's jobs."""
    began = time.perf_counter()
    last = process_cpu_s(pid)
    while time.perf_counter() - began < limit_s and last is not None:
        await asyncio.sleep(0.5)
        now = process_cpu_s(pid)
        if now is None or (now - last) / 0.5 <= background + 0.03:
            break
        last = now
    return time.perf_counter() - began


def server_pid(url_host: str, given: int | None) -> int | None:
    if given is not None:
        return given
    if url_host in ("127.0.0.1", "localhost") and PID_FILE.exists():
        return int(PID_FILE.read_text().strip())
    return None


async def bench_app_key(url: str, admin_token: str, key_file: Path, billed: bool) -> str:
    """The benchmark app's key: the one saved in `key_file` by an earlier run if it still
    works (and, when its jobs reach billing, its users never had monthly plan tokens), else a
    new app's."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        if (found := saved_key(key_file)) is not None:
            saved, app_id = found
            # An endpoint of the gateway alone, so a down upstream does not cost a new app.
            check = await client.get("/v1/jobs?limit=1", headers={"X-API-Key": saved})
            if check.status_code == 200:
                if not billed:
                    return saved
                app_id = app_id.strip() or await app_of_key(client, admin, saved)
                if await allocations_were_off(client, admin, app_id):
                    return saved
                print(
                    f"the saved benchmark app {app_id} had monthly plan allocations on (its "
                    "users may hold tokens, billing would accept their jobs): now off, and "
                    "using a new app",
                    file=sys.stderr,
                )
        key, app_id = await create_app(client, admin)
        if billed:
            await allocations_were_off(client, admin, app_id)
    save_key(key_file, key, app_id)
    return key


def saved_key(key_file: Path) -> tuple[str, str] | None:
    """(key, app id) saved by an earlier run, if any (the app id may be empty)."""
    if not key_file.exists():
        return None
    key, _, app_id = key_file.read_text().strip().partition("\n")
    return key, app_id


def save_key(key_file: Path, key: str, app_id: str) -> None:
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(f"{key}\n{app_id}\n")
    key_file.chmod(0o600)


async def app_of_key(client: httpx.AsyncClient, admin: dict[str, str], api_key: str) -> str:
    """The id of the app holding `api_key` (a key file saved before the app id was kept)."""
    response = await client.get("/admin/apps", headers=admin)
    response.raise_for_status()
    for app in response.json()["apps"]:
        if any(api_key.startswith(key["prefix"]) for key in app["keys"]):
            return str(app["id"])
    raise RuntimeError("no app holds the saved benchmark key")


async def allocations_were_off(
    client: httpx.AsyncClient, admin: dict[str, str], app_id: str
) -> bool:
    """Make sure billing gives the app's users no monthly plan tokens (allocations are on by
    default): their jobs must be refused by billing so that the benchmark measures acceptance,
    not generation. False when they were on."""
    path = f"/admin/apps/{app_id}/billing"
    current = await client.get(path, headers=admin)
    current.raise_for_status()
    if current.json()["monthly_allocations"] is False:
        return True
    response = await client.put(path, headers=admin, json={"monthly_allocations": False})
    response.raise_for_status()
    return False


async def create_app(client: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str]:
    """A new `pro` app with rate limits that never refuse: (its API key, its id)."""
    slug = f"bench-{secrets.token_hex(4)}"
    response = await client.post(
        "/admin/apps",
        headers=admin,
        json={
            "name": f"Benchmark {slug}",
            "slug": slug,
            "plan": "pro",
            "rate_limit_per_minute": 1_000_000,
            "user_rate_limit_per_minute": 1_000_000,
        },
    )
    response.raise_for_status()
    created = response.json()
    return str(created["api_key"]), str(created["app"]["id"])


@dataclass
class Load:
    """What every request of a run shares, and what the run records."""

    host: str
    port: int
    api_key: str
    users: list[str]
    body: bytes
    stop_at: float  # time.perf_counter()
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    sent_at: list[float] = field(default_factory=list)  # perf_counter(), per latency

    def request(self, user: str, key: str) -> bytes:
        return generate_request(self.host, self.api_key, user, key, self.body)

    def record(self, status: int, latency: float, sent_at: float) -> None:
        self.latencies.append(latency)
        self.sent_at.append(sent_at)
        self.statuses[status] += 1

    @property
    def sent(self) -> int:
        return len(self.latencies)


async def worker(load: Load, first_user: int) -> None:
    connection = await Connection.open(load.host, load.port)
    run = secrets.token_hex(4)
    n = 0
    try:
        while time.perf_counter() < load.stop_at:
            n += 1
            raw = load.request(load.users[(first_user + n) % len(load.users)], f"{run}-{n}")
            started = time.perf_counter()
            status, _ = await connection.request(raw)
            load.record(status, time.perf_counter() - started, started)
    finally:
        connection.close()


async def introduce(
    host: str, port: int, api_key: str, users: list[str], body: bytes, connections: int
) -> None:
    """One accepted request for every end user (each with its own Idempotency-Key), over
    `connections` connections."""
    pending = list(users)
    run = secrets.token_hex(4)

    async def one_connection() -> None:
        connection = await Connection.open(host, port)
        try:
            while pending:
                user = pending.pop()
                raw = generate_request(host, api_key, user, f"{run}-{user}", body)
                status, _ = await connection.request(raw)
                if status != 202:
                    raise RuntimeError(f"introducing {user}: HTTP {status}")
        finally:
            connection.close()

    await asyncio.gather(*(one_connection() for _ in range(min(connections, len(users)))))


async def closed_loop(load: Load, concurrency: int) -> None:
    """`concurrency` connections, each sending its next request when the last is answered."""
    # Spread over the end users: connections in step would all name the same user at once
    # (and, after a restart, all wait on that user's first use).
    await asyncio.gather(
        *(worker(load, i * len(load.users) // concurrency) for i in range(concurrency))
    )


async def open_loop(load: Load, rate: float, connections: int) -> None:
    """Requests scheduled at `rate` per second until `stop_at`, each on a free connection
    (waiting for one if all are busy); latency from the scheduled time (perf_counter: the
    loop's own clock may tick in whole milliseconds)."""
    free: asyncio.Queue[Connection] = asyncio.Queue()
    opened = [await Connection.open(load.host, load.port) for _ in range(connections)]
    for connection in opened:
        free.put_nowait(connection)
    run = secrets.token_hex(4)

    async def one(n: int, scheduled: float) -> None:
        connection = await free.get()
        try:
            raw = load.request(load.users[n % len(load.users)], f"{run}-{n}")
            status, _ = await connection.request(raw)
        finally:
            free.put_nowait(connection)
        load.record(status, time.perf_counter() - scheduled, scheduled)

    started = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    n = 0
    try:
        while (scheduled := started + n / rate) < load.stop_at:
            now = time.perf_counter()
            if scheduled > now:
                await asyncio.sleep(scheduled - now)
            tasks.append(asyncio.create_task(one(n, scheduled)))
            n += 1
        await asyncio.gather(*tasks)
    finally:
        for connection in opened:
            connection.close()


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


SLOW_S = 0.025  # the target's p99 (also a bucket bound of the services' latency histogram)


def served_histogram(url: str) -> dict[float, float]:
    """The gateway's own latency histogram of accepted `POST /v1/generate` requests."""
    return bench_support.histogram(
        url,
        "genhub_http_request_duration_seconds",
        route="/v1/generate",
        method="POST",
        status="202",
    )


def served_line(before: dict[float, float], after: dict[float, float]) -> str | None:
    """What the gateway measured itself over the run (from its first byte read to its last
    byte written: no client, no socket queues): the share of answers over SLOW_S and p99
    interpolated within its histogram bucket."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    over = total - (after.get(SLOW_S, 0.0) - before.get(SLOW_S, 0.0))
    p99, lower, below = float("nan"), 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= 0.99 * total:
            inside = cumulative - below
            share = (0.99 * total - below) / inside if inside else 1.0
            p99 = lower + share * (bound - lower) if bound != float("inf") else lower
            break
        lower, below = bound, cumulative
    return (
        f"served (the gateway's own histogram) {over / total * 100:.2f}% over "
        f"{SLOW_S * 1000:g} ms, p99 ~{p99 * 1000:.1f} ms (interpolated in its bucket)"
    )


def per_second(load: Load, began: float) -> list[tuple[int, list[float]]]:
    """The run's latencies by the second (of the run) their request was sent in, sorted."""
    seconds: dict[int, list[float]] = {}
    for sent_at, latency in zip(load.sent_at, load.latencies, strict=True):
        seconds.setdefault(int(sent_at - began), []).append(latency)
    return [(second, sorted(values)) for second, values in sorted(seconds.items())]


def timeline(seconds: list[tuple[int, list[float]]], slow_s: float) -> list[str]:
    """Each second's p50, p99 and requests slower than `slow_s`."""
    lines = []
    for second, values in seconds:
        slow = sum(1 for value in values if value > slow_s)
        lines.append(
            f"second {second:3d}: {len(values):5d} req  p50 {percentile(values, 0.5) * 1000:6.1f}"
            f"  p99 {percentile(values, 0.99) * 1000:6.1f} ms  over {slow_s * 1000:g} ms {slow}"
        )
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("GENHUB_URL", "http://127.0.0.1:8080"))
    parser.add_argument(
        "--alone",
        action="store_true",
        help="start a gateway of its own (port 18080, own database and Kafka namespace) "
        "instead of loading --url",
    )
    parser.add_argument(
        "--own-core",
        action="store_true",
        help="with --alone: its gateway runs on a CPU of its own, everything else on the "
        "others (as a cpuset or Kubernetes' static CPU manager would place it)",
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop: requests scheduled at this many per second (over at most "
        "--concurrency connections), latency from the scheduled time",
    )
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="also print each second's p50, p99 and requests over 25 ms",
    )
    parser.add_argument("--pid", type=int, default=None, help="the gateway's process id")
    parser.add_argument("--py-spy", metavar="OUT", help="profile the gateway's run into OUT")
    parser.add_argument(
        "--idle",
        type=float,
        default=2.0,
        help="seconds to measure the server's CPU without load first (its background work)",
    )
    return parser.parse_args()


async def main() -> int:
    args = parse_args()
    admin_token = os.environ.get("GENHUB_ADMIN_TOKEN")
    if not admin_token:
        print("GENHUB_ADMIN_TOKEN is not set (source var/secrets.env)", file=sys.stderr)
        return 2
    if args.own_core and not args.alone:
        print(
            "--own-core needs --alone (the benchmark places the gateway it starts)", file=sys.stderr
        )
        return 2
    if not args.alone:
        api_key = await bench_app_key(args.url, admin_token, KEY_FILE, billed=True)
        host = urlsplit(args.url).hostname or "127.0.0.1"
        return await measure(args, args.url, api_key, server_pid(host, args.pid), {})
    await bench_support.ensure_database(ALONE_DB)
    gateway = alone_gateway_process(admin_token)
    gateway.start()
    try:
        await gateway.wait_ready()
        await bench_support.truncate(ALONE_DB, ALONE_RUN_TABLES)
        api_key = await bench_app_key(gateway.url, admin_token, ALONE_KEY_FILE, billed=False)
        print(f"own gateway process (pid {gateway.pid}, {gateway.url}, Kafka prefix bench-gw.)")
        extra = {"bench gateway": gateway.pid, "bench client": os.getpid()}
        if not args.own_core:
            return await measure(args, gateway.url, api_key, gateway.pid, extra)
        with bench_support.CoreOfItsOwn(gateway.pid) as placement:
            print(
                f"  placement       gateway on CPU {sorted(placement.own)}, everything else "
                f"on CPUs {sorted(placement.rest)} ({placement.unmoved} threads not moved)"
            )
            return await measure(args, gateway.url, api_key, gateway.pid, extra)
    finally:
        gateway.stop()


async def measure(
    args: argparse.Namespace, url: str, api_key: str, pid: int | None, extra: dict[str, int]
) -> int:
    """One run against the gateway at `url` (process `pid`, if known): prints its figures."""
    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    users = [f"bench-user-{i}" for i in range(args.users)]
    body = json.dumps(
        {
            "model": "mock",
            "input": {"prompt": "a lighthouse at dusk", "num_outputs": 1},
            "metadata": {"bench": True},
        }
    ).encode()

    async def run(seconds: float) -> Load:
        load = Load(host, port, api_key, users, body, time.perf_counter() + seconds)
        if args.rate is not None:
            await open_loop(load, args.rate, args.concurrency)
        else:
            await closed_loop(load, args.concurrency)
        return load

    # Warm-up, not measured: every end user's first use (a fresh gateway records them and
    # asks billing for their welcome grant), connections, prepared statements, caches. It
    # runs to its last answer, so the measured run starts with nothing queued.
    await introduce(host, port, api_key, users, body, args.concurrency)
    if args.warmup > 0:
        await run(args.warmup)

    background = await background_cpu(pid, args.idle) if pid is not None else None
    server_cpu_before = process_cpu_s(pid) if pid is not None else None
    # The local stack only (plus the benchmark's own gateway and client, when alone).
    stack = bench_support.StackCpu(extra) if pid is not None else None
    if stack is not None:
        stack.start()
    spy = bench_support.start_py_spy(pid, args.py_spy) if args.py_spy and pid else None
    served_before = served_histogram(url)
    client_cpu_before = time.process_time()
    began = time.perf_counter()
    load = await run(args.seconds)
    measured = time.perf_counter() - began
    served = served_line(served_before, served_histogram(url))
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        await asyncio.to_thread(spy.wait, 30)
    client_cpu = time.process_time() - client_cpu_before
    server_cpu_after = process_cpu_s(pid) if pid is not None else None
    latencies, statuses, sent = sorted(load.latencies), load.statuses, load.sent
    accepted = statuses.get(202, 0)
    mode = (
        f"open loop at {args.rate:g} req/s offered, up to {args.concurrency} connections"
        if args.rate is not None
        else f"closed loop, {args.concurrency} connections"
    )
    setting = "alone (Kafka and PostgreSQL alongside)" if args.alone else "the running stack"
    if args.own_core:
        setting = "alone on a CPU of its own (Kafka and PostgreSQL on the other)"
    print(
        f"gateway accept path, {setting}: {mode}, {args.seconds:g} s measured "
        f"(after {args.warmup:g} s of warm-up), {args.users} end users, one app"
    )
    print(f"  requests        {len(latencies)}  statuses {dict(sorted(statuses.items()))}")
    rate, accepted_rate = len(latencies) / measured, accepted / measured
    print(f"  throughput      {rate:,.0f} req/s  ({accepted_rate:,.0f} accepted jobs/s)")
    print(
        "  latency         "
        f"p50 {percentile(latencies, 0.50) * 1000:.1f} ms  "
        f"p95 {percentile(latencies, 0.95) * 1000:.1f} ms  "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms  "
        f"mean {statistics.fmean(latencies) * 1000 if latencies else float('nan'):.1f} ms"
    )
    if served is not None:
        print("  " + served)
    seconds = per_second(load, began)
    # Is the tail spread over the run, or a few seconds' worth (a burst of other work)?
    slow_seconds = sum(1 for _, values in seconds if percentile(values, 0.99) > SLOW_S)
    print(
        f"  by the second   p99 over {SLOW_S * 1000:g} ms in {slow_seconds} of {len(seconds)}"
        " seconds (--timeline lists them)"
    )
    if args.timeline:
        for line in timeline(seconds, SLOW_S):
            print("  " + line)
    if server_cpu_before is not None and server_cpu_after is not None and sent:
        server_s = server_cpu_after - server_cpu_before
        server_ms = server_s * 1000 / sent
        print(f"  server CPU      {server_ms:.2f} ms per request (pid {pid}, {sent} requests)")
        if background is not None:
            # What the process was doing anyway (projecting other sessions' job events, say),
            # at the rate measured just before the run, taken out.
            net_ms = max(0.0, server_s - background * measured) * 1000 / sent
            print(
                f"  server CPU net  {net_ms:.2f} ms per request "
                f"(background {background * 100:.0f}% of a core before the run)"
            )
    if pid is not None and server_cpu_after is not None and background is not None and sent:
        tail_s = await settle_tail(pid, background)
        settled = process_cpu_s(pid)
        if settled is not None and server_cpu_before is not None:
            # Everything the run caused: the answers, the relay and the projection of the
            # jobs' downstream events (which lags the answers), net of the background.
            total_s = settled - server_cpu_before
            net_total_ms = (
                max(0.0, total_s - background * (time.perf_counter() - began)) * 1000 / sent
            )
            tail_ms = (settled - server_cpu_after) * 1000 / sent
            print(
                f"  server CPU+tail {net_total_ms:.2f} ms per request net, until the process "
                f"was back at its background ({tail_s:.1f} s later; {tail_ms:.2f} ms of it "
                "after the last answer)"
            )
    if sent:
        print(f"  client CPU      {client_cpu * 1000 / sent:.2f} ms per request")
    if stack is not None and sent:
        # Until the gateway settled: the jobs' downstream work (billing's rejection, the
        # notifier's and storage's records, the projection) lags the answers.
        wall = time.perf_counter() - began
        for line in bench_support.stack_cpu_lines(stack.stop(), sent, "request", wall):
            print("  " + line)
    return 0 if accepted == len(latencies) else 1


if __name__ == "__main__":
    # uvloop (the services' loop too) halves the load generator's CPU, which shares the two
    # cores with the gateway it measures.
    sys.exit(uvloop.run(main()))
