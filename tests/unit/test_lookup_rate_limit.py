"""The lookup API's per-client rate limit: token buckets per API token, 429 with Retry-After
over the rate, bounded memory; and the worker binds 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.unit.test_api_auth import stub_worker

from omnid.api_auth import ApiTokens, Scope, bearer_header, write_token
from omnid.config import PROJECT_ROOT, Settings
from omnid.pipeline import rate_limit
from omnid.pipeline.lookup import LookupApi, NotHere
from omnid.pipeline.rate_limit import RateLimiter
from omnid.pipeline.serve import worker_application
from omnid.rules_file import load_rules


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_burst_then_one_lookup_per_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.retry_after("a") for _ in range(3)] == [None, None, None]
    assert limiter.retry_after("a") == pytest.approx(0.5)
    assert limiter.retry_after("b") is None  # another client has its own bucket
    clock.now += 0.5
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("a") is not None
    clock.now += 60
    assert [limiter.retry_after("a") for _ in range(4)][:3] == [None, None, None]


def test_rate_zero_turns_the_limit_off() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    assert all(limiter.retry_after("a") is None for _ in range(1000))


def test_the_limiter_remembers_a_bounded_number_of_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rate_limit, "MAX_CLIENTS", 5)
    limiter = RateLimiter(rate=1, burst=1)
    for n in range(50):
        limiter.retry_after(f"client-{n}")
    assert len(limiter._buckets) == 5


def test_over_the_rate_a_lookup_is_429_with_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens_file = tmp_path / "api-tokens.yaml"
    walker = write_token(tokens_file, "walker", {Scope.PROFILES_READ})
    other = write_token(tokens_file, "other", {Scope.PROFILES_READ})
    worker = stub_worker()
    worker.settings = Settings(
        kafka_bootstrap="127.0.0.1:9", lookup_rate_per_second=0.5, lookup_burst=2
    )

    async def nowhere(*_args: Any) -> None:
        raise NotHere(None)  # no partitions here: answered 503 rebalancing, not looked up

    monkeypatch.setattr(LookupApi, "_owned_value", nowhere)
    app = worker_application(worker, load_rules(), ApiTokens.load(tokens_file))

    async def scenario() -> list[tuple[int, str | None]]:
        async with TestClient(TestServer(app)) as client:
            answers = []
            for token, path in [
                (walker, "/v1/identifiers/user_id/u-1"),
                (walker, "/v1/profiles/P1"),
                (walker, "/v1/identifiers/user_id/u-2"),
                (walker, "/v1/profiles/P1/explain"),
                (other, "/v1/identifiers/user_id/u-2"),
            ]:
                response = await client.get(path, headers=bearer_header(token))
                answers.append((response.status, response.headers.get("Retry-After")))
            return answers

    assert asyncio.run(scenario()) == [
        (503, None),
        (503, None),
        (429, "2"),
        (429, "2"),
        (503, None),
    ]


def test_the_worker_binds_loopback_by_default_and_deploy_sets_every_address_explicitly() -> None:
    assert Settings().worker_host == "127.0.0.1"
    assert Settings().collector_host == "127.0.0.1"
    compose = (PROJECT_ROOT / "deploy" / "docker-compose.yml").read_text()
    assert compose.count('"--host", "0.0.0.0"') == 2  # both workers
    assert "--host=0.0.0.0" in (PROJECT_ROOT / "deploy" / "k8s" / "worker.yaml").read_text()
    dockerfile = (PROJECT_ROOT / "deploy" / "Dockerfile").read_text()
    assert "OMNID_COLLECTOR_HOST=0.0.0.0" in dockerfile


@pytest.mark.parametrize(
    "path", ["/v1/privacy/requests", "/v1/profiles/merge", "/v1/profiles/P1/split"]
)
def test_a_worker_request_body_nested_ten_thousand_deep_is_a_400_not_a_500(
    tmp_path: Path, path: str
) -> None:
    tokens_file = tmp_path / "api-tokens.yaml"
    staff = write_token(tokens_file, "staff", set(Scope))
    app = worker_application(stub_worker(), load_rules(), ApiTokens.load(tokens_file))

    async def scenario() -> tuple[int, Any]:
        async with TestClient(TestServer(app)) as client:
            response = await client.post(
                path,
                data=b"[" * 10_000 + b"]" * 10_000,
                headers={**bearer_header(staff), "Content-Type": "application/json"},
            )
            return response.status, await response.json()

    status, body = asyncio.run(scenario())
    assert (status, body["error"]) == (400, "invalid_request")
    assert "nests 10000 levels" in body["detail"]
