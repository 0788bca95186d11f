"""The short chaos run of `make test`: one broker restart, one worker SIGKILL, one worker joining,
under a steady stream through the collector on three workers: no event lost or counted twice,
every customer's orders and revenue exact, every profile equal to the simulator's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omnid.testing.broker import LocalBroker
from omnid.testing.chaos import SHORT_SCHEDULE, ChaosSpec, run_chaos

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(1500)]

# Its own port: `make chaos` uses 9392, test_broker_restart.py 9192 (controllers on port + 1).
PRIVATE_BROKER_PORT = 9492
SPEC = ChaosSpec(SHORT_SCHEDULE, customers=40, events_per_s=15, steady_s=5, pause_s=(3, 6))


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    broker = LocalBroker(tmp_path / "kafka", PRIVATE_BROKER_PORT)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_short_chaos_run_loses_nothing_and_counts_nothing_twice(
    private_broker: LocalBroker, tmp_path: Path
) -> None:
    report = run_chaos(private_broker, tmp_path / "run", SPEC).report
    print(report)
    assert [f["fault"] for f in report["faults"]] == [f.value for f in SHORT_SCHEDULE]
    assert report["lost_events"] == 0, report
    assert report["double_counted_events"] == 0, report
    assert report["customers_with_wrong_orders"] == 0, report
    assert report["customers_with_wrong_revenue"] == 0, report
    assert report["wrong_profiles"] == 0, report
    assert report["customers_fed"] == SPEC.customers
    assert report["availability"]["all_keys"]["polls"] > 0
