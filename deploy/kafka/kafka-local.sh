#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft) on localhost for machines without Docker.
#
#   kafka-local.sh up       fetch the broker from Maven Central (once), format storage, start, wait
#   kafka-local.sh down     stop the broker this script started (pid file), SIGTERM then SIGKILL
#   kafka-local.sh status   say whether it runs and where
#   kafka-local.sh pid      print the pid of the broker this script started; exit 3 if none
#   kafka-local.sh env      print the OMNID_KAFKA_* settings that reach this broker
#
# Everything lives in KAFKA_LOCAL_HOME (default: <project>/.kafka, git-ignored):
#   m2/ (the Maven repository used for the download), classpath-<pom hash>.txt, data/,
#   server.properties, broker.log, broker.pid.
# Settings: KAFKA_LOCAL_PORT (9092; the controller uses port+1), KAFKA_LOCAL_HEAP (1g),
#   KAFKA_LOCAL_START_TIMEOUT (seconds to wait for a metadata answer, 90),
#   KAFKA_LOCAL_STOP_TIMEOUT (seconds between SIGTERM and SIGKILL, 30),
#   KAFKA_LOCAL_SECURITY (plaintext, or sasl_ssl: clients must use TLS and SCRAM-SHA-512; the
#   CA, the broker's certificate and the user's password are generated once under tls/),
#   KAFKA_LOCAL_SASL_USERNAME (omnid),
#   KAFKA_LOCAL_REQUIRE_OWN (0; 1: a broker not started by this script answering on the port is
#   an error, not a broker to use as is: a private broker that a test will SIGKILL).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT_ROOT="$(cd "$HERE/../.." && pwd)"
KAFKA_HOME_DIR="${KAFKA_LOCAL_HOME:-$PROJECT_ROOT/.kafka}"
PORT="${KAFKA_LOCAL_PORT:-9092}"
CONTROLLER_PORT="$((PORT + 1))"
HEAP="${KAFKA_LOCAL_HEAP:-1g}"
START_TIMEOUT="${KAFKA_LOCAL_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_LOCAL_STOP_TIMEOUT:-30}"
REQUIRE_OWN="${KAFKA_LOCAL_REQUIRE_OWN:-0}"

POM="$HERE/pom.xml"
PID_FILE="$KAFKA_HOME_DIR/broker.pid"
LOG_FILE="$KAFKA_HOME_DIR/broker.log"
DATA_DIR="$KAFKA_HOME_DIR/data"
CONFIG_FILE="$KAFKA_HOME_DIR/server.properties"
BOOTSTRAP="localhost:$PORT"
SECURITY="${KAFKA_LOCAL_SECURITY:-plaintext}"
SASL_USERNAME="${KAFKA_LOCAL_SASL_USERNAME:-omnid}"
TLS_DIR="$KAFKA_HOME_DIR/tls"
[[ "$SECURITY" == plaintext || "$SECURITY" == sasl_ssl ]] ||
  { echo "kafka-local: KAFKA_LOCAL_SECURITY must be plaintext or sasl_ssl" >&2; exit 2; }

say() { echo "kafka-local: $*"; }
fail() {
  echo "kafka-local: $*" >&2
  exit 1
}

require_java() {
  command -v java >/dev/null 2>&1 ||
    fail "Java 17+ is required to run the local Kafka broker, and 'java' is not on PATH (Debian: apt-get install openjdk-17-jre-headless)."
  local version major
  version="$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
  major="${version%%.*}"
  [[ "$major" == "1" ]] && major="$(echo "$version" | cut -d. -f2)"
  [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] ||
    fail "Java 17+ is required to run the local Kafka broker; found Java '${version:-unknown}'."
}

require_maven() {
  command -v mvn >/dev/null 2>&1 ||
    fail "Maven is required to fetch the Kafka broker from Maven Central, and 'mvn' is not on PATH (Debian: apt-get install maven)."
}

# The pid of the broker this script started, if it is still that process; empty otherwise.
running_pid() {
  [[ -f "$PID_FILE" ]] || return 0
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  # A recycled pid belongs to another program: only trust a java process using our config file.
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONFIG_FILE"; then
    echo "$pid"
  fi
}

