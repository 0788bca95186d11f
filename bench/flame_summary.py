"""Text summary of a py-spy raw (collapsed-stack) profile: the functions that hold the most
samples, inclusive and self. `python bench/flame_summary.py PROFILE.txt [--top 25]`.

Record one with `bash bench/profile_worker.sh PROFILE.txt` (a short `omnid bench` run with
py-spy attached to its worker). `--within Worker._step` keeps only the worker's batch loop:
py-spy counts the follower, roster and standby threads as active while they wait in
librdkafka's consume (16% of a worker's samples, for ~1% of its CPU by /proc)."""

from __future__ import annotations

import argparse
import re
from collections import Counter

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"]
    short = path.split("site-packages/")[-1].split("/src/")[-1]
    return f"{match['function']} ({short})"


def summarise(lines: list[str], top: int, within: str | None = None) -> list[str]:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        if within is not None and f";{within} (" not in stack:
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";")[1:]]  # the first is the process/thread
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    out = [f"{total} samples"]
    out.append("inclusive (share of samples with the function on the stack):")
    out += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    out.append("self (share of samples in the function itself):")
    out += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--within", metavar="FUNCTION", help="only stacks through this function (e.g. Worker._step)"
    )
    args = parser.parse_args()
    with open(args.profile, encoding="utf-8") as handle:
        print("\n".join(summarise(handle.readlines(), args.top, args.within)))


if __name__ == "__main__":
    main()
