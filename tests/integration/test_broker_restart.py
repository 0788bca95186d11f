"""The broker SIGKILLed and restarted mid-stream: the same worker processes ride it out (no
restart, no exit) and, once the stream drains, no event is lost or counted twice; the collector
answers 503 inside its bound, and its client's retry is the only copy written."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from omnid.adapters.collector import BackgroundCollector, collector_from_settings
from omnid.benchmarks.workload import WorkloadSpec, channel_events
from omnid.config import Settings
from omnid.contracts import AvroCodec
from omnid.kafka.topics import apply_topics, load_topology
from omnid.pipeline.partitioning import partition_for
from omnid.testing.availability import LookupPoller
from omnid.testing.broker import LocalBroker
from omnid.testing.oracle import signatures, simulated_profiles, totals
from omnid.testing.topic_io import latest_profiles, publish_events, read_topic, undelivered
from omnid.testing.workers import Pipeline, WorkerProcess, get_json, running_pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]

PRIVATE_BROKER_PORT = 9192
PARTITIONS = 6
# Its final profiles do not depend on delivery order (checked over many simulator seeds).
SPEC = WorkloadSpec(customers=60, events=1200, seed=9).without_shared_values()
# Longer than the session timeout (6 s) and the transaction timeout (10 s): the workers lose
# their group membership and their open transactions, and must still carry on.
OUTAGE_S = 12.0
NOTICE_AFTER_RESTART_S = 30.0
LOOKUP_KEYS = 12


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(tmp_path_factory.mktemp("kafka"), PRIVATE_BROKER_PORT)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_workers_ride_out_a_broker_sigkill_and_restart_mid_stream(
    private_broker: LocalBroker, tmp_path: Path
) -> None:
    config = Settings(kafka_bootstrap=private_broker.bootstrap).kafka_client_config()
    prefix = f"test-restart-{uuid.uuid4().hex[:8]}"
    apply_topics(config, load_topology(Settings().topics_file), prefix)
    records = list(channel_events(SPEC))
    third = len(records) // 3
    with running_pipeline(config, prefix, tmp_path, 2, "exactly_once") as pipeline:
        pipeline.wait_until_assigned(PARTITIONS)
        pids = [w.process.pid for w in pipeline.workers if w.process]
        publish_events(config, pipeline.topics, records[:third])
        pipeline.wait_drained(timeout=300)
        # Lookups of customers already resolved, asked of the worker that owns them.
        urls = {}
        for profile in list(latest_profiles(config, pipeline.topics).values())[:LOOKUP_KEYS]:
            identifier = profile["identifiers"][0]
            key = f"{identifier['type']}:{identifier['value']}"
            owner = _owner_of(pipeline, pipeline.topics.identity_commands, key)
            urls[key] = f"{owner.url}/v1/identifiers/{identifier['type']}/" + quote(
                identifier["value"], safe=""
            )
        # Answered once while the broker is up, as a serving worker has (partition counts known).
        assert {get_json(url, token=pipeline.api_token)[1] for url in urls.values()} == {200}
        publish_events(config, pipeline.topics, records[third : 2 * third])
        # The precondition that makes this mid-stream: work is still in flight.
        assert undelivered(config, pipeline.group, pipeline.topics.inputs) > 0
        with LookupPoller(urls, pipeline.api_token) as poller:
            private_broker.kill()
            # Sampled through the outage, not once at its end: on a loaded machine a worker may
            # notice the loss late in the outage, or only after the broker is back.
            waiting: set[float | None] = set()
            outage_ends = time.monotonic() + OUTAGE_S
            while time.monotonic() < outage_ends:
                waiting.update(_metric(w.url, "omnid_broker_wait") for w in pipeline.workers)
                time.sleep(0.5)
            private_broker.start()
            # ... and a little after it: a worker may first notice the loss when the new broker
            # answers (seen 4 s after its acceptors started, on a loaded machine).
            noticed_by = time.monotonic() + NOTICE_AFTER_RESTART_S
            while 1.0 not in waiting and time.monotonic() < noticed_by:
                waiting.update(_metric(w.url, "omnid_broker_wait") for w in pipeline.workers)
                time.sleep(0.5)
        publish_events(config, pipeline.topics, records[2 * third :])
        pipeline.wait_drained(timeout=300)
        # Never left hanging (status 0 is a poll that got no answer in 5 s): answered from local
        # state, fresh or stale. A 503 `rebalancing` remains possible where the group moved a
        # partition during the outage and its new owner is still restoring (measured, not
        # asserted: 100% answered 200 in some runs here, fewer in others on a loaded machine).
        print("lookups during the outage", poller.availability())
        statuses = {status for a in poller.answers.values() for _t, status, _s in a}
        assert 200 in statuses and statuses <= {200, 503}, statuses

        assert all(w.alive() for w in pipeline.workers), pipeline.logs()
        assert [w.process.pid for w in pipeline.workers if w.process] == pids
        # The wait showed in the metric during the outage (a worker with nothing to do may not
        # notice the broker is gone) and in every worker's log.
        assert 1.0 in waiting, pipeline.logs()
        assert all("waiting for the broker" in _log(w.log_path) for w in pipeline.workers)
        published = latest_profiles(config, pipeline.topics)

    expected = simulated_profiles(records, PARTITIONS, seed=3)
    assert totals(published.values()) == totals(expected), pipeline.logs()
    assert signatures(published.values()) == signatures(expected)


def _owner_of(pipeline: Pipeline, topic: str, key: str) -> WorkerProcess:
    wanted = f"{topic}:{partition_for(key, PARTITIONS)}"
    return next(w for w in pipeline.workers if wanted in (w.status() or {}).get("ready", []))


def _metric(url: str, name: str) -> float | None:
    """One unlabelled sample of a worker's /metrics (None if absent or unreachable)."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


