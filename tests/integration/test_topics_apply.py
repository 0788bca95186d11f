"""`omnid topics apply` on a real broker: creates, raises partitions, reports drift; idempotent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from omnid.cli import main
from omnid.config import Settings
from omnid.kafka.topics import delete_topics, describe_topics
from omnid.kafka.topology import TopicAction, load_topology

pytestmark = pytest.mark.kafka


@pytest.fixture
def prefix(
    kafka_bootstrap: str, kafka_config: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh prefix for the CLI to work under, and every topic under it deleted afterwards."""
    monkeypatch.setenv("OMNID_KAFKA_BOOTSTRAP", kafka_bootstrap)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    yield prefix
    names = load_topology(Settings().topics_file).names(prefix).values()
    delete_topics(kafka_config, names)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Exit code and printed report, with runs of spaces (column padding) folded to one."""
    code = main(["topics", *args])
    return code, "\n".join(" ".join(line.split()) for line in capsys.readouterr().out.splitlines())


def wait_until(admin: AdminClient, name: str, partitions: int, config: dict[str, str]) -> None:
    """Admin changes are acknowledged by the controller before every broker shows them."""
    for _ in range(100):
        actual = describe_topics(admin, [name]).get(name)
        if actual and actual.partitions == partitions and config.items() <= actual.config.items():
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} never showed {partitions} partitions and {config}")


def test_apply_creates_every_topic_then_a_second_apply_changes_nothing(
    prefix: str, kafka_config: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    topology = load_topology(Settings().topics_file)

    first_code, first = run_cli(capsys, "apply", "--prefix", prefix)
    second_code, second = run_cli(capsys, "apply", "--prefix", prefix)

    assert first_code == second_code == 0
    count = len(topology.topics)
    assert f"{count} topics: {count} created" in first
    assert f"{count} topics: 0 created, 0 partitions raised, {count} in sync" in second
    existing = describe_topics(AdminClient(kafka_config), topology.names(prefix).values())
    for spec in topology.with_prefix(prefix).topics:
        actual = existing[spec.name]
        assert actual.partitions == spec.partitions
        assert actual.config["cleanup.policy"] == spec.cleanup_policy.value
        assert actual.config["retention.ms"] == str(spec.retention_ms)


def test_apply_raises_partitions_and_reports_drift_it_does_not_fix(
    prefix: str, kafka_config: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    topology = load_topology(Settings().topics_file)
    names = topology.names(prefix)
    admin = AdminClient(kafka_config)
    # Before apply: web events exist with too few partitions; the dead-letter topic exists
    # with too many and the wrong cleanup policy (as an operator might have left them).
    web, dead_letter = names["omnid.events.web"], names["omnid.dead-letter"]
    created = admin.create_topics(
        [
            NewTopic(
                web,
                num_partitions=2,
                replication_factor=-1,
                config=topology.topic("omnid.events.web").topic_config(),
            ),
            NewTopic(
                dead_letter,
                num_partitions=3,
                replication_factor=-1,
                config={"cleanup.policy": "compact"},
            ),
        ]
    )
    for future in created.values():
        future.result(timeout=30)
    wait_until(admin, web, 2, {})
    wait_until(admin, dead_letter, 3, {"cleanup.policy": "compact"})

    code, report = run_cli(capsys, "apply", "--prefix", prefix)
    drift_code, _ = run_cli(capsys, "apply", "--prefix", prefix, "--fail-on-drift")

    assert code == 0
    assert drift_code == 1
    assert f"partitions raised 2->6 {web}" in report
    assert f"{dead_letter} partitions: wants 1, has 3" in report
    assert f"{dead_letter} cleanup.policy: wants delete, has compact" in report
    existing = describe_topics(admin, [web, dead_letter])
    assert existing[web].partitions == 6
    assert existing[dead_letter].partitions == 3
    assert existing[dead_letter].config["cleanup.policy"] == "compact"


def test_list_reports_missing_topics_without_creating_them(
    prefix: str, kafka_config: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    topology = load_topology(Settings().topics_file)

    code, report = run_cli(capsys, "list", "--prefix", prefix)

    assert code == 0
    assert f"{len(topology.topics)} missing" in report
    assert describe_topics(AdminClient(kafka_config), topology.names(prefix).values()) == {}


def test_topology_fixture_gives_every_design_topic_under_its_own_prefix(
    topology, kafka_config: dict[str, str]
) -> None:
    assert all(name.startswith(f"{topology.prefix}.") for name in topology.names.values())
    assert all(plan.action is TopicAction.CREATE for plan in topology.report.plans)
    existing = describe_topics(AdminClient(kafka_config), topology.names.values())
    assert set(existing) == set(topology.names.values())
    assert existing[topology.topic("omnid.profile-updates")].config["cleanup.policy"] == "compact"


def test_more_partitions_than_wanted_stay(
    prefix: str, kafka_config: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    topology = load_topology(Settings().topics_file)
    commands = topology.names(prefix)["omnid.identity-commands"]
    run_cli(capsys, "apply", "--prefix", prefix)
    admin = AdminClient(kafka_config)
    admin.create_partitions([NewPartitions(commands, 8)])[commands].result(timeout=30)
    retention = ConfigResource(
        ConfigResource.Type.TOPIC,
        commands,
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in admin.incremental_alter_configs([retention]).values():
        future.result(timeout=30)
    wait_until(admin, commands, 8, {"retention.ms": "1000"})

    _, report = run_cli(capsys, "apply", "--prefix", prefix)

    assert f"{commands} partitions: wants 6, has 8" in report
    assert f"{commands} retention.ms: wants 604800000, has 1000" in report
    assert describe_topics(admin, [commands])[commands].partitions == 8
