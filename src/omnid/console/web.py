"""The console's routes on a worker's aiohttp app: the page itself (static files shipped with the
package, under a Content-Security-Policy that lets the page talk to its own origin only) and the
operations API the Operate screen reads (this worker, and every worker of the group, collected
server-side so the browser never talks to another origin)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry

from omnid.api_auth import ApiTokens, public
from omnid.console.operations import CounterHistory, registry_samples, sample_into, summarise
from omnid.identity.rules import IdentityRules
from omnid.pipeline.runtime import Worker

STATIC = resources.files("omnid.console") / "static"
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
# Nothing from anywhere but this origin: no CDN, font or analytics request can leave the page,
# and no inline script runs (trait values are customer data and are only ever set as text).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
SAMPLE_EVERY_S = 5.0
PEER_TIMEOUT_S = 5.0


def _static_file(name: str) -> web.Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    resource = STATIC / name
    if suffix not in CONTENT_TYPES or "/" in name or not resource.is_file():
        raise web.HTTPNotFound()
    return web.Response(
        body=resource.read_bytes(),
        content_type=CONTENT_TYPES[suffix],
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


def add_console_routes(app: web.Application, rules: IdentityRules, tokens: ApiTokens) -> None:
    """GET /console/ (the page), /console/{file} (its scripts and style), /console/config.json
    (what the page needs to know of the identity rules) and /console/session (the name and
    scopes of the bearer token the page signs in with, so it shows only what the token may do).
    None of them holds personal data; every API the page then calls checks the token itself."""

    @public
    async def index(_request: web.Request) -> web.Response:
        return _static_file("index.html")

    @public
    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/console/")

    @public
    async def static(request: web.Request) -> web.Response:
        return _static_file(request.match_info["name"])

    config = {
        "identifier_types": sorted(
            rules.identifier_types,
            key=lambda name: (-rules.identifier_types[name].priority, name),
        ),
        "channel_priority": dict(rules.channel_priority),
    }

    @public
    async def console_config(_request: web.Request) -> web.Response:
        return web.json_response(config, headers=SECURITY_HEADERS)

    @public  # checks the token itself: any known token may ask what it may do
    async def session(request: web.Request) -> web.Response:
        kind, _, presented = request.headers.get("Authorization", "").partition(" ")
        token = tokens.identify(presented.strip()) if kind.lower() == "bearer" else None
        if token is None:
            return web.json_response(
                {"error": "unauthorized", "detail": "unknown token"},
                status=401,
                headers=SECURITY_HEADERS,
            )
        body = {"name": token.name, "scopes": sorted(scope.value for scope in token.scopes)}
        return web.json_response(body, headers=SECURITY_HEADERS)

    app.router.add_get("/console", redirect)
    app.router.add_get("/console/", index)
    app.router.add_get("/console/config.json", console_config)
    app.router.add_get("/console/session", session)
    app.router.add_get("/console/{name}", static)


def _sum_maps(maps: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    total: Counter[str] = Counter()
    for one in maps:
        for key, value in one.items():
            if value is not None:
                total[key] += value
    return {
        key: round(value, 1) if isinstance(value, float) else value for key, value in total.items()
    }


class OperationsApi:
    """GET /v1/operations/worker (this worker) and GET /v1/operations (every worker of the group,
    each asked for its own /v1/operations/worker)."""

    def __init__(self, worker: Worker, registry: CollectorRegistry = REGISTRY) -> None:
        self.worker = worker
        self.registry = registry
        self.history = CounterHistory()
        self._http: aiohttp.ClientSession | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/operations/worker", self.this_worker)
        app.router.add_get("/v1/operations", self.group)
        app.cleanup_ctx.append(self._sampling)

    async def _sampling(self, _app: web.Application) -> AsyncIterator[None]:
        async def sample_forever() -> None:
            while True:
                sample_into(self.history, self.registry)
                await asyncio.sleep(SAMPLE_EVERY_S)

        task = asyncio.create_task(sample_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._http is not None:
            await self._http.close()

    def status(self) -> dict[str, Any]:
        status = self.worker.status
        readiness = self.worker.operations.readiness
        return {
            "name": status.name,
            "url": self.worker.options.web_url,
            "serving": readiness.ready,
            "waiting_for": sorted(readiness.pending),
            "assigned": sorted(f"{t}:{p}" for t, p in status.assigned),
            "ready_partitions": sorted(f"{t}:{p}" for t, p in status.ready),
            "processed": status.processed,
            **summarise(registry_samples(self.registry)),
            "per_minute": self.history.per_minute(),
        }

    @public  # partitions, counters and readiness only: the same as /metrics and /v1/worker
    async def this_worker(self, _request: web.Request) -> web.Response:
        return web.json_response(self.status())

    @public  # what every worker's /v1/operations/worker says
    async def group(self, _request: web.Request) -> web.Response:
        members = self.worker.roster.view().members  # as the roster topic tells it
        own_url = self.worker.options.web_url
        others = [m for m in members if m.url != own_url]
        answers = await asyncio.gather(*(self._peer(m.url) for m in others))
        workers = [self.status()] + [a for a in answers if a is not None]
        unreachable = [
            {"name": m.name, "url": m.url}
            for m, a in zip(others, answers, strict=True)
            if a is None
        ]
        workers.sort(key=lambda w: w["name"])
        return web.json_response(
            {
                "group": self.worker.group,
                "workers": workers,
                "unreachable": unreachable,
                "totals": {
                    "consumer_lag": sum(w["consumer_lag_total"] for w in workers),
                    "active_profiles": sum(w["active_profiles"] for w in workers),
                    "dead_letters_by_reason": _sum_maps(
                        w["dead_letters_by_reason"] for w in workers
                    ),
                    "merges_refused_by_reason": _sum_maps(
                        w["merges_refused_by_reason"] for w in workers
                    ),
                    "per_minute": _sum_maps(w["per_minute"] for w in workers),
                },
            }
        )

    async def _peer(self, url: str) -> dict[str, Any] | None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT_S))
        try:
            async with self._http.get(f"{url}/v1/operations/worker") as response:
                if response.status != 200:
                    return None
                body: dict[str, Any] = await response.json()
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
