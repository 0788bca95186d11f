"""The worker's topics and state tables, all named under one prefix so copies never meet."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from omnid.contracts import Channel, events_topic
from omnid.identity.commands import Stage
from omnid.kafka.stages import BY_STAGE, BY_TABLE, STATEFUL_STAGES, Table, changelog_topic
from omnid.kafka.topology import prefixed_name


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
    privacy_requests: str
    privacy_receipts: str

    @classmethod
    def under(cls, prefix: str = "") -> PipelineTopics:
        def name(logical: str) -> str:
            return prefixed_name(prefix, logical)

        return cls(
            prefix=prefix,
            events=tuple(name(events_topic(channel)) for channel in Channel),
            identity_commands=name(BY_STAGE[Stage.IDENTITY].command_topic),
            profile_commands=name(BY_STAGE[Stage.PROFILE].command_topic),
            profile_updates=name("omnid.profile-updates"),
            identity_changelog=name("omnid.identity-changelog"),
            dead_letter=name("omnid.dead-letter"),
            privacy_requests=name("omnid.privacy-requests"),
            privacy_receipts=name("omnid.privacy-receipts"),
        )

    @property
    def inputs(self) -> tuple[str, ...]:
        return (
            *self.events,
            self.privacy_requests,
            self.identity_commands,
            self.profile_commands,
        )

    def state_changelog(self, table: Table) -> str:
        """Compacted topic holding every write to `table`, partitioned like its source topic."""
        return prefixed_name(self.prefix, changelog_topic(table))

    def table_of(self, topic: str) -> Table | None:
        """The table that the stage consuming `topic` keeps, if any (ingest keeps none)."""
        return self._tables_by_topic.get(topic)

    def tables_of(self, topic: str) -> tuple[Table, ...]:
        """Every table the stage consuming `topic` keeps, its side tables included."""
        table = self.table_of(topic)
        return BY_TABLE[table].tables if table is not None else ()

    @cached_property
    def _tables_by_topic(self) -> dict[str, Table]:  # asked once per consumed record
        return {prefixed_name(self.prefix, s.command_topic): s.table for s in STATEFUL_STAGES}

    def source_of(self, table: Table) -> str:
        """The command topic of the stage that keeps `table`."""
        return prefixed_name(self.prefix, BY_TABLE[table].command_topic)

    def command_topic(self, stage: Stage) -> str:
        return prefixed_name(self.prefix, BY_STAGE[stage].command_topic)

    def default_group(self) -> str:
        return prefixed_name(self.prefix, "omnid-worker")

    def worker_roster(self) -> str:
        """Compacted, one partition: each worker's partitions and lookup URL (see
        omnid.pipeline.membership)."""
        return prefixed_name(self.prefix, "omnid.worker-roster")

    def created_by_workers(self) -> list[str]:
        """The topics workers create at start-up if missing: the state changelogs, the roster."""
        return [*(self.state_changelog(table) for table in Table), self.worker_roster()]
