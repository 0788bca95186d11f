#!/usr/bin/env bash
# `make run`: brings up the local omnid stack and says what runs and how to stop it.
# Steps: Kafka broker (local, unless OMNID_KAFKA_BOOTSTRAP names a cluster), topics; later
# capabilities append their steps (workers, collector, sample feed) below the marked line.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import omnid.cli' 2>/dev/null; then
  echo "run: installing omnid (first run)..."
  "$PYTHON" -m pip install -q -e '.[dev,bench]'
fi

running=()
stop=()
if [[ -z "${OMNID_KAFKA_BOOTSTRAP:-}" ]]; then
  bash deploy/kafka/kafka-local.sh up
  running+=("Kafka broker on localhost:9092 (log: .kafka/broker.log)")
  stop+=("make kafka-down")
else
  echo "run: using the Kafka cluster at OMNID_KAFKA_BOOTSTRAP=$OMNID_KAFKA_BOOTSTRAP"
fi

"$PYTHON" -m omnid.cli topics apply
running+=("topics of streams/topics.yaml (omnid topics list shows them)")

# --- later steps go here: start each process in the background, record its pid under .run/,
# --- and append a line to `running` and its stop command to `stop`.

echo
echo "omnid is running:"
printf '  - %s\n' "${running[@]}"
if ((${#stop[@]})); then
  echo "stop it with:"
  printf '  %s\n' "${stop[@]}"
fi
