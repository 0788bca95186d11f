"""`omnid explain|split|merge|unban`: identity operations through any worker's API. The bearer
token comes from OMNID_API_TOKEN (profiles:read for explain, admin for the others); the
operator recorded on the identity changelog is the token's name."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
from typing import Any

from omnid.pipeline.lookup_client import lookup_path
from omnid.pipeline.privacy_client import ApiFailure, call


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = subparsers.add_parser("explain", help="why a profile is one customer: its evidence")
    explain.add_argument("type", nargs="?", help="identifier type, e.g. email")
    explain.add_argument("value", nargs="?", help="identifier value")
    explain.add_argument("--profile", help="a profile id instead of an identifier")
    explain.add_argument("--from", dest="start", metavar="TYPE:VALUE", help="path from")
    explain.add_argument("--to", dest="end", metavar="TYPE:VALUE", help="path to")
    explain.set_defaults(func=run_explain)
    split = subparsers.add_parser("split", help="move identifiers (and their events) off a profile")
    split.add_argument("--profile", required=True, help="the profile to split")
    split.add_argument(
        "--identifiers", required=True, metavar="K1,K2", help="type:value,... to move off"
    )
    split.set_defaults(func=run_split)
    merge = subparsers.add_parser("merge", help="merge two profiles by hand (limits still hold)")
    merge.add_argument("profiles", nargs=2, metavar="PROFILE")
    merge.set_defaults(func=run_merge)
    unban = subparsers.add_parser("unban", help="lift the re-link ban a split left")
    unban.add_argument("ban_id", help="as the split reported it (PROFILE.PROFILE)")
    unban.set_defaults(func=run_unban)
    for parser in (explain, split, merge, unban):
        parser.add_argument(
            "--api", default=None, help="any worker's API base URL (default OMNID_LOOKUP_API)"
        )
    for parser in (split, merge, unban):
        parser.add_argument("--wait", type=float, default=10.0, help="seconds to wait for it")


def _identifier(text: str) -> dict[str, str]:
    identifier_type, sep, value = text.strip().partition(":")
    if not sep or not identifier_type or not value:
        raise SystemExit(f"omnid: {text!r} is not TYPE:VALUE")
    return {"type": identifier_type, "value": value}


def _print_outcome(command: str, outcome: dict[str, Any]) -> int:
    print(json.dumps(outcome, indent=2, sort_keys=True))
    if outcome["status"] == "refused":
        print(f"omnid {command}: refused: {outcome['reason']}")
        return 1
    return 0 if outcome["status"] == "done" else 3


def run_operation(
    command: str, api: str | None, path: str, body: dict[str, Any] | None, method: str
) -> int:
    """Sends one operation and prints its outcome. Exit code 0 done, 1 refused or nothing of
    that name (404), 2 not sent (HTTP error, no worker, no token), 3 not answered in time."""
    try:
        return _print_outcome(command, call(api, path, body, method=method))
    except ApiFailure as failure:
        if failure.status == 409 and isinstance(failure.body, dict):
            return _print_outcome(command, failure.body)
        print(f"omnid {command}: {failure}")
        if failure.status == 404:
            return 1
        if failure.status in (401, 403):
            print(f"omnid {command}: set OMNID_API_TOKEN to a token with scope admin")
        return 2
    except urllib.error.URLError as error:
        print(f"omnid {command}: no worker answered: {error.reason}")
        return 2


def run_explain(args: argparse.Namespace) -> int:
    try:
        profile_id = args.profile
        if not profile_id:
            profile_id = call(args.api, lookup_path(args.type, args.value, None))["profile_id"]
        path = f"/v1/profiles/{urllib.parse.quote(profile_id, safe='')}/explain"
        if args.start or args.end:
            query = urllib.parse.urlencode({"from": args.start or "", "to": args.end or ""})
            path = f"{path}?{query}"
        print(json.dumps(call(args.api, path), indent=2, sort_keys=True))
        return 0
    except ApiFailure as failure:
        print(f"omnid explain: {failure}")
        return 1 if failure.status == 404 else 2
    except urllib.error.URLError as error:
        print(f"omnid explain: no worker answered: {error.reason}")
        return 2


def run_split(args: argparse.Namespace) -> int:
    identifiers = [_identifier(k) for k in args.identifiers.split(",") if k.strip()]
    quoted = urllib.parse.quote(args.profile, safe="")
    path = f"/v1/profiles/{quoted}/split?wait={args.wait}"
    return run_operation("split", args.api, path, {"identifiers": identifiers}, "POST")


def run_merge(args: argparse.Namespace) -> int:
    path = f"/v1/profiles/merge?wait={args.wait}"
    return run_operation("merge", args.api, path, {"profile_ids": list(args.profiles)}, "POST")


def run_unban(args: argparse.Namespace) -> int:
    path = f"/v1/bans/{urllib.parse.quote(args.ban_id, safe='')}?wait={args.wait}"
    return run_operation("unban", args.api, path, None, "DELETE")
