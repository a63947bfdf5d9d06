"""The benchmark run: set-up, the four phases, the report; or, with --profile, the service under
pyinstrument for the payment and webhook phases. See bench/__init__.py."""

import argparse
import asyncio
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from types import FrameType
from typing import Any

from bench import profile as profiling
from bench.data import Sale, webhook_bodies
from bench.figures import Run
from bench.phases import (
    Prepared,
    authorize_direct,
    authorize_floor,
    authorize_service,
    authorize_two_workers,
    direct_sales,
    prepare,
    slow_gateway,
    webhook_bare,
    webhook_service,
)
from bench.processes import PROJECT_ROOT, peak_rss_mib, rss_mib
from bench.report import console_report, keep, load_average, machine, say, write_doc
from bench.stack import (
    PHASES,
    TUNING,
    Options,
    Stack,
    bare_webhook_app,
    floor_app,
    infrastructure,
    keep_logs,
    start_service,
)

PROFILE_DIR = PROJECT_ROOT / ".data" / "bench-profiles"
PROFILE_SCALE = 0.25  # profiling slows the service three- to four-fold; a quarter is plenty
SALES_FOR_WEBHOOKS = 200  # direct sales made only to describe webhooks, when phase 1 is skipped


class Interrupted(KeyboardInterrupt):
    """SIGTERM: stop everything as Ctrl-C does (a KeyboardInterrupt, so no task swallows it)."""


def _bodies(stack: Stack, sales: list[Sale]) -> list[bytes]:
    options = stack.options
    count = options.warmup_webhooks + options.webhooks + options.light_webhooks
    return webhook_bodies(sales, count, stack.credentials.client_id, options.seed)


def _prepare(
    stack: Stack, *, comparisons: bool = True
) -> tuple[Prepared, list[Sale], dict[str, Any]]:
    """Rows and tokens; then the direct sales (phase 1's baseline, or just enough to describe
    webhooks), before the service has served anything."""
    options = stack.options
    if "authorize" in options.phases:
        direct = options.warmup_payments + options.payments
    else:
        direct = SALES_FOR_WEBHOOKS if "webhook" in options.phases else 0
    say("Preparing Medusa sessions and HPF tokens ...")
    prepared = asyncio.run(prepare(stack, direct_sales=direct, comparisons=comparisons))
    if "authorize" in options.phases:
        figures, sales = asyncio.run(authorize_direct(stack, prepared))
        return prepared, sales, figures
    if direct:
        _, sales = asyncio.run(direct_sales(stack, prepared.baseline_tokens, 0))
        return prepared, sales, {}
    return prepared, [], {}


def _authorize(stack: Stack, prepared: Prepared, direct: dict[str, Any]) -> dict[str, Any]:
    """Phase 1 after the direct client: the design floor, then the service."""
    with floor_app(stack) as (url, pid):
        direct = asyncio.run(authorize_floor(stack, prepared, url, pid, direct))
    return asyncio.run(authorize_service(stack, prepared, direct))


def _two_workers(stack: Stack, prepared: Prepared, authorize: dict[str, Any]) -> dict[str, Any]:
    """Last and alone: PostgreSQL's max_connections holds two workers' pools, not three."""
    service = start_service(stack, workers=2)
    try:
        figures = asyncio.run(authorize_two_workers(stack, prepared, authorize))
    finally:
        service.stop()
    if figures["two_workers"]["service"]["errors"]:
        keep_logs(stack.workdir)
    return figures


def _phases(stack: Stack, loads: dict[str, str]) -> dict[str, Any]:
    """The phases asked for, in order, on one service process; the 2-worker run last."""
    options = stack.options
    service = start_service(stack)
    time.sleep(1.0)  # idle after start-up: lifespan done, pools not yet used
    idle = rss_mib(service.pid)
    prepared, sales, authorize = _prepare(stack)
    figures: dict[str, Any] = {}
    if "authorize" in options.phases:
        loads["floor and service"] = load_average()
        figures["authorize"] = _authorize(stack, prepared, authorize)
    if "webhook" in options.phases:
        loads["webhook"] = load_average()
        bodies = _bodies(stack, sales)
        with bare_webhook_app(stack) as (url, pid):
            bare = asyncio.run(webhook_bare(url, pid, stack, bodies))
        figures["webhook"] = asyncio.run(webhook_service(stack, bodies, bare))
    if "slow" in options.phases:
        loads["slow"] = load_average()
        figures["slow_gateway"] = asyncio.run(slow_gateway(stack, prepared))
    peak = peak_rss_mib(service.pid)
    say(f"[4/5] memory: idle {idle:.1f} MiB after start-up, peak {peak:.1f} MiB")
    figures["memory"] = {
        "idle_mib": round(idle, 1),
        "peak_mib": round(peak, 1),
        "ratio": round(peak / idle, 3),
    }
    if figures.get("slow_gateway", {}).get("errors", 0):
        keep_logs(stack.workdir)
    service.stop()
    if "authorize" in options.phases:
        loads["2 workers"] = load_average()
        figures["authorize"] = _two_workers(stack, prepared, figures["authorize"])
    loads["end"] = load_average()
    return figures


