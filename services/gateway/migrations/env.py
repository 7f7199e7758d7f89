import genhub_platform.uow  # noqa: F401  (outbox and inbox tables, so autogenerate keeps them)
from genhub_gateway.adapters import tables  # noqa: F401  (the gateway's tables)
from genhub_platform.migrations import run_migrations
from sqlmodel import SQLModel

run_migrations(SQLModel.metadata)
