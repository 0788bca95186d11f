"""Liveness and readiness of an omnid process, as named conditions the shell sets and clears.

Liveness says the event loop answers (restart me if not); readiness says this process should
get traffic now (a worker: its tables are recovered and no rebalance is in progress).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HealthReport:
    """What /healthz and /readyz answer: an HTTP status and a JSON body."""

    status: int
    body: dict[str, object]


@dataclass
class Readiness:
    """Ready exactly when no condition is pending; every condition starts pending.

    A worker declares e.g. `Readiness(pending={"tables_recovered"})`, and clears it when recovery
    completes; a rebalance sets it pending again.
    """

    pending: set[str] = field(default_factory=set)

    def wait_for(self, condition: str) -> None:
        self.pending.add(condition)

    def satisfied(self, condition: str) -> None:
        self.pending.discard(condition)

    @property
    def ready(self) -> bool:
        return not self.pending

    def readyz(self) -> HealthReport:
        if self.ready:
            return HealthReport(200, {"status": "ready"})
        return HealthReport(503, {"status": "not_ready", "waiting_for": sorted(self.pending)})

    @staticmethod
    def healthz() -> HealthReport:
        # Answering at all is the liveness signal: a wedged event loop never gets here.
        return HealthReport(200, {"status": "ok"})
