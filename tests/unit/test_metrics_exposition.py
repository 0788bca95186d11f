"""Operations over HTTP: a real scrape passes `promtool check metrics`; probes answer right."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from omnid.adapters import collector_metrics
from omnid.adapters.collector_metrics import collector_metrics_middleware
from omnid.observability import metrics
from omnid.observability.health import Readiness
from omnid.observability.http import add_operations_routes
from omnid.pipeline.worker_metrics import worker_metrics


@dataclass
class RunningServer:
    base_url: str

    def get(self, path: str) -> tuple[int, str, str]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=10) as response:
                content_type = response.headers.get("Content-Type", "")
                return response.status, content_type, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def serve_in_thread(build: Callable[[], web.Application]) -> Iterator[RunningServer]:
    """Runs an aiohttp app on an ephemeral localhost port in its own event loop thread."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, object] = {}

    async def start() -> None:
        runner = web.AppRunner(build(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as error:
            state["error"] = error
            raise
        finally:
            started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "operations server did not start"
    if "error" in state:
        raise AssertionError("operations server failed to start") from state["error"]  # type: ignore[arg-type]
    try:
        yield RunningServer(f"http://127.0.0.1:{state['port']}")
    finally:
        runner = state["runner"]
        assert isinstance(runner, web.AppRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def readiness() -> Readiness:
    return Readiness(pending={"tables_recovered"})


@pytest.fixture
def server(readiness: Readiness) -> Iterator[RunningServer]:
    """A collector-shaped app: operations routes, one ingest route, the request middleware."""

    async def track(_request: web.Request) -> web.Response:
        collector_metrics.collector_metrics().record_events_accepted("web")
        return web.json_response({"success": True})

    def build() -> web.Application:
        worker_metrics()
        collector_metrics.collector_metrics()
        app = web.Application(middlewares=[collector_metrics_middleware])
        app.router.add_post("/v1/track", track)
        add_operations_routes(app, readiness)
        return app

    yield from serve_in_thread(build)


def test_scrape_of_every_metric_passes_promtool_check_metrics(
    server: RunningServer, promtool: str
) -> None:
    request = urllib.request.Request(server.base_url + "/v1/track", data=b"{}", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    worker = worker_metrics()
    worker.stages.record_event_ingested("pos")
    worker.stages.record_profile_update(2, received_at_ms=[0])
    worker.runtime.set_consumer_lag("omnid.events.pos", 0, 3)

    status, content_type, body = server.get("/metrics")

    assert status == 200
    assert content_type.startswith("text/plain; version=")
    for family in ("omnid_events_ingested_total", "omnid_collector_requests_total", "process_"):
        assert family in body
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_requests_are_counted_by_route_and_status(server: RunningServer) -> None:
    def count(endpoint: str, status: str) -> float:
        value = metrics.REGISTRY.get_sample_value(
            "omnid_collector_requests_total", {"endpoint": endpoint, "status": status}
        )
        return value or 0.0

    before_ok, before_missing = count("/v1/track", "200"), count("other", "404")
    request = urllib.request.Request(server.base_url + "/v1/track", data=b"{}", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    assert server.get("/v1/nothing/ann@example.com")[0] == 404

    assert count("/v1/track", "200") == before_ok + 1
    assert count("other", "404") == before_missing + 1
    assert "ann@example.com" not in server.get("/metrics")[2]


def test_readyz_refuses_traffic_until_tables_are_recovered(
    server: RunningServer, readiness: Readiness
) -> None:
    status, _, body = server.get("/readyz")
    assert status == 503
    assert json.loads(body) == {"status": "not_ready", "waiting_for": ["tables_recovered"]}
    assert server.get("/healthz")[0] == 200  # alive while not ready: no restart loop

    readiness.satisfied("tables_recovered")
    assert server.get("/readyz")[0] == 200

    readiness.wait_for("tables_recovered")  # a rebalance starts
    assert server.get("/readyz")[0] == 503
