"""One input record in, the records it causes out: the three stages around the pure core.

No Kafka client here: the runtime hands each consumed record to `StageProcessor.process` and
produces what comes back, so the decisions (what is dead-lettered, where each output goes, which
state changes) are testable without a broker.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omnid.config import Settings
from omnid.contracts import AvroCodec, decode_channel_event
from omnid.contracts.channel_event import DEFAULT_MAX_EVENT_BYTES
from omnid.errors import InvalidEvent, RejectionReason
from omnid.identity import records
from omnid.identity.commands import (
    Absorb,
    Apply,
    Command,
    IdentityChangeEmission,
    Output,
    ProfileSnapshot,
    ProfileTombstone,
    Stage,
)
from omnid.identity.history_records import decode_history, encode_history
from omnid.identity.intake import commands_for_event
from omnid.identity.model import Event, Identifier, event_from_record
from omnid.identity.privacy import (
    commands_for_request,
    is_marker,
    marker_key,
    marker_state,
    request_from_record,
)
from omnid.identity.protocol import handle_identifier, handle_profile
from omnid.identity.requests import PrivacyReceiptEmission, SuppressedDrop, SuppressionMarker
from omnid.identity.rules import IdentityRules, NormalisationCache
from omnid.identity.state import EventHistory, ProfileState, ProfileStatus
from omnid.kafka.stages import BY_STAGE, STATEFUL_STAGES, Table
from omnid.pipeline.stage_metrics import INGEST, SUPPRESSED, BatchTally
from omnid.pipeline.topic_names import PipelineTopics

log = logging.getLogger(__name__)

PROFILE_UPDATE = "omnid.ProfileUpdate"
# Header of a ProfileUpdate: the ids of the events (comma-separated) whose changes it shows.
EVENTS_HEADER = "events"
IDENTITY_CHANGE = "omnid.IdentityChange"
# Headers of an IdentityChange, so the worker's own followers of the changelog (quarantine book,
# operation outcomes) skip the changes they do not want without decoding them: its `kind`, and
# `operation` (the request id) when an operator asked for it. Records of older workers have no
# headers and are decoded.
CHANGE_KIND_HEADER = "kind"
OPERATION_HEADER = "operation"
PRIVACY_REQUEST = "omnid.PrivacyRequest"
PRIVACY_RECEIPT = "omnid.PrivacyReceipt"
DEVELOPMENT_SUPPRESSION_SECRET: str = Settings.model_fields["suppression_secret"].default

Headers = list[tuple[str, bytes]]


# The records below are made several times per event (a LocalCommand per command, a StateWrite
# per changed state): plain slotted dataclasses, not frozen, whose __init__ is 3-4x cheaper
# (a frozen one sets each field through object.__setattr__). Nothing changes them after.


@dataclass(slots=True)
class Incoming:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None


@dataclass(slots=True)
class StateWrite:
    """A table write; value None deletes the key (and is a tombstone on the changelog)."""

    table: Table
    partition: int
    key: str
    value: bytes | None


@dataclass(slots=True)
class LocalCommand:
    """A command for a partition this worker owns, handed straight to the next stage in the
    same batch (and transaction) instead of a round trip through its command topic."""

    table: Table
    partition: int
    command: Command


# (table, partition, key) -> encoded state or None; the runtime reads its uncommitted writes first.
StateReader = Callable[[Table, str], "bytes | None"]
# (stage, key) -> the partition if the runtime handles that command locally, else None.
LocalRouter = Callable[[Stage, str], "int | None"]

# Decoded states kept with the bytes they came from: the next command for a key usually reads
# the bytes its predecessor just wrote. A decoded profile is about 4 KiB and an identifier 1 KiB
# (tracemalloc, bench workload), so this holds at most ~16 MiB; the oldest entry goes first.
STATE_CACHE_ENTRIES = 4_096


_PROFILE_UPDATES = (ProfileSnapshot, ProfileTombstone)


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
        suppression_secret: str = DEVELOPMENT_SUPPRESSION_SECRET,
    ) -> None:
        # The core keys ban digests with the suppression secret, handed to it in the rules.
        self.rules = rules.model_copy(update={"recognition_secret": suppression_secret})
        self.normalisations = NormalisationCache(self.rules)
        self.suppression_secret = suppression_secret.encode()
        self.codec = codec
        self.topics = topics
        self.max_event_bytes = max_event_bytes
        self._command_topics = {s.stage: topics.command_topic(s.stage) for s in STATEFUL_STAGES}
        # Set by the runtime (exactly-once only): commands it can handle in the same batch.
        self.local_router: LocalRouter | None = None
        # OrderedDict: evicting the oldest with popitem is O(1); deleting a plain dict's first
        # key makes the next `next(iter(...))` walk every slot deleted before it (measured:
        # 90 us per eviction at 50,000 entries, against 1.4 us).
        self._states: OrderedDict[tuple[Table, str], tuple[bytes, Any]] = OrderedDict()
        # States changed by the current batch: (table, key) -> (partition, bytes read, state).
        self._changed: dict[tuple[Table, str], tuple[int, bytes | None, Any]] = {}
        # The batch's last snapshot (or tombstone) of each profile, and the events it shows
        # (event id, received_at): one ProfileUpdate per profile per batch, the last state.
        self._updates: dict[str, tuple[ProfileSnapshot | ProfileTombstone, list[tuple[str, int]]]]
        self._updates = {}
        # Metrics of the current batch, published by the runtime when the batch is committed.
        self.tally = BatchTally()
        # Suppression markers read by the current batch: identifier key -> marker bytes.
        self._markers_read: dict[str, bytes] = {}
        # Profile histories (table `history`), decoded and kept like `_states`, and the bytes
        # the current batch read for each profile it changed.
        self._histories: OrderedDict[str, tuple[bytes | None, EventHistory]] = OrderedDict()
        self._history_read: dict[str, bytes | None] = {}

    def process(self, record: Incoming, read: StateReader) -> list[Outgoing | LocalCommand]:
        """Outputs of one consumed record; its state changes wait for `take_state_writes`."""
        table = self.topics.table_of(record.topic)
        if record.topic == self.topics.privacy_requests:
            return self._privacy_request(record)
        if table is None:
            return self._ingest(record)
        try:
            if record.value is None:
                raise InvalidEvent(RejectionReason.UNDECODABLE, "command record has no value")
            command = records.decode(record.value)
        except InvalidEvent as error:
            # Only a foreign producer can put such a record on an internal topic.
            self.tally.count(self.tally.dead_letters, error.reason.value)
            return [dead_letter(self.topics.dead_letter, record, error)]
        return self.handle(table, record.partition, command, read)

    def handle(
        self, table: Table, partition: int, command: Command, read: StateReader
    ) -> list[Outgoing | LocalCommand]:
        """Runs a decoded command against its key's state (the batch's latest, if changed)."""
        key = command.key
        slot = (table, key)
        changed = self._changed.get(slot)
        started = time.perf_counter()
        if changed is not None:
            previous, state = changed[1], changed[2]
        else:
            previous = read(table, key)
            state = self._state_of(table, key, previous)
            if state is None and table is Table.IDENTIFIERS:
                state = self._marker_of(key, read)
            if table is Table.PROFILES:
                self._attach_history(key, state, read)
        deferred: list[Event] = []
        if table is Table.IDENTIFIERS:
            new_state, outputs = handle_identifier(self.rules, state, command)
            stage = Stage.IDENTITY
        else:
            if state is not None and state.deferred:
                # Applies deferred while the profile awaited a merge may be applied by this command.
                deferred = [c.event for c in state.deferred if isinstance(c, Apply)]
            new_state, outputs = handle_profile(self.rules, state, command)
            stage = Stage.PROFILE
            # Counted when first stored, not by a snapshot's version: a founding command
            # (Found) shows only its last part's snapshot.
            if state is None and new_state is not None and new_state.status is ProfileStatus.ACTIVE:
                self.tally.profiles_created += 1
        self.tally.stage(stage, time.perf_counter() - started)
        if new_state is not None:
            self._changed[slot] = (partition, previous, new_state)
        # An event-carrying command (Apply) is shown by its profile's update: the update
        # names it, and the end-to-end latency is measured from its receipt.
        event = getattr(command, "event", None)
        shown = [(event.event_id, event.received_at)] if event is not None else []
        if deferred and new_state is not None:
            applied = getattr(new_state, "applied", {})
            shown += [(e.event_id, e.received_at) for e in deferred if e.digest in applied]
        if isinstance(command, Absorb):
            # The loser's update of this batch became a tombstone: the winner's shows its events.
            shown.extend(self._take_shown(command.loser.profile_id))
        routed = []
        for output in outputs:
            if isinstance(output, _PROFILE_UPDATES):
                self._hold_update(output, shown)
            elif isinstance(output, SuppressedDrop):
                self.tally.count(self.tally.identifiers_rejected, SUPPRESSED)
                self.tally.events_suppressed += output.event_dropped
            else:
                routed.append(self._output(output))
        return routed

    def take_profile_updates(self) -> list[Outgoing]:
        """The batch's ProfileUpdates: one per changed profile, its last state (as Kafka
        Streams' record caches do), with the ids of the events it shows in an `events` header."""
        outgoing = []
        for profile_id, (update, shown) in self._updates.items():
            key = profile_id.encode()
            headers = [(EVENTS_HEADER, ",".join(e for e, _ in shown).encode())] if shown else None
            if isinstance(update, ProfileTombstone):
                # Events of a profile merged away in this batch whose Absorb is handled
                # elsewhere: the tombstone names them (their changes live on in the survivor).
                self.tally.tombstones += 1
                outgoing.append(Outgoing(self.topics.profile_updates, key, None, headers))
                continue
            record = update.record
            self.tally.updates.append((len(record["identifiers"]), [at for _, at in shown]))
            value = self.codec.encode(PROFILE_UPDATE, record)
            outgoing.append(Outgoing(self.topics.profile_updates, key, value, headers))
        self._updates.clear()
        return outgoing

    def take_state_writes(self) -> list[StateWrite]:
        """The states changed since the last call, each encoded once however many commands
        touched it; a state that encodes to the bytes it was read from costs no write."""
        writes = []
        for (table, key), (partition, previous, state) in self._changed.items():
            if table is Table.IDENTIFIERS and (key in self._markers_read or is_marker(state)):
                writes.extend(self._marker_writes(partition, key, previous, state))
                if is_marker(state):
                    continue
            if table is Table.PROFILES:
                history = self._history_write(partition, key, state)
                if history is not None:
                    writes.append(history)
                history, state.history = state.history, EventHistory()
                encoded = records.encode(state)  # without its history: stored apart
                state.history = history
            else:
                encoded = records.encode(state, key)
            self._remember(table, key, encoded, state)
            if encoded != previous:
                writes.append(StateWrite(table, partition, key, encoded))
        self._changed.clear()
        self._markers_read.clear()
        self._history_read.clear()
        return writes

    def discard_state_changes(self) -> None:
        """An aborted batch: its changed state objects must not be read again, its updates
        are not published and its metrics are counted when it is replayed."""
        self._changed.clear()
        self._markers_read.clear()
        self._updates.clear()
        self._history_read.clear()
        self.tally.reset()

    # -- profile histories: their own table, read and written with the profile ---------------

    def _attach_history(self, key: str, state: ProfileState | None, read: StateReader) -> None:
        cached = self._histories.pop(key, None)
        if state is None:
            # A profile is never deleted, and its history is written with it: no profile, no
            # history. A read saved per new profile (4 in 5 profile reads on the 1M workload).
            self._history_read[key] = None
            return
        stored = read(Table.HISTORY, key)
        self._history_read[key] = stored
        if cached is not None and cached[0] == stored:
            state.history = cached[1]
        else:
            state.history = decode_history(stored) if stored is not None else EventHistory()

    def _history_write(self, partition: int, key: str, state: ProfileState) -> StateWrite | None:
        """The history's write if it changed; an empty one (merged away, erased) is deleted."""
        history = state.history
        empty = not history.events and history.residue is None
        encoded = None if empty else encode_history(history)
        if len(self._histories) >= STATE_CACHE_ENTRIES:
            self._histories.popitem(last=False)
        self._histories[key] = (encoded, history)
        if encoded == self._history_read.get(key):
            return None
        return StateWrite(Table.HISTORY, partition, key, encoded)

    # -- suppression markers: an erased identifier's only trace, under an HMAC of its key ------

    def _marker_of(self, key: str, read: StateReader) -> Any:
        stored = read(Table.IDENTIFIERS, marker_key(self.suppression_secret, key))
        if stored is None:
            return None
        self._markers_read[key] = stored
        marker: SuppressionMarker = records.decode(stored)
        identifier_type, _, value = key.partition(":")
        return marker_state(Identifier(identifier_type, value), marker.suppressed_by)

    def _marker_writes(
        self, partition: int, key: str, previous: bytes | None, state: Any
    ) -> list[StateWrite]:
        """A marker replaces the identifier's state (whose key is deleted: compaction then
        removes the clear key from the changelog); lifting one deletes the marker."""
        stored_under = marker_key(self.suppression_secret, key)
        was = self._markers_read.pop(key, None)
        if not is_marker(state):
            return [StateWrite(Table.IDENTIFIERS, partition, stored_under, None)]
        writes = []
        if previous is not None:
            writes.append(StateWrite(Table.IDENTIFIERS, partition, key, None))
        marker = records.encode(SuppressionMarker(state.suppressed_by or ""))
        if marker != was:
            writes.append(StateWrite(Table.IDENTIFIERS, partition, stored_under, marker))
        return writes

    def _privacy_request(self, record: Incoming) -> list[Outgoing | LocalCommand]:
        try:
            if record.value is None:
                raise InvalidEvent(RejectionReason.UNDECODABLE, "privacy request has no value")
            decoded = self.codec.decode(record.value, PRIVACY_REQUEST).record
            request = request_from_record(self.rules, decoded)
        except InvalidEvent as error:
            self.tally.count(self.tally.dead_letters, error.reason.value)
            return [dead_letter(self.topics.dead_letter, record, error)]
        return [self._output(output) for output in commands_for_request(request)]

    def _ingest(self, record: Incoming) -> list[Outgoing | LocalCommand]:
        tally = self.tally
        started = time.perf_counter()
        try:
            if record.value is None:
                raise InvalidEvent(RejectionReason.UNDECODABLE, "event record has no value")
            decoded = decode_channel_event(self.codec, record.value, self.max_event_bytes)
            intake = commands_for_event(self.rules, event_from_record(decoded), self.normalisations)
        except Exception as error:  # bad bytes must never stop a worker
            if not isinstance(error, InvalidEvent):
                error = InvalidEvent(
                    RejectionReason.UNDECODABLE, f"decoder failed: {type(error).__name__}"
                )
            tally.count(tally.dead_letters, error.reason.value)
            return [dead_letter(self.topics.dead_letter, record, error)]
        finally:
            tally.stage(INGEST, time.perf_counter() - started)
        tally.count(tally.ingested, intake.event.channel)
        for rejection in intake.rejected:
            tally.count(tally.identifiers_rejected, rejection.reason.value)
        return [self._command(command) for command in intake.commands]

    def _state_of(self, table: Table, key: str, payload: bytes | None) -> Any:
        """The decoded state of `payload`, from the cache when it holds these very bytes.

        The entry is taken out: handlers change states in place, so a state object is only ever
        cached next to the bytes it was encoded to after its handler returned."""
        cached = self._states.pop((table, key), None)
        if payload is None:
            return None
        if cached is not None and (cached[0] is payload or cached[0] == payload):
            return cached[1]
        return records.decode(payload, key)

    def _remember(self, table: Table, key: str, encoded: bytes, state: Any) -> None:
        if len(self._states) >= STATE_CACHE_ENTRIES:
            self._states.popitem(last=False)  # the oldest entry
        self._states[(table, key)] = (encoded, state)

    def _command(self, command: Command) -> Outgoing | LocalCommand:
        if self.local_router is not None:
            partition = self.local_router(command.stage, command.key)
            if partition is not None:
                if isinstance(command, Absorb):
                    # Carries the loser's live state object: hand over a copy, as the topic would.
                    command = records.decode(records.encode(command))
                return LocalCommand(BY_STAGE[command.stage].table, partition, command)
        return Outgoing(
            self._command_topics[command.stage], command.key.encode(), records.encode(command)
        )

    def _hold_update(
        self, update: ProfileSnapshot | ProfileTombstone, events: list[tuple[str, int]]
    ) -> None:
        held = self._updates.get(update.profile_id)
        shown = held[1] if held is not None else []
        shown.extend(events)
        self._updates[update.profile_id] = (update, shown)

    def _take_shown(self, profile_id: str) -> list[tuple[str, int]]:
        held = self._updates.get(profile_id)
        if held is None or not held[1]:
            return []
        self._updates[profile_id] = (held[0], [])
        return held[1]

    def _output(self, output: Output) -> Outgoing | LocalCommand:
        if isinstance(output, IdentityChangeEmission):
            self.tally.count(
                self.tally.identity_changes, (output.kind, output.record.get("reason"))
            )
            value = self.codec.encode(IDENTITY_CHANGE, output.record)
            return Outgoing(
                self.topics.identity_changelog,
                output.key.encode(),
                value,
                identity_change_headers(output.record),
            )
        if isinstance(output, PrivacyReceiptEmission):
            self.tally.count(self.tally.receipts, (output.record["kind"], output.record["status"]))
            value = self.codec.encode(PRIVACY_RECEIPT, output.record)
            return Outgoing(self.topics.privacy_receipts, output.key.encode(), value)
        assert not isinstance(output, ProfileSnapshot | ProfileTombstone | SuppressedDrop)
        return self._command(output)


def identity_change_headers(record: dict[str, Any]) -> Headers:
    headers = [(CHANGE_KIND_HEADER, str(record["kind"]).encode())]
    if record.get("operator") is not None and record.get("event_id") is not None:
        headers.append((OPERATION_HEADER, str(record["event_id"]).encode()))
    return headers


def identity_change_tags(headers: Headers | None) -> tuple[str, bool] | None:
    """(kind, asked for by an operator) of an identity change, from its record's headers,
    without decoding it; None for a record an older worker wrote without them (decode it).
    Read by position, as identity_change_headers writes them: every change the worker writes
    passes here twice (its two followers), and a dict per record showed in the profile."""
    if not headers or headers[0][0] != CHANGE_KIND_HEADER:
        return None
    return headers[0][1].decode(), len(headers) > 1 and headers[1][0] == OPERATION_HEADER
