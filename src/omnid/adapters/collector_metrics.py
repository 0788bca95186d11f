"""The collector's Prometheus metrics, beside the collector that records them; exposed through
the one path every process uses (`observability.metrics.render`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from functools import cache

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from omnid.errors import RequestProblem
from omnid.observability.metrics import (
    CHANNELS,
    LATENCY_BUCKETS,
    OTHER,
    REJECTION_REASONS,
    bounded,
    build_info,
    channel_label,
    label_values,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Endpoint(StrEnum):
    """Collector routes as metric labels (the route, never the raw path)."""

    IDENTIFY = "/v1/identify"
    TRACK = "/v1/track"
    PAGE = "/v1/page"
    SCREEN = "/v1/screen"
    ALIAS = "/v1/alias"
    GROUP = "/v1/group"
    BATCH = "/v1/batch"
    IMPORT = "/v1/import"
    EMAIL_WEBHOOK = "/v1/webhooks/email"
    METRICS = "/metrics"
    HEALTHZ = "/healthz"
    READYZ = "/readyz"
    OPENAPI = "/openapi.json"


ENDPOINTS = label_values(Endpoint)
REQUEST_PROBLEMS = label_values(RequestProblem)


class CollectorMetrics:
    """The collector's metric objects."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "omnid_collector_requests_total",
            "HTTP requests the collector answered, by route and status code.",
            ["endpoint", "status"],
            registry=registry,
        )
        self.events_accepted = Counter(
            "omnid_collector_events_accepted_total",
            "Events the collector confirmed written to Kafka, by channel.",
            ["channel"],
            registry=registry,
        )
        self.requests_rejected = Counter(
            "omnid_collector_requests_rejected_total",
            "Requests refused with a 4xx, by reason (nothing of them was published).",
            ["reason"],
            registry=registry,
        )
        self.delivery_failures = Counter(
            "omnid_collector_delivery_failures_total",
            "Requests answered 503 because Kafka did not acknowledge their events.",
            registry=registry,
        )
        self.request_duration = Histogram(
            "omnid_collector_request_duration_seconds",
            "Time the collector took to answer a request, by route.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        for channel in CHANNELS:
            self.events_accepted.labels(channel=channel)
        for reason in REJECTION_REASONS | REQUEST_PROBLEMS:
            self.requests_rejected.labels(reason=reason)

    def record_request(self, route: str, status: int, seconds: float) -> None:
        endpoint = endpoint_label(route)
        code = str(status) if 100 <= status <= 599 else OTHER
        self.requests.labels(endpoint=endpoint, status=code).inc()
        self.request_duration.labels(endpoint=endpoint).observe(seconds)

    def record_events_accepted(self, channel: str, count: int = 1) -> None:
        self.events_accepted.labels(channel=channel_label(channel)).inc(count)

    def record_request_rejected(self, reason: str) -> None:
        label = bounded(str(reason), REJECTION_REASONS | REQUEST_PROBLEMS)
        self.requests_rejected.labels(reason=label).inc()


@cache
def collector_metrics() -> CollectorMetrics:
    """The collector metrics of this process; a collector never exposes worker series."""
    build_info()
    return CollectorMetrics(REGISTRY)


def endpoint_label(route: str) -> str:
    return bounded(route, ENDPOINTS)


def _route_of(request: web.Request) -> str:
    # The route template, never the raw path, so labels stay bounded.
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else OTHER


@web.middleware
async def collector_metrics_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Counts every collector request by route and status and times it (errors included)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    finally:
        collector_metrics().record_request(
            _route_of(request), status, time.perf_counter() - started
        )
