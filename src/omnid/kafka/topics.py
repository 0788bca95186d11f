"""`omnid topics apply|list`: make a Kafka cluster hold the topics of streams/topics.yaml.

The shell around omnid.kafka.topology: reads the cluster with the confluent-kafka AdminClient,
asks the pure planner what to do, does only the safe part (create, add partitions), reports.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from omnid.config import Settings
from omnid.errors import OmnidError
from omnid.kafka.topology import (
    ExistingTopic,
    TopicAction,
    TopicPlan,
    Topology,
    load_topology,
    plan_topics,
    prefixed_name,
)

__all__ = [
    "KafkaUnavailable",
    "TopicsReport",
    "apply_topics",
    "delete_topics",
    "describe_topics",
    "load_topology",
    "prefixed_name",
]

DEFAULT_TIMEOUT_S = 30.0


class KafkaUnavailable(OmnidError):
    """The cluster did not answer, or refused an admin request."""


@dataclass(frozen=True)
class TopicsReport:
    """What `apply_topics` found and did (or, when not applied, would do)."""

    bootstrap: str
    prefix: str
    plans: tuple[TopicPlan, ...]
    applied: bool

    @property
    def created(self) -> list[str]:
        return [p.spec.name for p in self.plans if p.action is TopicAction.CREATE]

    @property
    def partitions_added(self) -> list[str]:
        return [p.spec.name for p in self.plans if p.action is TopicAction.ADD_PARTITIONS]

    @property
    def drifted(self) -> list[str]:
        return [p.spec.name for p in self.plans if p.drift]

    def render(self) -> str:
        verb = {True: ("created", "partitions raised"), False: ("missing", "needs partitions")}
        created_word, raised_word = verb[self.applied]
        width = max(len(p.spec.name) for p in self.plans)
        lines = [f"topics on {self.bootstrap} (prefix: {self.prefix or 'none'})"]
        for plan in self.plans:
            spec = plan.spec
            shape = (
                f"{spec.partitions} partitions, {spec.cleanup_policy}, retention {spec.retention}"
            )
            if plan.action is TopicAction.CREATE:
                state = created_word
            elif plan.action is TopicAction.ADD_PARTITIONS:
                before = plan.existing.partitions if plan.existing else "?"
                state = f"{raised_word} {before}->{spec.partitions}"
            else:
                state = "in sync" if not plan.drift else "exists"
            lines.append(f"  {state:<24} {spec.name:<{width}}  {shape}")
            lines.extend(
                f"  {'DRIFT (not changed)':<24} {spec.name:<{width}}  {d}" for d in plan.drift
            )
        in_sync = sum(1 for p in self.plans if p.in_sync)
        lines.append(
            f"{len(self.plans)} topics: {len(self.created)} {created_word}, "
            f"{len(self.partitions_added)} {raised_word}, {in_sync} in sync, "
            f"{len(self.drifted)} with drift left as is"
        )
        return "\n".join(lines)


def _admin(admin_config: Mapping[str, str]) -> AdminClient:
    return AdminClient(dict(admin_config))


def describe_topics(
    admin: AdminClient, names: Iterable[str], timeout: float = DEFAULT_TIMEOUT_S
) -> dict[str, ExistingTopic]:
    """Partitions, replication and topic configs of those of `names` that exist."""
    wanted = set(names)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as error:
        raise KafkaUnavailable(f"no metadata from Kafka: {error.args[0].str()}") from None
    present = {name: meta for name, meta in metadata.topics.items() if name in wanted}
    if not present:
        return {}
    futures = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, name) for name in present],
        request_timeout=timeout,
    )
    configs: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        entries = _result(future, f"describe configs of {resource.name}", timeout)
        configs[resource.name] = {key: entry.value for key, entry in entries.items()}
    existing = {}
    for name, meta in present.items():
        replicas = [len(p.replicas) for p in meta.partitions.values()]
        existing[name] = ExistingTopic(
            name=name,
            partitions=len(meta.partitions),
            replication_factor=min(replicas) if replicas else 0,
            config=configs.get(name, {}),
        )
    return existing


def _result(future: object, what: str, timeout: float, tolerated: int | None = None) -> object:
    """The future's result; None when it failed with the `tolerated` error code."""
    try:
        return future.result(timeout=timeout)  # type: ignore[attr-defined]
    except KafkaException as error:
        kafka_error: KafkaError = error.args[0]
        if tolerated is not None and kafka_error.code() == tolerated:
            return None
        raise KafkaUnavailable(f"{what}: {kafka_error.str()}") from None
    except TimeoutError:
        raise KafkaUnavailable(f"{what}: no answer within {timeout:.0f}s") from None


