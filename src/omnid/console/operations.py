"""What the console's Operate screen shows of one worker, read from its own metrics registry:
readiness, consumer lag, dead letters by reason, merges and refusals (totals since the worker
started, and per minute over the last minute)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Metric

# The counters whose rate the console shows, by the name it shows them under.
RATE_COUNTERS = {
    "events": "omnid_events_ingested_total",
    "merges": "omnid_merges_total",
    "refusals": "omnid_merges_refused_total",
    "dead_letters": "omnid_dead_letters_total",
}
RATE_WINDOW_S = 60.0


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def samples(families: Iterable[Metric]) -> list[Sample]:
    """Every sample of the registry's metric families (counters by their `_total` name)."""
    return [Sample(s.name, s.labels, s.value) for family in families for s in family.samples]


def _by_label(found: Iterable[Sample], name: str, label: str) -> dict[str, int]:
    return {s.labels[label]: int(s.value) for s in found if s.name == name and label in s.labels}


def _total(found: Iterable[Sample], name: str) -> int:
    return int(sum(s.value for s in found if s.name == name))


def counter_totals(found: Iterable[Sample]) -> dict[str, int]:
    found = list(found)
    return {shown: _total(found, name) for shown, name in RATE_COUNTERS.items()}


def summarise(found: Iterable[Sample]) -> dict[str, Any]:
    """The metrics part of a worker's operations status (no personal data: labels are closed
    sets — reasons, topics, partitions — by construction of the metrics module)."""
    found = list(found)
    lag = [
        {"topic": s.labels["topic"], "partition": int(s.labels["partition"]), "lag": int(s.value)}
        for s in found
        if s.name == "omnid_consumer_lag_messages"
    ]
    return {
        "active_profiles": _total(found, "omnid_active_profiles"),
        "consumer_lag": sorted(lag, key=lambda p: (p["topic"], p["partition"])),
        "consumer_lag_total": sum(p["lag"] for p in lag),
        "dead_letters_by_reason": _by_label(found, "omnid_dead_letters_total", "reason"),
        "merges_refused_by_reason": _by_label(found, "omnid_merges_refused_total", "reason"),
        "totals": counter_totals(found),
        "rebalances": _total(found, "omnid_rebalances_total"),
    }


class CounterHistory:
    """Recent (time, totals) samples of the rate counters, enough for a per-minute rate."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, dict[str, int]]] = deque()

    def add(self, at: float, totals: Mapping[str, int]) -> None:
        self._samples.append((at, dict(totals)))
        # Keep one sample at or before the window's start, so a full minute is covered.
        while len(self._samples) > 2 and self._samples[1][0] <= at - self.window_s:
            self._samples.popleft()

    def per_minute(self) -> dict[str, float | None]:
        """Increase per minute between the oldest kept sample and the newest; None until two
        samples exist. A counter that went down (a restarted process) counts from zero."""
        if len(self._samples) < 2:
            return dict.fromkeys(RATE_COUNTERS)
        (start, first), (end, last) = self._samples[0], self._samples[-1]
        elapsed = end - start
        rates: dict[str, float | None] = {}
        for name in RATE_COUNTERS:
            before, now = first.get(name, 0), last.get(name, 0)
            increase = now - before if now >= before else now
            rates[name] = round(increase * 60.0 / elapsed, 1) if elapsed > 0 else None
        return rates


def registry_samples(registry: CollectorRegistry) -> list[Sample]:
    return samples(registry.collect())


def sample_into(history: CounterHistory, registry: CollectorRegistry) -> None:
    history.add(time.monotonic(), counter_totals(registry_samples(registry)))
