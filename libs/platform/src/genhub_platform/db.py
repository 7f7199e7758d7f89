"""Async database engine and sessions (SQLModel on asyncpg)."""

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_platform.settings import PlatformSettings

SessionFactory = async_sessionmaker[AsyncSession]


def make_engine(settings: PlatformSettings) -> AsyncEngine:
    return create_async_engine(
        settings.async_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
    )


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    # expire_on_commit=False: handlers read attributes after commit without a reload.
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
