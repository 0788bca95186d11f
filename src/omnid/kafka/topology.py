"""The Kafka topology as data (streams/topics.yaml) and the pure plan that brings a cluster in line.

Nothing here talks to Kafka: `plan_topics` compares wanted topics with what a cluster reported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from omnid.config import PROJECT_ROOT
from omnid.config_files import parse_yaml, read_config_text
from omnid.errors import ConfigError

# Kafka's own limits on topic names.
_LEGAL_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_TOPIC_NAME_LENGTH = 249

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MILLIS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
FOREVER = "forever"

# value_schema words that are not .avsc files.
INTERNAL_VALUES = "internal"  # omnid's own JSON command records (omnid.identity.records)
RAW_VALUES = "raw"  # bytes kept exactly as they arrived (dead letters)


class CleanupPolicy(StrEnum):
    DELETE = "delete"
    COMPACT = "compact"
    COMPACT_DELETE = "compact,delete"


def retention_millis(retention: str) -> int:
    """`7d` -> 604800000; `forever` -> -1 (Kafka's "never delete by age")."""
    if retention == FOREVER:
        return -1
    match = _DURATION.match(retention)
    if match is None:
        raise ValueError(f"retention {retention!r} is not <number><ms|s|m|h|d> or {FOREVER!r}")
    return int(match.group(1)) * _UNIT_MILLIS[match.group(2)]


def prefixed_name(prefix: str, name: str) -> str:
    """The real topic name of logical topic `name` in the copy of the topology under `prefix`."""
    if not prefix:
        return name
    if not _LEGAL_TOPIC_NAME.match(prefix):
        raise ConfigError(f"topic prefix {prefix!r} may only hold letters, digits, '.', '_', '-'")
    full = f"{prefix}.{name}"
    if len(full) > MAX_TOPIC_NAME_LENGTH:
        raise ConfigError(f"topic name {full!r} is longer than Kafka's {MAX_TOPIC_NAME_LENGTH}")
    return full


class TopicSpec(BaseModel):
    """One wanted topic, as written in topics.yaml."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    partitions: int = Field(ge=1)
    cleanup_policy: CleanupPolicy
    retention: str
    key_schema: Literal["string", "bytes"]
    value_schema: str
    description: str
    replication_factor: int | None = Field(None, ge=1)
    config: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _legal_name(cls, name: str) -> str:
        if not _LEGAL_TOPIC_NAME.match(name) or len(name) > MAX_TOPIC_NAME_LENGTH:
            raise ValueError(f"{name!r} is not a legal Kafka topic name")
        return name

    @field_validator("retention")
    @classmethod
    def _known_duration(cls, retention: str) -> str:
        retention_millis(retention)
        return retention

    @field_validator("value_schema")
    @classmethod
    def _known_value_schema(cls, value_schema: str) -> str:
        if value_schema in (INTERNAL_VALUES, RAW_VALUES) or value_schema.endswith(".avsc"):
            return value_schema
        raise ValueError(
            f"{value_schema!r} is not an .avsc path, {INTERNAL_VALUES!r} or {RAW_VALUES!r}"
        )

    @model_validator(mode="after")
    def _config_does_not_repeat_fields(self) -> TopicSpec:
        repeated = {"cleanup.policy", "retention.ms"} & self.config.keys()
        if repeated:
            raise ValueError(f"set {sorted(repeated)} by cleanup_policy / retention, not config")
        return self

    @property
    def retention_ms(self) -> int:
        return retention_millis(self.retention)

    def topic_config(self) -> dict[str, str]:
        """The topic-level Kafka configs this spec asks for."""
        return {
            "cleanup.policy": self.cleanup_policy.value,
            "retention.ms": str(self.retention_ms),
            **self.config,
        }


class Topology(BaseModel):
    """Every topic omnid uses, in the order of the file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topics: tuple[TopicSpec, ...]

    @model_validator(mode="after")
    def _unique_names(self) -> Topology:
        names = [topic.name for topic in self.topics]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"topics listed more than once: {repeated}")
        return self

    def topic(self, name: str) -> TopicSpec:
        for spec in self.topics:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def names(self, prefix: str = "") -> dict[str, str]:
        """Logical topic name -> real topic name under `prefix`."""
        return {topic.name: prefixed_name(prefix, topic.name) for topic in self.topics}

    def with_prefix(self, prefix: str) -> Topology:
        """The same topology with every topic renamed into the copy under `prefix`."""
        return Topology(
            topics=tuple(
                topic.model_copy(update={"name": prefixed_name(prefix, topic.name)})
                for topic in self.topics
            )
        )


