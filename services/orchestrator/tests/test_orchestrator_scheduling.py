"""Per-app limits by plan and no head-of-line blocking; the prompt cache key (no I/O)."""

from uuid import uuid4

import pytest
from genhub_contracts import GenerationInput, Plan, Watermark
from genhub_orchestrator.domain.cache import applied_watermark, cache_key, normalize_prompt
from genhub_orchestrator.domain.scheduling import (
    DEFAULT_PLAN_LIMITS,
    Candidate,
    InvalidPlanLimits,
    pick,
    validate_plan_limits,
)

A, B, C = uuid4(), uuid4(), uuid4()


def cands(*apps: tuple[object, str]) -> list[Candidate]:
    return [Candidate(uuid4(), app, plan) for app, plan in apps]  # type: ignore[arg-type]


def test_default_limits() -> None:
    assert DEFAULT_PLAN_LIMITS == {"free": 1, "basic": 1, "pro": 3, "enterprise": 10}


def test_app_at_its_limit_does_not_block_other_apps() -> None:
    queue = cands((A, "basic"), (A, "basic"), (A, "basic"), (B, "basic"), (C, "pro"), (C, "pro"))
    chosen = pick(queue, running={A: 1}, limits=DEFAULT_PLAN_LIMITS, slots=10)
    assert [c.app_id for c in chosen] == [B, C, C]


def test_limit_counts_runs_started_in_this_pick() -> None:
    queue = cands(*[(A, "pro")] * 5)
    assert len(pick(queue, running={}, limits=DEFAULT_PLAN_LIMITS, slots=10)) == 3
    assert len(pick(queue, running={A: 2}, limits=DEFAULT_PLAN_LIMITS, slots=10)) == 1


def test_slots_bound_the_pick_in_queue_order() -> None:
    queue = cands((A, "enterprise"), (B, "enterprise"), (A, "enterprise"))
    chosen = pick(queue, running={}, limits=DEFAULT_PLAN_LIMITS, slots=2)
    assert chosen == queue[:2]


def test_takeovers_are_always_picked() -> None:
    takeover = Candidate(uuid4(), A, "free", takeover=True)
    chosen = pick([takeover], running={A: 5}, limits=DEFAULT_PLAN_LIMITS, slots=1)
    assert chosen == [takeover]


def test_edited_limits_apply() -> None:
    queue = cands(*[(A, "free")] * 4)
    assert len(pick(queue, running={}, limits={"free": 4}, slots=10)) == 4


def test_plan_limit_validation() -> None:
    assert validate_plan_limits({"pro": 5}) == {"pro": 5}
    for bad in ({"gold": 1}, {"pro": 0}, {"pro": "3"}, {"pro": True}):
        with pytest.raises(InvalidPlanLimits):
            validate_plan_limits(bad)  # type: ignore[arg-type]


def gi(**kw: object) -> GenerationInput:
    return GenerationInput.model_validate({"prompt": "A cat, on a mat!", "seed": 1, **kw})


def test_prompt_normalization() -> None:
    assert normalize_prompt("  A cat,  on a MAT! ") == "a cat on a mat"
    assert cache_key("m", 64, 64, gi()) == cache_key("m", 64, 64, gi(prompt="a cat on a  mat"))


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 2},
        {"style": "anime"},
        {"images": ["inputs/x/1.png"]},
        {"num_outputs": 2},
        {"negative_prompt": "dogs"},
        {"prompt": "a dog on a mat"},
    ],
)
def test_cache_key_changes_with_what_changes_the_picture(change: dict[str, object]) -> None:
    assert cache_key("m", 64, 64, gi()) != cache_key("m", 64, 64, gi(**change))


def test_cache_key_changes_with_the_watermark_the_outputs_carry() -> None:
    stamp = Watermark(text="made with acme")
    assert applied_watermark(Plan.PRO, stamp) is None
    assert applied_watermark(Plan.FREE, stamp) == stamp
    assert cache_key("m", 64, 64, gi()) != cache_key("m", 64, 64, gi(), stamp)
    assert cache_key("m", 64, 64, gi(output_format="pdf")) != cache_key(
        "m", 64, 64, gi(output_format="pdf", dpi=300)
    )


def test_cache_key_changes_with_model_and_size() -> None:
    base = cache_key("m", 64, 64, gi())
    assert base != cache_key("other", 64, 64, gi()) and base != cache_key("m", 64, 128, gi())
    assert len(base) == 64
