"""Routing and resilience with the real worker against PostgreSQL: fallback, retries, the
breaker and its health events, tier and budget order, the prompt cache, enhancement, fair
claims and cancellation of a running provider call. Providers are mock kinds from the catalog."""

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

from genhub_contracts import (
    BudgetExceeded,
    JobCompleted,
    JobGenerated,
    JobStarted,
    OutputFile,
    Plan,
    ProviderHealthChanged,
)
from genhub_contracts.events import BudgetExceededPayload, JobCompletedPayload
from genhub_orchestrator.adapters.llm import MockEnhancer
from genhub_orchestrator.adapters.providers import ProviderRegistry
from genhub_orchestrator.adapters.repositories import CatalogRepository, RunRepository
from genhub_orchestrator.adapters.tables import Attempt, Provider, Route
from genhub_orchestrator.domain.providers import GeneratedImage, GenerationRequest, TaskCallback
from genhub_orchestrator.domain.resilience import RetryPolicy
from genhub_orchestrator.services.runs import learn_cache, squeeze_budget
from genhub_orchestrator.services.worker import RunWorker, WorkerOptions
from genhub_platform.uow import UnitOfWork
from orchestrator_fake_providers import PNG
from sqlalchemy import select
from test_orchestrator_worker_db import (
    FakeStaging,
    claim_and_execute,
    enqueue,
    events,
    reserved,
    run_row,
)

UowFactory = Callable[[], UnitOfWork]


async def add_provider(
    uow_factory: UowFactory, name: str, *, priority: int, cost: str = "0", **settings: Any
) -> None:
    async with uow_factory() as uow:
        repo = CatalogRepository(uow.session)
        repo.add(Provider(name=name, kind="mock", settings={"latency_ms": 0, **settings}))
        await repo.flush()
        repo.add(
            Route(
                model="mock",
                provider=name,
                provider_model_id=f"{name}-v1",
                priority=priority,
                cost_usd=Decimal(cost),
            )
        )
        await uow.commit()


def worker(uow_factory: UowFactory, staging: FakeStaging | None = None, **opts: Any) -> RunWorker:
    options = WorkerOptions(
        **{
            "poll_interval_s": 0.1,
            "provider_timeout_s": 5.0,
            "catalog_ttl_s": 0.0,
            "retry": RetryPolicy(max_retries=1, base_delay_s=0.01),
            **opts,
        }
    )
    registry = ProviderRegistry(env={})  # mock kinds from the catalog rows; mock latency 0
    registry._mock = type(registry._mock)(latency_ms=0)  # the seeded `mock` row has no settings
    return RunWorker(
        uow_factory, staging or FakeStaging(), registry, options, enhancer=MockEnhancer()
    )


async def attempts(uow_factory: UowFactory, job_id: UUID | None) -> list[Attempt]:
    async with uow_factory() as uow:
        stmt = select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.id)  # type: ignore[arg-type]
        rows = list((await uow.session.exec(stmt)).scalars().all())  # type: ignore[call-overload]
        uow.session.expunge_all()  # keep the loaded values: leaving the unit of work rolls back
    return rows


def pro(**input_: Any) -> Any:
    event = reserved(**input_)
    spec = event.payload.spec.model_copy(update={"plan": Plan.PRO})
    return event.model_copy(update={"payload": event.payload.model_copy(update={"spec": spec})})


async def test_fallback_after_retries_on_a_failing_route(orch_uow: UowFactory) -> None:
    await add_provider(orch_uow, "test-bad", priority=1, failure_rate=1.0)
    event = pro()
    await enqueue(orch_uow, event)
    await claim_and_execute(worker(orch_uow))
    run = await run_row(orch_uow, event)
    assert run.status == "generated" and run.provider == "mock" and run.attempts == 3
    log = await attempts(orch_uow, event.job_id)
    assert [(a.provider, a.outcome) for a in log] == [
        ("test-bad", "failed"),
        ("test-bad", "failed"),
        ("mock", "succeeded"),
    ]
    assert log[0].error_code == "provider_error" and log[0].provider_task_id
    started = (await events(orch_uow, event.job_id))[0]
    assert isinstance(started, JobStarted) and started.payload.provider == "test-bad"


