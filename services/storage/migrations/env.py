from genhub_platform.migrations import run_migrations
from genhub_storage.adapters import tables  # noqa: F401  (registers the models)
from sqlmodel import SQLModel

run_migrations(SQLModel.metadata)