# Resolves the broker's runtime classpath with Maven; cached per pom.xml content.
broker_classpath() {
  local pom_hash classpath_file
  pom_hash="$(sha256sum "$POM" | cut -c1-12)"
  classpath_file="$KAFKA_HOME_DIR/classpath-$pom_hash.txt"
  if [[ -s "$classpath_file" ]] && all_jars_present "$classpath_file"; then
    cat "$classpath_file"
    return 0
  fi
  require_maven
  say "fetching the Kafka broker from Maven Central into $KAFKA_HOME_DIR/m2 (first run only)..." >&2
  if ! mvn -q -B -f "$POM" -Dmaven.repo.local="$KAFKA_HOME_DIR/m2" \
    dependency:build-classpath -Dmdep.includeScope=runtime \
    -Dmdep.outputFile="$classpath_file.tmp" >"$KAFKA_HOME_DIR/maven.log" 2>&1; then
    tail -n 20 "$KAFKA_HOME_DIR/maven.log" >&2
    fail "Maven could not fetch the Kafka broker (full output: $KAFKA_HOME_DIR/maven.log)."
  fi
  mv "$classpath_file.tmp" "$classpath_file"
  cat "$classpath_file"
}

all_jars_present() {
  local jar
  while IFS= read -r jar; do
    [[ -f "$jar" ]] || return 1
  done < <(tr ':' '\n' <"$1")
}

# A CA, the broker's key and certificate (for localhost) signed by it, and the SCRAM user's
# password: generated once, kept with the broker's data (the password file is mode 600).
make_tls_once() {
  [[ -f "$TLS_DIR/broker-keystore.pem" && -f "$TLS_DIR/sasl-password" ]] && return 0
  command -v openssl >/dev/null 2>&1 || fail "openssl is required for KAFKA_LOCAL_SECURITY=sasl_ssl"
  mkdir -p "$TLS_DIR"
  chmod 700 "$TLS_DIR"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=omnid local Kafka CA" \
    -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$TLS_DIR/broker.key" -out "$TLS_DIR/broker.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$TLS_DIR/san.ext"
  openssl x509 -req -in "$TLS_DIR/broker.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
    -CAcreateserial -days 3650 -extfile "$TLS_DIR/san.ext" -out "$TLS_DIR/broker.pem" >/dev/null 2>&1
  # Kafka's PEM key store: the PKCS#8 key followed by the certificate chain, in one file.
  { openssl pkcs8 -topk8 -nocrypt -in "$TLS_DIR/broker.key"; cat "$TLS_DIR/broker.pem" "$TLS_DIR/ca.pem"; } \
    >"$TLS_DIR/broker-keystore.pem"
  (umask 077 && openssl rand -hex 24 >"$TLS_DIR/sasl-password")
}

sasl_password() {
  cat "$TLS_DIR/sasl-password"
}

write_config() {
  {
    cat "$HERE/server.properties"
    echo
    echo "# Added by kafka-local.sh"
    echo "log.dirs=$DATA_DIR"
    echo "controller.quorum.voters=1@localhost:$CONTROLLER_PORT"
    if [[ "$SECURITY" == sasl_ssl ]]; then
      # One client listener, TLS + SCRAM-SHA-512; the broker talks to itself through it too.
      echo "listeners=SASL_SSL://localhost:$PORT,CONTROLLER://localhost:$CONTROLLER_PORT"
      echo "advertised.listeners=SASL_SSL://localhost:$PORT"
      echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
      echo "inter.broker.listener.name=SASL_SSL"
      echo "sasl.enabled.mechanisms=SCRAM-SHA-512"
      echo "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512"
      echo "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$SASL_USERNAME\" password=\"$(sasl_password)\";"
      echo "ssl.keystore.type=PEM"
      echo "ssl.keystore.location=$TLS_DIR/broker-keystore.pem"
      echo "ssl.truststore.type=PEM"
      echo "ssl.truststore.location=$TLS_DIR/ca.pem"
    else
      echo "listeners=PLAINTEXT://localhost:$PORT,CONTROLLER://localhost:$CONTROLLER_PORT"
      echo "advertised.listeners=PLAINTEXT://localhost:$PORT"
    fi
  } >"$CONFIG_FILE"
  chmod 600 "$CONFIG_FILE"
}

# The settings an omnid process (or this script's own readiness check) needs for this broker.
cmd_env() {
  echo "OMNID_KAFKA_BOOTSTRAP=$BOOTSTRAP"
  if [[ "$SECURITY" == sasl_ssl ]]; then
    echo "OMNID_KAFKA_SECURITY_PROTOCOL=SASL_SSL"
    echo "OMNID_KAFKA_SASL_MECHANISM=SCRAM-SHA-512"
    echo "OMNID_KAFKA_SASL_USERNAME=$SASL_USERNAME"
    echo "OMNID_KAFKA_SASL_PASSWORD=$(sasl_password)"
    echo "OMNID_KAFKA_SSL_CA_LOCATION=$TLS_DIR/ca.pem"
  fi
}

