"""Bearer tokens with scopes for every HTTP endpoint that reads or changes personal data.

A route declares what it needs with `@requires(Scope.X)` (or `@public` for operations routes
that hold no personal data); `auth_middleware` enforces it. A route that declares nothing is
closed: it needs `admin`, so a forgotten declaration never opens personal data to anyone.
Tokens are kept as SHA-256 hashes in `streams/api-tokens.yaml` (`OMNID_API_TOKENS_FILE`): they
are 256-bit random strings, so a plain hash cannot be reversed and needs no slow KDF. Neither a
token nor a request path (which may hold an identifier value) is ever logged: only the route
template and the token's name.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from omnid.config import Settings
from omnid.config_files import load_yaml_model

log = logging.getLogger("omnid.api_auth")

TOKEN_PREFIX = "omnid_"
_SCOPE_ATTRIBUTE = "__omnid_required_scope__"
_PUBLIC = "public"
_WHAT = "API tokens file"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RouteHandler = TypeVar("RouteHandler", bound=Callable[..., Awaitable[web.StreamResponse]])


class Scope(StrEnum):
    """What a token may do. No scope implies another: a token lists each one it needs."""

    PROFILES_READ = "profiles:read"
    PRIVACY_WRITE = "privacy:write"
    ADMIN = "admin"


class ApiTokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token")
    scopes: frozenset[Scope] = Field(min_length=1)


class ApiTokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_tokens: dict[str, ApiTokenEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class ApiToken:
    """A known token: its name (the only thing logs and audit records show) and its scopes."""

    name: str
    digest: bytes
    scopes: frozenset[Scope]


REQUEST_TOKEN_KEY = web.RequestKey("omnid_api_token", ApiToken)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class ApiTokens:
    """The tokens a process accepts."""

    def __init__(self, tokens: Iterable[ApiToken]) -> None:
        self._tokens = tuple(tokens)

    @classmethod
    def load(cls, path: Path) -> ApiTokens:
        """A broken file is a ConfigError naming it and the line, never a half-loaded set."""
        parsed = load_yaml_model(path, ApiTokensFile, _WHAT)
        return cls(
            ApiToken(name, bytes.fromhex(entry.sha256), entry.scopes)
            for name, entry in parsed.api_tokens.items()
        )

    def identify(self, presented: str) -> ApiToken | None:
        """The token whose hash matches. Every entry is compared in constant time, and all of
        them always, so timing says nothing about which (or whether one) matched."""
        digest = token_digest(presented)
        found = None
        for token in self._tokens:
            if hmac.compare_digest(digest, token.digest):
                found = token
        return found


def requires(scope: Scope) -> Callable[[RouteHandler], RouteHandler]:
    """Declares the scope a route handler needs."""

    def declare(handler: RouteHandler) -> RouteHandler:
        setattr(handler, _SCOPE_ATTRIBUTE, scope)
        return handler

    return declare


def public(handler: RouteHandler) -> RouteHandler:
    """Declares a route open to anyone: only for routes that hold no personal data."""
    setattr(handler, _SCOPE_ATTRIBUTE, _PUBLIC)
    return handler


def required_scope(handler: object) -> Scope | None:
    """The scope `handler` needs; None if it is public; `admin` if it declares nothing."""
    declared = getattr(handler, _SCOPE_ATTRIBUTE, Scope.ADMIN)
    return None if declared == _PUBLIC else Scope(declared)


def authenticated_token(request: web.Request) -> ApiToken:
    """The token the middleware accepted for this request (only on protected routes)."""
    return request[REQUEST_TOKEN_KEY]


def _refusal(status: int, error: str, detail: str, challenge: str) -> web.Response:
    return web.json_response(
        {"error": error, "detail": detail},
        status=status,
        headers={"WWW-Authenticate": challenge},
    )


def _route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(unmatched)"


def auth_middleware(tokens: ApiTokens) -> Any:
    """aiohttp middleware enforcing each route's declared scope (401 no or unknown token, 403
    a token without the scope). Unmatched paths fall through to their 404/405."""

    @web.middleware
    async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:
            return await handler(request)
        scope = required_scope(request.match_info.handler)
        if scope is None:
            return await handler(request)
        route = _route_template(request)
        kind, _, presented = request.headers.get("Authorization", "").partition(" ")
        if kind.lower() != "bearer" or not presented.strip():
            log.info("refused %s %s: no bearer token", request.method, route)
            return _refusal(
                401, "unauthorized", "send Authorization: Bearer <token>", 'Bearer realm="omnid"'
            )
        token = tokens.identify(presented.strip())
        if token is None:
            log.info("refused %s %s: unknown token", request.method, route)
            return _refusal(
                401, "unauthorized", "unknown token", 'Bearer realm="omnid", error="invalid_token"'
            )
        if scope not in token.scopes:
            log.info("refused %s %s: token %s lacks %s", request.method, route, token.name, scope)
            return _refusal(
                403,
                "forbidden",
                f"this endpoint needs scope {scope.value}",
                f'Bearer realm="omnid", error="insufficient_scope", scope="{scope.value}"',
            )
        request[REQUEST_TOKEN_KEY] = token
        return await handler(request)

    return authorize


def bearer_header(token: str | None) -> dict[str, str]:
    """The request header a client sends (nothing when it has no token)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


# -- creating tokens (`omnid tokens create`, `make run`, tests) ---------------------------------

_FILE_HEADER = (
    "# API tokens of the worker HTTP APIs (lookup, privacy, admin), kept as SHA-256 hashes.\n"
    "# Add one with `omnid tokens create NAME --scope SCOPE... --file THIS_FILE` (prints the\n"
    "# token once). Scopes: profiles:read, privacy:write, admin.\n"
)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def write_token(path: Path, name: str, scopes: Iterable[Scope]) -> str:
    """Creates a token, stores its hash under `name` in `path` (replacing an entry of that name,
    keeping the others) and returns the token: the only time it exists in clear."""
    existing = load_yaml_model(path, ApiTokensFile, _WHAT) if path.exists() else ApiTokensFile()
    token = new_token()
    entries = {key: value for key, value in existing.api_tokens.items() if key != name}
    entries[name] = ApiTokenEntry(sha256=token_digest(token).hex(), scopes=frozenset(scopes))
    document = {
        "api_tokens": {
            key: {"sha256": entry.sha256, "scopes": sorted(s.value for s in entry.scopes)}
            for key, entry in entries.items()
        }
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_FILE_HEADER + yaml.safe_dump(document, sort_keys=True), encoding="utf-8")
    return token


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("tokens", help="API tokens of the worker HTTP APIs")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="create a token, store its hash, print the token (shown only once)"
    )
    create.add_argument("name", help="who or what uses it (shown in logs and privacy receipts)")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=[s.value for s in Scope],
        help="repeat for each scope the token needs",
    )
    create.add_argument(
        "--file", type=Path, default=None, help="tokens file (default OMNID_API_TOKENS_FILE)"
    )
    create.set_defaults(func=run_create)


def run_create(args: argparse.Namespace) -> int:
    path = args.file or Settings().api_tokens_file
    print(write_token(path, args.name, (Scope(s) for s in args.scope)))
    return 0
