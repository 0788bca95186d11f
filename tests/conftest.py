"""Fixtures shared by every suite: a real Kafka broker, client config, and isolated topic names.

The broker, in order: OMNID_KAFKA_BOOTSTRAP if set; a testcontainers Kafka if a Docker engine
answers; else the local broker of deploy/kafka/kafka-local.sh (started if needed, left running).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from omnid.config import PROJECT_ROOT, Settings
from omnid.contracts import AvroCodec, Channel, decode_channel_event, events_topic
from omnid.kafka.topics import TopicsReport, apply_topics, delete_topics, load_topology

LOCAL_BROKER_SCRIPT = PROJECT_ROOT / "deploy" / "kafka" / "kafka-local.sh"
# The first local start downloads the broker with Maven: allow for a slow mirror.
LOCAL_BROKER_START_TIMEOUT_S = 900


def _docker_engine_answers() -> bool:
    """Only asks the engine when one could exist, and never waits more than a few seconds."""
    socket = Path("/var/run/docker.sock")
    if not os.environ.get("DOCKER_HOST") and not socket.exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _broker_answers(bootstrap: str) -> bool:
    config = Settings(kafka_bootstrap=bootstrap).kafka_client_config()
    config["log_level"] = "0"
    try:
        return bool(AdminClient(config).list_topics(timeout=10).brokers)
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The bootstrap address of a real Kafka broker for this test session."""
    configured = os.environ.get("OMNID_KAFKA_BOOTSTRAP")
    if configured:
        if not _broker_answers(configured):
            pytest.fail(f"OMNID_KAFKA_BOOTSTRAP={configured} does not answer a metadata request")
        yield configured
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    port = os.environ.get("KAFKA_LOCAL_PORT", "9092")
    result = subprocess.run(
        ["bash", str(LOCAL_BROKER_SCRIPT), "up"],
        capture_output=True,
        text=True,
        timeout=LOCAL_BROKER_START_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"local Kafka broker did not start:\n{result.stdout}{result.stderr}")
    # Left running on purpose: other test sessions on this machine may share it.
    yield f"localhost:{port}"


@pytest.fixture(scope="session")
def kafka_config(kafka_bootstrap: str) -> dict[str, str]:
    """confluent-kafka settings for the test broker; OMNID_* security settings pass through."""
    return Settings(kafka_bootstrap=kafka_bootstrap).kafka_client_config()


EventsTopics = Callable[[str, Iterable[Channel]], AbstractContextManager[str]]


@pytest.fixture(scope="session")
def events_topics(kafka_config: dict[str, str]) -> EventsTopics:
    """`with events_topics("import", [Channel.POS]) as prefix:` -> the one-partition events
    topics of those channels under a prefix no other test uses; deleted on leaving the block.
    A context manager rather than a fixture of its own so module-scoped fixtures can use it."""

    @contextmanager
    def create(stem: str, channels: Iterable[Channel]) -> Iterator[str]:
        prefix = f"test-{stem}-{uuid.uuid4().hex[:8]}"
        names = [events_topic(channel, prefix) for channel in channels]
        admin = AdminClient(kafka_config)  # must outlive the futures it returns
        futures = admin.create_topics([NewTopic(n, 1, replication_factor=-1) for n in names])
        for future in futures.values():
            future.result(timeout=30)
        try:
            yield prefix
        finally:
            delete_topics(kafka_config, names)

    return create