JVM_OPTIONS=(
  "-Xmx$HEAP" -Xms256m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
  -Djava.awt.headless=true "-Dlog4j2.configurationFile=$HERE/log4j2.properties"
)

java_command() {
  local classpath="$1"
  shift
  java "${JVM_OPTIONS[@]}" -cp "$classpath" "$@"
}

format_storage_once() {
  local classpath="$1" cluster_id
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  cluster_id="$(java_command "$classpath" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
  local scram=()
  if [[ "$SECURITY" == sasl_ssl ]]; then
    # KRaft keeps SCRAM credentials in the metadata log: the user exists from the first start.
    scram=(--add-scram "SCRAM-SHA-512=[name=$SASL_USERNAME,password=$(sasl_password)]")
  fi
  java_command "$classpath" kafka.tools.StorageTool format --cluster-id "$cluster_id" \
    --config "$CONFIG_FILE" --ignore-formatted "${scram[@]}" >>"$LOG_FILE" 2>&1 ||
    fail "formatting KRaft storage in $DATA_DIR failed; see $LOG_FILE"
}

port_open() {
  (exec 3<>"/dev/tcp/localhost/$PORT") 2>/dev/null
}

# The cluster id this script's storage was formatted with (empty before the first format).
own_cluster_id() {
  sed -n 's/^cluster\.id=//p' "$DATA_DIR/meta.properties" 2>/dev/null || true
}

# Waits up to $1 seconds for a Kafka broker to answer a metadata request on $BOOTSTRAP; gives up
# early when the process $2 (if given) exits. With a cluster id $3, only a broker of that
# cluster counts: another one answering on the port (it took the port while ours was down) is
# no sign that ours is up. Exit status: 0 answered, 1 no answer, 2 process gone, 3 another
# cluster answers.
await_metadata() {
  local seconds="$1" pid="${2:-}" cluster="${3:-}"
  if python3 -c 'import confluent_kafka' 2>/dev/null; then
    # One Python process polls (starting one per poll costs more than the broker's start-up).
    KAFKA_LOCAL_CLIENT_ENV="$(cmd_env)" python3 - "$seconds" "$pid" "$cluster" <<'PY' 2>/dev/null
import os
import sys
import time

from confluent_kafka.admin import AdminClient

seconds, pid, cluster = float(sys.argv[1]), sys.argv[2], sys.argv[3]
lines = os.environ["KAFKA_LOCAL_CLIENT_ENV"].splitlines()
settings = dict(line.split("=", 1) for line in lines if "=" in line)
names = {
    "OMNID_KAFKA_BOOTSTRAP": "bootstrap.servers",
    "OMNID_KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "OMNID_KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "OMNID_KAFKA_SASL_USERNAME": "sasl.username",
    "OMNID_KAFKA_SASL_PASSWORD": "sasl.password",
    "OMNID_KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
}
config = {names[k]: v for k, v in settings.items() if k in names}
admin = AdminClient({**config, "log_level": 0})
deadline = time.monotonic() + seconds
while True:
    try:
        metadata = admin.list_topics(timeout=2)
    except Exception:
        metadata = None
    if metadata is not None and metadata.brokers:
        sys.exit(0 if not cluster or metadata.cluster_id == cluster else 3)
    if pid:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            sys.exit(2)
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.2)
PY
  else
    # Without the Python client (package not installed yet) an open port is the best signal.
    local deadline=$((SECONDS + ${seconds%.*}))
    while true; do
      port_open && return 0
      [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null && return 2
      ((SECONDS >= deadline)) && return 1
      sleep 0.5
    done
  fi
}

answers_metadata() {
  port_open && await_metadata 3
}

# "PORT (what) is in use by: <process>" for each of our two ports that another process listens
# on; empty when both are free. A broker that cannot bind its controller port logs "Unable to
# start acceptor for CONTROLLER" and never serves, so this is checked before starting one.
ports_held() {
  local port what holder
  for port in "$PORT" "$CONTROLLER_PORT"; do
    what=client
    [[ "$port" == "$CONTROLLER_PORT" ]] && what=controller
    holder=""
    if command -v ss >/dev/null 2>&1; then
      holder="$(ss -Hltnp "sport = :$port" 2>/dev/null | sed -n 's/.*users:((\(.*\)))$/\1/p' | head -n 1)"
      [[ -z "$holder" ]] && ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && holder="an unnamed process"
    elif (exec 3<>"/dev/tcp/localhost/$port") 2>/dev/null; then
      holder="a process listening"
    fi
    [[ -n "$holder" ]] && echo "port $port ($what) is in use by: $holder"
  done
  return 0
}

