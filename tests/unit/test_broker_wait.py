"""BrokerWait remembers when the last wait began once it is over: a worker idle through a broker
outage still knows its transactional producer predates it (and replaces it before the next
batch)."""

from __future__ import annotations

import threading

from confluent_kafka import KafkaError

from omnid.pipeline.outage import BrokerWait


def test_the_last_wait_is_kept_after_it_ends_and_replaced_by_the_next() -> None:
    wait = BrokerWait(threading.Event())
    assert wait.last_began() is None
    wait.noticed(KafkaError(KafkaError._ALL_BROKERS_DOWN), "testing")
    going_on = wait.last_began()
    assert going_on is not None
    wait.noticed(KafkaError(KafkaError._TRANSPORT), "testing")
    assert wait.last_began() == going_on  # the same wait
    wait.over()
    assert wait.last_began() == going_on and not wait.waiting
    wait.noticed(KafkaError(KafkaError._TRANSPORT), "testing")
    again = wait.last_began()
    assert again is not None and again > going_on
