"""Drive a real pipeline from outside: start and SIGKILL worker processes, publish events, wait
for the topology to drain, read the output topics. Used by the Kafka integration tests, the
latency benchmark and `make run`'s sample feeder."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from omnid.api_auth import Scope, bearer_header, write_token
from omnid.config import PROJECT_ROOT, Settings
from omnid.contracts import (
    CHANNEL_EVENT,
    AvroCodec,
    OutputSender,
    events_topic,
    first_identifier_key,
)
from omnid.identity.model import event_from_record
from omnid.identity.simulator import Simulator
from omnid.kafka.reader import read_records
from omnid.pipeline.outage import Fault, classify, kafka_error
from omnid.pipeline.topic_names import PipelineTopics
from omnid.rules_file import load_rules

T = TypeVar("T")


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


def publish_events(
    config: Mapping[str, str],
    topics: PipelineTopics,
    records: Iterable[Mapping[str, Any]],
    codec: AvroCodec | None = None,
) -> int:
    """Publishes ChannelEvent dicts to their channel's topic, keyed by the first identifier."""
    codec = codec or AvroCodec.from_settings()
    producer = Producer({**config, "enable.idempotence": True, "linger.ms": 5})
    sender = OutputSender(producer)
    sent = 0
    for record in records:
        key = first_identifier_key(record)
        # Encoded without the adapters' checks: workers must cope with what any producer sends.
        sender.send(
            events_topic(record["channel"], topics.prefix),
            key.encode() if key else None,
            codec.encode(CHANNEL_EVENT, record),
        )
        sent += 1
    producer.flush(60)
    return sent


def committed_ends(
    config: Mapping[str, str],
    admin: AdminClient,
    partitions: Iterable[TopicPartition],
    timeout: float = 60.0,
) -> dict[tuple[str, int], int]:
    """The read-committed end offset of each partition. Right after a broker restart the
    answer can be a retriable error (UNKNOWN_LEADER_EPOCH: the client's metadata predates the
    restart): asked again, by a new admin client, until `timeout`."""
    wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    clients = [admin]

    def ends() -> dict[tuple[str, int], int]:
        futures = clients[-1].list_offsets(
            {tp: OffsetSpec.latest() for tp in wanted},
            isolation_level=IsolationLevel.READ_COMMITTED,
        )
        try:
            return {(tp.topic, tp.partition): f.result(30).offset for tp, f in futures.items()}
        except KafkaException:
            clients.append(AdminClient(dict(config)))  # the next try asks with a new client
            raise

    return retried_while_retriable(ends, timeout)


def undelivered(
    config: Mapping[str, str], group: str, topics: Iterable[str], timeout: float = 60.0
) -> int:
    """_undelivered, asked again on a retriable error until `timeout`: right after a broker
    restart the group coordinator answers COORDINATOR_LOAD_IN_PROGRESS for a while."""
    wanted = list(topics)
    return retried_while_retriable(lambda: _undelivered(config, group, wanted), timeout)


