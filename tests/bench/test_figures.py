"""The benchmark's verdicts: each target's limit, its direction, and the same-run ratios."""

from typing import Any

from bench.figures import TARGETS, Figure, Target, authorize_ratios, target_rows


def _run(**figures: Any) -> dict[str, Any]:
    return {"figures": figures}


def _target(label_start: str) -> Target:
    return next(target for target in TARGETS if target.figure.label.startswith(label_start))


def _load(throughput: float, p50: float, p99: float, cpu: float | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = {"throughput_per_second": throughput, "p50_ms": p50, "p99_ms": p99}
    if cpu is not None:
        summary["server_cpu_ms_per_request"] = cpu
    return summary


class TestTarget:
    def test_lower_is_better_passes_at_the_limit_and_fails_above(self) -> None:
        cpu = _target("Authorize: service CPU per sale / design floor")
        assert cpu.verdict(_run(authorize={"cpu_vs_floor": 2.5})) == "PASS"
        assert cpu.verdict(_run(authorize={"cpu_vs_floor": 2.51})) == "FAIL"

    def test_higher_is_better_fails_below_the_limit(self) -> None:
        rate = _target("Authorize: sales/s, service / direct")
        assert rate.verdict(_run(authorize={"throughput_ratio": 0.3})) == "PASS"
        assert rate.verdict(_run(authorize={"throughput_ratio": 0.29})) == "FAIL"

    def test_any_slow_gateway_error_fails(self) -> None:
        errors = _target("Slow gateway: errors")
        assert errors.verdict(_run(slow_gateway={"errors": 0})) == "PASS"
        assert errors.verdict(_run(slow_gateway={"errors": 1})) == "FAIL"

    def test_a_figure_the_run_lacks_has_no_verdict(self) -> None:
        memory = _target("Memory")
        assert memory.verdict(_run()) == "-"
        assert memory.verdict(None) == "-"

    def test_goal_shows_direction_and_limit(self) -> None:
        figure = Figure("p50", ("a",), "ms", "lower", "")
        assert Target(figure, 200).goal() == "≤ 200.0 ms"
        assert _target("Webhook intake: stored").goal() == "≥ 0.60x"

    def test_the_issue_targets_are_all_judged(self) -> None:
        limits = {target.figure.path: target.limit for target in TARGETS}
        assert limits == {
            ("authorize", "cpu_vs_floor"): 2.5,
            ("authorize", "throughput_ratio"): 0.3,
            ("authorize", "added_p50_ms"): 200,
            ("slow_gateway", "wall_over_latency"): 6,
            ("slow_gateway", "errors"): 0,
            ("webhook", "cpu_ratio"): 2.5,
            ("webhook", "throughput_ratio"): 0.6,
            ("webhook", "light", "service", "p99_ms"): 50,
            ("memory", "ratio"): 1.3,
        }


class TestAuthorizeRatios:
    def test_service_against_the_direct_client_and_the_floor(self) -> None:
        direct = _load(1000.0, 60.0, 120.0, cpu=0.5)
        floor = _load(500.0, 110.0, 200.0, cpu=1.4)
        service = _load(100.0, 660.0, 900.0, cpu=14.0)
        assert authorize_ratios(direct, service, floor) == {
            "throughput_ratio": 0.1,
            "added_p50_ms": 600.0,
            "added_p99_ms": 780.0,
            "cpu_vs_floor": 10.0,
            "floor_throughput_ratio": 0.5,
            "floor_added_p50_ms": 50.0,
        }

    def test_without_a_floor_only_the_direct_comparisons(self) -> None:
        ratios = authorize_ratios(_load(1000.0, 60.0, 120.0), _load(300.0, 100.0, 150.0), None)
        assert set(ratios) == {"throughput_ratio", "added_p50_ms", "added_p99_ms"}
        assert ratios["throughput_ratio"] == 0.3

    def test_unmetered_cpu_gives_no_ratio(self) -> None:
        ratios = authorize_ratios(
            _load(1000.0, 60.0, 120.0), _load(300.0, 100.0, 150.0, cpu=3.0), _load(1.0, 1.0, 1.0)
        )
        assert ratios["cpu_vs_floor"] is None


class TestTargetRows:
    def test_before_and_after_each_carry_their_verdict(self) -> None:
        before = _run(memory={"ratio": 1.45})
        after = _run(memory={"ratio": 1.2})
        row = next(r for r in target_rows({"before": before, "after": after}) if "Memory" in r[0])
        assert row[1:5] == ["≤ 1.30x", "1.45x FAIL", "1.20x PASS", "-17% (better)"]
