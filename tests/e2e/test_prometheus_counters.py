"""A real Prometheus server scrapes real omnid processes; PromQL must show counters that moved by
exactly the number of events sent, and each scrape must pass `promtool check metrics`."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from omnid.testing.workers import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

SCRAPE_INTERVAL = "1s"
WRITE_KEY = "dev-web-key"  # streams/write-keys.yaml: channel web


@pytest.fixture(scope="module")
def prometheus_binary(require_tool: Callable[[str, str], str]) -> str:
    return require_tool("prometheus", "Debian package `prometheus`, which .ci/run installs")


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def eventually(check: Callable[[], Any], what: str, deadline_s: float = 90) -> Any:
    """Polls until `check()` returns a truthy value. A bound on waiting, not a timing assertion:
    it only fails when the state is never reached."""
    deadline = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except OSError as error:  # not listening yet
            last = error
        else:
            if result:
                return result
            last = result
        time.sleep(0.5)
    raise AssertionError(f"{what}: never happened (last: {last!r})")


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant vector of /api/v1/query as [{"metric": {...}, "value": [ts, "v"]}]."""
        params = urllib.parse.urlencode({"query": promql})
        status, body = http_get(f"{self.url}/api/v1/query?{params}")
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        assert len(result) <= 1, f"{promql} is not a single series: {result}"
        return float(result[0]["value"][1]) if result else None

    def targets_up(self, job: str) -> bool:
        _status, body = http_get(f"{self.url}/api/v1/targets?state=active")
        targets = [
            t for t in json.loads(body)["data"]["activeTargets"] if t["labels"]["job"] == job
        ]
        return bool(targets) and all(t["health"] == "up" for t in targets)


@contextmanager
def start_prometheus(
    binary: str, tmp_path: Path, jobs: dict[str, list[str]]
) -> Iterator[PrometheusServer]:
    """The Debian `prometheus` binary with its own config, port and data directory."""
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": targets}]}
            for job, targets in jobs.items()
        ],
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                # The Debian build serves its console files from /etc; none are needed here.
                f"--web.console.templates={tmp_path}",
                f"--web.console.libraries={tmp_path}",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, log)
    try:
        eventually(
            lambda: process.poll() is None and http_get(f"{server.url}/-/ready")[0] == 200,
            "prometheus ready:\n" + log.read_text()[-2000:] if log.exists() else "",
        )
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass
class OmnidProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None


@contextmanager
def start_omnid(
    tmp_path: Path, name: str, args: list[str], port: int, env: dict[str, str]
) -> Iterator[OmnidProcess]:
    log = tmp_path / f"{name}.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "omnid.cli", *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
    running = OmnidProcess(f"http://127.0.0.1:{port}", process, log)
    try:
        eventually(
            lambda: running.alive() and http_get(f"{running.url}/healthz")[0] == 200,
            f"{name} answering /healthz",
        )
        yield running
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)


@pytest.fixture
def collector(tmp_path: Path, kafka_bootstrap: str, topology: Any) -> Iterator[OmnidProcess]:
    port = free_port()
    with start_omnid(
        tmp_path,
        "collector",
        ["collector", "--host", "127.0.0.1", "--port", str(port)],
        port,
        {"OMNID_KAFKA_BOOTSTRAP": kafka_bootstrap, "OMNID_TOPIC_PREFIX": topology.prefix},
    ) as running:
        yield running


