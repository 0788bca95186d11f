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


@dataclass(frozen=True)
class StatefulStage:
    stage: Stage
    command_topic: str  # logical name (streams/topics.yaml)
    table: Table

    @property
    def changelog_topic(self) -> str:
        """Logical name of the compacted topic holding every write to the table."""
        return f"omnid.state.{self.table.value}-changelog"


STATEFUL_STAGES = (
    StatefulStage(Stage.IDENTITY, "omnid.identity-commands", Table.IDENTIFIERS),
    StatefulStage(Stage.PROFILE, "omnid.profile-commands", Table.PROFILES),
)
BY_STAGE = {s.stage: s for s in STATEFUL_STAGES}
BY_TABLE = {s.table: s for s in STATEFUL_STAGES}
