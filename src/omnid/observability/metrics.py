"""What every process's metrics share, and the one exposition path (`render`).

Each component defines its own metrics beside the code that records them — the worker's stages
(`pipeline/stage_metrics.py`), runtime (`pipeline/runtime_metrics.py`), state
(`pipeline/state_metrics.py`) and lookup API (`pipeline/lookup_metrics.py`), composed into one
worker registry by `pipeline/worker_metrics.py`; the collector's in `adapters/collector_metrics.py`.
All register on the process's default registry, which `render` exposes.

Label values come only from closed sets (channels, rejection reasons, stages, our own topics and
their partitions), derived from the enums that own them; anything outside a set is recorded as
`other`, so a bug or hostile input can never create an unbounded number of series, and no
identifier value ever becomes a label.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Info, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from omnid.contracts.channel_event import Channel
from omnid.errors import RejectionReason

OTHER = "other"

# `_created` timestamps double the series count and no dashboard or alert of ours reads them.
disable_created_metrics()

# Latency buckets span one stream hop (milliseconds) to a worker catching up after a restart.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def label_values(enum: Iterable[StrEnum]) -> frozenset[str]:
    return frozenset(member.value for member in enum)


CHANNELS = label_values(Channel)
REJECTION_REASONS = label_values(RejectionReason)


def bounded(value: str, allowed: frozenset[str]) -> str:
    """`value` if it is one of the label values `allowed`, else `other`."""
    return value if value in allowed else OTHER


def channel_label(channel: str) -> str:
    return bounded(str(channel), CHANNELS)


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("omnid")
    except PackageNotFoundError:
        return "unknown"


@cache
def build_info() -> None:
    Info("omnid_build", "omnid version running in this process.", registry=REGISTRY).info(
        {"version": _installed_version()}
    )


def render(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The text exposition body and its content type, for any HTTP framework."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
