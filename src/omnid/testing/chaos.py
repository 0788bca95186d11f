"""The chaos run (`make chaos`, and a short version in `make test`): three workers, a steady
stream of Segment messages through the HTTP collector (retried on 503 like an SDK), lookups
polled throughout, and faults one after another: worker SIGKILLs (some restarted on an empty
disk), a broker SIGKILL and restart, a worker added, one removed. At the end every customer's
counts, orders and revenue must equal what was fed, and every profile the simulator's for the
same events. Driven from outside through the harness, on a private broker it may SIGKILL."""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from omnid.adapters.write_keys import load_write_keys
from omnid.benchmarks.segment_workload import (
    SegmentMessage,
    channel_events,
    customer,
    expected_totals,
    segment_messages,
)
from omnid.config import Settings
from omnid.contracts import AvroCodec, Channel, events_topic
from omnid.kafka.topics import apply_topics, load_topology
from omnid.pipeline.partitioning import partition_for
from omnid.testing.availability import LookupPoller, availability_over
from omnid.testing.broker import LocalBroker
from omnid.testing.oracle import signatures, simulated_profiles
from omnid.testing.topic_io import latest_profiles, read_topic, undelivered
from omnid.testing.workers import Pipeline, free_port, get_json, running_pipeline

PARTITIONS = 6
# The Segment SDKs' request timeout: a request that takes longer is retried by the client.
SDK_TIMEOUT_S = 15.0
SDK_RETRY_PAUSE_S = 1.0


class ChaosFault(StrEnum):
    KILL_WORKER = "kill_worker"  # SIGKILL, restarted on the same disk after a pause
    KILL_WORKER_DISK_LOST = "kill_worker_disk_lost"  # SIGKILL, restarted on an empty disk
    BROKER_RESTART = "broker_restart"  # broker SIGKILL, restarted after a pause
    ADD_WORKER = "add_worker"
    REMOVE_WORKER = "remove_worker"  # SIGTERM: leaves for good


FULL_SCHEDULE = (
    ChaosFault.KILL_WORKER,
    ChaosFault.KILL_WORKER_DISK_LOST,
    ChaosFault.BROKER_RESTART,
    ChaosFault.ADD_WORKER,
    ChaosFault.KILL_WORKER,
    ChaosFault.REMOVE_WORKER,
    ChaosFault.KILL_WORKER_DISK_LOST,
)
SHORT_SCHEDULE = (ChaosFault.BROKER_RESTART, ChaosFault.KILL_WORKER, ChaosFault.ADD_WORKER)


@dataclass(frozen=True)
class ChaosSpec:
    schedule: Sequence[ChaosFault]
    customers: int = 60
    events_per_s: float = 20.0
    lookup_keys: int = 12
    seed: int = 14
    # Each fault's outage is drawn from this range (seconds); the stream runs on meanwhile.
    pause_s: tuple[float, float] = (3.0, 10.0)
    # Steady stream after each fault has settled, before the next one.
    steady_s: float = 10.0


# -- the collector and the client feeding it ------------------------------------------------


@contextmanager
def collector_process(broker: LocalBroker, prefix: str, log_path: Path) -> Iterator[str]:
    """`omnid collector` as its own process (its producer, not ours, rides out the broker
    restart); yields its URL once /healthz answers."""
    port = free_port()
    command = [
        sys.executable, "-m", "omnid.cli", "collector",
        "--host", "127.0.0.1", "--port", str(port), "--topic-prefix", prefix,
    ]  # fmt: skip
    env = {**os.environ, "OMNID_KAFKA_BOOTSTRAP": broker.bootstrap}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while get_json(f"{url}/healthz", timeout=2)[1] != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the collector did not start; see {log_path}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass
