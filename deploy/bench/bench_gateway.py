"""Accept-path throughput and latency of one running gateway process.

    make bench-gateway        # = uv run --no-sync python deploy/bench/bench_gateway.py
    python deploy/bench/bench_gateway.py [--url http://127.0.0.1:8080] [--seconds 5]
        [--concurrency 32] [--users 200] [--warmup 1] [--rate R]

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
the status counts and p50/p95/p99. Two ways to load the gateway:

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
the whole run (warm-up included, and whatever else the process does meanwhile: the outbox
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
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import bench_support
import httpx


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


KEY_FILE = Path(__file__).resolve().parents[2] / "var" / "bench-gateway-key"
PID_FILE = Path(__file__).resolve().parents[2] / "var" / "run" / "gateway.pid"


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


async def bench_app_key(url: str, admin_token: str) -> str:
    """The benchmark app's key: the one saved by an earlier run if it still works and its
    users never had monthly plan tokens (so a run does not need the notifier), else a new
    app's."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        if KEY_FILE.exists():
            saved, _, app_id = KEY_FILE.read_text().strip().partition("\n")
            # An endpoint of the gateway alone, so a down upstream does not cost a new app.
            check = await client.get("/v1/jobs?limit=1", headers={"X-API-Key": saved})
            if check.status_code == 200:
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
        await allocations_were_off(client, admin, app_id)
    KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
    KEY_FILE.write_text(f"{key}\n{app_id}\n")
    KEY_FILE.chmod(0o600)
    return key


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
    stop_at: float
    record_from: float  # requests before this (loop time) are warm-up
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    sent: int = 0  # every request, warm-up included, for the CPU figures

    def request(self, user: str, key: str) -> bytes:
        return generate_request(self.host, self.api_key, user, key, self.body)

    def record(self, status: int, latency: float, at: float) -> None:
        self.sent += 1
        if at >= self.record_from:
            self.latencies.append(latency)
            self.statuses[status] += 1


async def worker(load: Load, first_user: int) -> None:
    connection = await Connection.open(load.host, load.port)
    loop = asyncio.get_running_loop()
    run = secrets.token_hex(4)
    n = 0
    try:
        while loop.time() < load.stop_at:
            n += 1
            raw = load.request(load.users[(first_user + n) % len(load.users)], f"{run}-{n}")
            started = time.perf_counter()
            status, _ = await connection.request(raw)
            load.record(status, time.perf_counter() - started, loop.time())
    finally:
        connection.close()


async def closed_loop(load: Load, concurrency: int) -> None:
    """`concurrency` connections, each sending its next request when the last is answered."""
    # Spread over the end users: connections in step would all name the same user at once
    # (and, after a restart, all wait on that user's first use).
    await asyncio.gather(
        *(worker(load, i * len(load.users) // concurrency) for i in range(concurrency))
    )


async def open_loop(load: Load, rate: float, connections: int) -> None:
    """Requests scheduled at `rate` per second until `stop_at`, each on a free connection
    (waiting for one if all are busy); latency from the scheduled time."""
    loop = asyncio.get_running_loop()
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
        load.record(status, loop.time() - scheduled, scheduled)

    started = loop.time()
    tasks: list[asyncio.Task[None]] = []
    n = 0
    try:
        while (scheduled := started + n / rate) < load.stop_at:
            now = loop.time()
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


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("GENHUB_URL", "http://127.0.0.1:8080"))
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
    parser.add_argument("--pid", type=int, default=None, help="the gateway's process id")
    parser.add_argument(
        "--idle",
        type=float,
        default=2.0,
        help="seconds to measure the server's CPU without load first (its background work)",
    )
    args = parser.parse_args()
    admin_token = os.environ.get("GENHUB_ADMIN_TOKEN")
    if not admin_token:
        print("GENHUB_ADMIN_TOKEN is not set (source var/secrets.env)", file=sys.stderr)
        return 2
    target = urlsplit(args.url)
    host, port = target.hostname or "127.0.0.1", target.port or 80

    api_key = await bench_app_key(args.url, admin_token)
    users = [f"bench-user-{i}" for i in range(args.users)]
    body = json.dumps(
        {
            "model": "mock",
            "input": {"prompt": "a lighthouse at dusk", "num_outputs": 1},
            "metadata": {"bench": True},
        }
    ).encode()

    pid = server_pid(host, args.pid)
    background = await background_cpu(pid, args.idle) if pid is not None else None
    loop = asyncio.get_running_loop()
    record_from = loop.time() + args.warmup
    load = Load(host, port, api_key, users, body, record_from + args.seconds, record_from)
    server_cpu_before = process_cpu_s(pid) if pid is not None else None
    stack = bench_support.StackCpu() if pid is not None else None  # the local stack only
    if stack is not None:
        stack.start()
    client_cpu_before = time.process_time()
    began = time.perf_counter()
    if args.rate is not None:
        await open_loop(load, args.rate, args.concurrency)
    else:
        await closed_loop(load, args.concurrency)
    measured = time.perf_counter() - began - args.warmup
    client_cpu = time.process_time() - client_cpu_before
    server_cpu_after = process_cpu_s(pid) if pid is not None else None
    latencies, statuses, sent = sorted(load.latencies), load.statuses, load.sent
    accepted = statuses.get(202, 0)
    mode = (
        f"open loop at {args.rate:g} req/s offered, up to {args.concurrency} connections"
        if args.rate is not None
        else f"closed loop, {args.concurrency} connections"
    )
    print(
        f"gateway accept path: {mode}, {args.seconds:g} s measured "
        f"(+{args.warmup:g} s warm-up), {args.users} end users, one app"
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
    if server_cpu_before is not None and server_cpu_after is not None and sent:
        server_s = server_cpu_after - server_cpu_before
        server_ms = server_s * 1000 / sent
        print(f"  server CPU      {server_ms:.2f} ms per request (pid {pid}, {sent} requests)")
        if background is not None:
            # What the process was doing anyway (projecting other sessions' job events, say),
            # at the rate measured just before the run, taken out.
            elapsed = measured + args.warmup
            net_ms = max(0.0, server_s - background * elapsed) * 1000 / sent
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
    sys.exit(asyncio.run(main()))
