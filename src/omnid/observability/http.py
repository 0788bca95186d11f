"""aiohttp routes for /metrics, /healthz and /readyz, and the collector's request metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry

from omnid.api_auth import public
from omnid.observability.health import HealthReport, Readiness
from omnid.observability.metrics import OTHER, record_collector_request, render

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(report: HealthReport) -> web.Response:
    return web.json_response(report.body, status=report.status)


def add_operations_routes(
    app: web.Application, readiness: Readiness, registry: CollectorRegistry = REGISTRY
) -> None:
    """Adds GET /metrics, /healthz and /readyz to an aiohttp application, open to anyone: they
    hold no personal data, and Prometheus and Kubernetes probes carry no token."""

    @public
    async def metrics(_request: web.Request) -> web.Response:
        body, content_type = render(registry)
        # Set verbatim: aiohttp's content_type= argument would drop the format `version` parameter.
        return web.Response(body=body, headers={"Content-Type": content_type})

    @public
    async def healthz(_request: web.Request) -> web.Response:
        return _json(readiness.healthz())

    @public
    async def readyz(_request: web.Request) -> web.Response:
        return _json(readiness.readyz())

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


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
        record_collector_request(_route_of(request), status, time.perf_counter() - started)
