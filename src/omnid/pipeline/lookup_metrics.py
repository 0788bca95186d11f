"""The lookup API's metrics: requests turned away by the rate limit, answers that may be stale."""

from __future__ import annotations

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter


class LookupMetrics:
    """The lookup API's metric objects, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.rate_limited = Counter(
            "omnid_lookups_rate_limited_total",
            "Lookup API requests answered 429 because their client was over its rate.",
            registry=registry,
        )
        self.stale = Counter(
            "omnid_lookups_stale_total",
            "Lookups answered from a local copy that may be behind (marked stale: true).",
            registry=registry,
        )


@cache
def lookup_metrics() -> LookupMetrics:
    """This process's lookup metrics, on the registry `observability.metrics.render` exposes."""
    return LookupMetrics(REGISTRY)
