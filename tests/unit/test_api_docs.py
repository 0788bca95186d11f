"""The OpenAPI documents equal the handlers: every route is a documented operation (a route
added without one fails here), every documented operation is served, the worker's documented
security equals each handler's declared scope, and /openapi.json serves the document."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tests.unit.test_api_auth import stub_worker

from omnid.adapters.collector import Collector
from omnid.api_auth import ApiTokens, Scope, write_token
from omnid.api_docs import (
    documented_operations,
    documented_scope,
    handler_scope,
    openapi_document,
    served_routes,
)
from omnid.config import Settings
from omnid.contracts import AvroCodec
from omnid.pipeline.serve import worker_application
from omnid.rules_file import load_rules


def collector_app() -> web.Application:
    collector = Collector(sink=None, codec=AvroCodec.from_settings(), write_keys={})  # type: ignore[arg-type]
    return collector.app()


def worker_app(tmp_path: Path) -> web.Application:
    write_token(tmp_path / "api-tokens.yaml", "unused", {Scope.ADMIN})
    tokens = ApiTokens.load(tmp_path / "api-tokens.yaml")
    return worker_application(stub_worker(), load_rules(Settings().rules_file), tokens)


@pytest.fixture(params=["collector", "worker"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, web.Application]:
    return request.param, collector_app() if request.param == "collector" else worker_app(tmp_path)


def test_every_route_is_documented_and_every_documented_operation_is_served(
    api: tuple[str, web.Application],
) -> None:
    name, app = api
    served = set(served_routes(app))
    documented = set(documented_operations(openapi_document(name)))
    assert sorted(served - documented) == [], f"routes missing from schemas/openapi/{name}.yaml"
    assert sorted(documented - served) == [], f"schemas/openapi/{name}.yaml documents no route"


def test_worker_operations_document_the_scope_their_handler_requires(tmp_path: Path) -> None:
    document = openapi_document("worker")
    operations = documented_operations(document)
    mismatches = {
        route: (documented_scope(document, operations[route]), handler_scope(handler))
        for route, handler in served_routes(worker_app(tmp_path)).items()
        if documented_scope(document, operations[route]) != handler_scope(handler)
    }
    assert mismatches == {}


@pytest.mark.parametrize("name", ["collector", "worker"])
def test_documents_are_openapi_3_1_that_schemathesis_can_load(name: str) -> None:
    # A dev dependency: other checkouts' environments may not have it yet.
    schemathesis = pytest.importorskip("schemathesis")
    document = openapi_document(name)
    assert document["openapi"] == "3.1.0"
    schema = schemathesis.openapi.from_dict(document)
    assert {op.ok().path for op in schema.get_all_operations()} == set(document["paths"])


def test_openapi_json_serves_the_document(api: tuple[str, web.Application]) -> None:
    name, app = api

    async def fetch() -> Any:
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/openapi.json")
            assert response.status == 200
            return await response.json()

    assert asyncio.run(fetch()) == openapi_document(name)
