"""Prometheus metrics of the run queue, the providers and the prompt cache."""

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
PROVIDER_ATTEMPTS = Counter(
    "genhub_orchestrator_provider_attempts_total", "Provider calls", ["provider", "outcome", "code"]
)
PROVIDER_HEALTH = Gauge(
    "genhub_orchestrator_provider_health",
    "Provider health as seen by this process: 0 healthy, 1 degraded, 2 down",
    ["provider"],
)
CIRCUIT_OPEN = Gauge(
    "genhub_orchestrator_circuit_open", "1 while the provider's circuit is open", ["provider"]
)
CACHE_LOOKUPS = Counter(
    "genhub_orchestrator_cache_lookups_total", "Prompt cache lookups", ["result"]
)
CACHE_HIT_RATIO = Gauge(
    "genhub_orchestrator_cache_hit_ratio", "Prompt cache hits / lookups since start"
)
