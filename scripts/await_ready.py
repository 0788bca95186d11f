"""Waits until a local omnid stack serves: every worker's /readyz answers 200 and every given
lookup answers 200 through every worker, all in one pass. `scripts/run.sh` calls it so that
`make run` returns only when the README's lookups work. Lookups send OMNID_API_TOKEN.

    await_ready.py --timeout 180 --worker http://127.0.0.1:8081 --worker ... \
        --lookup email Lea.Fisher.3@inbox.example --lookup pos_customer_id C-501
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from omnid.api_auth import bearer_header


def status_of(url: str) -> str:
    """'200', '503 {"error": "rebalancing"}', or why nothing answered."""
    request = urllib.request.Request(url, headers=bearer_header(os.environ.get("OMNID_API_TOKEN")))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.status)
    except urllib.error.HTTPError as error:
        return f"{error.code} {error.read().decode(errors='replace')[:200]}"
    except (urllib.error.URLError, OSError) as error:
        return f"no answer ({getattr(error, 'reason', error)})"


def pending(workers: list[str], lookups: list[tuple[str, str]]) -> list[str]:
    """What does not answer 200 yet, as 'URL: status' lines; empty once the stack serves."""
    urls = [f"{worker}/readyz" for worker in workers]
    urls += [
        f"{worker}/v1/identifiers/{urllib.parse.quote(kind, safe='')}/"
        f"{urllib.parse.quote(value, safe='')}"
        for worker in workers
        for kind, value in lookups
    ]
    waiting = []
    for url in urls:
        status = status_of(url)
        if status != "200":
            waiting.append(f"{url}: {status}")
            break  # the rest is asked again on the next pass anyway
    return waiting


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="append", default=[], help="a worker's base URL")
    parser.add_argument("--lookup", nargs=2, action="append", default=[], metavar=("TYPE", "VALUE"))
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds")
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    while waiting := pending(args.worker, [tuple(pair) for pair in args.lookup]):
        if time.monotonic() > deadline:
            print(f"await_ready: not ready after {args.timeout:.0f}s:", *waiting, sep="\n  ")
            return 1
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
