#!/usr/bin/env bash
# `make run`: the local omnid stack in the background, returning once it serves the README's
# lookups. Starts what is not already running from an earlier `make run` (the local Kafka broker
# unless OMNID_KAFKA_BOOTSTRAP names a cluster, the workers, the collector), applies the topics,
# feeds the samples, waits until every worker's /readyz is 200 and the samples answer through the
# lookup API, and prints what runs. `make stop` (scripts/stop.sh) stops all of it.
#
# Settings: RUN_WORKER_PORTS ("8081 8082": one worker per port), OMNID_COLLECTOR_PORT (8088),
#   KAFKA_LOCAL_PORT / KAFKA_LOCAL_HOME (the local broker, see deploy/kafka/kafka-local.sh),
#   RUN_HOME (.run: pid files and logs), RUN_STATE_DIR (.state: the workers' RocksDB folders),
#   RUN_READY_TIMEOUT (seconds to wait for lookups, 300).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
. scripts/stack.sh

read -r -a worker_ports <<<"${RUN_WORKER_PORTS:-8081 8082}"
collector_port="${OMNID_COLLECTOR_PORT:-8088}"
state_dir="${RUN_STATE_DIR:-.state}"
api="http://127.0.0.1:${worker_ports[0]}"
# What `make run` feeds, looked up by the README: the synthetic feed, the till export, the CRM
# export and the collector's identify call.
sample_lookups=(
  email Lea.Fisher.3@inbox.example
  pos_customer_id C-501
  crm_id CRM-2
  user_id u-demo-1
)

worker_command() { # NUMBER PORT
  echo "$PYTHON" -m omnid.cli worker --name "local-$1" --host 127.0.0.1 --port "$2" \
    --data-dir "$state_dir/worker-local-$1"
}
collector_command=("$PYTHON" -m omnid.cli collector)

# Every port must be ours already or free, checked before anything starts.
held=()
for n in "${!worker_ports[@]}"; do
  port="${worker_ports[$n]}"
  [[ -n "$(stack_pid "worker-$((n + 1))")" ]] && continue
  holder="$(port_holder "$port")"
  [[ -n "$holder" ]] && held+=("port $port (worker local-$((n + 1))) is held by $holder")
done
if [[ -z "$(stack_pid collector)" ]]; then
  holder="$(port_holder "$collector_port")"
  [[ -n "$holder" ]] && held+=("port $collector_port (collector) is held by $holder")
