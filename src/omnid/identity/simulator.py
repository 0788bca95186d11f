"""A deterministic in-memory runner of the graph over N partitions, standing in for Kafka.

Each (stage, partition) is a FIFO queue like a topic partition; which queue delivers next is
chosen by a seeded random generator, so one seed is one reproducible interleaving.

With `workers`, partition p of every stage belongs to worker p * workers // partitions (the
range assignor's layout), and a command for a
partition of the worker that sent it is handled at once, ahead of whatever waits in that
partition's queue, as the runtime hands such a command to the next stage in the same batch
(`StageProcessor.local_router`). A topic never lets a command overtake one sent before it, but
that local hand-over does: an Apply caused by a record that followed another worker's command
into the worker's batch is handled before that command, still in its topic.
"""

from __future__ import annotations

import random
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from omnid.errors import InvalidEvent
from omnid.identity import records
from omnid.identity.commands import (
    Command,
    IdentityChangeEmission,
    IdentityCommand,
    Output,
    ProfileCommand,
    ProfileSnapshot,
    ProfileTombstone,
)
from omnid.identity.intake import commands_for_event
from omnid.identity.model import Event
from omnid.identity.privacy import commands_for_request
from omnid.identity.protocol import handle_identifier, handle_profile
from omnid.identity.requests import PrivacyReceiptEmission, PrivacyRequest, SuppressedDrop
from omnid.identity.rules import IdentityRules, NormalisationCache
from omnid.identity.stages import Stage
from omnid.identity.state import IdentifierState, ProfileState, ProfileStatus

_INGEST, _IDENTITY, _PROFILE = 0, 1, 2
# Outputs that leave the graph (by exact type: one set lookup per output, where a chain of
# isinstance checks was a tenth of the simulator's own time).
_EMISSIONS = frozenset(
    {
        ProfileSnapshot,
        ProfileTombstone,
        IdentityChangeEmission,
        PrivacyReceiptEmission,
        SuppressedDrop,
    }
)

# Called after every delivered command with the stage, the key and the key's new state.
Observer = Callable[[Stage, str, IdentifierState | ProfileState | None], None]
# Called with every delivered graph command and the state it finds, before it is handled (read
# the state at once: the handler changes it in place). Oracles use it to see what the graph was
# asked and when, without relying on what the handlers decided.
Witness = Callable[[Command, IdentifierState | ProfileState | None], None]
# An operator's action at some point among the events (split, unban, merge by hand): given the
# graph as it is when the action is delivered, the commands it sends.
Operation = Callable[["SimulationResult"], list[Command]]


@dataclass
class SimulationResult:
    identifiers: dict[str, IdentifierState]
    profiles: dict[str, ProfileState]
    updates: dict[str, dict[str, Any]]
    tombstoned: set[str]
    changes: list[dict[str, Any]]
    rejected: dict[str, InvalidEvent]
    valid_event_ids: set[str]
    steps: int = 0
    change_counts: dict[str, int] = field(default_factory=dict)
    # privacy: receipts by key (request id and status), suppressed identifiers and events
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    suppressed_identifiers: int = 0
    suppressed_events: int = 0

    def active_profiles(self) -> dict[str, ProfileState]:
        return {pid: p for pid, p in self.profiles.items() if p.status is ProfileStatus.ACTIVE}

    def survivor(self, profile_id: str) -> str:
        """The active profile at the end of `profile_id`'s merged_into chain."""
        seen = 0
        while True:
            state = self.profiles[profile_id]
            if state.merged_into is None:
                return profile_id
            profile_id = state.merged_into
            seen += 1
            if seen > len(self.profiles):
                raise AssertionError("merged_into chain has a cycle")

    def profile_of(self, identifier_key: str) -> ProfileState | None:
        state = self.identifiers.get(identifier_key)
        if state is None or state.owner is None:
            return None
        return self.profiles[self.survivor(state.owner)]


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


