"""The stateful stages, defined once: which core stage consumes which command topic and keeps
which table, and which compacted topic is that table's changelog. Everything else — topic names
under a prefix, the processor's routing, the runtime's restore, metric labels — derives from
`STATEFUL_STAGES`. (Ingest, the stage of the channel topics, keeps no table.)"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from omnid.identity.stages import Stage


class Table(StrEnum):
    """The RocksDB-backed tables a worker keeps."""

    IDENTIFIERS = "identifiers"
    PROFILES = "profiles"
    HISTORY = "history"  # per profile: its bounded event history (what a split needs)


def changelog_topic(table: Table) -> str:
    """Logical name of the compacted topic holding every write to `table`."""
    return f"omnid.state.{table.value}-changelog"


@dataclass(frozen=True)
class StatefulStage:
    stage: Stage
    command_topic: str  # logical name (streams/topics.yaml)
    table: Table
    # Tables of the same keys kept apart from `table` (written, restored and moved with it):
    # the profile's history is large and read only by splits and explain.
    side_tables: tuple[Table, ...] = ()

    @property
    def changelog_topic(self) -> str:
        return changelog_topic(self.table)

    @property
    def tables(self) -> tuple[Table, ...]:
        return (self.table, *self.side_tables)


STATEFUL_STAGES = (
    StatefulStage(Stage.IDENTITY, "omnid.identity-commands", Table.IDENTIFIERS),
    StatefulStage(Stage.PROFILE, "omnid.profile-commands", Table.PROFILES, (Table.HISTORY,)),
)
BY_STAGE = {s.stage: s for s in STATEFUL_STAGES}
BY_TABLE = {table: s for s in STATEFUL_STAGES for table in s.tables}
