"""Property tests: random histories of grants (some expiring), holds, posts, voids, hold
expiries, grant expiries and replays, applied
through billing's use cases against the real test database, checked against a simple model and
against the ledger's invariants after every step. Plus the settlement arithmetic on its own.

Each hypothesis example works in a fresh app id, so examples never see each other's accounts
and nothing needs truncating between them.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from genhub_billing import services, sweeps
from genhub_billing.domain import holds
from genhub_billing.domain.ledger import POSTING_KINDS, AccountKind, user_account_id
from genhub_contracts import (
    GenerationInput,
    JobCompleted,
    JobRequested,
    JobSpec,
    JobStatus,
    OutputFile,
)
from genhub_contracts.events import JobCompletedPayload, JobRequestedPayload
from genhub_platform.db import SessionFactory, make_session_factory
from genhub_platform.errors import ApiError
from genhub_platform.uow import UnitOfWork
from hypothesis import HealthCheck, given, settings
from hypothesis import event as event_label
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

PRICE = 10  # the seeded default price of model "mock", per output
USERS = ("u0", "u1", "u2")
TTL = 1800
SETTLE_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
SUCCESS_BIASED = (JobStatus.SUCCEEDED, *SETTLE_STATUSES)

# --- operations ----------------------------------------------------------------------------
# Plain tuples, so hypothesis shrinks them well:
#   ("grant", user, amount, key)             grant with an idempotency key
#   ("reserve", user, outputs, model)        a new job.requested
#   ("complete", job, status, delivered)     job.completed for an earlier job (index mod #jobs)
#   ("expire", job)                          the hold's TTL passes, then the sweeper runs
#   ("xgrant", user, amount, key)            a grant that expires (later), with a key
#   ("lapse", user)                          the user's expiring grants pass their expiry,
#                                            then the grant-expiry sweep runs (twice)
#   ("replay", op, same_event_id)            redo an earlier applied operation (index mod #ops)

users = st.integers(0, len(USERS) - 1)
picks = st.integers(0, 63)
reserves = st.tuples(
    st.just("reserve"), users, st.integers(1, 3), st.sampled_from(["mock"] * 5 + ["nope"])
)
completes = st.tuples(
    st.just("complete"), picks, st.sampled_from(SUCCESS_BIASED), st.integers(0, 4)
)
# Reservations and completions are listed twice: most histories should hold and settle.
operations = st.one_of(
    st.tuples(st.just("grant"), users, st.integers(1, 60), st.integers(0, 3)),
    reserves,
    reserves,
    completes,
    completes,
    st.tuples(st.just("expire"), picks),
    st.tuples(st.just("xgrant"), users, st.integers(1, 60), st.integers(0, 2)),
    st.tuples(st.just("lapse"), users),
    st.tuples(st.just("replay"), picks, st.booleans()),
)


# --- the model -----------------------------------------------------------------------------


@dataclass
class Job:
    event: JobRequested
    user: str
    price: int
    status: str  # "pending" | "posted" | "voided" | "rejected"
    charged: int = 0


@dataclass
class Lot:
    remaining: int
    expiring: bool
    lapsed: bool = False


@dataclass
class Model:
    app_id: UUID
    balance: Counter[str] = field(default_factory=Counter)
    reserved: Counter[str] = field(default_factory=Counter)
    grants: dict[tuple[str, str], int] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)
    lots: dict[str, list[Lot]] = field(default_factory=dict)  # in creation order

    def spending_order(self, user: str) -> list[Lot]:
        # Expiring lots first (they all expire in creation order), then the others.
        lots = self.lots.get(user, [])
        return [lot for lot in lots if lot.expiring] + [lot for lot in lots if not lot.expiring]

    def credit(self, user: str, amount: int, *, expiring: bool) -> None:
        self.balance[user] += amount
        self.lots.setdefault(user, []).append(Lot(amount, expiring))

    def charge(self, user: str, amount: int) -> None:
        self.balance[user] -= amount
        for lot in self.spending_order(user):
            take = min(lot.remaining, amount)
            lot.remaining -= take
            amount -= take
        assert amount == 0, "the model's lots cannot pay"

    def lapse(self, user: str) -> int:
        """Expire the unreserved part of the user's lapsed lots; returns how much expired."""
        covered_left, expired = self.reserved[user], 0
        for lot in self.spending_order(user):
            covered = min(lot.remaining, covered_left)
            covered_left -= covered
            if lot.lapsed and lot.remaining > covered:
                expired += lot.remaining - covered
                lot.remaining = covered
        self.balance[user] -= expired
        return expired

    def job(self, job_id: UUID | None) -> Job:
        return next(j for j in self.jobs if j.event.job_id == job_id)


