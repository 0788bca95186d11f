"""The OpenAPI 3.1 documents of the HTTP APIs (schemas/openapi/*.yaml): loaded once, served
at GET /openapi.json, and compared with an application's routes (a test keeps them equal)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import yaml
from aiohttp import web

from omnid.api_auth import public, required_scope
from omnid.config import PROJECT_ROOT

OPENAPI_DIR = PROJECT_ROOT / "schemas" / "openapi"
METHODS = ("get", "put", "post", "delete", "patch")


@cache
def openapi_document(api: str) -> dict[str, Any]:
    """`collector` or `worker`: the document as a JSON-compatible dict."""
    loaded: dict[str, Any] = yaml.safe_load((OPENAPI_DIR / f"{api}.yaml").read_text())
    return loaded


@cache
def _document_json(api: str) -> bytes:
    return json.dumps(openapi_document(api), separators=(",", ":")).encode()


def add_openapi_route(app: web.Application, api: str) -> None:
    """GET /openapi.json: the document of `api` (public: it describes, it holds no data)."""

    @public
    async def document(_request: web.Request) -> web.Response:
        return web.Response(body=_document_json(api), content_type="application/json")

    app.router.add_get("/openapi.json", document)


def documented_operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path template) -> operation, for every operation of `document`."""
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def served_routes(app: web.Application) -> dict[tuple[str, str], Any]:
    """(METHOD, path template) -> handler, for every route of `app` (HEAD mirrors GET)."""
    return {
        (route.method, route.resource.canonical): route.handler
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


def documented_scope(document: dict[str, Any], operation: dict[str, Any]) -> str | None:
    """The one scope an operation's `security` asks for, or None when it is public."""
    requirements = operation.get("security", document.get("security", []))
    scopes = [scope for requirement in requirements for names in requirement.values()
              for scope in names]  # fmt: skip
    return scopes[0] if scopes else None


def handler_scope(handler: Any) -> str | None:
    scope = required_scope(handler)
    return None if scope is None else scope.value
