"""BrokerWait remembers the last wait once it is over: a worker idle through a broker outage
still knows its transactional producer predates it (and replaces it before the next batch)."""

from __future__ import annotations

import threading

from confluent_kafka import KafkaError

from omnid.pipeline.outage import BrokerWait


def test_the_last_wait_is_kept_after_it_ends_and_replaced_by_the_next() -> None:
    wait = BrokerWait(threading.Event())
    assert wait.last_wait() is None
    wait.noticed(KafkaError(KafkaError._ALL_BROKERS_DOWN), "testing")
    going_on = wait.last_wait()
    assert going_on is not None and going_on[1] >= 0
    wait.over()
    ended = wait.last_wait()
    assert ended is not None and ended[0] == going_on[0] and not wait.waiting
    wait.noticed(KafkaError(KafkaError._TRANSPORT), "testing")
    again = wait.last_wait()
    assert again is not None and again[0] > ended[0]
