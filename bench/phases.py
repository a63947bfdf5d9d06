"""The timed phases and their baselines. Each function runs inside one `asyncio.run`."""

import asyncio
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.clients.netvalve import Approved, Customer, NetvalveClient, PaymentRequest
from app.clients.transport import create_http_client
from bench.data import AMOUNT, Checkout, Ids, Sale, checkouts, payment_tokens
from bench.figures import authorize_ratios, ratio
from bench.load import CONNECTIONS_PER_CLIENT, WORKER, LoadResult, ShardedClient, closed_loop
from bench.processes import cpu_seconds, tree_cpu_seconds
from bench.report import say
from bench.stack import WEBHOOK_HEADER, Stack, dsn, gateway_settings

# The customer fields the service sends for the benchmark's carts (see bench.data).
CUSTOMER = Customer(
    email="ada@example.com",
    first_name="Ada",
    last_name="Lovelace",
    address="12 St James's Square",
    city="London",
    zip_code="SW1Y 4JH",
    country_code="gb",
    phone="+442079460000",
)


@dataclass(frozen=True, slots=True)
class Prepared:
    """Made before any clock starts: HPF tokens for the direct sales, checkouts for the design
    floor, the service and the service with two workers (warm-up first in each list)."""

    baseline_tokens: list[str]
    floor: list[Checkout]
    service: list[Checkout]
    two_workers: list[Checkout]
    slow: list[Checkout]


async def set_latency(stack: Stack, ms: int) -> None:
    async with stack.sandbox_admin() as admin:
        response = await admin.put("/_sandbox/latency", params={"ms": ms})
        response.raise_for_status()


async def prepare(stack: Stack, *, direct_sales: int, comparisons: bool = True) -> Prepared:
    """Medusa sessions and HPF tokens for every payment of the run, made with no latency;
    `comparisons`: also for the design floor and the two-worker run."""
    options = stack.options
    await set_latency(stack, 0)
    settings = gateway_settings(stack.sandbox_url, stack.credentials, connections=32)
    ids = Ids(options.seed)
    wanted = set(options.phases)
    paid = options.warmup_payments + options.payments if "authorize" in wanted else 0
    slow = options.warmup_payments + options.slow_payments if "slow" in wanted else 0
    compared = paid if comparisons else 0
    connection = await asyncpg.connect(dsn(stack.database_url))
    try:
        async with create_http_client(settings) as http, stack.sandbox_admin() as hpf:
            client = NetvalveClient(http, settings)
            return Prepared(
                baseline_tokens=await payment_tokens(client, hpf, direct_sales),
                service=await checkouts(connection, client, hpf, ids, paid),
                slow=await checkouts(connection, client, hpf, ids, slow),
                floor=await checkouts(connection, client, hpf, ids, compared),
                two_workers=await checkouts(connection, client, hpf, ids, compared),
            )
    finally:
        await connection.close()


async def direct_sales(
    stack: Stack, tokens: Sequence[str], warm: int
) -> tuple[LoadResult, list[Sale]]:
    """Sales straight to the sandbox through the project's NetvalveClient: the service's
    timeouts, with pools of 8 connections per client like the load generator's (one pool of 64
    would make this process, not the gateway, the bottleneck; see bench.load)."""
    options = stack.options
    shards = max(1, math.ceil(options.concurrency / CONNECTIONS_PER_CLIENT))
    settings = gateway_settings(
        stack.sandbox_url, stack.credentials, connections=CONNECTIONS_PER_CLIENT
    )
    https = [create_http_client(settings) for _ in range(shards)]
    clients = [NetvalveClient(http, settings) for http in https]
    sales: list[Sale] = []

    async def sell(token: str) -> str | None:
        order = f"{uuid.uuid4().hex}-0"
        result = await clients[WORKER.get() % shards].sale(
            PaymentRequest(
                amount=AMOUNT,
                currency="EUR",
                client_order_id=order,
                payment_token=token,
                customer=CUSTOMER,
            )
        )
        if not isinstance(result, Approved):
            return type(result).__name__
        sales.append(Sale(result.body, order))
        return None

    try:
        await closed_loop(tokens[:warm], options.concurrency, sell)
        result = await closed_loop(
            tokens[warm:], options.concurrency, sell, lambda: cpu_seconds(stack.sandbox_pid)
        )
    finally:
        await asyncio.gather(*(http.aclose() for http in https))
    return result, sales


async def service_payments(
    stack: Stack, items: Sequence[Checkout], warm: int, concurrency: int
) -> LoadResult:
    """The service's sales; its CPU summed over its processes (one, or a supervisor and its
    workers)."""
    pid = stack.service_pid()
    return await payments(
        stack.service_url, stack, items, warm, concurrency, lambda: tree_cpu_seconds(pid)
    )


