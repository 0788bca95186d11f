"""schemathesis against the live collector and a live worker, from the /openapi.json each
serves: generated requests (valid and invalid) never get a 5xx, and every response conforms to
the document (status code, content type, body schema)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from omnid.adapters.collector import BackgroundCollector, collector_from_settings
from omnid.config import Settings
from omnid.kafka.topics import apply_topics, delete_topics, load_topology
from omnid.testing.workers import running_pipeline

# A dev dependency (pyproject.toml): `make install` brings it; CI always has it.
schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Enough to reach every operation with valid and invalid input; the suite stays a minute or two.
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture],
)  # fmt: skip


@dataclass
class LiveApis:
    collector_url: str
    worker_url: str
    token: str


@pytest.fixture(scope="module")
def live(
    kafka_config: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApis]:
    prefix = f"test-contracts-{uuid.uuid4().hex[:8]}"
    spec = load_topology(Settings().topics_file)
    apply_topics(kafka_config, spec, prefix)
    base_dir: Path = tmp_path_factory.mktemp("contracts")
    settings_ = Settings(kafka_bootstrap=kafka_config["bootstrap.servers"])
    try:
        with (
            running_pipeline(kafka_config, prefix, base_dir, workers=1) as pipeline,
            BackgroundCollector(collector_from_settings(settings_, topic_prefix=prefix)) as server,
        ):
            pipeline.wait_until_assigned(6)  # streams/topics.yaml: 6 partitions per input
            yield LiveApis(server.url, pipeline.workers[0].url, pipeline.api_token)
    finally:
        delete_topics(kafka_config, spec.names(prefix).values())


def fuzz(schema_url: str, base_url: str, headers: dict[str, str]) -> list[str]:
    """Every operation of the served document, each with generated cases; what was covered.
    (Plain hypothesis over each operation's strategy: schemathesis' pytest plugin does not load
    on this pytest.)"""
    schema = schemathesis.openapi.from_url(schema_url)
    covered = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @FUZZ
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

        call()
        covered.append(f"{operation.method.upper()} {operation.path}")
    return covered


def test_the_collector_answers_every_generated_request_as_documented(live: LiveApis) -> None:
    key = base64.b64encode(b"dev-web-key:").decode()
    covered = fuzz(
        f"{live.collector_url}/openapi.json",
        live.collector_url,
        {"Authorization": f"Basic {key}"},
    )
    assert "POST /v1/batch" in covered and "POST /v1/webhooks/email" in covered


def test_the_worker_answers_every_generated_request_as_documented(live: LiveApis) -> None:
    covered = fuzz(
        f"{live.worker_url}/openapi.json",
        live.worker_url,
        {"Authorization": f"Bearer {live.token}"},
    )
    assert "GET /v1/identifiers/{type}/{value}" in covered
