"""The benchmark's files: the results JSON round-trips and the chart is a real PNG."""

from __future__ import annotations

import json
from pathlib import Path

from omnid.benchmarks.report import write_chart, write_json


def _phase(offered: float | None, samples: list[float], achieved: float) -> dict:
    ordered = sorted(samples)
    return {
        "phase": f"offered-{offered}" if offered else "saturation",
        "offered_events_per_s": offered,
        "achieved_events_per_s": achieved,
        "latency": {"p50_ms": ordered[len(ordered) // 2], "p99_ms": ordered[-1]},
        "latencies_ms": ordered,
    }


def test_chart_is_written_as_a_png_with_latencies_and_ceilings(tmp_path: Path) -> None:
    phases = [
        _phase(100.0, [5.0, 7.0, 9.0, 40.0], 99.0),
        _phase(1000.0, [8.0, 12.0, 30.0, 120.0], 950.0),
        _phase(None, [200.0, 900.0, 1500.0], 1200.0),
    ]
    path = tmp_path / "chart.png"
    # More ceilings than line styles: `make bench` failed here once quix-streams made five.
    ceilings = {f"peer {n}": 1_000.0 * (n + 1) for n in range(7)} | {"none": None}
    write_chart(path, phases, ceilings, "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_results_json_keeps_numbers_and_nested_sections(tmp_path: Path) -> None:
    path = tmp_path / "results" / "run.json"
    write_json(path, {"headline": {"events/s": 1234.5}, "phases": [{"p99_ms": 12.0}]})
    assert json.loads(path.read_text()) == {
        "headline": {"events/s": 1234.5},
        "phases": [{"p99_ms": 12.0}],
    }
