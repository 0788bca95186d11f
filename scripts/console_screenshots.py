"""The README's console screenshots, from a running stack (`make run`): signs in with the token
`make run` printed, finds a sample customer, and writes docs/console-profile.png and
docs/console-operate.png. Needs the dev extra (selenium) and Debian's chromium + chromium-driver.

    OMNID_API_TOKEN=omnid_... python scripts/console_screenshots.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from selenium.webdriver.support.ui import Select

from omnid.config import PROJECT_ROOT
from omnid.console.browser import BROWSER_NAMES, DRIVER_NAMES, ConsoleBrowser, find_executable


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8081", help="a worker of the stack")
    parser.add_argument("--token", default=os.environ.get("OMNID_API_TOKEN"))
    parser.add_argument("--find", nargs=2, metavar=("TYPE", "VALUE"),
                        default=("email", "IVO.Usher.18@Inbox.example"))  # fmt: skip
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs")
    args = parser.parse_args()
    browser_path, driver_path = find_executable(BROWSER_NAMES), find_executable(DRIVER_NAMES)
    if not args.token or browser_path is None or driver_path is None:
        print("needs --token (or OMNID_API_TOKEN), chromium and chromedriver", file=sys.stderr)
        return 2
    browser = ConsoleBrowser(browser_path, driver_path, width=1400, height=900)
    console_url = f"{args.api}/console/"
    try:
        browser.sign_in(console_url, args.token)
        browser.find(*args.find)
        browser.element("#profile-id")
        # The evidence path from the identifier searched for (when the lower-cased value is its
        # normal form, as for emails) to the profile's last identifier, highlighted.
        browser.element("#evidence-graph g.node")
        held = [o.get_attribute("value") for o in browser.visible("#path-to option")]
        searched = f"{args.find[0]}:{args.find[1].strip().lower()}"
        start = searched if searched in held else held[0]
        Select(browser.element("#path-from")).select_by_value(start)
        Select(browser.element("#path-to")).select_by_value(held[-1])
        browser.element("#show-path").click()
        browser.wait_for(lambda _d: browser.visible("#path-hops li"))
        print(browser.screenshot(args.out / "console-profile.png"))
        browser.get(f"{console_url}#/operate")
        browser.element("#workers")
        # The per-minute rates need two samples of each worker's counters, and active profiles
        # are counted every 30 s.
        browser.wait_for(lambda _d: "…" not in browser.element("#tile-merges-rate").text)
        browser.wait_for(lambda _d: browser.element("#tile-profiles").text.split()[0] != "0")
        print(browser.screenshot(args.out / "console-operate.png"))
    finally:
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