def post_track(collector: OmnidProcess, user: int, message: int = 0) -> int:
    # Distinct messageIds: the pipeline counts an event once per id, as it should.
    body = json.dumps(
        {
            "userId": f"user-{user}",
            "messageId": f"msg-{uuid.uuid4().hex}-{message}",
            "event": "Viewed Product",
            "properties": {},
        }
    )
    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    request = urllib.request.Request(
        f"{collector.url}/v1/track",
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_prometheus_sees_the_collector_count_exactly_the_events_accepted(
    tmp_path: Path, collector: OmnidProcess, prometheus_binary: str, promtool: str
) -> None:
    host = urllib.parse.urlsplit(collector.url).netloc
    with start_prometheus(prometheus_binary, tmp_path, {"omnid-collector": [host]}) as prometheus:
        eventually(lambda: prometheus.targets_up("omnid-collector"), "collector scraped")
        check_collector_counters(prometheus, collector, promtool)


def assert_promtool_accepts_scrape(promtool: str, base_url: str) -> None:
    """Prometheus's own linter passes the exposition served at `base_url`/metrics."""
    scrape = http_get(f"{base_url}/metrics")[1].decode()
    check = subprocess.run(
        [promtool, "check", "metrics"],
        input=scrape,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def check_collector_counters(
    prometheus: PrometheusServer, collector: OmnidProcess, promtool: str
) -> None:
    sent_ok, sent_bad = 7, 2

    assert [post_track(collector, user) for user in range(sent_ok)] == [200] * sent_ok
    unauthorised = urllib.request.Request(
        f"{collector.url}/v1/track", data=b"{}", method="POST", headers={"Authorization": "x"}
    )
    for _ in range(sent_bad):
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(unauthorised, timeout=30)

    accepted = 'omnid_collector_events_accepted_total{job="omnid-collector", channel="web"}'
    eventually(lambda: prometheus.value(accepted) == sent_ok, f"{accepted} == {sent_ok}")
    ok = 'omnid_collector_requests_total{endpoint="/v1/track", status="200"}'
    refused = 'sum(omnid_collector_requests_total{endpoint="/v1/track", status=~"4.."})'
    eventually(lambda: prometheus.value(ok) == sent_ok, f"{ok} == {sent_ok}")
    eventually(lambda: prometheus.value(refused) == sent_bad, f"{refused} == {sent_bad}")
    # Nothing else moved: no other channel saw an event.
    others = 'sum(omnid_collector_events_accepted_total{channel!="web"})'
    assert prometheus.value(others) == 0
    timed = 'omnid_collector_request_duration_seconds_count{endpoint="/v1/track"}'
    assert prometheus.value(timed) == sent_ok + sent_bad

    assert_promtool_accepts_scrape(promtool, collector.url)


@pytest.fixture
def pipeline(
    tmp_path: Path, kafka_bootstrap: str, topology: Any
) -> Iterator[tuple[OmnidProcess, list[OmnidProcess]]]:
    """The real collector and two real workers (own RocksDB folders) on one topology copy."""
    env = {"OMNID_KAFKA_BOOTSTRAP": kafka_bootstrap, "OMNID_TOPIC_PREFIX": topology.prefix}
    with ExitStack() as stack:
        workers = []
        for name in ("worker-1", "worker-2"):
            port = free_port()
            args = ["worker", "--name", name, "--host", "127.0.0.1", "--port", str(port)]
            args += ["--data-dir", str(tmp_path / name), "--log-level", "WARNING"]
            workers.append(stack.enter_context(start_omnid(tmp_path, name, args, port, env)))
        port = free_port()
        args = ["collector", "--host", "127.0.0.1", "--port", str(port)]
        collector = stack.enter_context(start_omnid(tmp_path, "collector", args, port, env))
        yield collector, workers


def test_prometheus_sees_workers_count_exactly_the_events_the_collector_accepted(
    tmp_path: Path,
    pipeline: tuple[OmnidProcess, list[OmnidProcess]],
    prometheus_binary: str,
    promtool: str,
) -> None:
    collector, workers = pipeline
    jobs = {
        "omnid-collector": [urllib.parse.urlsplit(collector.url).netloc],
        "omnid-worker": [urllib.parse.urlsplit(w.url).netloc for w in workers],
    }
    with start_prometheus(prometheus_binary, tmp_path, jobs) as prometheus:
        eventually(lambda: prometheus.targets_up("omnid-worker"), "workers scraped")
        eventually(lambda: prometheus.targets_up("omnid-collector"), "collector scraped")
        # Both workers finished their first table recovery: /readyz and omnid_ready agree.
        eventually(lambda: prometheus.value('sum(omnid_ready{job="omnid-worker"})') == 2, "ready")
        customers, events = 4, 12
        statuses = [post_track(collector, n % customers, n) for n in range(events)]
        assert statuses == [200] * events

        ingested = 'sum(omnid_events_ingested_total{job="omnid-worker", channel="web"})'
        accepted = 'sum(omnid_collector_events_accepted_total{channel="web"})'
        eventually(lambda: prometheus.value(ingested) == events, f"{ingested} == {events}")
        # The collector is scraped on its own schedule: its count may trail the workers'.
        eventually(lambda: prometheus.value(accepted) == events, f"{accepted} == {events}")
        assert prometheus.value('sum(omnid_events_ingested_total{channel!="web"})') == 0
        assert prometheus.value("sum(omnid_dead_letters_total)") == 0
        created = 'sum(omnid_profiles_created_total{job="omnid-worker"})'
        eventually(lambda: prometheus.value(created) == customers, f"{created} == {customers}")
        # Every event reached its profile: one latency observation per applied event.
        latency = "sum(omnid_end_to_end_latency_seconds_count)"
        eventually(lambda: prometheus.value(latency) == events, f"{latency} == {events}")
        active = 'sum(omnid_active_profiles{job="omnid-worker"})'
        eventually(lambda: prometheus.value(active) == customers, f"{active} == {customers}")
        lag = "max(omnid_consumer_lag_messages)"
        eventually(lambda: prometheus.value(lag) == 0, "lag drained to 0")

        for worker in workers:
            assert http_get(f"{worker.url}/readyz")[0] == 200
            assert_promtool_accepts_scrape(promtool, worker.url)
