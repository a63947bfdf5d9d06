"""Readiness checks: our database, Medusa's database, and the gateway configuration."""

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from app.core.state import Resources
from app.db.medusa import MedusaRepository
from app.schemas.health import CheckName, CheckResult

log = structlog.get_logger(__name__)

CHECK_TIMEOUT_SECONDS = 3.0


class CheckFailed(Exception):
    """A check's own verdict; its message is safe to show (no secrets, no DSNs)."""


async def _check_database(resources: Resources) -> None:
    async with resources.engine.connect() as connection:
        try:
            revision = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        except ProgrammingError:
            raise CheckFailed("schema not migrated: run `alembic upgrade head`") from None
    if resources.schema_head is not None and revision != resources.schema_head:
        raise CheckFailed(
            f"schema at revision {revision}, this build expects {resources.schema_head}"
        )


async def _check_medusa(resources: Resources) -> None:
    missing = await MedusaRepository(resources.medusa_pool).missing_tables()
    if missing:
        raise CheckFailed("Medusa tables missing: " + ", ".join(missing))


async def _check_gateway_config(resources: Resources) -> None:
    problems = resources.settings.gateway_config_problems()
    if problems:
        raise CheckFailed("; ".join(problems))


async def _run(name: CheckName, check: Callable[[], Awaitable[None]]) -> CheckResult:
    started = time.perf_counter()
    detail: str | None = None
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except CheckFailed as exc:
        detail = str(exc)
    except TimeoutError:
        detail = f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as exc:
        # Driver messages can carry hosts or user names; the log has them, the response does not.
        log.warning("health.check_failed", check=name, error=repr(exc))
        detail = f"unavailable ({type(exc).__name__})"
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return CheckResult(status="fail" if detail else "ok", detail=detail, latency_ms=latency_ms)


async def check_readiness(resources: Resources) -> dict[CheckName, CheckResult]:
    names: tuple[CheckName, ...] = ("database", "medusa_database", "gateway_config")
    results = await asyncio.gather(
        _run("database", lambda: _check_database(resources)),
        _run("medusa_database", lambda: _check_medusa(resources)),
        _run("gateway_config", lambda: _check_gateway_config(resources)),
    )
    return dict(zip(names, results, strict=True))