def retried_while_retriable(call: Callable[[], T], timeout: float) -> T:
    """`call()`, once a second again while it raises a retriable Kafka error, until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except KafkaException as error:
            cause = kafka_error(error)
            if cause is None or classify(cause) is not Fault.RETRIABLE:
                raise
            if time.monotonic() > deadline:
                raise
        time.sleep(1)


def _undelivered(config: Mapping[str, str], group: str, topics: Iterable[str]) -> int:
    """Committed records on `topics` that `group` has not committed as processed yet.

    Offset arithmetic is not enough: transaction markers and aborted records take offsets too,
    so a partition whose committed offset is below its end is read to see if data is left."""
    admin = AdminClient(dict(config))
    metadata = admin.list_topics(timeout=10)
    partitions = [TopicPartition(t, p) for t in topics for p in metadata.topics[t].partitions]
    ends = committed_ends(config, admin, partitions)
    committed_future = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, partitions)], require_stable=True
    )[group]
    committed = {
        (tp.topic, tp.partition): max(tp.offset, 0)
        for tp in committed_future.result(30).topic_partitions
    }
    behind = []
    for tp in partitions:
        end = ends[(tp.topic, tp.partition)]
        start = committed.get((tp.topic, tp.partition), 0)
        if end > start:
            behind.append((TopicPartition(tp.topic, tp.partition, start), end))
    if not behind:
        return 0
    consumer = Consumer(
        {
            **config,
            "group.id": f"omnid-drain-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    found = 0
    try:
        consumer.assign([tp for tp, _end in behind])
        ends_by_tp = {(tp.topic, tp.partition): end for tp, end in behind}
        deadline = time.monotonic() + 5
        while ends_by_tp and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.2):
                if message.error() is None:
                    found += 1
            for key, end in list(ends_by_tp.items()):
                position = consumer.position([TopicPartition(*key)])[0].offset
                if position >= end:
                    del ends_by_tp[key]
        found += len(ends_by_tp)  # not read to the end in time: count as undelivered
    finally:
        consumer.close()
    return found


def wait_drained(
    config: Mapping[str, str], group: str, topics: PipelineTopics, timeout: float
) -> None:
    """Until every input (events and both command topics) is consumed and committed, twice in a
    row: a command in flight between stages shows up as lag on its topic."""
    deadline = time.monotonic() + timeout
    zero_in_a_row = 0
    while time.monotonic() < deadline:
        zero_in_a_row = zero_in_a_row + 1 if undelivered(config, group, topics.inputs) == 0 else 0
        if zero_in_a_row >= 3:
            return
        time.sleep(0.5)
    raise TimeoutError(f"pipeline did not drain in {timeout:.0f}s")


def read_topic(
    config: Mapping[str, str], topic: str, idle_s: float = 2.0
) -> list[tuple[str, bytes | None, list[tuple[str, bytes]]]]:
    """Every committed record of `topic` from the beginning, up to its committed end now (or
    until `idle_s` without a record): (key, value, headers)."""
    admin = AdminClient(dict(config))
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    ends = committed_ends(config, admin, [TopicPartition(topic, p) for p in partitions])
    return [
        (record.key, record.value, record.headers)
        for record in read_records(
            config, topic, ends={p: end for (_t, p), end in ends.items()}, idle_s=idle_s
        )
    ]


def latest_profiles(
    config: Mapping[str, str], topics: PipelineTopics, codec: AvroCodec | None = None
) -> dict[str, dict[str, Any]]:
    """The current profile per id on the profile-updates topic (tombstoned ids left out). Only
    the last update of each id is decoded: a million-event run writes several per profile."""
    codec = codec or AvroCodec.from_settings()
    latest: dict[str, bytes | None] = {}
    for key, value, _headers in read_topic(config, topics.profile_updates):
        latest[key] = value
    return {key: codec.decode(value).record for key, value in latest.items() if value is not None}


def simulated_profiles(
    records: Iterable[Mapping[str, Any]], partitions: int, seed: int
) -> list[dict[str, Any]]:
    """The oracle a pipeline run is compared with: the same events through the in-memory
    simulator over as many partitions; the last ProfileUpdate of each active profile."""
    rules = load_rules(Settings().rules_file)
    result = Simulator(rules, partitions=partitions, seed=seed).run(
        [event_from_record(record) for record in records]
    )
    active = result.active_profiles()
    return [record for pid, record in result.updates.items() if pid in active]


LOCAL_BROKER_SCRIPT = PROJECT_ROOT / "deploy" / "kafka" / "kafka-local.sh"


@dataclass
class LocalBroker:
    """A private single-node broker (deploy/kafka/kafka-local.sh) that a test or the chaos run
    may SIGKILL and restart, never the shared one. Its home is its own; the Maven repository is
    shared (KAFKA_LOCAL_M2, else the project's .kafka/m2, created and filled on first use), so
    the broker is downloaded at most once per machine or clean clone."""

    home: Path
    port: int
    heap: str = "512m"

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.port}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_LOCAL_HOME": str(self.home),
            "KAFKA_LOCAL_PORT": str(self.port),
            "KAFKA_LOCAL_HEAP": self.heap,
            "KAFKA_LOCAL_START_TIMEOUT": "300",
            "KAFKA_LOCAL_STOP_TIMEOUT": "20",
            # Another broker answering on this port is a collision to report, never one to
            # use: this one is SIGKILLed by pid, and the workers must see that happen.
            "KAFKA_LOCAL_REQUIRE_OWN": "1",
        }

    def _share_maven_repository(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        shared = Path(os.environ.get("KAFKA_LOCAL_M2") or PROJECT_ROOT / ".kafka" / "m2")
        shared.mkdir(parents=True, exist_ok=True)
        link = self.home / "m2"
        if not link.exists():
            link.symlink_to(shared.resolve(), target_is_directory=True)
        # The resolved classpath names jars inside that repository: reuse it, skipping Maven.
        for classpath in shared.resolve().parent.glob("classpath-*.txt"):
            target = self.home / classpath.name
            if not target.exists():
                target.write_text(classpath.read_text())

    def start(self, timeout: float = 900) -> None:
        self._share_maven_repository()
        result = subprocess.run(
            ["bash", str(LOCAL_BROKER_SCRIPT), "up"],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"private broker did not start:\n{result.stdout}{result.stderr}")

    def pid(self) -> int | None:
        try:
            return int((self.home / "broker.pid").read_text())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL, as a crashed node: no controlled shutdown, no leader hand-over."""
        pid = self.pid()
        if pid is None:
            raise RuntimeError(f"no broker.pid in {self.home}: the private broker is not running")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            raise RuntimeError(f"the private broker (pid {pid}) had already exited") from None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _process_exists(pid):
            time.sleep(0.1)
        if _process_exists(pid):
            # Still holding its ports: a restart now would fail to bind them.
            raise RuntimeError(f"the private broker (pid {pid}) outlived SIGKILL for 30 s")

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(LOCAL_BROKER_SCRIPT), "down"],
            env=self._env(),
            capture_output=True,
            timeout=120,
            check=False,
        )


