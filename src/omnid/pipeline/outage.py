"""How a worker rides out a broker outage: which Kafka errors are worth waiting out, and the log
line and metric that say it is waiting.

A broker restart, a leader moving or a coordinator failing over all surface as errors from the
client (transport errors, timed-out deliveries, FENCED_LEADER_EPOCH, NOT_COORDINATOR, ...).
None of them means the worker's state is wrong: the batch in flight is aborted and processed
again once the broker answers. Only a few errors mean waiting cannot help (a newer incarnation
of this worker took over its transactional id, a rejected configuration, missing rights); the
worker stops on those with a message that says why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

from confluent_kafka import KafkaError, KafkaException

from omnid.errors import OmnidError
from omnid.pipeline.runtime_metrics import runtime_metrics

log = logging.getLogger(__name__)

T = TypeVar("T")


class Fault(StrEnum):
    """What a Kafka error asks of the worker."""

    RETRIABLE = "retriable"  # abort the open batch, wait for the broker, process it again
    FENCED = "fenced"  # another live process holds this worker's transactional id: stop
    FATAL = "fatal"  # configuration or rights: no amount of waiting helps, stop


# The broker going away or coming back, leaders and coordinators moving, and the timeouts they
# cause. Most say retriable() themselves; these are the ones that do not, but are.
_BROKER_LOSS = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TIMED_OUT_QUEUE,
        KafkaError._RESOLVE,
        KafkaError._DESTROY,
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
        KafkaError._WAIT_COORD,
        KafkaError._NO_OFFSET,
        KafkaError._OUTDATED,
        KafkaError.FENCED_LEADER_EPOCH,
        KafkaError.UNKNOWN_LEADER_EPOCH,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.KAFKA_STORAGE_ERROR,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.OFFSET_NOT_AVAILABLE,
        KafkaError.UNSTABLE_OFFSET_COMMIT,
        KafkaError.CONCURRENT_TRANSACTIONS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.UNKNOWN_MEMBER_ID,
        # The consumer protocol's (KIP-848) own ILLEGAL_GENERATION: the member rejoins.
        KafkaError.STALE_MEMBER_EPOCH,
        KafkaError.FENCED_MEMBER_EPOCH,
        KafkaError._ASSIGNMENT_LOST,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.UNKNOWN_PRODUCER_ID,
        # "Failed to query partition leaders: No leaders found": an admin request (the
        # restorer's list_offsets) made before the restarted broker has elected leaders.
        KafkaError._NOENT,
    }
)

_FENCED = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)

_CONFIGURATION = frozenset(
    {
        KafkaError._INVALID_ARG,
        KafkaError.INVALID_CONFIG,
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError._SSL,
        KafkaError.UNSUPPORTED_VERSION,
        KafkaError.UNSUPPORTED_ASSIGNOR,
    }
)


def classify(error: KafkaError) -> Fault:
    code = error.code()
    if code in _FENCED:
        return Fault.FENCED
    if code in _CONFIGURATION or error.fatal():
        return Fault.FATAL
    if error.retriable() or error.txn_requires_abort() or code in _BROKER_LOSS:
        return Fault.RETRIABLE
    return Fault.FATAL


def kafka_error(error: BaseException) -> KafkaError | None:
    """The KafkaError inside a KafkaException (None for anything else)."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0]
    return None


class WorkerStopped(OmnidError):
    """A Kafka error no wait can cure; the message says which and why."""


def stop_reason(worker: str, error: KafkaError) -> str:
    if classify(error) is Fault.FENCED:
        return (
            f"worker {worker} was fenced ({error.name()}): a newer process with the same --name "
            "took over its transactions; this one stops so the two do not fight"
        )
    return f"worker {worker} stops on a non-retriable Kafka error {error.name()}: {error.str()}"


# While a wait lasts, one line this often says what the worker is retrying.
REPORT_EVERY_S = 10.0


class BrokerWait:
    """The worker's one record of waiting for the broker: a warning when a wait starts, the
    `omnid_broker_wait` gauge at 1 while it lasts, an info line with its length when it ends.

    A wait ends when the worker commits a batch again (`over()`), or when no retriable error
    has been seen for `quiet_s` (an idle worker has no batch to prove the broker is back)."""

    def __init__(self, stopping: threading.Event, quiet_s: float = 10.0) -> None:
        self.stopping = stopping
        self.quiet_s = quiet_s
        self._since: float | None = None
        self._last_began: float | None = None
        self._last_error = 0.0
        self._last_report = 0.0

    @property
    def waiting(self) -> bool:
        return self._since is not None

    def last_began(self) -> float | None:
        """When the wait going on, or else the last one, began (time.monotonic); None before
        any."""
        return self._since if self._since is not None else self._last_began

    def noticed(self, error: KafkaError, doing: str) -> None:
        now = time.monotonic()
        self._last_error = now
        if self._since is not None and now - self._last_report > REPORT_EVERY_S:
            self._last_report = now
            log.info(
                "still waiting for the broker after %.0f s (%s while %s)",
                now - self._since,
                error.name(),
                doing,
            )
        if self._since is None:
            self._last_report = now
            self._since = now
            runtime_metrics().broker_wait.set(1)
            log.warning(
                "waiting for the broker (%s while %s); state kept, the open batch will be "
                "processed again",
                error.name(),
                doing,
            )

    def seen_within(self, seconds: float) -> bool:
        """Whether a retriable error was seen in the last `seconds`."""
        return self._last_error > 0 and time.monotonic() - self._last_error < seconds

    def client_error(self, error: KafkaError) -> None:
        """The clients' `error_cb`: connection loss shows here, often before any call fails."""
        if classify(error) is Fault.RETRIABLE:
            self.noticed(error, "connected to the broker")
        else:
            log.error("Kafka client error: %s", error.str())

    def over(self) -> None:
        if self._since is not None:
            lasted = time.monotonic() - self._since
            log.info("broker answers again after %.1f s", lasted)
            self._last_began = self._since
            self._since = None
            runtime_metrics().broker_wait.set(0)

    def maybe_over(self) -> None:
        if self._since is not None and time.monotonic() - self._last_error > self.quiet_s:
            self.over()

    def retry(self, action: Callable[[], T], doing: str, pause_s: float = 0.5) -> T:
        """Runs `action` until it does not raise a retriable Kafka error. Anything else is
        raised, and so is a retriable error once the worker is stopping."""
        while True:
            try:
                return action()
            except KafkaException as raised:
                error = kafka_error(raised)
                if error is None or classify(error) is not Fault.RETRIABLE:
                    raise
                # The transaction is lost: the batch is aborted and processed again, never the
                # same call repeated (librdkafka's rule for txn_requires_abort errors).
                if error.txn_requires_abort() or self.stopping.is_set():
                    raise
                self.noticed(error, doing)
                time.sleep(pause_s)
