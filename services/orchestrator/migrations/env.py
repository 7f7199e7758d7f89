import genhub_orchestrator.adapters.tables  # noqa: F401  (registers the tables)
from genhub_platform.migrations import run_migrations
from sqlmodel import SQLModel

run_migrations(SQLModel.metadata)
