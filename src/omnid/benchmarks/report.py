"""Writes a benchmark run: the results JSON, the chart, and the summary printed to the terminal."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: the benchmark runs on machines without a display

import matplotlib.pyplot as plt

LATENCY_TARGET_MS = 100.0


def write_json(path: Path, results: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")


def _cdf(samples: Sequence[float]) -> tuple[list[float], list[float]]:
    ordered = sorted(samples)
    count = len(ordered)
    return ordered, [(index + 1) / count * 100 for index in range(count)]


def write_chart(
    path: Path,
    phases: Sequence[Mapping[str, Any]],
    ceilings: Mapping[str, float | None],
    title: str,
) -> None:
    """Left: latency CDF per phase. Right: achieved vs offered load, with the ceilings."""
    figure, (latency_axis, rate_axis) = plt.subplots(1, 2, figsize=(13, 5.2))
    for phase in phases:
        samples = phase.get("latencies_ms") or []
        if not samples:
            continue
        xs, ys = _cdf(samples)
        p99 = phase["latency"]["p99_ms"]
        label = f"{_phase_label(phase)}: p50 {phase['latency']['p50_ms']:.0f} ms, p99 {p99:.0f} ms"
        latency_axis.plot(xs, ys, label=label, linewidth=1.6)
    latency_axis.axvline(LATENCY_TARGET_MS, color="grey", linestyle=":", linewidth=1)
    latency_axis.text(LATENCY_TARGET_MS, 3, " 100 ms target", color="grey", fontsize=8)
    latency_axis.set_xscale("log")
    latency_axis.set_xlabel("end-to-end latency, event produced -> profile update read (ms)")
    latency_axis.set_ylabel("events at or below (%)")
    latency_axis.set_ylim(0, 101)
    latency_axis.set_title("Latency distribution per offered load")
    latency_axis.grid(True, which="both", alpha=0.3)
    latency_axis.legend(fontsize=8, loc="lower right")

    offered = [p for p in phases if p.get("offered_events_per_s") and p["achieved_events_per_s"]]
    if offered:
        xs = [p["offered_events_per_s"] for p in offered]
        ys = [p["achieved_events_per_s"] for p in offered]
        rate_axis.plot(xs, ys, "o-", color="tab:blue", label="omnid, paced load")
        low, high = min(xs) / 2, max(xs) * 4
        rate_axis.plot([low, high], [low, high], ":", color="grey", label="achieved = offered")
    # Cycled: the number of ceilings grows with the peers measured (five since quix-streams).
    styles = itertools.cycle(["--", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1))])
    colours = itertools.cycle(["tab:red", "tab:orange", "tab:green", "tab:purple", "tab:brown"])
    for name, value in ceilings.items():
        if value:
            rate_axis.axhline(
                value,
                linestyle=next(styles),
                color=next(colours),
                label=f"{name}: {value:,.0f} ev/s",
            )
    rate_axis.set_xscale("log")
    rate_axis.set_yscale("log")
    rate_axis.set_xlabel("offered load (events/s)")
    rate_axis.set_ylabel("achieved throughput (events/s)")
    rate_axis.set_title("Throughput vs offered load, and ceilings")
    rate_axis.grid(True, which="both", alpha=0.3)
    rate_axis.legend(fontsize=8, loc="upper left")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _phase_label(phase: Mapping[str, Any]) -> str:
    offered = phase.get("offered_events_per_s")
    return f"{offered:,.0f} ev/s offered" if offered else "saturation (burst)"


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    """The handful of numbers a reader wants first, as plain lines."""
    lines = [f"omnid bench {results['run_id']}  ({results['command']})"]
    workload = results["workload"]
    lines.append(
        f"workload: {workload['events']:,} events, {workload['customers']:,} customers, "
        f"seed {workload['seed']}"
    )
    batch = results.get("batch")
    if batch:
        lines.append(
            f"batch components: scipy {batch['scipy']['seconds']:.3f}s, union-find "
            f"{batch['union_find']['seconds']:.3f}s, same grouping: {batch['same_grouping']}"
        )
    for name, value in results.get("headline", {}).items():
        lines.append(f"{name}: {_fmt(value)}")
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)
