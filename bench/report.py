"""The machine description, the kept results (bench/results.json) and docs/benchmarks.md.

bench/results.json holds two runs: `before`, pinned, and `after`, the latest. The first run (or
`--as-before`) pins itself as `before`; every later run replaces `after`. So after an
optimisation, `make bench` shows the pinned figures next to the new ones.
"""

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.figures import Run, reference_rows, target_rows
from bench.processes import PROJECT_ROOT

RESULTS_PATH = PROJECT_ROOT / "bench" / "results.json"
DOC_PATH = PROJECT_ROOT / "docs" / "benchmarks.md"
RAW_PATH = PROJECT_ROOT / "docs" / "benchmarks.raw.json"  # git-ignored: the latest run, in full
# What the profiles showed and what was changed: written by hand, copied into the document.
FINDINGS_PATH = PROJECT_ROOT / "bench" / "profile-findings.md"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 (fixed argv)
            ["git", *args],  # noqa: S607 (git from PATH, like any developer tool)
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def load_average() -> str:
    """The 1-minute load average: on a shared machine, other work competes for the cores."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def machine(postgres_version: str, load_at_start: str) -> dict[str, str]:
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count() or 0),
        "ram": f"{_ram_gib()} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": postgres_version,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "load_average_at_start": load_at_start,
    }


# --- kept results --------------------------------------------------------------------------


def load_results(path: Path = RESULTS_PATH) -> dict[str, Run | None]:
    if not path.exists():
        return {"before": None, "after": None}
    kept = json.loads(path.read_text(encoding="utf-8"))
    return {"before": kept.get("before"), "after": kept.get("after")}


def keep(run: Run, *, as_before: bool, path: Path = RESULTS_PATH) -> dict[str, Run | None]:
    """Record `run` as `after`, or as the pinned `before` when asked or when none is pinned."""
    kept = load_results(path)
    if as_before or kept["before"] is None:
        kept = {"before": run, "after": None}
    else:
        kept["after"] = run
    path.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    RAW_PATH.parent.mkdir(parents=True, exist_ok=True)
    RAW_PATH.write_text(json.dumps(run, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return kept


# --- figures -------------------------------------------------------------------------------


def _ms(value: object) -> str:
    return f"{value:.2f} ms" if isinstance(value, int | float) else "-"


def detail_rows(run: Run) -> list[list[str]]:
    """Absolute figures of one run after the authorize phase, service next to its baseline."""
    figures = run["figures"]
    rows: list[list[str]] = []

    def add(phase: str, measure: str, service: str, baseline: str, ratio: str) -> None:
        rows.append([phase, measure, service, baseline, ratio])

    def intake_latencies(where: str, s: Mapping[str, Any], b: Mapping[str, Any]) -> None:
        for q in ("p50", "p99"):
            add(
                "Webhook intake",
                f"{q} latency{where}",
                f"{s[q + '_ms']:,.1f} ms",
                f"{b[q + '_ms']:,.1f} ms",
                f"{s[q + '_ms'] / b[q + '_ms']:.2f}x" if b[q + "_ms"] else "",
            )

    hook = figures.get("webhook")
    if hook:
        s, b = hook["service"], hook["baseline"]
        add(
            "Webhook intake",
            f"stored events/s ({s['requests']:,} at concurrency {s['concurrency']})",
            f"{hook['service_stored_per_second']:,.1f}",
            f"{hook['baseline_stored_per_second']:,.1f}",
            f"{hook['throughput_ratio']:.2f}x",
        )
        intake_latencies("", s, b)
        cpu_ratio = hook.get("cpu_ratio")
        add(
            "Webhook intake",
            "server CPU per stored event",
            _ms(s.get("server_cpu_ms_per_request")),
            _ms(b.get("server_cpu_ms_per_request")),
            f"{cpu_ratio:.2f}x" if cpu_ratio else "",
        )
        light = hook.get("light")
        if light and "baseline" in light:
            ls, lb = light["service"], light["baseline"]
            where = f" at concurrency {ls['concurrency']} ({ls['requests']:,} posts)"
            intake_latencies(where, ls, lb)
        add(
            "Webhook intake",
            "rows stored / errors",
            f"{hook['service_stored']:,} / {s['errors']}",
            f"{hook['baseline_stored']:,} / {b['errors']}",
            "",
        )
    slow = figures.get("slow_gateway")
    if slow:
        s = slow["service"]
        add(
            "Slow gateway",
            f"wall time, {s['requests']:,} concurrent payments",
            f"{s['wall_seconds']:.2f} s",
            f"{slow['latency_ms'] / 1000:.2f} s (gateway latency)",
            f"{slow['wall_over_latency']:.2f}x",
        )
        add(
            "Slow gateway",
            "p50 / p99 latency",
            f"{s['p50_ms']:,.0f} / {s['p99_ms']:,.0f} ms",
            "",
            "",
        )
        add(
            "Slow gateway",
            "service CPU per payment",
            _ms(s.get("server_cpu_ms_per_request")),
            "",
            "",
        )
        add("Slow gateway", "errors", str(slow["errors"]), "0 required", "")
    memory = figures.get("memory")
    if memory:
        add(
            "Memory",
            "service RSS, peak (VmHWM) vs idle after start-up",
            f"{memory['peak_mib']:.1f} MiB",
            f"{memory['idle_mib']:.1f} MiB",
            f"{memory['ratio']:.2f}x",
        )
    return rows


# --- rendering -----------------------------------------------------------------------------


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


TARGET_HEADER = ["Target", "Goal", "Before", "After", "Change", "Meaning"]
REFERENCE_HEADER = ["Figure", "Before", "After", "Change", "Meaning"]
DETAIL_HEADER = ["Phase", "Measure", "Service", "Baseline", "Ratio / added"]
AUTHORIZE_HEADER = [
    "Measure",
    "Direct client",
    "Design floor",
    "Service",
    "Service, 2 workers",
]


def authorize_rows(run: Run) -> list[list[str]]:
    """The authorize phase's four servers side by side: what each did with the same load."""
    auth = run["figures"].get("authorize")
    if not auth:
        return []
    two = auth.get("two_workers", {})
    columns = [auth.get("baseline"), auth.get("floor"), auth.get("service"), two.get("service")]

    def row(measure: str, cell: Callable[[Mapping[str, Any]], str]) -> list[str]:
        return [measure, *(cell(column) if column else "-" for column in columns)]

    def latency(q: str) -> list[str]:
        return row(f"{q} latency", lambda c: f"{c[q + '_ms']:,.1f} ms")

    first = next(column for column in columns if column)
    return [
        row(
            f"sales/s ({first['requests']:,} at concurrency {first['concurrency']})",
            lambda c: f"{c['throughput_per_second']:,.1f}",
        ),
        *(latency(q) for q in ("p50", "p90", "p99")),
        row(
            "server CPU per sale (direct: the sandbox's; 2 workers: summed)",
            lambda c: _ms(c.get("server_cpu_ms_per_request")),
        ),
        row("errors", lambda c: str(c["errors"])),
    ]


