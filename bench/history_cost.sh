#!/usr/bin/env bash
# The cost of the per-profile event history on `make bench`'s pipeline throughput, in one run:
# the pipeline benchmark alternately on this checkout and on a temporary copy of HEAD whose
# history.record_event keeps nothing (everything else equal), ROUNDS times each.
# `bash bench/history_cost.sh [ROUNDS]`; needs OMNID_KAFKA_BOOTSTRAP or the local broker.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
work="$(mktemp -d)"
trap 'git worktree remove --force "$work/nohist" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/nohist" HEAD >/dev/null
sed -i 's/^    history = profile.history$/    return  # history off\n    history = profile.history/' \
  "$work/nohist/src/omnid/identity/history.py"
grep -q "history off" "$work/nohist/src/omnid/identity/history.py"
for round in $(seq "$rounds"); do
  for side in without with; do
    src="$PWD/src"
    [ "$side" = without ] && src="$work/nohist/src"
    PYTHONPATH="$src" python -m omnid.cli bench --engine kafka --skip-baselines --customers 2000 \
      --loads 500 --phase-seconds 4 --saturation-events 4000 --output-dir "$work/$side-$round" \
      | grep "sustained" | sed "s/^/history $side, round $round: /"
  done
done
