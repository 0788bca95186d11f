"""When Kafka does not acknowledge, the collector must not say 200: clients retry on 503."""

from __future__ import annotations

import requests

from omnid.adapters.collector import BackgroundCollector, Collector
from omnid.adapters.sink import EventSink
from omnid.adapters.write_keys import load_write_keys
from omnid.config import Settings
from omnid.contracts import AvroCodec, make_producer


def test_unacknowledged_events_get_503_and_the_collector_keeps_serving() -> None:
    # Nothing listens on port 1: every delivery times out.
    settings = Settings(kafka_bootstrap="127.0.0.1:1")
    producer = make_producer(settings, **{"message.timeout.ms": 1500, "log_level": 0})
    collector = Collector(
        sink=EventSink(producer),
        codec=AvroCodec.from_settings(settings),
        write_keys=load_write_keys(settings.write_keys_file),
    )
    with BackgroundCollector(collector) as server:
        for _ in range(2):
            response = requests.post(
                server.url + "/v1/track",
                json={"userId": "u-1", "event": "Viewed"},
                auth=("dev-web-key", ""),
                timeout=60,
            )
            assert response.status_code == 503
            assert response.json()["success"] is False
            assert "retry" in response.json()["message"]
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
