"""The worker's topics and state tables, all named under one prefix so copies never meet."""

from __future__ import annotations

from dataclasses import dataclass

from omnid.contracts import Channel, events_topic
from omnid.kafka.topology import prefixed_name
from omnid.observability.metrics import Table


@dataclass(frozen=True)
class PipelineTopics:
    """Real topic names of one copy of the topology (`prefix` "" is the production copy)."""

    prefix: str
    events: tuple[str, ...]
    identity_commands: str
    profile_commands: str
    profile_updates: str
    identity_changelog: str
    dead_letter: str

    @classmethod
    def under(cls, prefix: str = "") -> PipelineTopics:
        def name(logical: str) -> str:
            return prefixed_name(prefix, logical)

        return cls(
            prefix=prefix,
            events=tuple(name(events_topic(channel)) for channel in Channel),
            identity_commands=name("omnid.identity-commands"),
            profile_commands=name("omnid.profile-commands"),
            profile_updates=name("omnid.profile-updates"),
            identity_changelog=name("omnid.identity-changelog"),
            dead_letter=name("omnid.dead-letter"),
        )

    @property
    def inputs(self) -> tuple[str, ...]:
        return (*self.events, self.identity_commands, self.profile_commands)

    def state_changelog(self, table: Table) -> str:
        """Compacted topic holding every write to `table`, partitioned like its source topic."""
        return prefixed_name(self.prefix, f"omnid.state.{table.value}-changelog")

    def table_of(self, topic: str) -> Table | None:
        """The table that the stage consuming `topic` keeps, if any (ingest keeps none)."""
        if topic == self.identity_commands:
            return Table.IDENTIFIERS
        if topic == self.profile_commands:
            return Table.PROFILES
        return None

    def source_of(self, table: Table) -> str:
        return self.identity_commands if table is Table.IDENTIFIERS else self.profile_commands

    def default_group(self) -> str:
        return prefixed_name(self.prefix, "omnid-worker")