ChannelEventReader = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def read_channel_events(kafka_config: dict[str, str]) -> ChannelEventReader:
    """`read_channel_events(topic, count=4)` -> the first 4 ChannelEvents on `topic`, decoded;
    `read_channel_events(topic, through_event_id=id)` -> every event up to and including `id`.
    A fresh consumer group reads from the start; with one partition, in order."""
    codec = AvroCodec.from_settings()

    def read(
        topic: str, count: int | None = None, through_event_id: str | None = None
    ) -> list[dict[str, Any]]:
        if (count is None) == (through_event_id is None):
            raise TypeError("read_channel_events needs exactly one of count, through_event_id")

        def done(events: list[dict[str, Any]]) -> bool:
            if count is not None:
                return len(events) >= count
            return bool(events) and events[-1]["event_id"] == through_event_id

        consumer = Consumer(
            {
                **kafka_config,
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([topic])
        events: list[dict[str, Any]] = []
        try:
            while not done(events):
                message = consumer.poll(1.0)
                if message is not None and not message.error():
                    events.append(decode_channel_event(codec, message.value()))
        finally:
            consumer.close()
        return events

    return read


ToolFinder = Callable[[str, str], str]


@pytest.fixture(scope="session")
def require_tool() -> ToolFinder:
    """`require_tool("kubectl", install_hint)` -> the tool's path. Missing, it skips the test on a
    developer machine and fails it in CI (`CI` set). `make test` and .ci/run install every tool
    the machine can have first (scripts/ensure-test-tools.sh), so a skip means it cannot."""

    def find(name: str, install_hint: str) -> str:
        path = shutil.which(name)
        if path is None:
            if os.environ.get("CI"):
                pytest.fail(f"{name} missing in CI: {install_hint}")
            pytest.skip(f"{name} not installed ({install_hint})")
        return path

    return find


@pytest.fixture(scope="session")
def promtool(require_tool: ToolFinder) -> str:
    """Prometheus's checker for expositions, rules and configs."""
    return require_tool("promtool", "Debian package `prometheus`: scripts/ensure-test-tools.sh")


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """`unique_name("orders")` -> "test.orders.3f9c2a1b": a name no other test run uses."""

    def make(stem: str) -> str:
        return f"test.{stem}.{uuid.uuid4().hex[:8]}"

    return make


TopicFactory = Callable[..., str]


@pytest.fixture
def make_topic(
    kafka_config: dict[str, str], unique_name: Callable[[str], str]
) -> Iterator[TopicFactory]:
    """`make_topic("orders", partitions=3, config={...})` creates a uniquely named topic and
    returns its name; every topic made is deleted after the test."""
    created: list[str] = []
    admin = AdminClient(kafka_config)

    def make(stem: str = "topic", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = unique_name(stem)
        new_topic = NewTopic(
            name, num_partitions=partitions, replication_factor=-1, config=config or {}
        )
        admin.create_topics([new_topic])[name].result(timeout=30)
        created.append(name)
        # The controller has accepted it; wait until metadata shows it so clients find it.
        for _ in range(100):
            if name in admin.list_topics(timeout=10).topics:
                break
            time.sleep(0.1)
        return name

    yield make
    if created:
        delete_topics(kafka_config, created)


@dataclass(frozen=True)
class AppliedTopology:
    """The whole of streams/topics.yaml, created under a prefix of its own."""

    prefix: str
    names: dict[str, str]  # logical name ("omnid.profile-updates") -> real topic name
    report: TopicsReport

    def topic(self, logical_name: str) -> str:
        return self.names[logical_name]


@pytest.fixture
def topology(kafka_config: dict[str, str]) -> Iterator[AppliedTopology]:
    """Every topic of the design under a unique prefix (`OMNID_TOPIC_PREFIX` for code under
    test); deleted after the test."""
    settings = Settings()
    spec = load_topology(settings.topics_file)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    report = apply_topics(kafka_config, spec, prefix)
    names = spec.names(prefix)
    yield AppliedTopology(prefix=prefix, names=names, report=report)
    delete_topics(kafka_config, names.values())


StackEnv = Callable[..., dict[str, str]]
MakeTarget = Callable[[str, dict[str, str]], subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def stack_env() -> StackEnv:
    """`stack_env(run_home, RUN_WORKER_PORTS="...")` -> the environment of a developer's shell
    for `make run`: none of this shell's OMNID_*, RUN_* and KAFKA_LOCAL_* settings but the given
    ones and RUN_HOME; this test's Python (its virtualenv, if any) first on the PATH, so that
    make uses it rather than creating .venv."""

    def environment(run_home: Path, **settings: str) -> dict[str, str]:
        prefixes = ("OMNID_", "RUN_", "KAFKA_LOCAL_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        if sys.prefix != sys.base_prefix:
            env["VIRTUAL_ENV"] = sys.prefix
        env.update(RUN_HOME=str(run_home), **settings)
        return env

    return environment


@pytest.fixture(scope="session")
def make_target() -> MakeTarget:
    """`make_target("run", env)`: `make run` in the project with exactly `env`, output captured."""

    def run(target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "--no-print-directory", target],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    return run
