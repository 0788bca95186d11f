"""The topics file and the pure planner behind `omnid topics apply`."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnid.config import Settings
from omnid.errors import ConfigError
from omnid.kafka.topology import (
    CleanupPolicy,
    ExistingTopic,
    TopicAction,
    Topology,
    load_topology,
    parse_topology,
    plan_topics,
    prefixed_name,
    retention_millis,
)

CHANNELS = ["web", "app", "pos", "email", "crm", "call_centre", "loyalty"]


def one_topic(**overrides: object) -> Topology:
    topic = {
        "name": "omnid.things",
        "partitions": 6,
        "cleanup_policy": "delete",
        "retention": "7d",
        "key_schema": "string",
        "value_schema": "internal",
        "description": "test topic",
    }
    topic.update(overrides)
    return parse_topology({"topics": [topic]})


def existing(
    partitions: int = 6, config: dict[str, str] | None = None, replicas: int = 1
) -> dict[str, ExistingTopic]:
    actual = {"cleanup.policy": "delete", "retention.ms": "604800000"}
    actual.update(config or {})
    return {"omnid.things": ExistingTopic("omnid.things", partitions, replicas, actual)}


def test_project_topics_file_lists_every_topic_of_the_design() -> None:
    topology = load_topology(Settings().topics_file)
    names = {topic.name for topic in topology.topics}
    expected = {f"omnid.events.{channel}" for channel in CHANNELS} | {
        "omnid.identity-commands",
        "omnid.profile-commands",
        "omnid.profile-updates",
        "omnid.identity-changelog",
        "omnid.dead-letter",
        "omnid.privacy-requests",
        "omnid.privacy-receipts",
        "omnid.state.identifiers-changelog",
        "omnid.state.profiles-changelog",
        "omnid.state.history-changelog",
    }
    assert names == expected


def test_state_changelogs_match_their_tables_source_topics_and_are_never_deleted() -> None:
    # A changelog partitioned unlike its command topic would restore keys into the wrong worker.
    from omnid.kafka.stages import Table
    from omnid.pipeline.topic_names import PipelineTopics

    topology = load_topology(Settings().topics_file)
    pipeline = PipelineTopics.under("")
    for table in Table:
        changelog = topology.topic(pipeline.state_changelog(table))
        assert changelog.partitions == topology.topic(pipeline.source_of(table)).partitions
        assert changelog.cleanup_policy is CleanupPolicy.COMPACT
        assert changelog.retention_ms == -1


def test_project_topics_file_compacts_profile_updates_and_keeps_them_forever() -> None:
    profile_updates = load_topology(Settings().topics_file).topic("omnid.profile-updates")
    assert profile_updates.cleanup_policy is CleanupPolicy.COMPACT
    assert profile_updates.retention_ms == -1
    assert profile_updates.value_schema == "schemas/profile_update.avsc"


def test_project_data_path_topics_default_to_six_partitions() -> None:
    topology = load_topology(Settings().topics_file)
    data_path = [t for t in topology.topics if t.name.startswith("omnid.events.")] + [
        topology.topic("omnid.identity-commands"),
        topology.topic("omnid.profile-commands"),
        topology.topic("omnid.profile-updates"),
    ]
    assert {topic.partitions for topic in data_path} == {6}


def test_defaults_fill_what_a_topic_leaves_out_and_a_topic_overrides_them() -> None:
    document = {
        "defaults": {"partitions": 4, "key_schema": "string", "description": "d"},
        "topics": [
            {"name": "a", "cleanup_policy": "delete", "retention": "1h", "value_schema": "raw"},
            {
                "name": "b",
                "partitions": 1,
                "cleanup_policy": "compact",
                "retention": "forever",
                "value_schema": "raw",
            },
        ],
    }
    topology = parse_topology(document)
    assert [t.partitions for t in topology.topics] == [4, 1]


@pytest.mark.parametrize(
    ("text", "millis"),
    [("250ms", 250), ("30s", 30_000), ("5m", 300_000), ("12h", 43_200_000), ("7d", 604_800_000)],
)
def test_retention_durations_become_milliseconds(text: str, millis: int) -> None:
    assert retention_millis(text) == millis


def test_forever_retention_is_kafkas_minus_one() -> None:
    assert retention_millis("forever") == -1


def test_unreadable_retention_is_a_config_error_naming_the_topic() -> None:
    with pytest.raises(ConfigError, match=r"topic omnid\.things\.retention"):
        one_topic(retention="a week")


def test_unknown_field_is_a_config_error_naming_the_topic_and_field() -> None:
    with pytest.raises(ConfigError, match=r"topic omnid\.things\.partitons"):
        one_topic(partitons=3)


def test_topic_listed_twice_is_a_config_error() -> None:
    topic = one_topic().topics[0].model_dump()
    with pytest.raises(ConfigError, match="more than once"):
        parse_topology({"topics": [topic, topic]})


def test_cleanup_policy_inside_free_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="cleanup_policy"):
        one_topic(config={"cleanup.policy": "compact"})


def test_file_that_is_not_yaml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "topics.yaml"
    bad.write_text("topics: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as raised:
        load_topology(bad)
    assert str(bad) in str(raised.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read topics file"):
        load_topology(tmp_path / "absent.yaml")


def test_value_schema_file_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    topics = tmp_path / "topics.yaml"
    topics.write_text(
        "topics:\n"
        "  - {name: t, partitions: 1, cleanup_policy: delete, retention: 1d,\n"
        "     key_schema: string, value_schema: schemas/nope.avsc, description: d}\n"
    )
    with pytest.raises(ConfigError, match=r"no schema file schemas/nope\.avsc"):
        load_topology(topics, project_root=tmp_path)


def test_prefix_renames_every_topic_into_its_own_copy() -> None:
    topology = load_topology(Settings().topics_file)
    names = topology.names("test-1234")
    assert names["omnid.profile-updates"] == "test-1234.omnid.profile-updates"
    assert [t.name for t in topology.with_prefix("test-1234").topics] == list(names.values())


def test_empty_prefix_keeps_the_design_names() -> None:
    assert prefixed_name("", "omnid.dead-letter") == "omnid.dead-letter"


def test_prefix_with_characters_kafka_refuses_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="prefix"):
        prefixed_name("my prefix", "omnid.dead-letter")


def test_missing_topic_is_planned_for_creation() -> None:
    (plan,) = plan_topics(one_topic(), {})
    assert plan.action is TopicAction.CREATE
    assert plan.drift == ()


def test_topic_matching_its_spec_is_in_sync() -> None:
    (plan,) = plan_topics(one_topic(), existing())
    assert plan.in_sync


def test_more_partitions_wanted_are_added() -> None:
    (plan,) = plan_topics(one_topic(partitions=6), existing(partitions=3))
    assert plan.action is TopicAction.ADD_PARTITIONS
    assert plan.drift == ()


def test_fewer_partitions_wanted_is_drift_left_alone() -> None:
    (plan,) = plan_topics(one_topic(partitions=6), existing(partitions=12))
    assert plan.action is TopicAction.NONE
    assert [d.setting for d in plan.drift] == ["partitions"]
    assert "cannot remove" in str(plan.drift[0])


def test_different_cleanup_policy_is_drift_left_alone() -> None:
    (plan,) = plan_topics(one_topic(cleanup_policy="compact"), existing())
    assert plan.action is TopicAction.NONE
    assert [(d.setting, d.wanted, d.actual) for d in plan.drift] == [
        ("cleanup.policy", "compact", "delete")
    ]


def test_compact_delete_matches_in_either_order() -> None:
    (plan,) = plan_topics(
        one_topic(cleanup_policy="compact,delete"),
        existing(config={"cleanup.policy": "delete,compact"}),
    )
    assert plan.in_sync


def test_different_retention_is_drift() -> None:
    (plan,) = plan_topics(one_topic(retention="1d"), existing())
    assert [(d.setting, d.wanted) for d in plan.drift] == [("retention.ms", "86400000")]


def test_extra_config_the_cluster_lacks_is_drift() -> None:
    (plan,) = plan_topics(one_topic(config={"delete.retention.ms": "1000"}), existing())
    assert [(d.setting, d.actual) for d in plan.drift] == [("delete.retention.ms", "unset")]


def test_replication_factor_is_only_checked_when_the_spec_names_one() -> None:
    (unnamed,) = plan_topics(one_topic(), existing(replicas=3))
    (named,) = plan_topics(one_topic(replication_factor=1), existing(replicas=3))
    assert unnamed.in_sync
    assert [d.setting for d in named.drift] == ["replication factor"]


def test_partitions_are_raised_and_other_drift_still_reported() -> None:
    (plan,) = plan_topics(one_topic(partitions=6, cleanup_policy="compact"), existing(partitions=2))
    assert plan.action is TopicAction.ADD_PARTITIONS
    assert [d.setting for d in plan.drift] == ["cleanup.policy"]


def test_topics_outside_the_topology_are_ignored() -> None:
    others = existing() | {"someone.else": ExistingTopic("someone.else", 1, 1, {})}
    plans = plan_topics(one_topic(), others)
    assert [p.spec.name for p in plans] == ["omnid.things"]
