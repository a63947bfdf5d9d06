"""Webhook delivery, as NetValve does it: `{eventName, data}` POSTed with the configured custom
header, at least once, retried on anything but a 200.

For exercising receivers it can also deliver some events twice (`duplicate_rate`) and shuffle the
order of events queued close together (`reorder`).
"""

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from app.core.money import json_with_amounts

log = structlog.get_logger(__name__)


@dataclass
class WebhookConfig:
    url: str | None = None
    auth_header: str | None = None
    auth_value: str | None = None
    retry_delays: tuple[float, ...] = (0.2, 1.0, 5.0, 15.0)
    duplicate_rate: float = 0.0
    reorder: bool = False
    timeout_seconds: float = 5.0


@dataclass
class WebhookDispatcher:
    config: WebhookConfig
    delivered: list[dict[str, Any]] = field(default_factory=list)
    _queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._random = random.Random()  # noqa: S311 (test traffic, not security)

    def enqueue(self, event_name: str, data: dict[str, Any]) -> None:
        if not self.config.url:
            return
        event = {"eventName": event_name, "data": data}
        copies = 2 if self._random.random() < self.config.duplicate_rate else 1
        for _ in range(copies):
            self._queue.put_nowait(event)

    async def run(self) -> None:
        url = self.config.url
        if not url:
            return
        async with httpx.AsyncClient(timeout=self.config.timeout_seconds) as http:
            while True:
                batch = [await self._queue.get()]
                if self.config.reorder:
                    await asyncio.sleep(0.05)
                    while not self._queue.empty():
                        batch.append(self._queue.get_nowait())
                    self._random.shuffle(batch)
                for event in batch:
                    task = asyncio.create_task(self._deliver(http, url, event))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop deliveries still retrying; the sandbox is going away."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _deliver(self, http: httpx.AsyncClient, url: str, event: dict[str, Any]) -> None:
        body = json_with_amounts(event)
        headers = {"Content-Type": "application/json"}
        if self.config.auth_header and self.config.auth_value:
            headers[self.config.auth_header] = self.config.auth_value
        for attempt, delay in enumerate((0.0, *self.config.retry_delays), start=1):
            await asyncio.sleep(delay)
            try:
                response = await http.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                log.warning("sandbox.webhook_failed", attempt=attempt, error=type(exc).__name__)
                continue
            # NetValve counts only a 200 as delivered (NETVALVE_API.md §10).
            if response.status_code == 200:
                self.delivered.append(event)
                return
            log.warning("sandbox.webhook_rejected", attempt=attempt, status=response.status_code)
        log.error("sandbox.webhook_gave_up", event_name=event["eventName"])
