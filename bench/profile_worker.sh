#!/usr/bin/env bash
# A short `omnid bench` run with py-spy attached to its worker: `bash bench/profile_worker.sh
# PROFILE.txt [omnid bench args]` (needs `pip install py-spy` and ptrace rights), then
# `python bench/flame_summary.py PROFILE.txt`. Default run: 20,000 events, 4,000 customers,
# no baselines.
set -u
cd "$(dirname "$0")/.."
out="${1:?usage: bench/profile_worker.sh PROFILE.txt [omnid bench args]}"
shift
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
  args=(--customers 4000 --loads 1000 --phase-seconds 4 --saturation-events 16000 --skip-baselines)
fi
omnid bench --engine kafka "${args[@]}" &
bench=$!
pid=""
for _ in $(seq 1 600); do
  pid=$(pgrep -P "$bench" -f "omnid.cli worker" | head -1)
  [ -n "$pid" ] && break
  sleep 1
done
if [ -z "$pid" ]; then
  echo "no worker appeared" >&2
  wait "$bench"
  exit 1
fi
py-spy record -p "$pid" -r 100 -f raw -o "$out" --nonblocking &
wait "$bench"
sleep 2