async def payments(
    url: str,
    stack: Stack,
    items: Sequence[Checkout],
    warm: int,
    concurrency: int,
    server_cpu: Callable[[], float],
) -> LoadResult:
    """POST /payment for each checkout, as a storefront does; 200 with a captured sale is
    success, anything else an error."""
    headers = {"Authorization": f"Bearer {stack.credentials.storefront_key}"}
    async with ShardedClient(url, concurrency) as http:

        async def pay(checkout: Checkout) -> str | None:
            response = await http.current().post(
                "/api/v1/netvalve/payment",
                json={
                    "payment_session_id": checkout.payment_session_id,
                    "payment_token": checkout.payment_token,
                },
                headers={**headers, "Idempotency-Key": f"bench-{uuid.uuid4().hex}"},
            )
            if response.status_code != 200:
                return f"HTTP {response.status_code}"
            state = response.json().get("state")
            return None if state == "captured" else f"state {state}"

        await closed_loop(items[:warm], min(concurrency, max(warm, 1)), pay)
        return await closed_loop(items[warm:], concurrency, pay, server_cpu)


async def post_webhooks(
    url: str,
    pid: int,
    headers: dict[str, str],
    bodies: Sequence[bytes],
    warm: int,
    concurrency: int,
) -> LoadResult:
    """POST each body; success is 200 with `"status": "stored"` (not a duplicate)."""
    sent = {"Content-Type": "application/json", **headers}
    async with ShardedClient(url, concurrency) as http:

        async def post(body: bytes) -> str | None:
            response = await http.current().post(
                "/api/v1/netvalve/webhook", content=body, headers=sent
            )
            if response.status_code != 200:
                return f"HTTP {response.status_code}"
            status = response.json().get("status")
            return None if status == "stored" else f"status {status}"

        await closed_loop(bodies[:warm], concurrency, post)
        return await closed_loop(bodies[warm:], concurrency, post, lambda: cpu_seconds(pid))