def console_report(run: Run, kept: Mapping[str, Run | None]) -> str:
    return "\n\n".join(
        [
            text_table(AUTHORIZE_HEADER, authorize_rows(run)),
            text_table(DETAIL_HEADER, detail_rows(run)),
            text_table(TARGET_HEADER[:5], [row[:5] for row in target_rows(kept)]),
            text_table(REFERENCE_HEADER[:4], [row[:4] for row in reference_rows(kept)]),
        ]
    )


def _machine_line(run: Run) -> str:
    m = run["machine"]
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['ram']} RAM, {m['os']}; Python {m['python']}; "
        f"PostgreSQL {m['postgresql']}; {m['date']}; commit {m['commit']}; "
        f"load average {m.get('load_average_at_start', '?')} at start"
        f"{_during(m)}; "
        f"harness wall time {run['total_seconds']:.0f} s"
    )


def _during(machine: Mapping[str, str]) -> str:
    during = machine.get("load_average_during")
    return f" (then, as each step began: {during})" if during else ""


def _settings_table(run: Run) -> str:
    rows = [[f"`{name}`", f"`{value}`", why] for name, (value, why) in run["settings"].items()]
    return markdown_table(["Variable", "Value", "Why"], rows)


def render_markdown(kept: Mapping[str, Run | None], describe: Callable[[Run], str]) -> str:
    before, after = kept.get("before"), kept.get("after")
    latest = after or before
    assert latest is not None  # noqa: S101 (keep() always stores a run)
    parts = [
        "# Benchmarks",
        "",
        "_Written by `make bench` (`python -m bench`); do not edit by hand. Figures kept in "
        "`bench/results.json`: the first run is pinned as **before**, every later run is "
        "**after** (`python -m bench --as-before` pins a new before)._",
        "",
        "Each figure is a ratio against a baseline measured in the same run, on the same "
        "machine, so runs on different machines stay comparable; absolute numbers are below.",
        "",
        "## Targets (issue 14)",
        "",
        "Each target's verdict is PASS or FAIL for that run; every figure of a run comes from "
        "that one run, its baselines included.",
        "",
        markdown_table(TARGET_HEADER, target_rows(kept)),
        "",
        "## Reference figures",
        "",
        markdown_table(REFERENCE_HEADER, reference_rows(kept)),
        "",
        "Machines:",
        "",
        f"- **before**: {_machine_line(before)}" if before else "- **before**: -",
        f"- **after**: {_machine_line(after)}" if after else "- **after**: not run yet",
        "",
    ]
    for label, run in (("after", after), ("before", before)):
        if run is None:
            continue
        parts += [f"## Absolute figures ({label})", ""]
        if authorize_rows(run):
            parts += [markdown_table(AUTHORIZE_HEADER, authorize_rows(run)), ""]
        parts += [markdown_table(DETAIL_HEADER, detail_rows(run)), ""]
    if FINDINGS_PATH.exists():
        parts += [FINDINGS_PATH.read_text(encoding="utf-8").strip(), ""]
    parts += [describe(latest), "", "## Service settings used", "", _settings_table(latest), ""]
    return "\n".join(parts)


def write_doc(kept: Mapping[str, Run | None], describe: Callable[[Run], str]) -> Path:
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(render_markdown(kept, describe), encoding="utf-8")
    return DOC_PATH


_STARTED = time.monotonic()


def say(text: str = "", *, stamp: bool = True) -> None:
    """Progress and results on stdout (the harness is a command-line tool); `stamp` prefixes
    the seconds since the harness started."""
    prefix = f"[{time.monotonic() - _STARTED:6.1f} s] " if stamp else ""
    sys.stdout.write(prefix + text + "\n")
    sys.stdout.flush()