fi
if ((${#held[@]})); then
  echo "run: cannot start omnid, its ports are taken:" >&2
  printf '  - %s\n' "${held[@]}" >&2
  echo "run: \`make stop\` stops what an earlier \`make run\` of this checkout started; or choose" >&2
  echo "     other ports: RUN_WORKER_PORTS='9081 9082' OMNID_COLLECTOR_PORT=9088 make run" >&2
  exit 1
fi

started=()
reused=()
if [[ -z "${OMNID_KAFKA_BOOTSTRAP:-}" ]]; then
  broker_port="${KAFKA_LOCAL_PORT:-9092}"
  if bash deploy/kafka/kafka-local.sh pid >/dev/null; then
    reused+=("Kafka broker on localhost:$broker_port")
  else
    bash deploy/kafka/kafka-local.sh up
    if bash deploy/kafka/kafka-local.sh pid >/dev/null; then
      mkdir -p "$RUN_HOME"
      printf 'KAFKA_LOCAL_HOME=%q\nKAFKA_LOCAL_PORT=%q\n' \
        "${KAFKA_LOCAL_HOME:-$PWD/.kafka}" "$broker_port" >"$RUN_BROKER_RECORD"
      started+=("Kafka broker on localhost:$broker_port (log: ${KAFKA_LOCAL_HOME:-.kafka}/broker.log)")
    else
      reused+=("Kafka broker on localhost:$broker_port, not started by this checkout (make stop leaves it)")
    fi
  fi
  export OMNID_KAFKA_BOOTSTRAP="localhost:$broker_port"
else
  echo "run: using the Kafka cluster at OMNID_KAFKA_BOOTSTRAP=$OMNID_KAFKA_BOOTSTRAP"
fi

"$PYTHON" -m omnid.cli topics apply

# A development API token (all scopes) that the workers accept and `omnid lookup` sends; kept in
# $RUN_HOME/env (with the lookup API's address) so a later `make run` and the shell reuse it.
export OMNID_API_TOKENS_FILE="$RUN_HOME/api-tokens.yaml"
run_env="$RUN_HOME/env"
if [[ ! -s "$run_env" || ! -s "$OMNID_API_TOKENS_FILE" ]]; then
  mkdir -p "$RUN_HOME"
  rm -f "$OMNID_API_TOKENS_FILE"
  token="$("$PYTHON" -m omnid.cli tokens create dev-local --file "$OMNID_API_TOKENS_FILE" \
    --scope profiles:read --scope privacy:write --scope admin)"
  (umask 077 && printf 'export OMNID_API_TOKEN=%q\n' "$token" >"$run_env")
fi
. "$run_env"
export OMNID_API_TOKEN
sed -i '/^export OMNID_LOOKUP_API=/d' "$run_env"
printf 'export OMNID_LOOKUP_API=%q\n' "$api" >>"$run_env"

# Pipeline workers: members of one group, each with its own RocksDB folder and lookup port.
worker_urls=()
for n in "${!worker_ports[@]}"; do
  name="worker-$((n + 1))"
  port="${worker_ports[$n]}"
  worker_urls+=("http://127.0.0.1:$port")
  what="worker local-$((n + 1)): lookup API, /readyz and /metrics on http://127.0.0.1:$port"
  if [[ -n "$(stack_pid "$name")" ]]; then
    reused+=("$what")
  else
    # shellcheck disable=SC2046 # the command is words without spaces
    stack_start "$name" $(worker_command "$((n + 1))" "$port")
    started+=("$what (log: $RUN_HOME_SHOWN/$name.log)")
  fi
done

# The HTTP collector (Segment Tracking API + email webhook) for channel systems and SDKs.
what="collector: Segment-compatible HTTP API on http://127.0.0.1:$collector_port (write key dev-web-key)"
if [[ -n "$(stack_pid collector)" ]]; then
  reused+=("$what")
else
  OMNID_COLLECTOR_PORT="$collector_port" stack_start collector "${collector_command[@]}"
  started+=("$what (log: $RUN_HOME_SHOWN/collector.log)")
  for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$collector_port/healthz" >/dev/null 2>&1 && break
    [[ -n "$(stack_pid collector)" ]] || break
    sleep 0.5
  done
fi

if ((${#started[@]})); then
  # A small omnichannel sample (synthetic customers across all channels), then the paths a
  # retailer would use: a till export, a CRM export and an SDK call. Every event has a stable
  # event id, so feeding again after `make stop` changes no profile.
  "$PYTHON" samples/feed_sample_events.py
  "$PYTHON" -m omnid.cli import --channel pos --mapping samples/pos-mapping.yaml samples/pos-sales.csv
  "$PYTHON" -m omnid.cli import --channel crm --mapping samples/crm-mapping.yaml samples/crm-contacts.jsonl
  curl -fsS -u dev-web-key: -H 'Content-Type: application/json' \
    "http://127.0.0.1:$collector_port/v1/identify" -d '{"userId": "u-demo-1",
      "messageId": "make-run-demo-1", "anonymousId": "anon-demo-1",
      "traits": {"email": "demo.shopper@inbox.example", "first_name": "Demo"}}'
  echo
fi

lookup_args=()
for ((i = 0; i < ${#sample_lookups[@]}; i += 2)); do
  lookup_args+=(--lookup "${sample_lookups[i]}" "${sample_lookups[i + 1]}")
done
worker_args=()
for url in "${worker_urls[@]}"; do worker_args+=(--worker "$url"); done
echo "run: waiting until every worker is ready and the samples answer through the lookup API..."
if ! "$PYTHON" scripts/await_ready.py --timeout "${RUN_READY_TIMEOUT:-300}" \
  "${worker_args[@]}" "${lookup_args[@]}"; then
  echo "run: see the logs in $RUN_HOME_SHOWN/; \`make stop\` stops what runs" >&2
  exit 1
fi

echo
if ((${#started[@]})); then
  echo "omnid is running. Started now:"
  printf '  - %s\n' "${started[@]}"
fi
if ((${#reused[@]})); then
  echo "Already running (from an earlier \`make run\`, reused as is):"
  printf '  - %s\n' "${reused[@]}"
fi
echo "Samples fed: 400 synthetic events, samples/pos-sales.csv, samples/crm-contacts.jsonl, one identify."
echo "API token (profiles:read, privacy:write, admin): $OMNID_API_TOKEN"
echo "Console: $api/console/ (sign in with that token)"
cat <<EOF
Try:
  . ${VIRTUAL_ENV#"$PWD/"}/bin/activate   # omnid on the PATH
  . $RUN_HOME_SHOWN/env              # OMNID_API_TOKEN (the token above) and OMNID_LOOKUP_API ($api)
  omnid lookup email Lea.Fisher.3@inbox.example
  omnid lookup pos_customer_id C-501
  omnid tail profiles --from-beginning
Stop everything with: make stop
EOF