def measure(options: Options, started: float, load_at_start: str) -> int:
    """The run, then the report."""
    loads: dict[str, str] = {}
    with infrastructure(options) as stack:
        figures = _phases(stack, loads)
    errors = int(figures.get("slow_gateway", {}).get("errors", 0))
    run: Run = {
        "machine": {
            **machine(stack.postgres_version, load_at_start),
            "load_average_during": ", ".join(f"{name} {value}" for name, value in loads.items()),
        },
        "options": {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(options).items()
            if key not in {"profile", "keep_sessions", "as_before", "write"}
        },
        "settings": {name: list(pair) for name, pair in TUNING.items()},
        "figures": figures,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    if options.write:
        kept = keep(run, as_before=options.as_before)
        path = write_doc(kept, describe)
        say("\n" + console_report(run, kept), stamp=False)
        say(f"\nWritten: {path.relative_to(PROJECT_ROOT)}, bench/results.json", stamp=False)
    else:
        say("\n" + console_report(run, {"before": run, "after": None}), stamp=False)
        say("\nPartial or scaled run: nothing written (only full runs compare).", stamp=False)
    if errors:
        say(f"FAILED: {errors} payment(s) in the slow-gateway phase did not answer 200 captured")
        return 1
    return 0


def profile(options: Options) -> int:
    """The payment phase and the webhook phase, each with the service under pyinstrument."""
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    options = replace(options, phases=("authorize", "webhook"))
    with infrastructure(options) as stack:
        prepared, sales, _ = _prepare(stack, comparisons=False)
        bodies = _bodies(stack, sales)
        for name in ("payment", "webhook"):
            session = stack.workdir / f"{name}.pyisession"
            service = start_service(stack, profile_to=session)
            say(f"Profiling the {name} phase ...")
            if name == "payment":
                asyncio.run(authorize_service(stack, prepared, {}))
            else:
                asyncio.run(webhook_service(stack, bodies, None))
            service.stop()
            if not session.exists():
                raise RuntimeError(f"pyinstrument wrote no profile:\n{service.tail()}")
            say(f"Rendering the {name} profile ...")
            text, summary = profiling.render(session, PROJECT_ROOT)
            if options.keep_sessions:
                session.replace(PROFILE_DIR / session.name)
            else:
                session.unlink()  # hundreds of MB: the text tree and the summary are kept
            (PROFILE_DIR / f"{name}.txt").write_text(text, encoding="utf-8")
            (PROFILE_DIR / f"{name}-hotspots.md").write_text(summary, encoding="utf-8")
            say(f"\n== {name} ==\n{summary}", stamp=False)
    say(
        f"Profiles in {PROFILE_DIR.relative_to(PROJECT_ROOT)}/: <phase>.txt (pyinstrument's "
        "tree) and <phase>-hotspots.md (self and inclusive time by package and function)."
    )
    return 0


def describe(run: Run) -> str:
    """The method, rendered into docs/benchmarks.md."""
    o = run["options"]
    return f"""## Method

`make bench` runs everything on one machine with no configuration: an embedded PostgreSQL in a
temporary directory (fsync on, defaults), the NetValve sandbox as `python -m app.sandbox`, the
service as `uvicorn --factory app.main:create_app --no-server-header` (the Dockerfile's server, one
worker), the design floor as `uvicorn bench.floor:app` and the bare webhook baseline as
`uvicorn bench.bare_webhook:app` with the same flags, each in its own
process. The load generator and the direct-client baseline run in the harness's process: a
closed loop (each worker sends its next request when its previous one is answered; latency
timed with `time.perf_counter`) over httpx clients of 8 connections each, since httpcore scans
its whole pool on every request and one client of 64 connections costs the load generator
several times the CPU. All processes share the machine's cores, so every figure includes that
contention; the ratios are what carry over to other machines, and the CPU time per request of
each server process (utime + stime from `/proc/<pid>/stat` over the timed requests) is the
steadiest figure when the machine is shared. Each timed phase follows a warm-up
({o["warmup_payments"]} payments or {o["warmup_webhooks"]:,} webhooks) that is not counted.

1. **Authorize overhead.** {o["payments"]:,} sales at concurrency {o["concurrency"]}, sandbox
   latency {o["latency_ms"]} ms on every gateway call, sent in turn to three servers, each with
   its own Medusa sessions and HPF tokens made before the clock starts:
   - **direct client**: the sales sent straight to the sandbox by the project's `NetvalveClient`
     (the service's timeouts and customer fields; pools of 8 connections, as above), first,
     before the service has served anything;
   - **design floor** (`bench/floor.py`): a raw ASGI app on asyncpg that does the design's
     minimum for the same `POST /api/v1/netvalve/payment`: the API key compared in constant time;
     Medusa's payment session and cart (2 queries); one transaction that stores the
     idempotency key, upserts and claims the payment and records the attempt; the sale over httpx
     with aiohttp's pool (`httpx_aiohttp`); one transaction that records the outcome on the
     payment and the attempt and the answer on the key; a JSON answer. One pool of
     DATABASE_POOL_SIZE + MEDUSA_POOL_MAX_SIZE connections. After its run, the harness checks
     that every floor sale left a captured payment, an approved attempt and a stored answer;
   - **service**: `POST /api/v1/netvalve/payment` with a Medusa payment session (real Medusa
     reads), an HPF token and an Idempotency-Key, through the ledger in sale mode.

   Success is 200 with state `captured`. The targets compare the service with the direct client
   (sales/s, added p50) and its CPU per sale with the floor's.
   Last in the run, once the one-worker service has stopped, the service runs again with
   `--workers 2` on the same load (its own sessions and tokens): sales/s with two workers over
   sales/s with one, and CPU per sale summed over uvicorn's supervisor and its workers (the
   processes whose parent is the supervisor, read from `/proc/<pid>/stat`). Each worker gets
   half of each database pool below (DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW,
   MEDUSA_POOL_MAX_SIZE), so the two hold what one worker holds and stay within PostgreSQL's
   max_connections.
2. **Webhook intake.** {o["webhooks"]:,} posts at concurrency {o["concurrency"]} of NetValve-shaped
   bodies (`{{eventName, data}}`, 80 % PURCHASED, 10 % REFUNDED, 10 % CHARGEBACK, about the
   baseline's real sales), each with its own `traceId`, so each is stored, never deduplicated;
   success is 200 `stored`, and the row count is checked. Baseline, run just before: a raw ASGI
   app that inserts the body with one asyncpg statement into the same database, with a pool of
   DATABASE_POOL_SIZE connections. **The service's webhook worker is disabled**
   (`WEBHOOK_WORKER_ENABLED=false`): the phase measures intake, the part NetValve waits for
   (store, then 200), against a baseline that only stores. Processing is decoupled from intake
   by design; with the worker on, the same process would also prove each event against
   NetValve's record (`GET /transaction`) and apply it, so intake figures would depend on the
   event mix instead of on intake.
   Both servers then take {o["light_webhooks"]:,} more posts at concurrency
   {o["light_concurrency"]}, NetValve's usual pace, for the latency one delivery waits for.
3. **Slow gateway.** {o["slow_payments"]:,} payments sent at once, sandbox latency
   {o["slow_latency_ms"]} ms: wall time over {o["slow_latency_ms"]} ms (1.00 would be perfect
   overlap) and the number of answers that were not 200 `captured`, which must be 0; the harness
   exits non-zero otherwise, keeping the processes' logs in `.data/bench-logs/`.
4. **Memory.** Peak resident set (VmHWM from `/proc/<pid>/status`) of the service process over
   the whole run, against its resident set one second after start-up, idle.

Seeded generators make the Medusa ids, webhook trace ids and event mix the same on every run.
`python -m bench --profile` (or `BENCH_PROFILE=1`) runs the payment and webhook phases with the
service under pyinstrument instead and writes the profiles to `.data/bench-profiles/`;
`--phases` and `--scale` make quicker partial runs, which write nothing."""


def _parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the service (payment, webhook phases) with pyinstrument",
    )
    parser.add_argument(
        "--keep-sessions",
        action="store_true",
        help="with --profile: keep the pyinstrument sessions (large) for `pyinstrument --load`",
    )
    parser.add_argument(
        "--as-before",
        action="store_true",
        help="pin this run as the 'before' column in bench/results.json",
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (a partial run writes nothing)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=None,
        help="multiply every request count (a quick check; writes nothing); "
        f"--profile defaults to {PROFILE_SCALE}",
    )
    arguments = parser.parse_args(argv)
    phases = tuple(phase for phase in PHASES if phase in arguments.phases.split(","))
    unknown = set(arguments.phases.split(",")) - set(PHASES)
    if unknown or not phases:
        parser.error(f"--phases takes {','.join(PHASES)}, not {','.join(sorted(unknown))}")
    profile_requested = arguments.profile or os.environ.get("BENCH_PROFILE") == "1"
    options = Options(
        phases=phases,
        profile=profile_requested,
        keep_sessions=arguments.keep_sessions,
        as_before=arguments.as_before,
        write=phases == PHASES,
    )
    scale = arguments.scale
    if scale is None and profile_requested:
        scale = PROFILE_SCALE
    if scale is not None and scale != 1.0:
        options = replace(options.scaled(scale), write=False)
    return options


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _quiet_client_logs() -> None:
    """NetvalveClient logs every call; in this process (the baseline) that would flood stdout."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse(argv)
    started = time.perf_counter()
    load_at_start = load_average()
    _quiet_client_logs()
    signal.signal(signal.SIGTERM, _terminate)
    code = 1
    try:
        code = profile(options) if options.profile else measure(options, started, load_at_start)
    except KeyboardInterrupt:
        say("\nInterrupted: every process the benchmark started has been stopped.")
        code = 130
    finally:
        say(f"Total time: {time.perf_counter() - started:.1f} s")
    return code
