"""What a run is judged by: issue 14's targets, each with its limit, and the figures reported
beside them for reference. Pure functions of the kept results (bench/results.json)."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Run = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Figure:
    label: str
    path: tuple[str, ...]
    unit: str
    better: str  # "higher" or "lower": which way an optimisation should move it
    explain: str

    def value(self, run: Run | None) -> float | None:
        node: Any = run["figures"] if run else None
        for key in self.path:
            if not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        return float(node) if isinstance(node, int | float) else None


@dataclass(frozen=True, slots=True)
class Target:
    figure: Figure
    limit: float
    """At most `limit` when lower is better, at least `limit` when higher is."""

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value <= self.limit if self.figure.better == "lower" else value >= self.limit

    def goal(self) -> str:
        sign = "≤" if self.figure.better == "lower" else "≥"
        return f"{sign} {number(self.limit, self.figure.unit).lstrip('+')}"

    def verdict(self, run: Run | None) -> str:
        met = self.met(self.figure.value(run))
        return "-" if met is None else ("PASS" if met else "FAIL")


TARGETS = (
    Target(
        Figure(
            "Authorize: service CPU per sale / design floor's",
            ("authorize", "cpu_vs_floor"),
            "x",
            "lower",
            "CPU time of the server processes per sale, both measured in the same run",
        ),
        2.5,
    ),
    Target(
        Figure(
            "Authorize: sales/s, service / direct client",
            ("authorize", "throughput_ratio"),
            "x",
            "higher",
            "sales at concurrency 64, sandbox at 50 ms; 1.00: the service costs nothing",
        ),
        0.3,
    ),
    Target(
        Figure(
            "Authorize: added p50 latency",
            ("authorize", "added_p50_ms"),
            "ms",
            "lower",
            "service p50 minus direct-client p50",
        ),
        200,
    ),
    Target(
        Figure(
            "Slow gateway: wall time / gateway latency",
            ("slow_gateway", "wall_over_latency"),
            "x",
            "lower",
            "1,000 concurrent payments, 500 ms each at the gateway; 1.00 is ideal",
        ),
        6,
    ),
    Target(
        Figure(
            "Slow gateway: errors (non-200 answers)",
            ("slow_gateway", "errors"),
            "",
            "lower",
            "the run fails otherwise",
        ),
        0,
    ),
    Target(
        Figure(
            "Webhook intake: service CPU per stored event / bare insert's",
            ("webhook", "cpu_ratio"),
            "x",
            "lower",
            "server process CPU time per stored event",
        ),
        2.5,
    ),
    Target(
        Figure(
            "Webhook intake: stored events/s, service / bare insert",
            ("webhook", "throughput_ratio"),
            "x",
            "higher",
            "1.00 would mean intake costs no more than one INSERT",
        ),
        0.6,
    ),
    Target(
        Figure(
            "Webhook intake at concurrency 4: p99",
            ("webhook", "light", "service", "p99_ms"),
            "latency-ms",
            "lower",
            "what one delivery waits for at NetValve's usual pace",
        ),
        50,
    ),
    Target(
        Figure(
            "Memory: peak RSS / idle RSS after start-up",
            ("memory", "ratio"),
            "x",
            "lower",
            "VmHWM of the service process over the whole run",
        ),
        1.3,
    ),
)

REFERENCES = (
    Figure(
        "Authorize: service CPU per sale",
        ("authorize", "service", "server_cpu_ms_per_request"),
        "cpu-ms",
        "lower",
        "CPU time of the service process per sale",
    ),
    Figure(
        "Authorize: design floor CPU per sale",
        ("authorize", "floor", "server_cpu_ms_per_request"),
        "cpu-ms",
        "lower",
        "the least the design needs (bench/floor.py)",
    ),
    Figure(
        "Authorize: sales/s, design floor / direct client",
        ("authorize", "floor_throughput_ratio"),
        "x",
        "higher",
        "what the design itself allows",
    ),
    Figure(
        "Authorize: design floor's added p50",
        ("authorize", "floor_added_p50_ms"),
        "ms",
        "lower",
        "floor p50 minus direct-client p50",
    ),
    Figure(
        "Authorize: added p99 latency",
        ("authorize", "added_p99_ms"),
        "ms",
        "lower",
        "service p99 minus direct-client p99",
    ),
    Figure(
        "Authorize: sales/s with 2 workers / with 1",
        ("authorize", "two_workers", "scaling"),
        "x",
        "higher",
        "`uvicorn --workers 2` on this 2-core machine; 2.00 would be linear",
    ),
    Figure(
        "Authorize: CPU per sale with 2 workers",
        ("authorize", "two_workers", "service", "server_cpu_ms_per_request"),
        "cpu-ms",
        "lower",
        "summed over the supervisor and its workers",
    ),
    Figure(
        "Webhook intake: p99, service / bare insert",
        ("webhook", "p99_ratio"),
        "x",
        "lower",
        "1.00 would mean no added tail latency",
    ),
    Figure(
        "Webhook intake at concurrency 4: p99, service / bare insert",
        ("webhook", "light", "p99_ratio"),
        "x",
        "lower",
        "1.00 would mean no added tail latency at light load",
    ),
)


def number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "ms":
        return f"{value:+.1f} ms"
    if unit in ("cpu-ms", "latency-ms"):
        return f"{value:.2f} ms"
    return f"{value:g}"


def change(before: float | None, after: float | None, better: str) -> str:
    if before is None or after is None:
        return ""
    if before == 0:
        return "same" if after == 0 else "changed"
    delta = (after - before) / abs(before) * 100
    if abs(delta) < 0.5:
        return "same"
    improved = (delta > 0) == (better == "higher")
    return f"{delta:+.0f}% ({'better' if improved else 'worse'})"


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def authorize_ratios(
    direct: Mapping[str, Any], service: Mapping[str, Any], floor: Mapping[str, Any] | None
) -> dict[str, float | None]:
    """The authorize phase's comparisons, from the load summaries of one run."""
    figures: dict[str, float | None] = {
        "throughput_ratio": ratio(
            service["throughput_per_second"], direct["throughput_per_second"]
        ),
        "added_p50_ms": round(service["p50_ms"] - direct["p50_ms"], 2),
        "added_p99_ms": round(service["p99_ms"] - direct["p99_ms"], 2),
    }
    if floor is not None:
        figures.update(
            cpu_vs_floor=ratio(
                service.get("server_cpu_ms_per_request"), floor.get("server_cpu_ms_per_request")
            ),
            floor_throughput_ratio=ratio(
                floor["throughput_per_second"], direct["throughput_per_second"]
            ),
            floor_added_p50_ms=round(floor["p50_ms"] - direct["p50_ms"], 2),
        )
    return figures


def target_rows(kept: Mapping[str, Run | None]) -> list[list[str]]:
    """Each target: its goal, the before and after values with their verdicts, the change."""
    before, after = kept.get("before"), kept.get("after")
    rows = []
    for target in TARGETS:
        figure = target.figure
        old, new = figure.value(before), figure.value(after)
        rows.append(
            [
                figure.label,
                target.goal(),
                _judged(old, figure.unit, target.verdict(before)),
                _judged(new, figure.unit, target.verdict(after)),
                change(old, new, figure.better),
                figure.explain,
            ]
        )
    return rows


def _judged(value: float | None, unit: str, verdict: str) -> str:
    return "-" if value is None else f"{number(value, unit)} {verdict}"


def reference_rows(kept: Mapping[str, Run | None]) -> list[list[str]]:
    before, after = kept.get("before"), kept.get("after")
    rows = []
    for figure in REFERENCES:
        old, new = figure.value(before), figure.value(after)
        rows.append(
            [
                figure.label,
                number(old, figure.unit),
                number(new, figure.unit),
                change(old, new, figure.better),
                figure.explain,
            ]
        )
    return rows
