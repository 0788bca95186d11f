"""`omnid lookup TYPE VALUE` (or `--profile ID`): ask any worker's lookup API, print the profile.
The bearer token (scope profiles:read) comes from OMNID_API_TOKEN."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request

from omnid.api_auth import bearer_header
from omnid.config import Settings
from omnid.tls import client_context


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("lookup", help="the live profile of an identifier or profile id")
    parser.add_argument("type", nargs="?", help="identifier type, e.g. email")
    parser.add_argument("value", nargs="?", help="identifier value (normalised by the worker)")
    parser.add_argument("--profile", help="look up a profile id instead")
    parser.add_argument(
        "--api",
        default=None,
        help="any worker's lookup API base URL (default OMNID_LOOKUP_API, http://127.0.0.1:8081)",
    )
    parser.set_defaults(func=run)


def lookup_path(identifier_type: str | None, value: str | None, profile: str | None) -> str:
    if profile:
        return f"/v1/profiles/{urllib.parse.quote(profile, safe='')}"
    if not identifier_type or not value:
        raise SystemExit("omnid lookup: give TYPE VALUE or --profile ID")
    quoted = urllib.parse.quote(value, safe="")
    return f"/v1/identifiers/{urllib.parse.quote(identifier_type, safe='')}/{quoted}"


def run(args: argparse.Namespace) -> int:
    api = args.api or Settings().lookup_api
    url = api.rstrip("/") + lookup_path(args.type, args.value, args.profile)
    request = urllib.request.Request(url, headers=bearer_header(Settings().api_token))
    try:
        context = client_context(Settings())  # https APIs: verified with OMNID_TLS_CA_FILE
        with urllib.request.urlopen(request, timeout=15, context=context) as response:
            print(json.dumps(json.load(response), indent=2, sort_keys=True))
            return 0
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")
        print(f"omnid lookup: HTTP {error.code}: {body}")
        if error.code == 401:
            print("omnid lookup: set OMNID_API_TOKEN to a token with scope profiles:read")
        return 1 if error.code == 404 else 2
    except urllib.error.URLError as error:
        print(f"omnid lookup: no worker answered at {api}: {error.reason}")
        return 2
