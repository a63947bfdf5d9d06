from dataclasses import dataclass

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.ratelimit import RateLimiter


@dataclass(frozen=True, slots=True)
class Resources:
    """What the lifespan opens once and closes once; handed out through dependencies."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    medusa_pool: asyncpg.Pool
    http_client: httpx.AsyncClient
    schema_head: str | None
    """The Alembic head revision this build expects the database to be at."""
    rate_limiter: RateLimiter | None = None
    """Storefront routes' limiter; None when RATE_LIMIT_ENABLED is false."""