def _create(admin: AdminClient, plans: list[TopicPlan], timeout: float) -> None:
    if not plans:
        return
    new_topics = [
        NewTopic(
            plan.spec.name,
            num_partitions=plan.spec.partitions,
            # -1: the cluster's default.replication.factor (KIP-464).
            replication_factor=plan.spec.replication_factor or -1,
            config=plan.spec.topic_config(),
        )
        for plan in plans
    ]
    for name, future in admin.create_topics(new_topics, request_timeout=timeout).items():
        # Another process created it since we looked: the wanted end state holds.
        _result(future, f"create topic {name}", timeout, tolerated=KafkaError.TOPIC_ALREADY_EXISTS)


def _add_partitions(admin: AdminClient, plans: list[TopicPlan], timeout: float) -> None:
    if not plans:
        return
    requests = [NewPartitions(plan.spec.name, plan.spec.partitions) for plan in plans]
    for name, future in admin.create_partitions(requests, request_timeout=timeout).items():
        _result(future, f"add partitions to {name}", timeout)


def _wait_until_visible(admin: AdminClient, topology: Topology, timeout: float) -> None:
    """Creation returns once the controller accepted it; clients need the metadata to show it."""
    deadline = time.monotonic() + timeout
    while True:
        existing = describe_topics(admin, [t.name for t in topology.topics], timeout)
        if all(
            t.name in existing and existing[t.name].partitions >= t.partitions
            for t in topology.topics
        ):
            return
        if time.monotonic() > deadline:
            raise KafkaUnavailable(f"created topics not visible in metadata after {timeout:.0f}s")
        time.sleep(0.2)


def apply_topics(
    admin_config: Mapping[str, str],
    topology: Topology,
    prefix: str = "",
    *,
    dry_run: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> TopicsReport:
    """Creates missing topics and raises partition counts of `topology` under `prefix`; reports
    every other difference. Idempotent: a second run finds everything in sync."""
    wanted = topology.with_prefix(prefix)
    admin = _admin(admin_config)
    bootstrap = admin_config.get("bootstrap.servers", "?")
    try:
        existing = describe_topics(admin, [t.name for t in wanted.topics], timeout)
    except KafkaUnavailable as error:
        raise KafkaUnavailable(f"{bootstrap}: {error} (is the broker running?)") from None
    plans = plan_topics(wanted, existing)
    if not dry_run:
        _create(admin, [p for p in plans if p.action is TopicAction.CREATE], timeout)
        raise_partitions = [p for p in plans if p.action is TopicAction.ADD_PARTITIONS]
        _add_partitions(admin, raise_partitions, timeout)
        if any(p.action is not TopicAction.NONE for p in plans):
            _wait_until_visible(admin, wanted, timeout)
    return TopicsReport(bootstrap=bootstrap, prefix=prefix, plans=plans, applied=not dry_run)


def delete_topics(
    admin_config: Mapping[str, str], names: Iterable[str], timeout: float = DEFAULT_TIMEOUT_S
) -> None:
    """Deletes the named topics that exist (test clean-up; never used on the real topology)."""
    admin = _admin(admin_config)
    existing = describe_topics(admin, names, timeout)
    if not existing:
        return
    for name, future in admin.delete_topics(list(existing), request_timeout=timeout).items():
        _result(future, f"delete topic {name}", timeout, tolerated=KafkaError.UNKNOWN_TOPIC_OR_PART)


def _run(args: argparse.Namespace) -> int:
    settings = Settings()
    topology = load_topology(Path(args.file) if args.file else settings.topics_file)
    prefix = settings.topic_prefix if args.prefix is None else args.prefix
    admin_config = settings.kafka_client_config()
    # Fail fast on an unreachable cluster instead of librdkafka's silent retries.
    admin_config.setdefault("socket.connection.setup.timeout.ms", "10000")
    # librdkafka logs every failed reconnect; the one error that matters is raised and printed.
    admin_config.setdefault("log_level", "2")
    report = apply_topics(
        admin_config, topology, prefix, dry_run=args.action == "list", timeout=args.timeout
    )
    print(report.render())
    if report.drifted and args.fail_on_drift:
        return 1
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "topics",
        help="create/inspect the Kafka topics of streams/topics.yaml",
        description=__doc__,
    )
    parser.add_argument(
        "action",
        choices=["apply", "list"],
        help="apply: create missing topics, raise partitions; list: show the state, change nothing",
    )
    parser.add_argument(
        "--prefix",
        default=None,
        help="an isolated copy: every topic is named PREFIX.<name> (default OMNID_TOPIC_PREFIX)",
    )
    parser.add_argument("--file", default=None, help="topics file (default OMNID_TOPICS_FILE)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per admin request"
    )
    parser.add_argument(
        "--fail-on-drift",
        action="store_true",
        help="exit 1 when a topic differs in a way apply does not fix",
    )
    parser.set_defaults(func=_run)
