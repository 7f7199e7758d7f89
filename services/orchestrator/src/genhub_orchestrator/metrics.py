"""Prometheus metrics of the run queue and the providers."""

from prometheus_client import Counter, Gauge, Histogram

RUNS_ENQUEUED = Counter("genhub_orchestrator_runs_enqueued_total", "Runs inserted into the queue")
RUNS_FINISHED = Counter(
    "genhub_orchestrator_runs_finished_total", "Runs that reached a final status", ["status"]
)
RUNS_IN_FLIGHT = Gauge("genhub_orchestrator_runs_in_flight", "Runs this process is executing")
PROVIDER_LATENCY = Histogram(
    "genhub_orchestrator_provider_latency_seconds",
    "Provider call latency",
    ["provider", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
)