def _log(path: Path | None) -> str:
    return path.read_text() if path is not None else ""


def test_collector_answers_503_within_its_bound_and_the_retry_is_the_only_copy(
    private_broker: LocalBroker,
) -> None:
    settings = Settings(kafka_bootstrap=private_broker.bootstrap)
    config = settings.kafka_client_config()
    prefix = f"test-collector-{uuid.uuid4().hex[:8]}"
    apply_topics(config, load_topology(settings.topics_file), prefix)
    collector = collector_from_settings(settings, topic_prefix=prefix)
    event = {"userId": "u-503", "event": "Viewed", "messageId": f"m-{uuid.uuid4().hex}"}
    with BackgroundCollector(collector) as server:

        def post(body: dict[str, str]) -> requests.Response:
            return requests.post(
                server.url + "/v1/track", json=body, auth=("dev-web-key", ""), timeout=60
            )

        # The producer knows the broker before it goes.
        assert post({**event, "messageId": "m-before"}).status_code == 200
        private_broker.kill()
        failed = post(event)
        private_broker.start()
        # As an SDK does: retry the 503 until accepted, with a pause. After a restart the
        # producer reconnects and gets a new idempotent producer id before it can deliver,
        # which took tens of seconds on this loaded machine.
        for _attempt in range(20):
            retried = post(event)
            if retried.status_code == 200:
                break
            time.sleep(2)
    # The SDK saw the 503 (it did not time out first: its own timeout is 15 s or 10 s) ...
    assert failed.status_code == 503
    assert failed.json()["reason"] == "unavailable"
    assert retried.status_code == 200
    # ... and every copy that got a 503 expired unsent: the accepted retry is the only one.
    topic = f"{prefix}.omnid.events.web"
    codec = AvroCodec.from_settings(settings)
    ids = [codec.decode(value).record["event_id"] for _k, value, _h in read_topic(config, topic)]
    assert ids.count(event["messageId"]) == 1
