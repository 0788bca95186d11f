"""aiohttp routes for /metrics, /healthz and /readyz."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry

from omnid.api_auth import public
from omnid.observability.health import HealthReport, Readiness
from omnid.observability.metrics import render


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
