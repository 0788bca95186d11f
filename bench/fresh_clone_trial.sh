#!/usr/bin/env bash
# The newcomer's path from a fresh clone, timed: `make run`; at once every `omnid lookup` of the
# README's Quick start (each must answer 200); `make stop`, after which no process may run from
# the clone (workers, collector, broker); `make run` again, the lookups again, `make stop`.
# Nothing is shared with this checkout: no virtualenv, no Maven cache, no broker (so the first
# `make run` creates .venv, downloads Kafka and formats its storage).
#
#   bash bench/fresh_clone_trial.sh [GIT_SOURCE [BRANCH]]   (default: this checkout, its branch)
#
# Ports default to 9381 9382 (workers), 9388 (collector), 9392 (broker) so the trial never
# meets a developer's `make run`; RUN_WORKER_PORTS, OMNID_COLLECTOR_PORT and KAFKA_LOCAL_PORT
# override them. Writes bench/results/fresh-clone-trial.txt.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source_repo="${1:-$here}"
branch="${2:-$(git -C "$here" rev-parse --abbrev-ref HEAD)}"
results="$here/bench/results/fresh-clone-trial.txt"
clone="$(mktemp -d)/omnid"

# The clone's own Python environment: no active virtualenv, none of it on the PATH.
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
  PATH="$(tr ':' '\n' <<<"$PATH" | grep -vxF "$VIRTUAL_ENV/bin" | paste -sd:)"
fi
unset VIRTUAL_ENV OMNID_KAFKA_BOOTSTRAP OMNID_API_TOKEN OMNID_LOOKUP_API KAFKA_LOCAL_HOME RUN_HOME
export RUN_WORKER_PORTS="${RUN_WORKER_PORTS:-9381 9382}"
export OMNID_COLLECTOR_PORT="${OMNID_COLLECTOR_PORT:-9388}"
export KAFKA_LOCAL_PORT="${KAFKA_LOCAL_PORT:-9392}"

log() { echo "$*" | tee -a "$results.tmp"; }
: >"$results.tmp"
log "fresh-clone trial $(date -u +%FT%TZ): $source_repo ($branch, $(git -C "$source_repo" rev-parse --short "$branch"))"
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg); ports: workers $RUN_WORKER_PORTS, collector $OMNID_COLLECTOR_PORT, broker $KAFKA_LOCAL_PORT"
git clone -q --branch "$branch" "$source_repo" "$clone"
cd "$clone"
mapfile -t lookups < <(sed -n '/^## Quick start$/,/^## /p' README.md | sed -n 's/^\(omnid lookup [^#]*[^ #]\) *#.*$/\1/p')
log "README Quick start lookups: ${#lookups[@]}"

timed() { # LABEL COMMAND...
  local start=$SECONDS status=0
  "${@:2}" >>"$clone/trial.log" 2>&1 || status=$?
  log "$1: exit $status in $((SECONDS - start)) s"
  return "$status"
}

lookups_answer() { # LABEL
  local failed=0
  (
    . .venv/bin/activate
    . .run/env
    for command in "${lookups[@]}"; do
      if bash -c "$command" >/dev/null 2>>"$clone/trial.log"; then
        log "  $1: 200 from: $command"
      else
        log "  $1: FAILED: $command"
        exit 1
      fi
    done
  ) || failed=1
  return "$failed"
}

left_running() {
  pgrep -af -- "$clone" | grep -v -e pgrep -e fresh_clone_trial || true
}

nothing_left() { # LABEL
  local left
  left="$(left_running)"
  if [[ -n "$left" ]]; then
    log "  $1: STILL RUNNING from the clone:"
    log "$left"
    return 1
  fi
  log "  $1: no process of the clone runs (workers, collector, broker)"
}

status=0
timed "make run (first: .venv, Kafka download, storage format)" make run || status=1
lookups_answer "at once after make run" || status=1
timed "make stop" make stop || status=1
nothing_left "after make stop" || status=1
timed "make run (again)" make run || status=1
lookups_answer "at once after the second make run" || status=1
timed "make stop" make stop || status=1
nothing_left "after make stop" || status=1
timed "make stop (nothing running)" make stop || status=1
log "result: $([[ $status == 0 ]] && echo PASS || echo FAIL); full output: $clone/trial.log"
mv "$results.tmp" "$results"
exit "$status"
