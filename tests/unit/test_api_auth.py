"""Bearer tokens and scopes on the worker's HTTP routes: every route that is not declared public
answers 401 without a valid token and 403 with a token lacking its scope."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from omnid.api_auth import (
    ApiTokens,
    Scope,
    auth_middleware,
    authenticated_token,
    bearer_header,
    required_scope,
    requires,
    write_token,
)
from omnid.config import Settings
from omnid.contracts import AvroCodec
from omnid.errors import ConfigError
from omnid.observability.health import Readiness
from omnid.pipeline.serve import worker_application
from omnid.pipeline.topic_names import PipelineTopics
from omnid.rules_file import load_rules

OPEN_ROUTES = {
    "/metrics",
    "/healthz",
    "/readyz",
    "/v1/worker",
    "/v1/operations",
    "/v1/operations/worker",
    # The console's page, its files, its rules summary and its token check (which checks itself).
    "/console",
    "/console/",
    "/console/config.json",
    "/console/session",
    "/console/{name}",
    "/openapi.json",  # the API's description, no data
}


def stub_worker() -> Any:
    """Enough of a Worker to build the application; no handler behind a refusal runs."""
    return SimpleNamespace(
        topics=PipelineTopics.under("auth-test"),
        operations=SimpleNamespace(readiness=Readiness()),
        admin=None,
        settings=Settings(kafka_bootstrap="127.0.0.1:9"),  # nothing listens: no broker needed
        processor=SimpleNamespace(codec=AvroCodec.from_settings()),
        stopping=threading.Event(),
    )


def with_client(
    app: web.Application, check: Callable[[TestClient[Any, Any]], Awaitable[None]]
) -> None:
    async def scenario() -> None:
        async with TestClient(TestServer(app)) as client:
            await check(client)

    asyncio.run(scenario())


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    return tmp_path / "api-tokens.yaml"


def protected_routes(app: web.Application) -> list[tuple[str, str, Scope]]:
    """(method, concrete path, scope) of every route that needs a token."""
    routes = []
    for route in app.router.routes():
        scope = required_scope(route.handler)
        if route.method == "HEAD" or scope is None:
            continue
        path = re.sub(r"\{[^}]+\}", "x", route.resource.canonical if route.resource else "")
        routes.append((route.method, path, scope))
    return routes


def test_every_protected_worker_route_is_401_without_a_token_and_403_with_the_wrong_scope(
    tokens_file: Path,
) -> None:
    wrong_scope_tokens = {
        scope: write_token(tokens_file, f"all-but-{scope.value}", set(Scope) - {scope})
        for scope in Scope
    }
    app = worker_application(
        stub_worker(), load_rules(Settings().rules_file), ApiTokens.load(tokens_file)
    )
    routes = protected_routes(app)
    assert {path for _m, path, _s in routes} >= {"/v1/profiles/x", "/v1/identifiers/x/x"}

    async def check(client: TestClient[Any, Any]) -> None:
        for method, path, scope in routes:
            for headers in ({}, bearer_header("omnid_not-a-known-token"), {"Authorization": "x"}):
                response = await client.request(method, path, headers=headers)
                assert response.status == 401, (method, path, headers)
                assert (await response.json())["error"] == "unauthorized"
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
            response = await client.request(
                method, path, headers=bearer_header(wrong_scope_tokens[scope])
            )
            assert response.status == 403, (method, path)
            body = await response.json()
            assert body["error"] == "forbidden" and scope.value in body["detail"]

    with_client(app, check)


def test_only_operations_routes_without_personal_data_are_open(tokens_file: Path) -> None:
    write_token(tokens_file, "unused", {Scope.ADMIN})
    app = worker_application(
        stub_worker(), load_rules(Settings().rules_file), ApiTokens.load(tokens_file)
    )
    open_paths = {
        route.resource.canonical
        for route in app.router.routes()
        if route.resource is not None and required_scope(route.handler) is None
    }
    assert open_paths == OPEN_ROUTES

    async def check(client: TestClient[Any, Any]) -> None:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/metrics")).status == 200

    with_client(app, check)


def test_a_token_with_the_scope_reaches_the_handler_which_sees_its_name_but_logs_never_the_token(
    tokens_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = write_token(tokens_file, "crm-sync", {Scope.PROFILES_READ})

    @requires(Scope.PROFILES_READ)
    async def profile(request: web.Request) -> web.Response:
        return web.json_response({"caller": authenticated_token(request).name})

    async def undeclared(_request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application(middlewares=[auth_middleware(ApiTokens.load(tokens_file))])
    app.router.add_get("/v1/profiles/{profile_id}", profile)
    app.router.add_get("/v1/undeclared", undeclared)

    async def check(client: TestClient[Any, Any]) -> None:
        response = await client.get("/v1/profiles/ann@example.com", headers=bearer_header(reader))
        assert (response.status, await response.json()) == (200, {"caller": "crm-sync"})
        # A route that declares nothing needs admin: forgetting a declaration closes it.
        response = await client.get("/v1/undeclared", headers=bearer_header(reader))
        assert response.status == 403
        response = await client.get("/v1/profiles/bob@example.com", headers=bearer_header("bad"))
        assert response.status == 401
        assert (await client.get("/nowhere", headers=bearer_header(reader))).status == 404

    with caplog.at_level(logging.DEBUG, logger="omnid.api_auth"):
        with_client(app, check)
    logged = caplog.text
    assert "refused" in logged
    assert reader not in logged and "example.com" not in logged


def test_tokens_are_stored_only_as_hashes_and_a_new_token_keeps_the_others(
    tokens_file: Path,
) -> None:
    first = write_token(tokens_file, "first", {Scope.PROFILES_READ})
    second = write_token(tokens_file, "second", {Scope.PRIVACY_WRITE, Scope.ADMIN})
    text = tokens_file.read_text()
    assert first not in text and second not in text
    tokens = ApiTokens.load(tokens_file)
    found_first, found_second = tokens.identify(first), tokens.identify(second)
    assert found_first is not None and found_first.scopes == {Scope.PROFILES_READ}
    assert found_second is not None and found_second.name == "second"
    assert tokens.identify(first + "x") is None
    replaced = write_token(tokens_file, "first", {Scope.ADMIN})
    tokens = ApiTokens.load(tokens_file)
    assert tokens.identify(first) is None and tokens.identify(replaced) is not None


def test_a_broken_tokens_file_is_a_config_error_naming_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "api-tokens.yaml"
    path.write_text("api_tokens:\n  ops:\n    sha256: abc\n    scopes: [admin]\n")
    with pytest.raises(ConfigError, match=r"api-tokens.yaml:3: api_tokens.ops.sha256"):
        ApiTokens.load(path)
    path.write_text(f"api_tokens:\n  ops:\n    sha256: {'0' * 64}\n    scopes: [superuser]\n")
    with pytest.raises(ConfigError, match="scopes"):
        ApiTokens.load(path)


def test_the_shipped_tokens_file_loads_and_holds_no_token() -> None:
    assert ApiTokens.load(Settings().api_tokens_file).identify("") is None
