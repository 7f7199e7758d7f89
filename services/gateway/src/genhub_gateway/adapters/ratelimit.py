"""What the handlers need from the shared rate-limit counters.

The counters live in the gateway's PostgreSQL (`rate_limit_counters`, one row per bucket),
so every replica shares them exactly. The implementation is the accept path's group-committed
statement (adapters/accept.py, `JobAcceptor.hit`), which counts a micro-batch of requests
with `gateway_rate_limit_leases()` (migration 0009) in request order: each request is admitted
only when every one of its buckets has room, and then counts in all of them; a refused
request counts in none. Large buckets are leased to the replica a few units ahead of use
(domain/leases.py), so most requests on them need no count in the store.
"""

from collections.abc import Sequence
from typing import Protocol

from genhub_gateway.domain.ratelimit import Limit, Usage


class RateLimiter(Protocol):
    async def hit(self, limits: Sequence[Limit]) -> list[Usage]:
        """Count one request against every limit: admitted when every usage is `allowed`;
        otherwise nothing stays counted."""
        ...