async def count_rows(database_url: str, table: str) -> int:
    connection = await asyncpg.connect(dsn(database_url))
    try:
        return int(await connection.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
    finally:
        await connection.close()


# --- phases ---------------------------------------------------------------------------------


async def authorize_direct(stack: Stack, prepared: Prepared) -> tuple[dict[str, Any], list[Sale]]:
    options = stack.options
    say(
        f"[1/5] authorize: {options.payments:,} sales at concurrency {options.concurrency}, "
        f"gateway latency {options.latency_ms} ms"
    )
    await set_latency(stack, options.latency_ms)
    direct, sales = await direct_sales(stack, prepared.baseline_tokens, options.warmup_payments)
    say(f"      direct NetvalveClient: {describe(direct, 'sandbox')}")
    return {"latency_ms": options.latency_ms, "baseline": direct.summary()}, sales


async def authorize_floor(
    stack: Stack, prepared: Prepared, url: str, pid: int, figures: dict[str, Any]
) -> dict[str, Any]:
    """The design floor's sales, then its rows checked: it must do the work, not only answer."""
    options = stack.options
    await set_latency(stack, options.latency_ms)
    floor = await payments(
        url,
        stack,
        prepared.floor,
        options.warmup_payments,
        options.concurrency,
        lambda: cpu_seconds(pid),
    )
    say(f"      design floor: {describe(floor, 'floor')}")
    await check_floor_rows(stack.database_url, prepared.floor)
    return {**figures, "floor": floor.summary()}


FLOOR_ROWS = """
SELECT
  (SELECT count(*) FROM payments
    WHERE payment_session_id = ANY($1) AND state = 'captured' AND in_flight IS NULL
      AND captured_minor = amount_minor AND transaction_id IS NOT NULL) AS captured,
  (SELECT count(*) FROM payment_attempts a JOIN payments p ON p.id = a.payment_id
    WHERE p.payment_session_id = ANY($1) AND a.outcome = 'approved'
      AND a.transaction_id = p.transaction_id AND a.resolved_at IS NOT NULL) AS approved,
  (SELECT count(*) FROM idempotency_keys
    WHERE response_status = 200 AND locked_at IS NULL
      AND response_body->>'payment_session_id' = ANY($1)) AS answers
"""


async def check_floor_rows(database_url: str, checkouts: Sequence[Checkout]) -> None:
    """Every floor sale left a captured payment, an approved attempt and a stored answer."""
    sessions = [checkout.payment_session_id for checkout in checkouts]
    connection = await asyncpg.connect(dsn(database_url))
    try:
        counts = await connection.fetchrow(FLOOR_ROWS, sessions)
    finally:
        await connection.close()
    if counts is None or set(dict(counts).values()) != {len(sessions)}:
        raise RuntimeError(f"the design floor's {len(sessions)} sales left {dict(counts or {})}")


async def authorize_service(
    stack: Stack, prepared: Prepared, figures: dict[str, Any]
) -> dict[str, Any]:
    options = stack.options
    await set_latency(stack, options.latency_ms)
    served = await service_payments(
        stack, prepared.service, options.warmup_payments, options.concurrency
    )
    say(f"      service POST /payment: {describe(served, 'service')}")
    figures = {**figures, "service": served.summary()}
    if "baseline" in figures:
        ratios = authorize_ratios(figures["baseline"], figures["service"], figures.get("floor"))
        figures.update(ratios)
    return figures


async def authorize_two_workers(
    stack: Stack, prepared: Prepared, figures: dict[str, Any]
) -> dict[str, Any]:
    """The same load on the service run with `--workers 2`: how throughput scales."""
    options = stack.options
    say(f"[5/5] authorize again, the service with 2 workers: {options.payments:,} sales")
    await set_latency(stack, options.latency_ms)
    served = await service_payments(
        stack, prepared.two_workers, options.warmup_payments, options.concurrency
    )
    say(f"      service, 2 workers: {describe(served, 'service (all processes)')}")
    one = figures.get("service", {}).get("throughput_per_second")
    two = {"service": served.summary(), "scaling": ratio(served.throughput, one)}
    return {**figures, "two_workers": two}


@dataclass(frozen=True, slots=True)
class Intake:
    """One server's intake: under the phase's load, then at light load."""

    loaded: LoadResult
    light: LoadResult


async def _intake(
    url: str, pid: int, headers: dict[str, str], stack: Stack, bodies: Sequence[bytes], name: str
) -> Intake:
    options = stack.options
    split = options.warmup_webhooks + options.webhooks
    loaded = await post_webhooks(
        url, pid, headers, bodies[:split], options.warmup_webhooks, options.concurrency
    )
    say(f"      {name}: {describe(loaded, name)}")
    light = await post_webhooks(url, pid, headers, bodies[split:], 0, options.light_concurrency)
    say(f"      {name}, concurrency {options.light_concurrency}: {describe(light, name)}")
    return Intake(loaded, light)


async def webhook_bare(url: str, pid: int, stack: Stack, bodies: Sequence[bytes]) -> Intake:
    options = stack.options
    say(
        f"[2/5] webhook intake: {options.webhooks:,} posts at concurrency {options.concurrency}, "
        f"then {options.light_webhooks:,} at concurrency {options.light_concurrency}"
    )
    return await _intake(url, pid, {}, stack, bodies, "bare ASGI insert")


async def webhook_service(
    stack: Stack, bodies: Sequence[bytes], bare: Intake | None
) -> dict[str, Any]:
    """The service's intake, its rows checked, against the bare baseline when there is one."""
    from bench.bare_webhook import TABLE

    auth = {WEBHOOK_HEADER: stack.credentials.webhook_value}
    intake = await _intake(stack.service_url, stack.service_pid(), auth, stack, bodies, "service")
    served, light = intake.loaded, intake.light
    stored = await count_rows(stack.database_url, "webhook_events")
    if stored != len(bodies) - served.error_count - light.error_count:
        raise RuntimeError(f"webhook_events holds {stored} rows after {len(bodies)} posts")
    figures: dict[str, Any] = {
        "service": served.summary(),
        "service_stored": stored,
        "service_stored_per_second": round(served.throughput, 1),
        "worker": "disabled",
        "light": {"service": light.summary()},
    }
    if bare is not None:
        figures.update(
            baseline=bare.loaded.summary(),
            baseline_stored=await count_rows(stack.database_url, TABLE),
            baseline_stored_per_second=round(bare.loaded.throughput, 1),
            throughput_ratio=round(served.throughput / bare.loaded.throughput, 3),
            p99_ratio=round(served.percentile(99) / bare.loaded.percentile(99), 3),
            cpu_ratio=ratio(
                served.server_cpu_ms_per_request, bare.loaded.server_cpu_ms_per_request
            ),
        )
        figures["light"].update(
            baseline=bare.light.summary(),
            p99_ratio=round(light.percentile(99) / bare.light.percentile(99), 3),
        )
    return figures


async def slow_gateway(stack: Stack, prepared: Prepared) -> dict[str, Any]:
    options = stack.options
    say(
        f"[3/5] slow gateway: {options.slow_payments:,} concurrent payments, "
        f"gateway latency {options.slow_latency_ms} ms"
    )
    await set_latency(stack, options.slow_latency_ms)
    burst = await service_payments(
        stack, prepared.slow, options.warmup_payments, options.slow_payments
    )
    await set_latency(stack, 0)
    ratio = burst.wall_seconds / (options.slow_latency_ms / 1000)
    errors = f" {dict(burst.errors)}" if burst.errors else ""
    say(
        f"      wall {burst.wall_seconds:.2f} s = {ratio:.2f}x the gateway latency; "
        f"{describe(burst, 'service')}{errors}"
    )
    return {
        "service": burst.summary(),
        "latency_ms": options.slow_latency_ms,
        "wall_over_latency": round(ratio, 3),
        "errors": burst.error_count,
    }


def describe(result: LoadResult, server: str) -> str:
    """One progress line: rate, latency, errors, and CPU per request on both sides."""
    per_request = result.server_cpu_ms_per_request
    served = f"{server} {per_request:.2f} ms, " if per_request is not None else ""
    client = result.client_cpu_seconds * 1000 / max(result.requests, 1)
    return (
        f"{result.throughput:,.1f}/s, p50 {result.percentile(50):,.1f} ms, "
        f"p99 {result.percentile(99):,.1f} ms, errors {result.error_count}; "
        f"CPU per request: {served}load generator {client:.2f} ms"
    )
