"""Rate-limit leases (domain/leases.py): held units are spent before the store is asked, a
refused request gives its unit back, and units go back or lapse with their window."""

from datetime import UTC, datetime, timedelta

from genhub_gateway.domain import leases
from genhub_gateway.domain.leases import Leases, Release
from genhub_gateway.domain.ratelimit import Limit, Usage

BIG = Limit("app", "app:a", 100_000)
WINDOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def granted(held: Leases, limit: Limit = BIG, *, count: int = 1, extra: int = 4) -> None:
    """As if the store counted a request (count `count`) and leased `extra` units right after
    it, 30 s before the window ends, at t=100."""
    held.grant(Usage(limit, True, count, 30.0), extra, count + 1, WINDOW, sent_at=100.0)


def test_only_large_quotas_are_leased() -> None:
    assert leases.extra_wanted(Limit("app", "a", leases.MIN_QUOTA)) == leases.MAX_EXTRA
    assert leases.extra_wanted(Limit("app", "a", leases.MIN_QUOTA - 1)) == 0
    assert leases.extra_wanted(Limit("auth", "auth:1.2.3.4", 20)) == 0


def test_held_units_are_spent_one_per_request_with_their_counts() -> None:
    held = Leases()
    assert held.take(BIG, 100.0) is None  # nothing held yet: the store counts it
    granted(held, count=7, extra=3)  # the request counted 7; 8, 9 and 10 are held
    spent = [held.take(BIG, 101.0) for _ in range(4)]
    assert [(s.usage.allowed, s.usage.count) for s in spent if s is not None] == [
        (True, 8),
        (True, 9),
        (True, 10),
    ]
    assert spent[3] is None and held.held(BIG.bucket) == 0
    assert spent[0] is not None and spent[0].usage.reset_s == 29.0  # the window ends at t=130


def test_a_grant_of_no_extra_units_leases_nothing() -> None:
    held = Leases()
    granted(held, extra=0)
    assert held.take(BIG, 100.0) is None


def test_a_refused_request_gives_its_unit_back() -> None:
    held = Leases()
    granted(held, extra=2)
    spent = held.take(BIG, 101.0)
    assert spent is not None and spent.usage.count == 2 and held.held(BIG.bucket) == 1
    held.give_back(spent)
    assert held.held(BIG.bucket) == 2
    again = held.take(BIG, 101.0)
    assert again is not None and again.usage.count == 2  # the same unit, spent again


def test_a_unit_of_an_ended_window_is_not_given_back_to_the_next() -> None:
    held = Leases()
    granted(held, extra=2)
    spent = held.take(BIG, 101.0)
    held.grant(Usage(BIG, True, 1, 60.0), 3, 2, WINDOW + timedelta(seconds=60), sent_at=131.0)
    assert spent is not None
    held.give_back(spent)
    assert held.held(BIG.bucket) == 3


def test_counts_stay_distinct_across_grants_and_give_backs() -> None:
    held = Leases()
    granted(held, count=1, extra=2)  # holds 2, 3
    granted(held, count=10, extra=2)  # and 11, 12
    spent = [held.take(BIG, 101.0) for _ in range(3)]
    assert [s.usage.count for s in spent if s is not None] == [2, 3, 11]
    assert spent[1] is not None
    held.give_back(spent[1])
    rest = [held.take(BIG, 101.0) for _ in range(3)]
    assert [s.usage.count if s else None for s in rest] == [3, 12, None]


def test_more_units_of_the_same_window_add_up() -> None:
    held = Leases()
    granted(held, extra=2)
    granted(held, count=20, extra=3)
    assert held.held(BIG.bucket) == 5


def test_units_of_a_new_window_replace_the_old_ones() -> None:
    held = Leases()
    granted(held, extra=2)
    held.grant(Usage(BIG, True, 1, 60.0), 3, 2, WINDOW + timedelta(seconds=60), sent_at=131.0)
    assert held.held(BIG.bucket) == 3
    spent = held.take(BIG, 132.0)
    assert spent is not None and spent.usage.count == 2


def test_units_lapse_when_their_window_ends() -> None:
    held = Leases()
    granted(held, extra=2)
    assert held.take(BIG, 130.0) is None  # the window ended at t=130
    assert held.held(BIG.bucket) == 0
    assert held.release_all() == []  # nothing to give back: the store's window is over


def test_a_changed_quota_voids_the_held_units() -> None:
    held = Leases()
    granted(held, extra=2)
    lowered = Limit("app", BIG.bucket, 50)
    assert held.take(lowered, 101.0) is None


def test_idle_units_go_back_and_busy_ones_stay() -> None:
    held = Leases()
    granted(held, extra=4)
    granted(held, Limit("user", "user:a:u1", 100_000), extra=2)
    assert held.take(BIG, 100.8) is not None
    releases = held.idle(101.2)  # the user's lease was last used at 100.0, the app's at 100.8
    assert releases == [Release("user:a:u1", WINDOW, 2)]
    assert held.held("user:a:u1") == 0 and held.held(BIG.bucket) == 3
    assert held.idle(110.0) == [Release(BIG.bucket, WINDOW, 3)]
    assert held.idle(200.0) == []


def test_stopping_gives_back_everything_held() -> None:
    held = Leases()
    granted(held, extra=4)
    assert held.release_all() == [Release(BIG.bucket, WINDOW, 4)]
    assert held.held(BIG.bucket) == 0
