"""Summaries of measured samples: latency percentiles and rates, the same way for every system."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(sorted_samples: Sequence[float], point: float) -> float:
    """Nearest-rank percentile of already sorted samples: a value that was really observed."""
    if not sorted_samples:
        raise ValueError("no samples")
    if not 0 < point <= 100:
        raise ValueError("percentile point must be in (0, 100]")
    rank = math.ceil(point / 100 * len(sorted_samples))
    return float(sorted_samples[rank - 1])


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles in milliseconds over `count` samples."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise_latencies(samples_ms: Sequence[float]) -> LatencySummary | None:
    """None when nothing was measured, so a report never shows an invented zero."""
    if not samples_ms:
        return None
    ordered = sorted(samples_ms)
    return LatencySummary(
        count=len(ordered),
        p50_ms=percentile(ordered, 50),
        p95_ms=percentile(ordered, 95),
        p99_ms=percentile(ordered, 99),
        max_ms=float(ordered[-1]),
        mean_ms=sum(ordered) / len(ordered),
    )


def rate(count: int, seconds: float) -> float | None:
    """Events per second; None when no time elapsed (one event, or nothing measured)."""
    return count / seconds if seconds > 0 else None


def ratio(part: float | None, whole: float | None) -> float | None:
    return part / whole if part is not None and whole else None
