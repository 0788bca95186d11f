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

# Pipeline workers: two members of one group, each with its own RocksDB folder and lookup port.
mkdir -p .run
# A fresh development API token (all scopes); the workers accept it, `omnid lookup` sends it.
export OMNID_API_TOKENS_FILE="$PWD/.run/api-tokens.yaml"
OMNID_API_TOKEN=$("$PYTHON" -m omnid.cli tokens create dev-local --file "$OMNID_API_TOKENS_FILE" \
  --scope profiles:read --scope privacy:write --scope admin)
export OMNID_API_TOKEN
running+=("API token (profiles:read, privacy:write, admin): export OMNID_API_TOKEN=$OMNID_API_TOKEN" \
  "  then: omnid lookup ..., or curl -H \"Authorization: Bearer \$OMNID_API_TOKEN\" http://127.0.0.1:8081/v1/profiles/ID")
worker_pids=()
for n in 1 2; do
  port=$((8080 + n))
  "$PYTHON" -m omnid.cli worker --name "local-$n" --port "$port" \
    --data-dir ".state/worker-local-$n" >".run/worker-$n.log" 2>&1 &
  echo $! >".run/worker-$n.pid"
  worker_pids+=("$!")
  running+=("worker local-$n: lookup API and /metrics on http://127.0.0.1:$port (log: .run/worker-$n.log)")
done
stop+=("kill ${worker_pids[*]}")
echo "run: waiting for the workers to take their partitions..."
for _ in $(seq 1 120); do
  if curl -fsS http://127.0.0.1:8081/v1/worker 2>/dev/null | grep -q '"ready": \["'; then break; fi
  sleep 0.5
done

# The HTTP collector (Segment Tracking API + email webhook) for channel systems and SDKs.
"$PYTHON" -m omnid.cli collector >.run/collector.log 2>&1 &
echo $! >.run/collector.pid
stop+=("kill $!")
running+=("collector: Segment-compatible HTTP API on http://127.0.0.1:8088 (write key dev-web-key; log: .run/collector.log)")
for _ in $(seq 1 60); do
  if curl -fsS http://127.0.0.1:8088/healthz >/dev/null 2>&1; then break; fi
  sleep 0.5
done

# A small omnichannel sample (synthetic customers across all channels) so profiles appear,
# then the same paths a retailer would use: a till export, a CRM export and an SDK call.
"$PYTHON" samples/feed_sample_events.py
"$PYTHON" -m omnid.cli import --channel pos --mapping samples/pos-mapping.yaml samples/pos-sales.csv
"$PYTHON" -m omnid.cli import --channel crm --mapping samples/crm-mapping.yaml samples/crm-contacts.jsonl
curl -fsS -u dev-web-key: -H 'Content-Type: application/json' http://127.0.0.1:8088/v1/identify \
  -d '{"userId": "u-demo-1", "anonymousId": "anon-demo-1", "traits": {"email": "demo.shopper@inbox.example", "first_name": "Demo"}}'
echo
running+=("imported samples/pos-sales.csv and samples/crm-contacts.jsonl; one identify call through the collector (omnid lookup user_id u-demo-1)")
running+=("sample events fed; watch them: omnid tail profiles --from-beginning, omnid tail changes --from-beginning")
running+=("look one up: omnid lookup email Lea.Fisher.3@inbox.example (any worker; --api http://127.0.0.1:8082)")

echo
echo "omnid is running:"
printf '  - %s\n' "${running[@]}"
if ((${#stop[@]})); then
  echo "stop it with:"
  printf '  %s\n' "${stop[@]}"
fi