class Feeder:
    """An SDK-like client: posts the stream as /v1/batch requests (one write key each) at a
    steady rate, and retries a request until it gets its 200, with the same message ids."""

    collector_url: str
    stream: Iterator[SegmentMessage]
    events_per_s: float
    batch_size: int = 5
    accepted: list[SegmentMessage] = field(default_factory=list)
    requests_sent: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # status (or "timeout") -> count
    slowest_answer_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _session: requests.Session = field(default_factory=requests.Session)

    def feed(self, count: int) -> None:
        """`count` messages now, in the calling thread (the warm-up)."""
        for batch in _batches(itertools.islice(self.stream, count), self.batch_size):
            self._deliver(batch)

    def __enter__(self) -> Feeder:
        self._thread = threading.Thread(target=self._run, name="chaos-feeder", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(600)

    def _run(self) -> None:
        interval = self.batch_size / self.events_per_s
        next_at = time.monotonic()
        while not self._stop.is_set():
            batch = list(itertools.islice(self.stream, self.batch_size))
            for same_key in _batches(batch, self.batch_size):
                self._deliver(same_key)
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - interval)  # no burst after an outage

    def _deliver(self, batch: list[SegmentMessage]) -> None:
        body = {"batch": [message.body for message in batch]}
        while True:
            self.requests_sent += 1
            began = time.monotonic()
            try:
                answer = self._session.post(
                    f"{self.collector_url}/v1/batch",
                    json=body,
                    auth=(batch[0].write_key, ""),
                    timeout=SDK_TIMEOUT_S,
                )
                outcome = str(answer.status_code)
            except requests.Timeout:
                outcome = "timeout"
            except requests.ConnectionError:
                outcome = "connection_error"
            self.slowest_answer_s = max(self.slowest_answer_s, time.monotonic() - began)
            if outcome == "200":
                self.accepted.extend(batch)
                return
            self.refused[outcome] = self.refused.get(outcome, 0) + 1
            time.sleep(SDK_RETRY_PAUSE_S)


def _batches(messages: Iterable[SegmentMessage], size: int) -> Iterator[list[SegmentMessage]]:
    """Consecutive messages of one write key, at most `size` to a batch."""
    batch: list[SegmentMessage] = []
    for message in messages:
        if batch and (len(batch) == size or batch[0].write_key != message.write_key):
            yield batch
            batch = []
        batch.append(message)
    if batch:
        yield batch


# -- who owns what -------------------------------------------------------------------------


def moved_keys(
    partitions_of: Mapping[str, tuple[str, ...]],
    before: Mapping[str, str],
    after: Mapping[str, str],
    victim: str | None,
) -> list[str]:
    """Keys a fault moved: one of their partitions has another owner after it, or its owner
    was the worker the fault killed or removed (back with the same partitions or not, it was
    away meanwhile). A broker restart or a join moves only what the group reassigns."""
    return sorted(
        key
        for key, tps in partitions_of.items()
        if any(before.get(tp) != after.get(tp) or before.get(tp) == victim for tp in tps)
    )


def key_partitions(pipeline: Pipeline, user_id: str, profile_id: str) -> tuple[str, str]:
    """The identifier's partition and its profile's: a lookup needs both."""
    topics = pipeline.topics
    identifier = f"{topics.identity_commands}:{partition_for(f'user_id:{user_id}', PARTITIONS)}"
    profile = f"{topics.profile_commands}:{partition_for(profile_id, PARTITIONS)}"
    return identifier, profile


# -- the run -------------------------------------------------------------------------------


@dataclass
class ChaosResult:
    report: dict[str, Any]

    @property
    def exact(self) -> bool:
        return all(
            self.report[name] == 0
            for name in ("lost_events", "double_counted_events", "wrong_profiles")
        )


def run_chaos(broker: LocalBroker, base_dir: Path, spec: ChaosSpec) -> ChaosResult:
    rng = random.Random(spec.seed)
    settings = Settings(kafka_bootstrap=broker.bootstrap)
    config = settings.kafka_client_config()
    prefix = f"chaos-{uuid.uuid4().hex[:8]}"
    apply_topics(config, load_topology(settings.topics_file), prefix)
    base_dir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    faults: list[dict[str, Any]] = []
    with (
        running_pipeline(config, prefix, base_dir, 3) as pipeline,
        collector_process(broker, prefix, base_dir / "collector.log") as collector_url,
    ):
        pipeline.wait_until_assigned(PARTITIONS, timeout=600)
        feeder = Feeder(
            collector_url, segment_messages(spec.customers, spec.seed), spec.events_per_s
        )
        # Every customer's identifies first: lookups of resolved customers from then on.
        feeder.feed(2 * spec.customers)
        pipeline.wait_drained(timeout=600)
        front_door = pipeline.workers[0]  # never a victim: the address the poller asks
        urls = {
            customer(index).user_id: f"{front_door.url}/v1/identifiers/user_id/"
            + quote(customer(index).user_id, safe="")
            for index in range(spec.lookup_keys)
        }
        partitions_of = _lookup_partitions(pipeline, urls)
        # Records waiting on the input topics (events and the commands they cause) that count
        # as caught up: about three seconds of the stream.
        backlog = int(3 * spec.events_per_s)
        with LookupPoller(urls, pipeline.api_token) as poller, feeder:
            time.sleep(spec.steady_s)
            for kind in spec.schedule:
                before = pipeline.owners()
                fault = _inject(kind, pipeline, broker, rng, spec.pause_s, backlog)
                after = pipeline.owners()
                fault["keys_moved"] = moved_keys(partitions_of, before, after, fault.get("worker"))
                fault["at_s"] = round(fault.pop("started") - began, 1)
                faults.append(fault)
                time.sleep(spec.steady_s)
        stream_ended = time.monotonic()
        pipeline.wait_drained(timeout=900)
        published = latest_profiles(config, pipeline.topics)
        written_twice = _events_written_twice(config, prefix)
        workers_at_end = [w.name for w in pipeline.live_workers()]
    report = _judge(feeder.accepted, published, settings)
    report.update(
        {
            "faults": _with_availability(faults, poller, began, stream_ended - began),
            "availability": _availability_summary(faults, poller, began, stream_ended - began),
            "collector": {
                "requests": feeder.requests_sent,
                "refused_then_retried": feeder.refused,
                "slowest_answer_s": round(feeder.slowest_answer_s, 2),
                "events_written_twice_to_topics": written_twice,
            },
            "workers_at_end": workers_at_end,
            "stream_s": round(stream_ended - began, 1),
        }
    )
    return ChaosResult(report)


