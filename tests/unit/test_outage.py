"""Which Kafka errors a worker waits out and which stop it (pipeline/outage.py)."""

from confluent_kafka import KafkaError

from omnid.pipeline.outage import Fault, classify


def test_no_partition_leaders_right_after_a_broker_restart_is_waited_out() -> None:
    # librdkafka does not call it retriable; a worker that stopped on it died in the short
    # chaos run's broker restart while restoring (list_offsets before leaders were elected).
    error = KafkaError(KafkaError._NOENT, "Failed to query partition leaders: No leaders found")
    assert not error.retriable()
    assert classify(error) is Fault.RETRIABLE


def test_a_newer_incarnation_fences_and_bad_configuration_stops() -> None:
    assert classify(KafkaError(KafkaError.PRODUCER_FENCED, "fenced")) is Fault.FENCED
    assert classify(KafkaError(KafkaError.INVALID_CONFIG, "bad")) is Fault.FATAL
