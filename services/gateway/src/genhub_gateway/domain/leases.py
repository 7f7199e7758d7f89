"""Rate-limit leases: units of a large bucket a replica counted in the shared store ahead of use.

Counting every request in the shared store makes every replica's requests take the bucket's
row lock in turn, and an app's busy bucket serializes its replicas' group commits. So a grant
for a large bucket may hand the replica a few extra units (the store counts them at once, so
the store's count is always what replicas have used plus what they hold); the replica's next
requests on that bucket spend them with no store work. Limits stay exact in the sense that
matters: the store never lets more than the quota be counted, so no replica can admit more.

What leasing costs is a bounded, temporary under-admission: units one replica holds that
another replica could have used. It is kept small by:
- leasing only buckets with a quota of at least `MIN_QUOTA` per window (an app's or user's
  small limit is counted one request at a time, as before);
- a grant's extra units are at most `MAX_EXTRA` and at most 1/`SHARE` of what the window has
  left once the batch's requests are counted (the store works this out under the bucket's
  lock), so near the limit a grant carries none;
- units left unused for `IDLE_S` go back to the store (`Leases.idle`), and so do all of them
  when the replica stops.
A lease belongs to its window: when the window ends its units lapse with it (the store opens
the next window at zero). The window's end is taken from the moment the request was sent,
which is no later than the store's, so a lease is never spent after its window.
"""

from dataclasses import dataclass
from datetime import datetime

from genhub_gateway.domain.ratelimit import Limit, Usage

MIN_QUOTA = 1024  # smaller buckets are never leased
MAX_EXTRA = 64  # the most extra units one grant carries
SHARE = 64  # ... and at most this fraction (1/SHARE) of what the window has left
IDLE_S = 1.0  # unused units go back after this long without use


def extra_wanted(limit: Limit) -> int:
    """How many extra units a grant for this limit may carry (the store caps it further)."""
    return MAX_EXTRA if limit.quota >= MIN_QUOTA else 0


@dataclass
class Lease:
    quota: int  # the quota it was granted under: a changed quota voids it
    window_start: datetime  # the store's window the units were counted in
    ends_at: float  # when that window ends, on the replica's monotonic clock
    # The held units, as the window's counts they stand for (for the headers): [first, end)
    # runs, spent from the front.
    counts: list[list[int]]
    used_at: float

    @property
    def units(self) -> int:
        return sum(end - first for first, end in self.counts)

    def spend(self) -> int:
        """One unit: the count it stands for."""
        run = self.counts[0]
        count = run[0]
        run[0] += 1
        if run[0] == run[1]:
            self.counts.pop(0)
        return count


@dataclass(frozen=True)
class Spent:
    """A held unit spent on a request: its usage, and the window it was counted in."""

    usage: Usage
    window_start: datetime


@dataclass(frozen=True)
class Release:
    """Units to give back to the store: only while the store's window is still `window_start`."""

    bucket: str
    window_start: datetime
    units: int


class Leases:
    """The units this replica holds, per bucket. No I/O: the caller counts grants in the store
    and hands back what `idle` and `release_all` return."""

    def __init__(self) -> None:
        self._held: dict[str, Lease] = {}

    def take(self, limit: Limit, now: float) -> Spent | None:
        """Spend one held unit on a request, or None when the store must count it."""
        lease = self._held.get(limit.bucket)
        if lease is None or not lease.counts or lease.quota != limit.quota:
            return None
        if now >= lease.ends_at:  # its window is over: the units lapse with it
            del self._held[limit.bucket]
            return None
        lease.used_at = now
        return Spent(Usage(limit, True, lease.spend(), lease.ends_at - now), lease.window_start)

    def give_back(self, spent: Spent) -> None:
        """Return a unit `take` spent on a request that was refused after all (by another of
        its buckets), so it counts for nothing: to its lease, if that still holds the same
        window's units (otherwise it lapsed with its window)."""
        usage = spent.usage
        lease = self._held.get(usage.limit.bucket)
        if lease is not None and lease.window_start == spent.window_start:
            lease.counts.insert(0, [usage.count, usage.count + 1])

    def grant(
        self, usage: Usage, units: int, first: int, window_start: datetime, sent_at: float
    ) -> None:
        """Hold `units` the store leased along with the request `usage` describes; they
        stand for the window's counts `first`, `first + 1`, ..."""
        if units <= 0:
            return
        limit = usage.limit
        run = [first, first + units]
        held = self._held.get(limit.bucket)
        if held is not None and held.window_start == window_start and held.quota == limit.quota:
            held.counts.append(run)
            return
        self._held[limit.bucket] = Lease(
            quota=limit.quota,
            window_start=window_start,
            ends_at=sent_at + usage.reset_s,
            counts=[run],
            used_at=sent_at,
        )

    def held(self, bucket: str) -> int:
        lease = self._held.get(bucket)
        return 0 if lease is None else lease.units

    def idle(self, now: float, idle_s: float = IDLE_S) -> list[Release]:
        """Stop holding what was not used for `idle_s`: the units to give back (a lease whose
        window is over is dropped with nothing to give back)."""
        releases = []
        for bucket, lease in list(self._held.items()):
            if now >= lease.ends_at:
                del self._held[bucket]
            elif now - lease.used_at >= idle_s:
                del self._held[bucket]
                if lease.units > 0:
                    releases.append(Release(bucket, lease.window_start, lease.units))
        return releases

    def release_all(self) -> list[Release]:
        """Stop holding anything (the replica is stopping): the units to give back."""
        releases = [
            Release(bucket, lease.window_start, lease.units)
            for bucket, lease in self._held.items()
            if lease.units > 0
        ]
        self._held.clear()
        return releases
