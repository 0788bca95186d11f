#!/usr/bin/env bash
# `make stop`: stops what `make run` started, by its pid files: the collector and the workers
# (SIGTERM, so a worker commits its batch and leaves the group; SIGKILL after RUN_STOP_TIMEOUT
# seconds, 30), then the local broker if `make run` started it. Idempotent: with nothing running
# it says so and exits 0. A broker that ran before `make run` is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/stack.sh

stopping=()
for file in "$RUN_HOME"/*.pid; do
  [[ -e "$file" ]] || continue
  name="$(basename "$file" .pid)"
  pid="$(stack_pid "$name")"
  if [[ -n "$pid" ]]; then
    echo "stop: $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    stopping+=("$pid")
  else
    recorded="$(sed -n 1p "$file")"
    if [[ "$recorded" =~ ^[0-9]+$ ]] && kill -0 "$recorded" 2>/dev/null; then
      echo "stop: $name.pid names pid $recorded, which does not run what make run started there; left alone"
    fi
  fi
  rm -f "$file"
done
deadline=$((SECONDS + ${RUN_STOP_TIMEOUT:-30}))
for pid in "${stopping[@]}"; do
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "stop: pid $pid still running after ${RUN_STOP_TIMEOUT:-30}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
done

broker=no
if [[ -f "$RUN_BROKER_RECORD" ]]; then
  # The home and port `make run` started it with, whatever this shell's KAFKA_LOCAL_* say.
  (
    set -a
    . "$RUN_BROKER_RECORD"
    bash deploy/kafka/kafka-local.sh down
  )
  rm -f "$RUN_BROKER_RECORD"
  broker=yes
elif bash deploy/kafka/kafka-local.sh pid >/dev/null; then
  echo "stop: the local broker was not started by make run; left running (make kafka-down stops it)"
fi

if ((${#stopping[@]} == 0)) && [[ "$broker" == no ]]; then
  echo "stop: nothing from make run is running"
fi
