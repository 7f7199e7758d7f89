"""Routing and resilience: richer catalog, provider health, plan limits, budget squeeze,
prompt cache, attempt details and run fields for enhancement, caching and cost.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

T2I = ["text-to-image"]
BOTH = ["text-to-image", "image-to-image"]
RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"]


def _jsonb(name: str, default: str) -> sa.Column:
    return sa.Column(name, postgresql.JSONB(), server_default=default, nullable=False)


def upgrade() -> None:
    op.add_column("models", sa.Column("family", sa.String(64), server_default="", nullable=False))
    op.add_column(
        "models", sa.Column("max_input_images", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("models", _jsonb("aspect_ratios", "[]"))
    op.add_column("models", _jsonb("sizes", "[]"))

    op.add_column(
        "providers", sa.Column("kind", sa.String(32), server_default="mock", nullable=False)
    )
    op.add_column(
        "providers", sa.Column("display_name", sa.String(128), server_default="", nullable=False)
    )
    op.add_column("providers", sa.Column("credentials_env", sa.String(128), nullable=True))
    op.add_column("providers", _jsonb("settings", "{}"))
    op.add_column(
        "providers", sa.Column("max_concurrency", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("providers", sa.Column("timeout_s", sa.Float(), nullable=True))
    op.add_column(
        "providers", sa.Column("health", sa.String(16), server_default="healthy", nullable=False)
    )
    op.add_column(
        "providers", sa.Column("circuit", sa.String(16), server_default="closed", nullable=False)
    )
    op.add_column(
        "providers",
        sa.Column("health_changed_at", sa.DateTime(timezone=True), nullable=True),
    )

    op.add_column("runs", sa.Column("plan", sa.String(16), server_default="free", nullable=False))
    op.add_column("runs", sa.Column("enhanced_prompt", sa.String(), nullable=True))
    op.add_column("runs", sa.Column("cache_key", sa.String(64), nullable=True))
    op.add_column(
        "runs", sa.Column("cache_hit", sa.Boolean(), server_default="false", nullable=False)
    )
    op.add_column(
        "runs", sa.Column("cost_usd", sa.Numeric(12, 6), server_default="0", nullable=False)
    )
    op.create_index(
        "ix_runs_app_running", "runs", ["app_id"], postgresql_where=sa.text("status = 'running'")
    )

    op.add_column("attempts", sa.Column("model", sa.String(64), server_default="", nullable=False))
    op.add_column("attempts", sa.Column("provider_task_id", sa.String(256), nullable=True))
    op.add_column(
        "attempts", sa.Column("cost_usd", sa.Numeric(12, 6), server_default="0", nullable=False)
    )
    op.create_index("ix_attempts_created_at", "attempts", ["created_at"])

    plan_limits = op.create_table(
        "plan_limits",
        sa.Column("plan", sa.String(16), primary_key=True),
        sa.Column("max_running", sa.Integer(), nullable=False),
    )
    op.bulk_insert(
        plan_limits,
        [
            {"plan": "free", "max_running": 1},
            {"plan": "basic", "max_running": 1},
            {"plan": "pro", "max_running": 3},
            {"plan": "enterprise", "max_running": 10},
        ],
    )
    op.create_table(
        "budget_squeezes",
        sa.Column("app_id", sa.Uuid(), primary_key=True),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "prompt_cache",
        sa.Column("app_id", sa.Uuid(), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        _jsonb("outputs", "[]"),
        sa.Column("hits", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )

    # The seeded catalog. Real providers have no adapter until their key is in the
    # environment, so their routes are skipped and the local stack runs on the mock.
    op.execute(
        sa.text(
            "UPDATE models SET family = 'mock', max_input_images = 4, capabilities = :caps, "
            "aspect_ratios = :ratios, sizes = :sizes WHERE name = 'mock'"
        ).bindparams(
            sa.bindparam("caps", BOTH, type_=postgresql.JSONB),
            sa.bindparam("ratios", RATIOS, type_=postgresql.JSONB),
            sa.bindparam("sizes", ["512x512", "1024x1024"], type_=postgresql.JSONB),
        )
    )
    op.execute(
        "UPDATE providers SET kind = 'mock', display_name = 'Built-in mock' WHERE name = 'mock'"
    )
    models = sa.table(
        "models",
        sa.column("name", sa.String),
        sa.column("display_name", sa.String),
        sa.column("enabled", sa.Boolean),
        sa.column("capabilities", postgresql.JSONB),
        sa.column("max_outputs", sa.Integer),
        sa.column("family", sa.String),
        sa.column("max_input_images", sa.Integer),
        sa.column("aspect_ratios", postgresql.JSONB),
        sa.column("sizes", postgresql.JSONB),
    )
    op.bulk_insert(
        models,
        [
            _model(
                "gpt-image", "GPT Image", "openai", BOTH, 4, ["1024x1024", "1536x1024", "1024x1536"]
            ),
            _model("flux-schnell", "FLUX.1 [schnell]", "flux", T2I, 0, ["1024x1024"]),
            _model("flux-dev", "FLUX.1 [dev]", "flux", BOTH, 1, ["1024x1024"]),
            _model("sdxl", "Stable Diffusion XL", "stable-diffusion", BOTH, 1, ["1024x1024"]),
            _model("gemini-image", "Gemini image", "gemini", BOTH, 3, ["1024x1024"]),
        ],
    )
    providers = sa.table(
        "providers",
        sa.column("name", sa.String),
        sa.column("enabled", sa.Boolean),
        sa.column("kind", sa.String),
        sa.column("display_name", sa.String),
    )
    op.bulk_insert(
        providers,
        [
            {"name": "openai", "enabled": True, "kind": "openai", "display_name": "OpenAI Images"},
            {
                "name": "replicate",
                "enabled": True,
                "kind": "replicate",
                "display_name": "Replicate",
            },
            {"name": "fal", "enabled": True, "kind": "fal", "display_name": "fal.ai"},
            {"name": "gemini", "enabled": True, "kind": "gemini", "display_name": "Google Gemini"},
            {
                "name": "stability",
                "enabled": True,
                "kind": "stability",
                "display_name": "Stability AI",
            },
        ],
    )
    routes = sa.table(
        "routes",
        sa.column("model", sa.String),
        sa.column("provider", sa.String),
        sa.column("provider_model_id", sa.String),
        sa.column("priority", sa.Integer),
        sa.column("cost_usd", sa.Numeric),
        sa.column("enabled", sa.Boolean),
        sa.column("settings", postgresql.JSONB),
    )
    op.bulk_insert(
        routes,
        [
            _route("gpt-image", "openai", "gpt-image-1", 10, "0.042"),
            _route("flux-schnell", "fal", "fal-ai/flux/schnell", 10, "0.003"),
            _route("flux-schnell", "replicate", "black-forest-labs/flux-schnell", 20, "0.003"),
            _route("flux-dev", "fal", "fal-ai/flux/dev", 10, "0.025"),
            _route("flux-dev", "replicate", "black-forest-labs/flux-dev", 20, "0.030"),
            _route("sdxl", "stability", "sd3", 10, "0.035", {"model": "sd3.5-large"}),
            _route("sdxl", "replicate", "stability-ai/sdxl", 20, "0.004"),
            _route("sdxl", "fal", "fal-ai/fast-sdxl", 30, "0.002"),
            _route("gemini-image", "gemini", "gemini-2.5-flash-image", 10, "0.039"),
        ],
    )


def _model(
    name: str, display: str, family: str, caps: list[str], max_inputs: int, sizes: list[str]
) -> dict[str, object]:
    return {
        "name": name,
        "display_name": display,
        "enabled": True,
        "capabilities": caps,
        "max_outputs": 4,
        "family": family,
        "max_input_images": max_inputs,
        "aspect_ratios": RATIOS,
        "sizes": sizes,
    }


def _route(
    model: str,
    provider: str,
    pid: str,
    priority: int,
    cost: str,
    settings: dict[str, str] | None = None,
) -> dict[str, object]:
    return {
        "model": model,
        "provider": provider,
        "provider_model_id": pid,
        "priority": priority,
        "cost_usd": cost,
        "enabled": True,
        "settings": settings or {},
    }


def downgrade() -> None:
    op.execute("DELETE FROM models WHERE name <> 'mock'")
    op.execute("DELETE FROM providers WHERE name <> 'mock'")
    op.drop_table("prompt_cache")
    op.drop_table("budget_squeezes")
    op.drop_table("plan_limits")
    op.drop_index("ix_attempts_created_at", table_name="attempts")
    for column in ("cost_usd", "provider_task_id", "model"):
        op.drop_column("attempts", column)
    op.drop_index("ix_runs_app_running", table_name="runs")
    for column in ("cost_usd", "cache_hit", "cache_key", "enhanced_prompt", "plan"):
        op.drop_column("runs", column)
    for column in (
        "health_changed_at",
        "circuit",
        "health",
        "timeout_s",
        "max_concurrency",
        "settings",
        "credentials_env",
        "display_name",
        "kind",
    ):
        op.drop_column("providers", column)
    for column in ("sizes", "aspect_ratios", "max_input_images", "family"):
        op.drop_column("models", column)
