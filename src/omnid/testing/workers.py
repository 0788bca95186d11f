"""`omnid worker` processes driven from outside: start, SIGTERM or SIGKILL them, ask their
status and APIs over HTTP, wait until the group has settled; `running_pipeline` gives a test a
copy of the topology under its own prefix with its workers (and removes what they created)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from omnid.api_auth import Scope, bearer_header, write_token
from omnid.pipeline.topic_names import PipelineTopics
from omnid.testing.topic_io import wait_drained


@dataclass
class WorkerProcess:
    """An `omnid worker` child process with its own RocksDB folder and lookup port."""

    name: str
    port: int
    data_dir: Path
    env: dict[str, str]
    guarantee: str = "exactly_once"
    log_path: Path | None = None
    # More `omnid worker` options, e.g. ("--standby-replicas", "0").
    options: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WorkerProcess:
        command = [
            sys.executable, "-m", "omnid.cli", "worker",
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--port", str(self.port),
            "--host", "127.0.0.1",
            "--guarantee", self.guarantee,
            *self.options,
        ]  # fmt: skip
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path or os.devnull, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            command, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT
        )
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, exactly like a crashed or OOM-killed worker."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def status(self) -> dict[str, Any] | None:
        return get_json(f"{self.url}/v1/worker")[0]


def get_json(
    url: str, timeout: float = 10.0, token: str | None = None
) -> tuple[dict[str, Any] | None, int]:
    """(body, status) of a GET (with `token` as bearer token); (None, 0) when nothing answers."""
    request = urllib.request.Request(url, headers=bearer_header(token))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response), response.status
    except urllib.error.HTTPError as error:
        try:
            return json.loads(error.read()), error.code
        except ValueError:
            return None, error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None, 0


def send_json(
    method: str, url: str, body: Mapping[str, Any] | None, token: str, timeout: float = 90.0
) -> tuple[Any, int]:
    """(body, status) of a request with a JSON body (an operation that waits for its answer:
    hence the long timeout), with `token` as bearer token."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        headers={**bearer_header(token), "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response), response.status
    except urllib.error.HTTPError as error:
        return json.loads(error.read()), error.code


def wait_until_assigned(
    workers: Iterable[WorkerProcess], topics: PipelineTopics, partitions: int, timeout: float
) -> None:
    """Until the live workers own (and have restored) every input partition exactly once, each
    worker at least one, the same way twice in a row: a settled group, not a moment inside a
    rebalance, nor one worker holding everything before the other has joined."""
    live = list(workers)
    wanted = {f"{topic}:{p}" for topic in topics.inputs for p in range(partitions)}
    deadline = time.monotonic() + timeout
    settled_once: list[list[str]] | None = None
    while time.monotonic() < deadline:
        owned: list[list[str]] = []
        for worker in live:
            if not worker.alive():
                code = worker.process.returncode if worker.process else None
                raise RuntimeError(f"worker {worker.name} exited with {code}")
            status = worker.status()
            owned.append(sorted(status["ready"]) if status else [])
        every = [tp for ready in owned for tp in ready]
        settled = len(every) == len(wanted) and set(every) == wanted and all(owned)
        if settled and owned == settled_once:
            return
        settled_once = owned if settled else None
        time.sleep(0.3)
    raise TimeoutError(f"workers did not settle on all {len(wanted)} partitions in {timeout:.0f}s")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Pipeline:
    """A running copy of the topology under `topics.prefix` with its worker processes."""

    config: dict[str, str]
    topics: PipelineTopics
    workers: list[WorkerProcess]
    base_dir: Path
    # More tokens by name -> scopes (a test of what a narrower token may do); their values end
    # up in `tokens`. Workers read the tokens file when they start.
    token_scopes: Mapping[str, Iterable[Scope]] = field(default_factory=dict)
    api_tokens_file: Path = field(init=False)
    api_token: str = field(init=False, repr=False)
    tokens: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # One token with every scope; each worker reads the same tokens file, as in production.
        self.api_tokens_file = self.base_dir / "api-tokens.yaml"
        self.api_token = write_token(self.api_tokens_file, "test-pipeline", tuple(Scope))
        self.tokens = {
            name: write_token(self.api_tokens_file, name, scopes)
            for name, scopes in self.token_scopes.items()
        }

    @property
    def group(self) -> str:
        return self.topics.default_group()

    def add_worker(
        self,
        name: str,
        guarantee: str,
        data_dir: Path | None = None,
        options: tuple[str, ...] = (),
    ) -> WorkerProcess:
        env = {
            "OMNID_TOPIC_PREFIX": self.topics.prefix,
            "OMNID_KAFKA_BOOTSTRAP": self.config["bootstrap.servers"],
            "OMNID_API_TOKENS_FILE": str(self.api_tokens_file),
            # Tests read back every profile as fast as they can with one token; the per-client
            # lookup limit is tested on its own (tests/unit/test_lookup_rate_limit.py).
            "OMNID_LOOKUP_RATE_PER_SECOND": "0",
        }
        worker = WorkerProcess(
            name=name,
            port=free_port(),
            data_dir=data_dir or self.base_dir / f"rocksdb-{name}",
            env=env,
            guarantee=guarantee,
            log_path=self.base_dir / f"{name}.log",
            options=options,
        )
        self.workers.append(worker.start())
        return worker

    def live_workers(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.alive()]

    def owners(self) -> dict[str, str]:
        """ "topic:partition" -> name of the live worker that has it ready."""
        owned = {}
        for worker in self.live_workers():
            for partition in (worker.status() or {}).get("ready", []):
                owned[partition] = worker.name
        return owned

    def wait_until_assigned(self, partitions: int, timeout: float = 120) -> None:
        wait_until_assigned(self.live_workers(), self.topics, partitions, timeout)

    def wait_drained(self, timeout: float = 180) -> None:
        wait_drained(self.config, self.group, self.topics, timeout)

    def logs(self) -> str:
        """The workers' logs, for a failing test's message."""
        parts = []
        for worker in self.workers:
            if worker.log_path and worker.log_path.exists():
                parts.append(f"--- {worker.name}\n{worker.log_path.read_text()[-4000:]}")
        return "\n".join(parts)


@contextmanager
def running_pipeline(
    config: Mapping[str, str],
    prefix: str,
    base_dir: Path,
    workers: int = 2,
    guarantee: str = "exactly_once",
    token_scopes: Mapping[str, Iterable[Scope]] | None = None,
    worker_options: tuple[str, ...] = (),
) -> Iterator[Pipeline]:
    """Workers for the topology already created under `prefix` (`worker_options`: more `omnid
    worker` options for each); all stopped (SIGKILL if they do not stop) and their changelog
    topics deleted on exit."""
    pipeline = Pipeline(
        dict(config), PipelineTopics.under(prefix), [], base_dir, token_scopes or {}
    )
    try:
        for index in range(workers):
            pipeline.add_worker(f"worker-{index + 1}", guarantee, options=worker_options)
        yield pipeline
    finally:
        for worker in pipeline.workers:
            worker.stop()
        AdminClient(dict(config)).delete_topics(pipeline.topics.created_by_workers())