@dataclass
class Applied:
    """An applied operation, kept so that it can be replayed exactly."""

    kind: str
    event: Any = None  # JobRequested | JobCompleted
    job_id: UUID | None = None
    grant: tuple[str, int, str] | None = None  # (user, amount, key)


# --- driving billing's use cases (what the Kafka consumer / HTTP handler would do) -----------


class Billing:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, on_commit=lambda: None)

    async def deliver(self, consumer: str, event: Any) -> bool:
        async with self.uow() as uow:
            if not await uow.first_delivery(f"billing.{consumer}", event.event_id):
                return False
            if isinstance(event, JobRequested):
                await services.reserve_for_job(uow, event, hold_ttl_s=TTL)
            else:
                await services.settle_job(uow, event)
            await uow.commit()
        return True

    async def grant(
        self, app_id: UUID, user: str, amount: int, key: str, expires_at: datetime | None = None
    ) -> services.GrantResult:
        async with self.uow() as uow:
            result = await services.grant_tokens(
                uow, app_id=app_id, user_id=user, amount=amount, reason="prop",
                idempotency_key=key, expires_at=expires_at,
            )  # fmt: skip
            await uow.commit()
        return result

    async def lapse(self, app_id: UUID, user: str) -> None:
        """The user's expiring grants pass their expiry; then the expiry sweep runs."""
        async with self.sessions() as session, session.begin():
            await session.exec(
                text(
                    "UPDATE grant_lots SET expires_at = now() - interval '1 second'"
                    " WHERE account_id = :account AND expires_at IS NOT NULL"
                ),
                params={"account": user_account_id(app_id, user)},
            )
        await self.sweep_lots()

    async def sweep_lots(self) -> None:
        async with self.uow() as uow:
            await sweeps.expire_lots(uow, limit=100_000)
            await uow.commit()

    async def expire(self, job_id: UUID) -> None:
        """Let the hold's TTL pass (move its expiry into the past), then run the sweeper."""
        async with self.sessions() as session, session.begin():
            await session.exec(
                text(
                    "UPDATE holds SET expires_at = now() - interval '1 second'"
                    " WHERE job_id = :job AND status = 'pending'"
                ),
                params={"job": job_id},
            )
        async with self.uow() as uow:
            await services.expire_holds(uow, limit=1000)
            await uow.commit()

    async def snapshot(self, app_id: UUID) -> dict[str, Any]:
        """Everything billing stores for one app, in comparable form."""
        p = {"app": app_id}
        async with self.sessions() as s:
            accounts = (
                await s.exec(
                    text(
                        "SELECT id, user_id, kind, balance, reserved FROM accounts"
                        " WHERE app_id = :app ORDER BY id"
                    ),
                    params=p,
                )
            ).all()
            transfers = (
                await s.exec(
                    text(
                        "SELECT id, kind, job_id, amount, debit_account_id, credit_account_id"
                        " FROM transfers WHERE app_id = :app ORDER BY seq"
                    ),
                    params=p,
                )
            ).all()
            hold_rows = (
                await s.exec(
                    text(
                        "SELECT job_id, account_id, status, amount, posted_amount FROM holds"
                        " WHERE app_id = :app ORDER BY job_id"
                    ),
                    params=p,
                )
            ).all()
            rejections = (
                await s.exec(
                    text("SELECT job_id FROM rejections WHERE app_id = :app ORDER BY job_id"),
                    params=p,
                )
            ).all()
            outbox = (
                await s.exec(
                    text(
                        "SELECT count(*) FROM outbox"
                        " WHERE convert_from(payload, 'UTF8')::jsonb ->> 'app_id' = :app"
                    ),
                    params={"app": str(app_id)},
                )
            ).one()[0]
            lots = (
                await s.exec(
                    text(
                        "SELECT account_id, SUM(remaining) FROM grant_lots WHERE app_id = :app"
                        " GROUP BY account_id"
                    ),
                    params=p,
                )
            ).all()
        return {
            "lots": {r[0]: int(r[1]) for r in lots},
            "accounts": [tuple(r) for r in accounts],
            "transfers": [tuple(r) for r in transfers],
            "holds": [tuple(r) for r in hold_rows],
            "rejections": [r[0] for r in rejections],
            "outbox": outbox,
        }


