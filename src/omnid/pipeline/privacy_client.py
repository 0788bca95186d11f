"""`omnid privacy erase|suppress|unsuppress|export|status`: privacy requests through any worker's
API. The bearer token (scope privacy:write) comes from OMNID_API_TOKEN."""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from omnid.api_auth import bearer_header
from omnid.config import Settings
from omnid.pipeline.lookup_client import lookup_path
from omnid.tls import client_context

FINAL = ("completed", "failed")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "privacy", help="erase, suppress, unsuppress or export a person; a request's status"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for kind, text in (
        ("erase", "erase the person everywhere (all merged profiles) and suppress them"),
        ("suppress", "stop processing the person, keep their data"),
        ("unsuppress", "lift a suppression"),
        ("export", "print everything held about the person (JSON)"),
    ):
        action = actions.add_parser(kind, help=text)
        action.add_argument("type", nargs="?", help="identifier type, e.g. email")
        action.add_argument("value", nargs="?", help="identifier value")
        action.add_argument("--profile", help="a profile id instead of an identifier")
        action.add_argument("--reason", help="audit note (a ticket number; no personal data)")
        action.add_argument(
            "--no-wait", action="store_true", help="print the request id, do not wait for it"
        )
        action.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
        action.add_argument(
            "--api", default=None, help="any worker's API base URL (default OMNID_LOOKUP_API)"
        )
        action.set_defaults(func=run_request, kind=kind)
    status = actions.add_parser("status", help="the receipts of a request")
    status.add_argument("request_id")
    status.add_argument(
        "--api", default=None, help="any worker's API base URL (default OMNID_LOOKUP_API)"
    )
    status.set_defaults(func=run_status)


class ApiFailure(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {json.dumps(body)}")
        self.status = status
        self.body = body


def call(
    api: str | None, path: str, body: dict[str, Any] | None = None, method: str | None = None
) -> Any:
    """JSON from the worker API (`api` None: OMNID_LOOKUP_API; POST when `body` is given);
    ApiFailure for an HTTP error."""
    settings = Settings()
    headers = {**bearer_header(settings.api_token), "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    url = (api or settings.lookup_api).rstrip("/") + path
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        context = client_context(settings)  # https APIs: verified with OMNID_TLS_CA_FILE
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raw = error.read().decode(errors="replace")
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = raw
        raise ApiFailure(error.code, parsed) from None


def wait_for_receipt(api: str | None, request_id: str, timeout: float) -> dict[str, Any] | None:
    """The request's status once it is completed or failed; None if that takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status: dict[str, Any] = call(api, f"/v1/privacy/requests/{request_id}")
        except ApiFailure as failure:
            if failure.status != 404:
                raise
        else:
            if status["status"] in FINAL:
                return status
        time.sleep(0.3)
    return None


def run_request(args: argparse.Namespace) -> int:
    if args.profile:
        body: dict[str, Any] = {"kind": args.kind, "profile_id": args.profile}
    elif args.type and args.value:
        body = {"kind": args.kind, "subject": {"type": args.type, "value": args.value}}
    else:
        raise SystemExit(f"omnid privacy {args.kind}: give TYPE VALUE or --profile ID")
    if args.reason:
        body["reason"] = args.reason
    try:
        submitted = call(args.api, "/v1/privacy/requests", body)
        request_id = submitted["request_id"]
        if args.no_wait:
            print(request_id)
            return 0
        status = wait_for_receipt(args.api, request_id, args.timeout)
        if status is None:
            print(f"omnid privacy: request {request_id} not finished after {args.timeout:.0f}s")
            return 3
        if args.kind == "export" and status["status"] == "completed":
            # The receipt is the audit trail; the document is read from the live state.
            document = call(args.api, lookup_path(args.type, args.value, args.profile) + "/export")
            print(json.dumps(document, indent=2, sort_keys=True))
        else:
            print(json.dumps(status, indent=2, sort_keys=True))
        return 0 if status["status"] == "completed" else 1
    except ApiFailure as failure:
        print(f"omnid privacy: {failure}")
        if failure.status == 401:
            print("omnid privacy: set OMNID_API_TOKEN to a token with scope privacy:write")
        return 2
    except urllib.error.URLError as error:
        print(f"omnid privacy: no worker answered at {args.api}: {error.reason}")
        return 2


def run_status(args: argparse.Namespace) -> int:
    quoted = urllib.parse.quote(args.request_id, safe="")
    try:
        print(json.dumps(call(args.api, f"/v1/privacy/requests/{quoted}"), indent=2))
        return 0
    except ApiFailure as failure:
        print(f"omnid privacy: {failure}")
        return 1 if failure.status == 404 else 2
    except urllib.error.URLError as error:
        print(f"omnid privacy: no worker answered at {args.api}: {error.reason}")
        return 2
