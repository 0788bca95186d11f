"""`omnid quarantine list|release|block`: the quarantine review through any worker's API. The
bearer token (scope admin) comes from OMNID_API_TOKEN; the operator recorded on the identity
changelog is the token's name.

A value is named by its id from `list`, or as TYPE:VALUE typed as anywhere else (normalised like
a lookup: `phone:"0113 496 0003"`)."""

from __future__ import annotations

import argparse
import json
import urllib.error
from datetime import UTC, datetime
from typing import Any

from omnid.pipeline.identity_ops_client import run_operation
from omnid.pipeline.privacy_client import ApiFailure, call

COLUMNS = ("id", "type", "value", "since", "profiles", "channels", "sources")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "quarantine", help="review quarantined identifiers: list, release or block them"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="what is quarantined, since when, claimed by whom")
    listing.add_argument("--json", action="store_true", help="the API's answer as JSON")
    listing.set_defaults(func=run_list)
    for action, text in (
        ("release", "let it link again (its merges follow from its recorded claims)"),
        ("block", "keep it out for good, like a blocklisted value"),
    ):
        review = actions.add_parser(action, help=text)
        review.add_argument("target", metavar="ID|TYPE:VALUE", help="an id from `list`, or a value")
        review.add_argument("--wait", type=float, default=10.0, help="seconds to wait for it")
        review.set_defaults(func=run_review, action=action)
    for sub in actions.choices.values():
        sub.add_argument(
            "--api", default=None, help="any worker's API base URL (default OMNID_LOOKUP_API)"
        )


def review_body(target: str) -> dict[str, str]:
    """The API's body for a target: TYPE:VALUE names a value, anything else is an id."""
    identifier_type, sep, value = target.strip().partition(":")
    if sep and identifier_type and value:
        return {"type": identifier_type, "value": value}
    if sep or not target.strip():
        raise SystemExit(f"omnid quarantine: {target!r} is neither an id nor TYPE:VALUE")
    return {"id": target.strip()}


def table_lines(items: list[dict[str, Any]]) -> list[str]:
    """The items as aligned columns, one line each (the value masked as the API gives it)."""
    rows = [
        (
            item["id"],
            item["type"],
            item["value_masked"],
            datetime.fromtimestamp(item["since"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "" if item["claimants"] is None else str(item["claimants"]),
            ",".join(item["channels"]),
            ",".join(item["sources"]),
        )
        for item in items
    ]
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [COLUMNS, *rows]
    ]


def run_list(args: argparse.Namespace) -> int:
    try:
        answer = call(args.api, "/v1/quarantine")
    except ApiFailure as failure:
        print(f"omnid quarantine list: {failure}")
        if failure.status in (401, 403):
            print("omnid quarantine list: set OMNID_API_TOKEN to a token with scope admin")
        return 2
    except urllib.error.URLError as error:
        print(f"omnid quarantine list: no worker answered: {error.reason}")
        return 2
    if args.json:
        print(json.dumps(answer, indent=2, sort_keys=True))
    elif not answer["items"]:
        print("nothing is quarantined")
    else:
        print("\n".join(table_lines(answer["items"])))
    return 0


def run_review(args: argparse.Namespace) -> int:
    path = f"/v1/quarantine/{args.action}?wait={args.wait}"
    body = review_body(args.target)
    return run_operation(f"quarantine {args.action}", args.api, path, body, "POST")
