"""A worker's metrics: each component's own, on one registry (the process default in
production, which `observability.metrics.render` exposes on /metrics)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry

from omnid.observability.metrics import build_info
from omnid.pipeline.lookup_metrics import LookupMetrics, lookup_metrics
from omnid.pipeline.runtime_metrics import RuntimeMetrics, runtime_metrics
from omnid.pipeline.stage_metrics import StageMetrics, stage_metrics
from omnid.pipeline.state_metrics import StateMetrics, state_metrics


@dataclass(frozen=True)
class WorkerMetrics:
    registry: CollectorRegistry
    stages: StageMetrics
    runtime: RuntimeMetrics
    state: StateMetrics
    lookup: LookupMetrics

    @classmethod
    def on(cls, registry: CollectorRegistry, identifier_types: Iterable[str] = ()) -> WorkerMetrics:
        """Every component's metrics, registered on `registry` (a test's own, for one), with
        the rules' `identifier_types` as label values."""
        return cls(
            registry,
            StageMetrics(registry, identifier_types),
            RuntimeMetrics(registry),
            StateMetrics(registry),
            LookupMetrics(registry),
        )


def worker_metrics() -> WorkerMetrics:
    """The worker metrics of this process; call it at start-up so /metrics shows every series
    from then on (each component registers on first use)."""
    build_info()
    return WorkerMetrics(
        REGISTRY, stage_metrics(), runtime_metrics(), state_metrics(), lookup_metrics()
    )