def parse_topology(document: Any, source: str = "topics.yaml") -> Topology:
    """A Topology from the parsed YAML document; `defaults` fill fields a topic leaves out."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping with 'defaults' and 'topics'")
    unknown = document.keys() - {"defaults", "topics"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level keys {sorted(unknown)}")
    defaults = document.get("defaults") or {}
    topics = document.get("topics")
    if not isinstance(defaults, dict) or not isinstance(topics, list) or not topics:
        raise ConfigError(f"{source}: 'defaults' must be a mapping and 'topics' a non-empty list")
    merged = [{**defaults, **topic} if isinstance(topic, dict) else topic for topic in topics]
    try:
        return Topology.model_validate({"topics": merged})
    except ValidationError as error:
        raise ConfigError(f"{source}: {_describe(error, merged)}") from None


def _describe(error: ValidationError, topics: list[Any]) -> str:
    problems = []
    for problem in error.errors():
        location = list(problem["loc"])
        where = ".".join(str(part) for part in location)
        if len(location) >= 2 and location[0] == "topics" and isinstance(location[1], int):
            topic = topics[location[1]]
            name = topic.get("name", f"#{location[1] + 1}") if isinstance(topic, dict) else "?"
            where = f"topic {name}" + "".join(f".{part}" for part in location[2:])
        problems.append(f"{where}: {problem['msg']}")
    return "; ".join(problems)


def load_topology(path: Path, project_root: Path = PROJECT_ROOT) -> Topology:
    """Reads and checks a topics file; every problem is a ConfigError naming the file and topic."""
    document = parse_yaml(read_config_text(path, "topics file"), str(path))
    topology = parse_topology(document, str(path))
    for topic in topology.topics:
        schema_file = project_root / topic.value_schema
        if topic.value_schema.endswith(".avsc") and not schema_file.is_file():
            raise ConfigError(f"{path}: topic {topic.name}: no schema file {topic.value_schema}")
    return topology


@dataclass(frozen=True)
class ExistingTopic:
    """What a cluster reports about one topic."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclass(frozen=True)
class Drift:
    """A difference `plan_topics` reports and leaves alone."""

    setting: str
    wanted: str
    actual: str
    why_not_fixed: str

    def __str__(self) -> str:
        return f"{self.setting}: wants {self.wanted}, has {self.actual} ({self.why_not_fixed})"


class TopicAction(StrEnum):
    CREATE = "create"
    ADD_PARTITIONS = "add_partitions"
    NONE = "none"


@dataclass(frozen=True)
class TopicPlan:
    spec: TopicSpec
    action: TopicAction
    existing: ExistingTopic | None
    drift: tuple[Drift, ...] = ()

    @property
    def in_sync(self) -> bool:
        return self.action is TopicAction.NONE and not self.drift


def _same_config_value(setting: str, wanted: str, actual: str) -> bool:
    if setting == "cleanup.policy":
        # Kafka may list "compact,delete" in either order.
        return set(wanted.split(",")) == set(actual.replace(" ", "").split(","))
    return wanted == actual


def plan_topic(spec: TopicSpec, existing: ExistingTopic | None) -> TopicPlan:
    if existing is None:
        return TopicPlan(spec, TopicAction.CREATE, None)
    drift: list[Drift] = []
    action = TopicAction.NONE
    if spec.partitions > existing.partitions:
        action = TopicAction.ADD_PARTITIONS
    elif spec.partitions < existing.partitions:
        drift.append(
            Drift(
                "partitions",
                str(spec.partitions),
                str(existing.partitions),
                "Kafka cannot remove partitions",
            )
        )
    wanted_replicas = spec.replication_factor
    if wanted_replicas is not None and wanted_replicas != existing.replication_factor:
        drift.append(
            Drift(
                "replication factor",
                str(spec.replication_factor),
                str(existing.replication_factor),
                "reassigning replicas is an operator's decision",
            )
        )
    for setting, wanted in spec.topic_config().items():
        actual = existing.config.get(setting)
        if actual is None or not _same_config_value(setting, wanted, actual):
            drift.append(
                Drift(
                    setting,
                    wanted,
                    "unset" if actual is None else actual,
                    "existing topic configs are left as the operator set them",
                )
            )
    return TopicPlan(spec, action, existing, tuple(drift))


def plan_topics(topology: Topology, existing: Mapping[str, ExistingTopic]) -> tuple[TopicPlan, ...]:
    """What `omnid topics apply` will do: create missing topics, raise partition counts, and
    report every other difference without touching it. Topics not in `topology` are ignored."""
    return tuple(plan_topic(spec, existing.get(spec.name)) for spec in topology.topics)
