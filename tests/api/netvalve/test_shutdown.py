"""Graceful shutdown: in-flight requests finish, workers stop after their current item, and no
claimed webhook is left waiting on a worker that has gone."""

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.main import create_app
from tests.conftest import PROJECT_ROOT, started_app
from tests.fixtures.api import STOREFRONT_KEY, Api, ApiFactory
from tests.fixtures.environment import service_env
from tests.fixtures.log_audit import audited_output
from tests.fixtures.netvalve import build_webhook_event
from tests.fixtures.ports import free_port
from tests.fixtures.settings import make_settings
from tests.fixtures.webhooks import (
    WEBHOOK_SETTINGS,
    post_webhook,
    process_until_idle,
    webhook_service_of,
)

pytestmark = pytest.mark.asyncio

EVENTS = 12
INQUIRY_MS = 250


async def inbox(api: Api) -> list[dict[str, Any]]:
    rows = await api.medusa.fetch(
        "SELECT status, attempts, next_attempt_at FROM webhook_events ORDER BY received_at"
    )
    return [dict(row) for row in rows]


def finished(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row["status"] in {"processed", "ignored"}]


async def worker_app(api: Api, sandbox_url: str, database_url: str, **overrides: Any) -> Any:
    settings = make_settings(
        database_url,
        **{
            **WEBHOOK_SETTINGS,
            "netvalve_base_url": sandbox_url,
            "netvalve_read_timeout": 5.0,
            "webhook_worker_enabled": True,
            "webhook_worker_interval_seconds": 0.05,
            "reconcile_enabled": False,
            **overrides,
        },
    )
    lifespan: AsyncIterator[Any] = started_app(create_app(settings))
    await lifespan.__anext__()
    return lifespan


async def stop(lifespan: AsyncIterator[Any]) -> None:
    with pytest.raises(StopAsyncIteration):
        await lifespan.__anext__()


@pytest_asyncio.fixture
async def queued(api_factory: ApiFactory) -> AsyncIterator[Api]:
    """A paid payment and EVENTS stored webhooks about it, each of which takes a GET
    /transaction (its proof) that the sandbox answers slowly."""
    api: Api = await api_factory(**WEBHOOK_SETTINGS)
    paid = await api.pay(await api.medusa_session())
    assert paid.status_code == 200, paid.text
    for _ in range(EVENTS):
        body = build_webhook_event(
            "PURCHASED", transactionId=paid.json()["transaction_id"], amount=44.00
        )
        assert (await post_webhook(api.http, body)).json()["status"] == "stored"
    await api.sandbox.admin.post(
        "/_sandbox/faults",
        json={"path": "/transaction", "kind": "latency", "latency_ms": INQUIRY_MS},
    )
    yield api
    await api.medusa.execute("DELETE FROM webhook_events")


async def wait_until_some_finish(api: Api) -> None:
    for _ in range(200):
        if finished(await inbox(api)):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the worker never finished an event")


async def test_the_worker_stops_after_its_current_event_and_hands_back_the_rest(
    queued: Api, sandbox_url: str, database_url: str
):
    worker = await worker_app(queued, sandbox_url, database_url, shutdown_grace_seconds=10)
    await wait_until_some_finish(queued)

    await stop(worker)

    rows = await inbox(queued)
    done = finished(rows)
    assert 0 < len(done) < EVENTS  # it stopped early, not after its whole claim of 12
    await asyncio.sleep(INQUIRY_MS / 1000 * 2)
    assert finished(await inbox(queued)) == done  # and nothing goes on behind our back
    left = [row for row in rows if row not in done]
    # Handed back: due now, and the claim not counted as an attempt.
    assert {(row["status"], row["attempts"], row["next_attempt_at"]) for row in left} == {
        ("received", 0, None)
    }
    assert {row["attempts"] for row in done} == {1}

    # Another worker takes them at once, not after the lease, and each is applied once.
    await process_until_idle([webhook_service_of(queued.http)])
    rows = await inbox(queued)
    assert len(finished(rows)) == EVENTS
    assert {row["attempts"] for row in rows} == {1}


async def test_past_the_grace_period_the_worker_is_cancelled_and_its_claim_handed_back(
    queued: Api, sandbox_url: str, database_url: str
):
    await queued.sandbox.admin.delete("/_sandbox/faults")
    await queued.sandbox.admin.post(
        "/_sandbox/faults", json={"path": "/transaction", "kind": "hang", "hang_seconds": 4}
    )
    worker = await worker_app(queued, sandbox_url, database_url, shutdown_grace_seconds=0.3)
    for _ in range(100):  # the worker has claimed the batch and sits in its first /transaction
        if any(row["attempts"] for row in await inbox(queued)):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the worker never claimed the batch")

    await stop(worker)

    rows = await inbox(queued)
    assert not finished(rows)
    assert {(row["status"], row["attempts"], row["next_attempt_at"]) for row in rows} == {
        ("received", 0, None)
    }
    await queued.sandbox.admin.delete("/_sandbox/faults")
    await process_until_idle([webhook_service_of(queued.http)])
    assert len(finished(await inbox(queued))) == EVENTS


async def test_sigterm_lets_an_in_flight_payment_finish(
    api_factory: ApiFactory, sandbox_url: str, database_url: str
):
    api: Api = await api_factory()
    medusa = await api.medusa_session()
    token = await api.token()
    port = free_port()
    env = service_env(database_url, sandbox_url, RECONCILE_ENABLED="false")
    log_path = audited_output("shutdown-uvicorn")
    with log_path.open("wb") as log:
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "uvicorn", "--factory", "app.main:create_app", "--port", str(port)),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            for _ in range(600):
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the service did not start within 30 s")
            await api.sandbox.admin.post(
                "/_sandbox/faults",
                json={"path": "/sale", "kind": "latency", "latency_ms": 1000, "times": 1},
            )
            payment = asyncio.create_task(
                http.post(
                    "/api/v1/netvalve/payment",
                    json={"payment_session_id": medusa.session_id, "payment_token": token},
                    headers={
                        "Authorization": f"Bearer {STOREFRONT_KEY}",
                        "Idempotency-Key": f"shutdown-{uuid.uuid4().hex}",
                    },
                )
            )
            sent = "SELECT count(*) FROM payment_attempts WHERE outcome = 'sent'"
            for _ in range(250):  # until the sale is on its way to the gateway
                if await api.medusa.fetchval(sent):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the sale never left for the gateway")
            os.kill(server.pid, signal.SIGTERM)

            answer = await payment

        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "captured"
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert await asyncio.wait_for(server.wait(), 15) in {0, -signal.SIGTERM}
        output = log_path.read_text(encoding="utf-8")
        lines = [json.loads(line) for line in output.splitlines() if line[:1] == "{"]
        order = [(line.get("event"), line.get("path"), line.get("status")) for line in lines]
        # The payment was answered before the application began to stop.
        answered = order.index(("http.request", "/api/v1/netvalve/payment", 200))
        assert answered < order.index(("app.stopping", None, None))
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
