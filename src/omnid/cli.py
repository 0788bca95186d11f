"""The `omnid` command: one subcommand per job, each defined next to the code it runs."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from omnid.errors import OmnidError

# Each module defines `add_parser(subparsers)` (adding its subcommands, one or several) and
# sets `func(args) -> int` on each parser.
# Modules are imported only for their subcommand: `omnid topics` never loads the worker code.
SUBCOMMAND_MODULES: dict[str, str] = {
    "topics": "omnid.kafka.topics",
    "collector": "omnid.adapters.collector",
    "import": "omnid.adapters.importer",
    "worker": "omnid.pipeline.serve",
    "tail": "omnid.pipeline.tail",
    "lookup": "omnid.pipeline.lookup_client",
    "tokens": "omnid.api_auth",
    "privacy": "omnid.pipeline.privacy_client",
    "explain": "omnid.pipeline.identity_ops_client",
    "split": "omnid.pipeline.identity_ops_client",
    "merge": "omnid.pipeline.identity_ops_client",
    "unban": "omnid.pipeline.identity_ops_client",
    "quarantine": "omnid.pipeline.quarantine_client",
    "bench": "omnid.benchmarks.cli",
    "bench-scale": "omnid.benchmarks.scale",
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnid", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    wanted_module = SUBCOMMAND_MODULES.get(wanted or "")
    for name, module_path in SUBCOMMAND_MODULES.items():
        if name in subparsers.choices:
            continue  # a module that defines several subcommands added this one
        if wanted is None or module_path == wanted_module:
            importlib.import_module(module_path).add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=f"see `omnid {name} --help`")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(args_list).parse_args(args_list)
    try:
        return int(args.func(args) or 0)
    except OmnidError as error:
        print(f"omnid {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