async def test_all_providers_failing_lists_the_attempts(orch_uow: UowFactory) -> None:
    await add_provider(orch_uow, "test-bad", priority=1, failure_rate=1.0)
    await add_provider(orch_uow, "test-worse", priority=2, failure_rate=1.0, failure_kind="timeout")
    async with orch_uow() as uow:
        provider = await CatalogRepository(uow.session).get_provider("mock")
        assert provider is not None
        provider.enabled = False
        await uow.commit()
    try:
        event = pro()
        await enqueue(orch_uow, event)
        await claim_and_execute(worker(orch_uow))
    finally:
        async with orch_uow() as uow:
            provider = await CatalogRepository(uow.session).get_provider("mock")
            assert provider is not None
            provider.enabled = True
            await uow.commit()
    run = await run_row(orch_uow, event)
    assert run.status == "failed" and run.error_code == "all_providers_failed"
    assert "test-bad: provider_error" in (run.error_message or "")
    assert "test-worse: provider_timeout" in (run.error_message or "")
    completed = (await events(orch_uow, event.job_id))[-1]
    assert isinstance(completed, JobCompleted) and completed.payload.attempts == 4


async def test_content_rejection_does_not_fall_back(orch_uow: UowFactory) -> None:
    await add_provider(
        orch_uow, "test-prude", priority=1, failure_rate=1.0, failure_kind="content_rejected"
    )
    event = pro()
    await enqueue(orch_uow, event)
    await claim_and_execute(worker(orch_uow))
    run = await run_row(orch_uow, event)
    assert run.status == "failed" and run.error_code == "content_rejected" and run.attempts == 1


async def health_events(uow_factory: UowFactory) -> list[tuple[str, str, str]]:
    found = [e for e in await events(uow_factory, None) if isinstance(e, ProviderHealthChanged)]
    return [(e.payload.provider, e.payload.previous, e.payload.health) for e in found]


async def test_breaker_opens_skips_the_provider_and_closes_after_a_probe(
    orch_uow: UowFactory,
) -> None:
    await add_provider(
        orch_uow,
        "test-bad",
        priority=1,
        failure_rate=1.0,
        breaker_failure_threshold=2,
        breaker_cooldown_s=1.0,
        max_retries=0,
    )
    w = worker(orch_uow)
    for _ in range(2):
        await enqueue(orch_uow, pro())
        await claim_and_execute(w)
    assert await health_events(orch_uow) == [("test-bad", "healthy", "down")]
    skipped = pro()
    await enqueue(orch_uow, skipped)
    await claim_and_execute(w)
    assert [a.provider for a in await attempts(orch_uow, skipped.job_id)] == ["mock"]  # no call
    async with orch_uow() as uow:
        provider = await CatalogRepository(uow.session).get_provider("test-bad")
        assert provider is not None and provider.health == "down" and provider.circuit == "open"
        provider.settings = {**provider.settings, "failure_rate": 0.0}  # the provider recovers
        await uow.commit()
    await asyncio.sleep(1.05)
    probe = pro()
    await enqueue(orch_uow, probe)
    await claim_and_execute(w)
    assert [a.provider for a in await attempts(orch_uow, probe.job_id)] == ["test-bad"]
    changes = await health_events(orch_uow)
    assert changes[0] == ("test-bad", "healthy", "down")
    assert changes[-1][0] == "test-bad" and changes[-1][2] == "healthy"


async def test_free_plan_goes_cheapest_first_pro_quality_first(orch_uow: UowFactory) -> None:
    await add_provider(orch_uow, "test-premium", priority=1, cost="0.05")
    w = worker(orch_uow)
    free, premium = reserved(), pro()
    for e in (free, premium):
        await enqueue(orch_uow, e)
    await claim_and_execute(w)
    assert (await run_row(orch_uow, free)).provider == "mock"
    assert (await run_row(orch_uow, premium)).provider == "test-premium"
    generated = (await events(orch_uow, premium.job_id))[-1]
    assert isinstance(generated, JobGenerated) and generated.payload.provider_cost_usd == "0.050000"
    assert (await run_row(orch_uow, premium)).cost_usd == Decimal("0.05")


async def test_budget_squeeze_routes_the_app_cheapest_first(orch_uow: UowFactory) -> None:
    await add_provider(orch_uow, "test-premium", priority=1, cost="0.05")
    event = pro()
    squeeze = BudgetExceeded.new(
        app_id=event.app_id,
        payload=BudgetExceededPayload(
            level="soft", spent_usd="80", budget_usd="100", period="2999-01"
        ),
    )
    async with orch_uow() as uow:
        await squeeze_budget(uow, squeeze)
        await uow.commit()
    other_app = pro()
    for e in (event, other_app):
        await enqueue(orch_uow, e)
    await claim_and_execute(worker(orch_uow))
    assert (await run_row(orch_uow, event)).provider == "mock"
    assert (await run_row(orch_uow, other_app)).provider == "test-premium"