class Simulator:
    def __init__(
        self,
        rules: IdentityRules,
        partitions: int = 1,
        seed: int = 0,
        *,
        duplicate_rate: float = 0.0,
        serialise: bool = False,
        workers: int = 0,
        keep_outputs: bool = True,
        observer: Observer | None = None,
        witness: Witness | None = None,
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.rules = rules
        self.normalisations = NormalisationCache(rules)
        self.partitions = partitions
        self.random = random.Random(seed)
        self.duplicate_rate = duplicate_rate
        self.serialise = serialise
        self.workers = workers
        self.keep_outputs = keep_outputs
        self.observer = observer
        self.witness = witness

    def run(
        self,
        events: Iterable[Event | PrivacyRequest | Operation],
        after: SimulationResult | None = None,
    ) -> SimulationResult:
        """Delivers events, privacy requests and operations (and all they cause) until nothing
        is left; `after` continues from the tables and outputs of an earlier run. Operations
        arrive like events, on ingest partition 0."""
        n = self.partitions
        queues: list[deque[Any]] = [deque() for _ in range(3 * n)]
        ready: list[int] = []
        for arrival in events:
            if isinstance(arrival, PrivacyRequest):
                key = arrival.key
            elif isinstance(arrival, Event):
                key = arrival.identifiers[0].key if arrival.identifiers else arrival.event_id
            else:
                key = ""
            index = _INGEST * n + (partition_of(key, n) if key else 0)
            if not queues[index]:
                ready.append(index)
            queues[index].append(arrival)
        result = after or SimulationResult({}, {}, {}, set(), [], {}, set())
        identifiers, profiles = result.identifiers, result.profiles
        rules, rng, observer, witness = self.rules, self.random, self.observer, self.witness
        uniform = rng.random  # int(random() * n) is several times cheaper than randrange(n)
        steps = result.steps

        emit, serialise, duplicate_rate = self._emit, self.serialise, self.duplicate_rate
        partition_of_key: dict[str, int] = {}  # crc32 once per key, not once per command
        workers = self.workers
        # Commands a worker hands to its own next stage, handled before any other delivery,
        # and the worker whose handler is sending (-1: an operator's, sent to the topic).
        local: deque[tuple[int, Command]] = deque()
        sender = -1

        def send(outputs: list[Output]) -> None:
            for output in outputs:
                if type(output) in _EMISSIONS:
                    emit(result, output)  # type: ignore[arg-type]
                    continue
                command: Command = output  # type: ignore[assignment]
                if serialise:
                    command = records.decode(records.encode(command))
                key = command.key
                partition = partition_of_key.get(key)
                if partition is None:
                    partition = partition_of_key[key] = zlib.crc32(key.encode()) % n
                base = _IDENTITY if command.stage is Stage.IDENTITY else _PROFILE
                index = base * n + partition
                if workers and partition * workers // n == sender:
                    local.append((index, command))
                    continue
                queue = queues[index]
                if not queue:
                    ready.append(index)
                queue.append(command)
                if duplicate_rate and rng.random() < duplicate_rate:
                    queue.append(command)

        item: Any  # an event, a privacy request, an operation or a command
        while ready or local:
            if local:
                index, item = local.popleft()
            else:
                slot = int(uniform() * len(ready))
                index = ready[slot]
                queue = queues[index]
                item = queue.popleft()
                if not queue:
                    ready[slot] = ready[-1]
                    ready.pop()
                operation = index < n and not isinstance(item, Event | PrivacyRequest)
                sender = -1 if operation or not workers else index % n * workers // n
            steps += 1
            if index < n and isinstance(item, PrivacyRequest):
                send(commands_for_request(item))
            elif index < n and not isinstance(item, Event):
                send(item(result))
            elif index < n:
                try:
                    intake = commands_for_event(rules, item, self.normalisations)
                except InvalidEvent as error:
                    result.rejected[item.event_id] = error
                    continue
                result.valid_event_ids.add(item.event_id)
                send(intake.commands)  # type: ignore[arg-type]
            elif index < 2 * n:
                key = item.key
                if witness is not None:
                    witness(item, identifiers.get(key))
                id_state, outputs = handle_identifier(rules, identifiers.get(key), item)
                if id_state is not None:
                    if self.serialise:
                        id_state = records.decode(records.encode(id_state, key), key)
                    identifiers[key] = id_state
                if observer is not None:
                    observer(Stage.IDENTITY, key, id_state)
                send(outputs)
            else:
                key = item.key
                if witness is not None:
                    witness(item, profiles.get(key))
                profile_state, outputs = handle_profile(rules, profiles.get(key), item)
                if profile_state is not None:
                    if self.serialise:
                        profile_state = records.decode(records.encode(profile_state))
                    profiles[key] = profile_state
                if observer is not None:
                    observer(Stage.PROFILE, key, profile_state)
                send(outputs)
        result.steps = steps
        return result

    def _emit(
        self,
        result: SimulationResult,
        emission: ProfileSnapshot
        | ProfileTombstone
        | IdentityChangeEmission
        | PrivacyReceiptEmission
        | SuppressedDrop,
    ) -> None:
        # The commonest first: every event and every attach touch their profile.
        if isinstance(emission, ProfileSnapshot):
            if self.keep_outputs:
                result.updates[emission.profile_id] = emission.record
        elif isinstance(emission, IdentityChangeEmission):
            kind = emission.kind
            result.change_counts[kind] = result.change_counts.get(kind, 0) + 1
            if self.keep_outputs:
                result.changes.append(emission.record)
        elif isinstance(emission, ProfileTombstone):
            result.updates.pop(emission.profile_id, None)
            result.tombstoned.add(emission.profile_id)
        elif isinstance(emission, PrivacyReceiptEmission):
            result.receipts[emission.key] = emission.record
        else:
            result.suppressed_identifiers += 1
            result.suppressed_events += emission.event_dropped


__all__ = [
    "IdentityCommand",
    "Observer",
    "Operation",
    "ProfileCommand",
    "SimulationResult",
    "Simulator",
    "Witness",
    "partition_of",
]