wait_until_ready() {
  local pid="$1" status=0
  await_metadata "$START_TIMEOUT" "$pid" "$(own_cluster_id)" || status=$?
  case "$status" in
    0) return 0 ;;
    2)
      tail -n 30 "$LOG_FILE" >&2
      rm -f "$PID_FILE"
      fail "the broker exited during start-up; full log: $LOG_FILE"
      ;;
    3)
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      fail "another Kafka cluster answers on $BOOTSTRAP (it took the port while this broker was starting); stopped ours (pid $pid)"
      ;;
    *) fail "the broker (pid $pid) did not answer a metadata request within ${START_TIMEOUT}s; log: $LOG_FILE" ;;
  esac
}

cmd_up() {
  local pid started
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    say "already running (pid $pid) on $BOOTSTRAP"
    return 0
  fi
  require_java
  if answers_metadata; then
    [[ "$REQUIRE_OWN" == 1 ]] &&
      fail "a Kafka broker not started from $KAFKA_HOME_DIR already answers on $BOOTSTRAP (KAFKA_LOCAL_REQUIRE_OWN=1: choose another KAFKA_LOCAL_PORT)"
    say "a Kafka broker not started by this script already answers on $BOOTSTRAP; using it as is"
    return 0
  fi
  local held
  held="$(ports_held)"
  [[ -z "$held" ]] || fail "cannot start the broker: $held (choose another KAFKA_LOCAL_PORT; the controller uses port+1)"
  mkdir -p "$KAFKA_HOME_DIR" "$DATA_DIR"
  local classpath
  classpath="$(broker_classpath)"
  [[ "$SECURITY" == sasl_ssl ]] && make_tls_once
  write_config
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  format_storage_once "$classpath"
  started=$SECONDS
  # setsid: the broker outlives the shell (and the process group) that asked for it.
  # (A background job of a script is no process-group leader, so setsid execs in place and $!
  # is the JVM's own pid.)
  setsid java "${JVM_OPTIONS[@]}" -cp "$classpath" kafka.Kafka "$CONFIG_FILE" \
    </dev/null >>"$LOG_FILE" 2>&1 &
  pid=$!
  echo "$pid" >"$PID_FILE"
  wait_until_ready "$pid"
  say "Kafka $(kafka_version "$classpath") is up on $BOOTSTRAP (pid $pid, ready in $((SECONDS - started))s)"
  say "data: $DATA_DIR   log: $LOG_FILE"
  say "stop it with: make kafka-down   (or: bash deploy/kafka/kafka-local.sh down)"
  [[ "$SECURITY" == sasl_ssl ]] && say "clients need (kafka-local.sh env prints them): $(cmd_env | grep -v PASSWORD | tr '\n' ' ')"
  return 0
}

kafka_version() {
  tr ':' '\n' <<<"$1" | sed -n 's#.*/kafka_2\.13-\(.*\)\.jar$#\1#p' | head -n 1
}

cmd_down() {
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$PID_FILE"
    say "not running (nothing started by this script on $BOOTSTRAP)"
    return 0
  fi
  say "stopping the broker (pid $pid)..."
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "still running after ${STOP_TIMEOUT}s: sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    # Gone, not merely signalled: a broker started right after must find both ports free.
    deadline=$((SECONDS + 30))
    while [[ -r "/proc/$pid/stat" ]] && ! grep -q ') Z ' "/proc/$pid/stat" && ((SECONDS < deadline)); do
      sleep 0.2
    done
  fi
  rm -f "$PID_FILE"
  say "stopped (data kept in $DATA_DIR)"
}

cmd_status() {
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    say "running (pid $pid) on $BOOTSTRAP; data: $DATA_DIR; log: $LOG_FILE"
  elif answers_metadata; then
    say "not started by this script, but a Kafka broker answers on $BOOTSTRAP"
  else
    say "not running"
    return 3
  fi
}

cmd_pid() {
  local pid
  pid="$(running_pid)"
  [[ -n "$pid" ]] || return 3
  echo "$pid"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  pid) cmd_pid ;;
  env) cmd_env ;;
  *)
    echo "usage: $(basename "$0") up|down|status|pid|env" >&2
    exit 2
    ;;
esac