async def complete(uow_factory: UowFactory, event: Any, keys: list[str]) -> None:
    done = JobCompleted.new(
        app_id=event.app_id,
        job_id=event.job_id,
        payload=JobCompletedPayload(
            user_id="user-1",
            status="succeeded",
            requested_outputs=len(keys),
            outputs=[
                OutputFile(
                    index=i,
                    key=k,
                    content_type="image/png",
                    width=8,
                    height=8,
                    bytes=1,
                    sha256="0" * 64,
                )
                for i, k in enumerate(keys)
            ],
        ),
    )
    async with uow_factory() as uow:
        assert await learn_cache(uow, done)
        await uow.commit()


async def test_second_identical_job_is_a_cache_hit_of_the_same_app_only(
    orch_uow: UowFactory,
) -> None:
    w = worker(orch_uow)
    first = pro(prompt="A Lighthouse, at dusk!")
    await enqueue(orch_uow, first)
    await claim_and_execute(w)
    keys = [f"outputs/{first.app_id}/{first.job_id}/{i}.png" for i in range(2)]
    await complete(orch_uow, first, keys)

    second = pro(prompt="a lighthouse at   DUSK")
    second = second.model_copy(update={"app_id": first.app_id})
    stranger = pro(prompt="a lighthouse at dusk")  # same prompt, another app
    opted_out = pro(prompt="a lighthouse at dusk")
    opted_out = opted_out.model_copy(
        update={
            "app_id": first.app_id,
            "payload": opted_out.payload.model_copy(
                update={"spec": opted_out.payload.spec.model_copy(update={"cache": False})}
            ),
        }
    )
    for e in (second, stranger, opted_out):
        await enqueue(orch_uow, e)
    claimed = await w.claim_batch(8)
    assert {c.job_id for c in claimed} == {
        stranger.job_id,
        opted_out.job_id,
    }  # the hit ended at once
    run = await run_row(orch_uow, second)
    assert run.status == "generated" and run.cache_hit and run.provider == "cache"
    generated = (await events(orch_uow, second.job_id))[-1]
    assert isinstance(generated, JobGenerated) and generated.payload.cache_hit
    assert [s.key for s in generated.payload.staged] == keys
    assert generated.payload.provider_cost_usd == "0"
    assert await attempts(orch_uow, second.job_id) == []  # no provider was called


async def test_enhancement_keeps_both_prompts(orch_uow: UowFactory) -> None:
    event = pro(prompt="a fox")
    spec = event.payload.spec.model_copy(update={"enhance_prompt": True})
    event = event.model_copy(update={"payload": event.payload.model_copy(update={"spec": spec})})
    await enqueue(orch_uow, event)
    await claim_and_execute(worker(orch_uow))
    run = await run_row(orch_uow, event)
    assert run.status == "generated" and run.spec["input"]["prompt"] == "a fox"
    assert run.enhanced_prompt and run.enhanced_prompt.startswith("a fox, ")
    started = (await events(orch_uow, event.job_id))[0]
    assert (
        isinstance(started, JobStarted) and started.payload.enhanced_prompt == run.enhanced_prompt
    )


async def test_claims_respect_plan_limits_without_head_of_line_blocking(
    orch_uow: UowFactory,
) -> None:
    busy = [pro() for _ in range(5)]
    busy = [e.model_copy(update={"app_id": busy[0].app_id}) for e in busy]
    quiet = reserved()  # free plan, another app, queued after all of them
    for e in [*busy, quiet]:
        await enqueue(orch_uow, e)
    w = worker(orch_uow)
    claimed = await w.claim_batch(10)
    by_app = {}
    for c in claimed:
        by_app[c.app_id] = by_app.get(c.app_id, 0) + 1
    assert by_app == {busy[0].app_id: 3, quiet.app_id: 1}
    assert await w.claim_batch(10) == []  # both apps are at their limit


