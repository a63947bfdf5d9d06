"""The load generator: a closed loop of N workers, each sending its next request as soon as the
previous one is answered, timed per request with `time.perf_counter`."""

import asyncio
import contextvars
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import httpx

Item = TypeVar("Item")

# What one request returns: None when it did what it should, else a short reason.
Send = Callable[[Item], Awaitable[str | None]]

# The index of the closed-loop worker running the current task (see ShardedClient).
WORKER: contextvars.ContextVar[int] = contextvars.ContextVar("bench_worker", default=0)

# httpcore scans its whole pool on every request (is_idle / has_expired on each connection), so
# one client with 64 or 1,000 connections spends milliseconds of CPU per request on that scan,
# on the same cores as the servers under test. Clients of a few connections each keep the load
# generator cheap.
CONNECTIONS_PER_CLIENT = 8


class ShardedClient:
    """Several httpx clients; each worker of `closed_loop` always uses the same one."""

    def __init__(self, base_url: str, concurrency: int, timeout: float = 60.0) -> None:
        shards = max(1, math.ceil(concurrency / CONNECTIONS_PER_CLIENT))
        limits = httpx.Limits(
            max_connections=CONNECTIONS_PER_CLIENT,
            max_keepalive_connections=CONNECTIONS_PER_CLIENT,
        )
        self._shards = [
            httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits)
            for _ in range(shards)
        ]

    def current(self) -> httpx.AsyncClient:
        return self._shards[WORKER.get() % len(self._shards)]

    async def __aenter__(self) -> "ShardedClient":
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.gather(*(shard.aclose() for shard in self._shards))


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    concurrency: int
    wall_seconds: float
    latencies_ms: tuple[float, ...]
    """Every request's latency, failures included, sorted."""
    errors: Counter[str]
    server_cpu_seconds: float | None = None
    """CPU time the server process used during the timed requests, when it was metered."""
    client_cpu_seconds: float = 0.0
    """CPU time this process (the load generator) used during the timed requests."""

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        if self.server_cpu_seconds is None or not self.requests:
            return None
        return self.server_cpu_seconds * 1000 / self.requests

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def ok(self) -> int:
        return self.requests - self.error_count

    @property
    def throughput(self) -> float:
        """Successful requests per second of wall time."""
        return self.ok / self.wall_seconds if self.wall_seconds else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        return {
            "requests": self.requests,
            "concurrency": self.concurrency,
            "ok": self.ok,
            "errors": self.error_count,
            "error_kinds": dict(self.errors.most_common(10)),
            "wall_seconds": round(self.wall_seconds, 3),
            "throughput_per_second": round(self.throughput, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p90_ms": round(self.percentile(90), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(self.latencies_ms[-1], 2) if self.latencies_ms else 0.0,
            "client_cpu_ms_per_request": round(
                self.client_cpu_seconds * 1000 / max(self.requests, 1), 3
            ),
            **(
                {"server_cpu_ms_per_request": round(self.server_cpu_ms_per_request, 3)}
                if self.server_cpu_ms_per_request is not None
                else {}
            ),
        }


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) over sorted values."""
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def closed_loop(
    items: Sequence[Item],
    concurrency: int,
    send: Send[Item],
    server_cpu: Callable[[], float] | None = None,
) -> LoadResult:
    """Send every item with `concurrency` requests in flight; `concurrency >= len(items)` sends
    them all at once (a burst). `server_cpu` reads the server's CPU seconds, before and after."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    cursor = iter(items)

    async def worker(index: int) -> None:
        WORKER.set(index)  # each worker runs in a task of its own, with its own context
        for item in cursor:  # shared iterator: each item is taken by exactly one worker
            started = time.perf_counter()
            try:
                problem = await send(item)
            except Exception as exc:  # a failed request is a measurement, not a crash
                problem = type(exc).__name__
            latencies.append((time.perf_counter() - started) * 1000)
            if problem is not None:
                errors[problem] += 1

    workers = min(concurrency, len(items))
    cpu_before = server_cpu() if server_cpu else 0.0
    client_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker(index) for index in range(workers)))
    wall = time.perf_counter() - started
    client_used = time.process_time() - client_before
    cpu_used = server_cpu() - cpu_before if server_cpu else None
    return LoadResult(
        requests=len(items),
        concurrency=concurrency,
        wall_seconds=wall,
        latencies_ms=tuple(sorted(latencies)),
        errors=errors,
        server_cpu_seconds=cpu_used,
        client_cpu_seconds=client_used,
    )