@dataclass
class LookupPoller:
    """Asks the lookup API about fixed keys over and over from a thread, keeping every answer
    ((monotonic time, HTTP status, stale flag) per key): what availability means to a client.
    `urls` maps a key's name to the URL asked for it; status 0 means nothing answered."""

    urls: Mapping[str, str]
    token: str
    timeout_s: float = 5.0
    answers: dict[str, list[tuple[float, int, bool]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> LookupPoller:
        self._thread = threading.Thread(target=self._poll, name="lookup-poller", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def _poll(self) -> None:
        while not self._stop.is_set():
            for name, url in self.urls.items():
                body, status = get_json(url, timeout=self.timeout_s, token=self.token)
                stale = bool(body and body.get("stale"))
                self.answers.setdefault(name, []).append((time.monotonic(), status, stale))
            time.sleep(0.05)

    def availability(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """Over `names` (all keys by default) and the whole polling: see availability_over."""
        chosen = list(self.answers) if names is None else list(names)
        return availability_over(self.answers, [(name, -math.inf, math.inf) for name in chosen])


def availability_over(
    answers: Mapping[str, list[tuple[float, int, bool]]],
    spans: Iterable[tuple[str, float, float]],
) -> dict[str, Any]:
    """Fraction of the polls that were answered 200 (fresh or stale) and the longest time a key
    went without a 200 (from its last 200, or the span's first poll, to a failed poll after
    it), over the polls of each (key, since, until) span: a key during a time window."""
    total = ok = stale = 0
    longest_gap = 0.0
    for name, since, until in spans:
        last_ok: float | None = None
        for at, status, was_stale in answers.get(name, []):
            if not since <= at < until:
                continue
            total += 1
            if last_ok is None:
                last_ok = at  # a window that opens on failures counts them from its start
            if status == 200:
                ok += 1
                stale += was_stale
                last_ok = at
            else:
                longest_gap = max(longest_gap, at - last_ok)
    return {
        "polls": total,
        "answered_200": round(ok / total, 4) if total else None,
        "stale_200": round(stale / total, 4) if total else None,
        "longest_gap_s": round(longest_gap, 2),
    }


def _process_exists(pid: int) -> bool:
    """Running or sleeping; a zombie (dead, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


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


def profile_signature(record: Mapping[str, Any]) -> tuple[frozenset[str], dict[str, Any]]:
    """What must not depend on workers, partitions or delivery order: the identifiers of a
    profile and everything computed from its events. Ids and versions may differ by order."""
    computed = record["computed"]
    identifiers = frozenset(f"{i['type']}:{i['value']}" for i in record["identifiers"])
    return identifiers, {
        "event_count": computed["event_count"],
        "order_count": computed["order_count"],
        "revenue": {c: round(v, 6) for c, v in sorted(computed["revenue"].items())},
        "channel_counts": dict(sorted(computed["channel_counts"].items())),
        "traits": {k: v["value"] for k, v in sorted(record["traits"].items())},
        "consent": {k: v["granted"] for k, v in sorted(computed["consent"].items())},
    }


def signatures(records: Iterable[Mapping[str, Any]]) -> dict[frozenset[str], dict[str, Any]]:
    return dict(profile_signature(record) for record in records)


def totals(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sums over profiles that no delivery order may change: every valid event and every order
    counted by exactly one active profile (ARCHITECTURE.md invariant 4)."""
    events = orders = 0
    revenue: dict[str, float] = {}
    for record in records:
        computed = record["computed"]
        events += computed["event_count"]
        orders += computed["order_count"]
        for currency, amount in computed["revenue"].items():
            revenue[currency] = revenue.get(currency, 0.0) + amount
    return {
        "events": events,
        "orders": orders,
        "revenue": {c: round(v, 4) for c, v in sorted(revenue.items())},
    }