# --- invariants ----------------------------------------------------------------------------


def check_invariants(snap: dict[str, Any], model: Model) -> None:
    # Ledger sums, recomputed here independently of the reconcile code.
    posted: Counter[UUID] = Counter()
    for _id, kind, _job, amount, debit, credit in snap["transfers"]:
        if kind in POSTING_KINDS:
            posted[credit] += amount
            posted[debit] -= amount
    pending: Counter[UUID] = Counter()
    for _job, account, status, amount, _posted in snap["holds"]:
        if status == "pending":
            pending[account] += amount

    total = 0
    for account_id, user_id, kind, balance, reserved in snap["accounts"]:
        total += balance
        assert balance == posted[account_id], f"{kind} {user_id}: cached balance != ledger"
        assert reserved == pending[account_id], f"{kind} {user_id}: reserved != pending holds"
        if kind == AccountKind.USER.value:
            assert balance >= reserved >= 0, f"user {user_id}: balance {balance} < {reserved}"
            assert snap["lots"].get(account_id, 0) == balance, f"user {user_id}: lots != balance"
            assert (balance, reserved) == (model.balance[user_id], model.reserved[user_id])
        else:
            assert reserved == 0
    assert total == 0, "double entry: an app's balances must sum to zero"

    # Per job: at most one hold, one post, one void, and never both a post and a void.
    per_job = Counter((job, kind) for _id, kind, job, *_ in snap["transfers"] if job)
    assert all(n == 1 for n in per_job.values()), f"a job has repeated transfers: {per_job}"
    post_amount = {
        job: amt for _i, kind, job, amt, *_ in snap["transfers"] if kind == "generation_post"
    }
    hold_status = {job: status for job, _a, status, *_ in snap["holds"]}
    assert set(snap["rejections"]).isdisjoint(hold_status), "a job both held and rejected"

    for job in model.jobs:
        jid = job.event.job_id
        if job.status == "rejected":
            assert jid in snap["rejections"] and jid not in hold_status
            assert (jid, "generation_hold") not in per_job
        else:
            assert hold_status[jid] == job.status
        if job.status == "posted":
            assert post_amount[jid] == job.charged <= job.price
            assert (jid, "generation_void") not in per_job
        else:  # pending, voided (failed, cancelled, expired) or rejected: charged nothing
            assert jid not in post_amount, f"job {jid} ({job.status}) was charged"
        if job.status == "voided":
            assert (jid, "generation_void") in per_job
    assert len(hold_status) + len(snap["rejections"]) == len(model.jobs)


# --- one step ------------------------------------------------------------------------------