def _lookup_partitions(pipeline: Pipeline, urls: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    partitions = {}
    for user_id, url in urls.items():
        body, status = get_json(url, token=pipeline.api_token)
        if status != 200 or body is None:
            raise RuntimeError(f"lookup of a fed customer answered {status} before any fault")
        partitions[user_id] = key_partitions(pipeline, user_id, body["profile_id"])
    return partitions


def _inject(
    kind: ChaosFault,
    pipeline: Pipeline,
    broker: LocalBroker,
    rng: random.Random,
    pause_range: tuple[float, float],
    backlog: int,
) -> dict[str, Any]:
    """Injects one fault; returns when the group has settled and caught up again."""
    started = time.monotonic()
    victims = pipeline.live_workers()[1:]  # the front door stays
    pause = round(rng.uniform(*pause_range), 1)
    fault: dict[str, Any] = {"fault": kind.value, "started": started}
    if kind in (ChaosFault.KILL_WORKER, ChaosFault.KILL_WORKER_DISK_LOST):
        victim = rng.choice(victims)
        fault.update(worker=victim.name, down_s=pause)
        victim.kill()
        if kind is ChaosFault.KILL_WORKER_DISK_LOST:
            shutil.rmtree(victim.data_dir, ignore_errors=True)
        time.sleep(pause)
        pipeline.workers.remove(victim)
        pipeline.add_worker(victim.name, victim.guarantee, data_dir=victim.data_dir)
    elif kind is ChaosFault.BROKER_RESTART:
        fault["down_s"] = pause
        broker.kill()
        time.sleep(pause)
        broker.start()
        fault["broker_back_after_s"] = round(time.monotonic() - started, 1)
    elif kind is ChaosFault.ADD_WORKER:
        name = f"worker-{len(pipeline.workers) + 1}"
        while any(w.name == name for w in pipeline.workers):
            name = f"{name}x"
        fault["worker"] = name
        pipeline.add_worker(name, "exactly_once")
    elif kind is ChaosFault.REMOVE_WORKER:
        leaving = rng.choice(victims)
        fault["worker"] = leaving.name
        leaving.stop()
        pipeline.workers.remove(leaving)
    # A worker that died of the fault (not its victim) fails the run at once: waiting for a
    # group of no live workers to settle would only time out.
    crashed = [w for w in pipeline.workers if not w.alive()]
    if crashed:
        names = ", ".join(w.name for w in crashed)
        raise RuntimeError(f"{names} exited during {kind.value}:\n{pipeline.logs()}")
    pipeline.wait_until_assigned(PARTITIONS, timeout=900)
    fault["settled_after_s"] = round(time.monotonic() - started, 1)
    # Settled is not caught up: a worker may still be waiting out a stuck commit, and the
    # stream kept coming. Caught up: what is left to process is a few seconds of stream.
    deadline = time.monotonic() + 900
    while undelivered(pipeline.config, pipeline.group, pipeline.topics.inputs) > backlog:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pipeline did not catch up after {kind.value}")
        time.sleep(1)
    fault["caught_up_after_s"] = round(time.monotonic() - started, 1)
    return fault


def _events_written_twice(config: Mapping[str, str], prefix: str) -> int:
    """Copies beyond the first of an event id on the events topics: what a retry wrote again
    (every other reader of those topics would see them; the pipeline counts them once)."""
    codec = AvroCodec.from_settings()
    seen: dict[str, int] = {}
    for channel in (Channel.WEB, Channel.APP):
        for _key, value, _headers in read_topic(config, events_topic(channel, prefix)):
            if value is not None:
                event_id = codec.decode(value).record["event_id"]
                seen[event_id] = seen.get(event_id, 0) + 1
    return sum(count - 1 for count in seen.values())


# -- judging -------------------------------------------------------------------------------


def _judge(
    fed: Sequence[SegmentMessage], published: Mapping[str, dict[str, Any]], settings: Settings
) -> dict[str, Any]:
    """Per customer fed: events, orders and revenue counted against what was fed; every
    profile against the simulator's for the same events."""
    expected = expected_totals(fed)
    owner_of = {
        key: message.customer.user_id
        for message in fed
        for key in message.customer.identifier_keys()
    }
    got_events: dict[str, int] = {}
    got_orders: dict[str, int] = {}
    got_cents: dict[str, int] = {}
    profiles_of_many = 0
    for profile in published.values():
        users = {owner_of.get(f"{i['type']}:{i['value']}") for i in profile["identifiers"]} - {None}
        if len(users) != 1:
            profiles_of_many += 1
            continue
        (user,) = users
        assert user is not None
        computed = profile["computed"]
        got_events[user] = got_events.get(user, 0) + computed["event_count"]
        got_orders[user] = got_orders.get(user, 0) + computed["order_count"]
        cents = round(computed["revenue"].get("EUR", 0.0) * 100)
        got_cents[user] = got_cents.get(user, 0) + cents
    lost = double = wrong_orders = wrong_revenue = 0
    for user, want in expected.items():
        got = got_events.get(user, 0)
        lost += max(0, want.events - got)
        double += max(0, got - want.events)
        wrong_orders += got_orders.get(user, 0) != want.orders
        wrong_revenue += got_cents.get(user, 0) != want.revenue_cents
    oracle = simulated_profiles(
        channel_events(fed, load_write_keys(settings.write_keys_file)), PARTITIONS, seed=3
    )
    ours, theirs = signatures(published.values()), signatures(oracle)
    wrong = sum(1 for key, value in theirs.items() if ours.get(key) != value)
    wrong += sum(1 for key in ours if key not in theirs)
    return {
        "customers_fed": len(expected),
        "events_fed": len(fed),
        "orders_fed": sum(t.orders for t in expected.values()),
        "lost_events": lost,
        "double_counted_events": double,
        "wrong_profiles": wrong,
        "customers_with_wrong_orders": wrong_orders,
        "customers_with_wrong_revenue": wrong_revenue,
        "profiles_of_more_than_one_customer": profiles_of_many,
        "profiles_published": len(published),
        "profiles_expected": len(oracle),
    }


def _with_availability(
    faults: list[dict[str, Any]], poller: LookupPoller, began: float, end_s: float
) -> list[dict[str, Any]]:
    """Each fault with the lookups polled from its start to the next fault's: all keys, the
    keys whose partitions moved, the keys whose partitions did not, and how long after the
    fault every key answered 200 again."""
    out = []
    for index, fault in enumerate(faults):
        since = began + fault["at_s"]
        until = began + (faults[index + 1]["at_s"] if index + 1 < len(faults) else end_s)
        moved = set(fault["keys_moved"])
        stayed = set(poller.urls) - moved
        last_failure = max(
            (
                at
                for answers in poller.answers.values()
                for at, status, _stale in answers
                if since <= at < until and status != 200
            ),
            default=since,
        )
        out.append(
            {
                **fault,
                "keys_moved": len(moved),
                "lookups_all_200_after_s": round(last_failure - since, 1),
                "lookups": availability_over(
                    poller.answers, [(k, since, until) for k in poller.urls]
                ),
                "lookups_moved": availability_over(
                    poller.answers, [(k, since, until) for k in moved]
                ),
                "lookups_did_not_move": availability_over(
                    poller.answers, [(k, since, until) for k in stayed]
                ),
            }
        )
    return out


def _availability_summary(
    faults: list[dict[str, Any]], poller: LookupPoller, began: float, end_s: float
) -> dict[str, Any]:
    """The whole stream for every key, and, fault by fault, the keys that did not move."""
    stayed = []
    for index, fault in enumerate(faults):
        since = began + fault["at_s"]
        until = began + (faults[index + 1]["at_s"] if index + 1 < len(faults) else end_s)
        stayed += [(k, since, until) for k in set(poller.urls) - set(fault["keys_moved"])]
    return {
        "all_keys": availability_over(
            poller.answers, [(k, began, began + end_s) for k in poller.urls]
        ),
        "keys_that_did_not_move": availability_over(poller.answers, stayed),
    }


def write_report(report: Mapping[str, Any], results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"chaos-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
