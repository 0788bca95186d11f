"""One input record in, the records it causes out: the three stages around the pure core.

No Kafka client here: the runtime hands each consumed record to `StageProcessor.process` and
produces what comes back, so the decisions (what is dead-lettered, where each output goes, which
state changes) are testable without a broker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omnid.contracts import AvroCodec, decode_channel_event
from omnid.contracts.channel_event import DEFAULT_MAX_EVENT_BYTES
from omnid.errors import InvalidEvent, RejectionReason
from omnid.identity.commands import (
    Command,
    IdentityChangeEmission,
    Output,
    ProfileSnapshot,
    ProfileTombstone,
    Stage,
)
from omnid.identity.intake import commands_for_event
from omnid.identity.model import event_from_record
from omnid.identity.protocol import handle_identifier, handle_profile
from omnid.identity.records import from_record, to_record
from omnid.identity.rules import IdentityRules
from omnid.observability import metrics
from omnid.observability.metrics import Table
from omnid.pipeline.topology import PipelineTopics

log = logging.getLogger(__name__)

PROFILE_UPDATE = "omnid.ProfileUpdate"
IDENTITY_CHANGE = "omnid.IdentityChange"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None


@dataclass(frozen=True, slots=True)
class StateWrite:
    table: Table
    partition: int
    key: str
    value: bytes


# (table, partition, key) -> encoded state or None; the runtime reads its uncommitted writes first.
StateReader = Callable[[Table, int, str], "bytes | None"]


def encode_record(obj: Any) -> bytes:
    """Commands and states on internal topics and in RocksDB: compact JSON of `to_record`."""
    return json.dumps(to_record(obj), separators=(",", ":")).encode()


def decode_record(payload: bytes) -> Any:
    try:
        record = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(RejectionReason.UNDECODABLE, f"not JSON: {error.msg}") from None
    if not isinstance(record, dict):
        raise InvalidEvent(RejectionReason.SCHEMA_INVALID, "a record must be a JSON object")
    return from_record(record)


def dead_letter(topic: str, source: Incoming, error: InvalidEvent) -> Outgoing:
    """The original bytes, with why and where from in headers (never the content in logs)."""
    headers: Headers = [
        ("reason", error.reason.value.encode()),
        ("detail", error.detail.encode()[:1000]),
        ("source_topic", source.topic.encode()),
        ("source_partition", str(source.partition).encode()),
        ("source_offset", str(source.offset).encode()),
    ]
    return Outgoing(topic, source.key, source.value, headers)


class StageProcessor:
    """Routes a consumed record to its stage: ingest (events), identity or profile commands."""

    def __init__(
        self,
        rules: IdentityRules,
        codec: AvroCodec,
        topics: PipelineTopics,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.rules = rules
        self.codec = codec
        self.topics = topics
        self.max_event_bytes = max_event_bytes
        self._command_topics = {
            Stage.IDENTITY: topics.identity_commands,
            Stage.PROFILE: topics.profile_commands,
        }

    def process(
        self, record: Incoming, read: StateReader
    ) -> tuple[list[Outgoing], StateWrite | None]:
        table = self.topics.table_of(record.topic)
        if table is None:
            return self._ingest(record), None
        try:
            if record.value is None:
                raise InvalidEvent(RejectionReason.UNDECODABLE, "command record has no value")
            command = decode_record(record.value)
        except InvalidEvent as error:
            # Only a foreign producer can put such a record on an internal topic.
            metrics.record_dead_letter(error.reason.value)
            return [dead_letter(self.topics.dead_letter, record, error)], None
        key = command.key
        previous = read(table, record.partition, key)
        with metrics.timed_stage(
            metrics.Stage.IDENTITY if table is Table.IDENTIFIERS else metrics.Stage.PROFILE
        ):
            state = decode_record(previous) if previous is not None else None
            if table is Table.IDENTIFIERS:
                new_state, outputs = handle_identifier(self.rules, state, command)
            else:
                new_state, outputs = handle_profile(self.rules, state, command)
        write = None
        if new_state is not None:
            encoded = encode_record(new_state)
            # Unchanged state (a duplicate command) costs no changelog record.
            if encoded != previous:
                write = StateWrite(table, record.partition, key, encoded)
        # An event-carrying command (Apply) dates its profile update: end-to-end latency.
        event = getattr(command, "event", None)
        received_at = event.received_at if event is not None else None
        return [self._output(output, received_at) for output in outputs], write

    def _ingest(self, record: Incoming) -> list[Outgoing]:
        with metrics.timed_stage(metrics.Stage.INGEST):
            try:
                if record.value is None:
                    raise InvalidEvent(RejectionReason.UNDECODABLE, "event record has no value")
                decoded = decode_channel_event(self.codec, record.value, self.max_event_bytes)
                intake = commands_for_event(self.rules, event_from_record(decoded))
            except InvalidEvent as error:
                metrics.record_dead_letter(error.reason.value)
                return [dead_letter(self.topics.dead_letter, record, error)]
            except Exception as error:  # bad bytes must never stop a worker
                wrapped = InvalidEvent(
                    RejectionReason.UNDECODABLE, f"decoder failed: {type(error).__name__}"
                )
                metrics.record_dead_letter(wrapped.reason.value)
                return [dead_letter(self.topics.dead_letter, record, wrapped)]
        metrics.record_event_ingested(intake.event.channel)
        for rejection in intake.rejected:
            metrics.record_identifier_rejected(rejection.reason.value)
        return [self._command(command) for command in intake.commands]

    def _command(self, command: Command) -> Outgoing:
        return Outgoing(
            self._command_topics[command.stage], command.key.encode(), encode_record(command)
        )

    def _output(self, output: Output, received_at: int | None = None) -> Outgoing:
        if isinstance(output, ProfileSnapshot):
            record = output.record
            metrics.record_profile_update(len(record.get("identifiers", ())), received_at)
            if output.version == 1:
                metrics.record_profile_created()
            value = self.codec.encode(PROFILE_UPDATE, record)
            return Outgoing(self.topics.profile_updates, output.key.encode(), value)
        if isinstance(output, ProfileTombstone):
            metrics.record_profile_update(None, None)
            return Outgoing(self.topics.profile_updates, output.key.encode(), None)
        if isinstance(output, IdentityChangeEmission):
            metrics.record_identity_change(output.kind, output.record.get("reason"))
            value = self.codec.encode(IDENTITY_CHANGE, output.record)
            return Outgoing(self.topics.identity_changelog, output.key.encode(), value)
        return self._command(output)