def completion(job: Job, status: JobStatus, delivered: int) -> JobCompleted:
    if status is not JobStatus.SUCCEEDED:
        delivered = 0
    outputs = [
        OutputFile(index=i, key=f"o/{i}.png", content_type="image/png", width=8, height=8,
                   bytes=1, sha256="0" * 64)
        for i in range(delivered)
    ]  # fmt: skip
    payload = JobCompletedPayload(
        user_id=job.user,
        status=status,
        requested_outputs=job.event.payload.spec.input.num_outputs,
        outputs=outputs,
    )
    return JobCompleted.new(app_id=job.event.app_id, job_id=job.event.job_id, payload=payload)


async def apply_op(
    billing: Billing, model: Model, history: list[Applied], op: tuple[Any, ...]
) -> None:
    kind = op[0]
    if kind == "grant":
        _, u, amount, k = op
        await do_grant(billing, model, USERS[u], amount, f"k{k}")
        history.append(Applied("grant", grant=(USERS[u], amount, f"k{k}")))
    elif kind == "xgrant":
        _, u, amount, k = op
        await do_grant(billing, model, USERS[u], amount, f"x{k}", expiring=True)
        history.append(Applied("grant", grant=(USERS[u], amount, f"x{k}")))
    elif kind == "lapse":
        user = USERS[op[1]]
        for lot in model.lots.get(user, []):
            lot.lapsed = lot.lapsed or lot.expiring
        # The sweep visits every account: lots that lapsed earlier but were held back by a
        # pending hold since voided or expired expire now too.
        if sum(model.lapse(u) for u in USERS):
            event_label("a grant expired")
        await billing.lapse(model.app_id, user)
        before = await billing.snapshot(model.app_id)
        await billing.sweep_lots()  # a second run (another replica, a restart) changes nothing
        assert await billing.snapshot(model.app_id) == before
    elif kind == "reserve":
        _, u, outputs, model_name = op
        spec = JobSpec(
            user_id=USERS[u],
            model=model_name,
            input=GenerationInput(prompt="p", num_outputs=outputs),
        )
        event = JobRequested.new(
            app_id=model.app_id, job_id=uuid4(), payload=JobRequestedPayload(spec=spec)
        )
        price = PRICE * outputs
        user = USERS[u]
        affordable = model.balance[user] - model.reserved[user] >= price
        if model_name == "mock" and affordable:
            model.reserved[user] += price
            status = "pending"
        else:
            status = "rejected"
        model.jobs.append(Job(event, user, price, status))
        assert await billing.deliver("reserve", event)
        history.append(Applied("reserve", event=event))
    elif kind == "complete":
        if not model.jobs:
            return
        _, pick, status, delivered = op
        job = model.jobs[pick % len(model.jobs)]
        event = completion(job, status, delivered)
        if job.status == "pending":
            # The model's own arithmetic (not the domain's): pro rata, rounded down.
            requested = job.event.payload.spec.input.num_outputs
            succeeded = status is JobStatus.SUCCEEDED
            charged = job.price * min(delivered, requested) // requested if succeeded else 0
            model.reserved[job.user] -= job.price
            model.charge(job.user, charged)
            job.status, job.charged = ("posted" if succeeded else "voided"), charged
            event_label(f"settled {job.status}{' partially' if 0 < charged < job.price else ''}")
        assert await billing.deliver("settle", event)
        history.append(Applied("complete", event=event))
    elif kind == "expire":
        if not model.jobs:
            return
        job = model.jobs[op[1] % len(model.jobs)]
        if job.status == "pending":
            model.reserved[job.user] -= job.price
            job.status = "voided"
            event_label("expired a pending hold")
        await billing.expire(job.event.job_id)
        history.append(Applied("expire", job_id=job.event.job_id))
    else:
        await replay(billing, model, history, op)