class Hanging:
    """An adapter whose remote task never finishes; remembers being cancelled."""

    name = "hanging"

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def generate(
        self, request: GenerationRequest, on_task: TaskCallback | None = None
    ) -> list[GeneratedImage]:
        if on_task:
            on_task("remote-1")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled.set()  # a real adapter sends the provider's cancel call here
            raise
        return []


async def test_cancel_interrupts_a_running_provider_call_at_once(orch_uow: UowFactory) -> None:
    hanging = Hanging()
    options = WorkerOptions(
        poll_interval_s=0.1, heartbeat_s=30.0, lease=__import__("datetime").timedelta(seconds=90)
    )
    w = RunWorker(
        orch_uow, FakeStaging(), ProviderRegistry(env={}, overrides={"mock": hanging}), options
    )
    event = pro()
    await enqueue(orch_uow, event)
    (claimed,) = await w.claim_batch(1)
    execution = asyncio.create_task(w.execute(claimed))
    await asyncio.sleep(0.1)
    async with orch_uow() as uow:
        assert event.job_id is not None
        await RunRepository(uow.session).flag_cancel(event.job_id)
        await uow.commit()
    w.interrupt(event.job_id)  # what the cancel handler does after its commit
    await asyncio.wait_for(execution, timeout=2)  # not after the 30 s heartbeat
    assert hanging.cancelled.is_set()
    assert (await run_row(orch_uow, event)).status == "cancelled"


class Recording:
    """An adapter that keeps the requests it got."""

    name = "mock"

    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []

    async def generate(
        self, request: GenerationRequest, on_task: TaskCallback | None = None
    ) -> list[GeneratedImage]:
        self.requests.append(request)
        return [GeneratedImage(PNG, "image/png")]


async def test_input_images_reach_the_provider_of_an_image_to_image_model(
    orch_uow: UowFactory,
) -> None:
    from genhub_orchestrator.adapters.inputs import InputFetcher
    from test_orchestrator_llm_inputs import Store

    recording = Recording()
    event = pro(num_outputs=1)
    key = f"inputs/{event.app_id}/a.png"
    event = pro(num_outputs=1, images=[key])
    event = event.model_copy(update={"app_id": UUID(key.split("/")[1])})
    w = RunWorker(
        orch_uow,
        FakeStaging(),
        ProviderRegistry(env={}, overrides={"mock": recording}),
        WorkerOptions(catalog_ttl_s=0.0),
        inputs=InputFetcher(Store({key: PNG}), "http://storage"),
    )
    await enqueue(orch_uow, event)
    await claim_and_execute(w)
    assert (await run_row(orch_uow, event)).status == "generated"
    (sent,) = recording.requests
    assert [(i.key, i.data) for i in sent.images] == [(key, PNG)]


async def test_input_images_on_a_text_only_model_are_invalid_input(orch_uow: UowFactory) -> None:
    async with orch_uow() as uow:
        model = await CatalogRepository(uow.session).get_model("mock")
        assert model is not None
        model.capabilities = ["text-to-image"]
        await uow.commit()
    try:
        event = pro(images=["inputs/x/a.png"])
        await enqueue(orch_uow, event)
        assert await worker(orch_uow).claim_batch(4) == []
    finally:
        async with orch_uow() as uow:
            model = await CatalogRepository(uow.session).get_model("mock")
            assert model is not None
            model.capabilities = ["text-to-image", "image-to-image"]
            await uow.commit()
    run = await run_row(orch_uow, event)
    assert run.status == "failed" and run.error_code == "invalid_input"


async def test_provider_concurrency_cap_serialises_its_calls(orch_uow: UowFactory) -> None:
    await add_provider(orch_uow, "test-narrow", priority=1, latency_ms=300)
    async with orch_uow() as uow:
        provider = await CatalogRepository(uow.session).get_provider("test-narrow")
        assert provider is not None
        provider.max_concurrency = 1
        await uow.commit()
    jobs = [pro(num_outputs=1) for _ in range(2)]
    for job in jobs:
        await enqueue(orch_uow, job)
    started = asyncio.get_running_loop().time()
    assert await claim_and_execute(worker(orch_uow)) == 2  # both claimed, run side by side...
    elapsed = asyncio.get_running_loop().time() - started
    assert elapsed >= 0.6  # ...but the provider saw one call at a time
    for job in jobs:
        (attempt,) = await attempts(orch_uow, job.job_id)
        assert attempt.provider == "test-narrow" and attempt.latency_ms < 550  # slot wait excluded