async def do_grant(
    billing: Billing, model: Model, user: str, amount: int, key: str, *, expiring: bool = False
) -> None:
    original = model.grants.get((user, key))
    expires_at = datetime.now(UTC) + timedelta(days=1) if expiring else None
    if original is not None and original != amount:
        with pytest.raises(ApiError) as err:
            await billing.grant(model.app_id, user, amount, key, expires_at)
        assert err.value.status == 409
        return
    result = await billing.grant(model.app_id, user, amount, key, expires_at)
    assert result.replayed == (original is not None)
    if original is None:
        model.grants[(user, key)] = amount
        model.credit(user, amount, expiring=expiring)
        # The response reflects the funds right after this grant.
        assert result.funds.balance == model.balance[user]


async def replay(
    billing: Billing, model: Model, history: list[Applied], op: tuple[Any, ...]
) -> None:
    if not history:
        return
    _, pick, same_event_id = op
    earlier = history[pick % len(history)]
    before = await billing.snapshot(model.app_id)
    if earlier.kind == "grant":
        assert earlier.grant is not None
        await do_grant(billing, model, *earlier.grant)
    elif earlier.kind == "expire":
        assert earlier.job_id is not None
        await billing.expire(earlier.job_id)
    else:
        event = earlier.event
        consumer = "reserve" if earlier.kind == "reserve" else "settle"
        if same_event_id:  # a redelivery: the inbox drops it
            assert not await billing.deliver(consumer, event)
        else:  # re-published upstream: a new event id, the ledger must still ignore it
            assert await billing.deliver(consumer, event.model_copy(update={"event_id": uuid4()}))
    assert await billing.snapshot(model.app_id) == before, f"replay of {earlier.kind} changed state"


# --- the properties ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def billing(engine: AsyncEngine) -> Billing:
    return Billing(make_session_factory(engine))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    opening=st.lists(st.integers(0, 80), min_size=len(USERS), max_size=len(USERS)),
    ops=st.lists(operations, min_size=6, max_size=20),
)
async def test_random_histories_keep_the_ledger_exact(
    billing: Billing, opening: list[int], ops: list[tuple[Any, ...]]
) -> None:
    model = Model(app_id=uuid4())
    history: list[Applied] = []
    # Opening balances (also plain grants), so that most histories get to hold and settle.
    for user, amount in zip(USERS, opening, strict=True):
        if amount:
            await do_grant(billing, model, user, amount, "opening")
    for op in ops:
        await apply_op(billing, model, history, op)
        check_invariants(await billing.snapshot(model.app_id), model)
    async with billing.uow() as uow:
        report = await services.run_reconcile(uow, app_id=model.app_id)
    assert report.ok, report.problems


# --- settlement arithmetic, pure ------------------------------------------------------------


@given(
    held=st.integers(0, 10**12),
    requested=st.integers(1, 64),
    delivered=st.integers(0, 80),
)
def test_post_never_charges_more_than_the_hold(held: int, requested: int, delivered: int) -> None:
    s = holds.post(held, delivered, requested)
    assert s.outcome == "posted"
    assert 0 <= s.charged <= held
    assert s.charged + s.refunded == held
    assert s.charged == held * min(delivered, requested) // requested
    if delivered >= requested:
        assert s.charged == held
    if delivered == 0:
        assert s.charged == 0
    # More outputs never cost less.
    assert holds.post(held, delivered + 1, requested).charged >= s.charged


@given(
    held=st.integers(0, 10**12),
    status=st.sampled_from(SETTLE_STATUSES),
    requested=st.integers(1, 64),
    delivered=st.integers(0, 80),
)
def test_settle_splits_the_hold_exactly(
    held: int, status: JobStatus, requested: int, delivered: int
) -> None:
    s = holds.settle(held, status, delivered, requested)
    assert 0 <= s.charged <= held and s.refunded >= 0
    assert s.charged + s.refunded == held
    if status is not JobStatus.SUCCEEDED:
        assert (s.outcome, s.charged, s.refunded) == ("voided", 0, held)
    with pytest.raises(holds.HoldAlreadySettledError):
        holds.transition(s.status, holds.HoldStatus.VOIDED)
