#!/usr/bin/env bash
# The programs the test suites need besides Python packages, installed where this machine allows:
# Java 17+ and Maven (the local Kafka broker), promtool and prometheus (exposition, rules and e2e
# tests), chromium and chromedriver (the web console's selenium tests), and the `docker compose`
# plugin (the compose file check). Called by `make test` (scripts/test.sh) and by `.ci/run`.
#
# Root with apt-get: installs what is missing (Debian packages; no daemon is started). Not root
# with apt-get: exits 1 naming the one command that installs them. No apt-get: nothing here can
# install them; says what is missing and exits 0, and the tests needing them skip (fail in CI).
# The compose plugin is built with Go when there is a docker client and a Go toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package providing it
declare -A package_of=(
  [java]=openjdk-17-jre-headless
  [mvn]=maven
  [promtool]=prometheus
  [prometheus]=prometheus
  [chromium]=chromium
  [chromedriver]=chromium-driver
)
missing=()
for command in java mvn promtool prometheus chromium chromedriver; do
  command -v "$command" >/dev/null || missing+=("${package_of[$command]}")
done
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')

if ((${#packages[@]})); then
  if ! command -v apt-get >/dev/null; then
    echo "ensure-test-tools: missing ${packages[*]} (Debian package names); no apt-get here to" \
      "install them, so the tests needing them skip" >&2
    if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
      echo "ensure-test-tools: without Java and Maven the local broker cannot start; point" \
        "OMNID_KAFKA_BOOTSTRAP at a broker for the Kafka tests" >&2
    fi
  elif [[ "$(id -u)" != 0 ]]; then
    echo "ensure-test-tools: the tests need the Debian packages ${packages[*]}; install them with:" >&2
    echo "  sudo bash scripts/ensure-test-tools.sh" >&2
    exit 1
  else
    echo "ensure-test-tools: installing ${packages[*]} (apt-get)..." >&2
    # A temporary policy-rc.d keeps packages (prometheus) from starting a daemon on port 9090.
    made_policy=no
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      made_policy=yes
    fi
    status=0
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${packages[@]}" >/dev/null || status=$?
    [[ "$made_policy" == yes ]] && rm -f /usr/sbin/policy-rc.d
    if ((status)); then
      echo "ensure-test-tools: apt-get install ${packages[*]} failed (exit $status)" >&2
      exit 1
    fi
  fi
fi

# `docker compose config` checks deploy/docker-compose.yml (no engine needed). Built from source
# once (several minutes); without a docker client or Go the compose test skips.
if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1; then
  timeout 1500 bash deploy/tools/install-docker-compose.sh ||
    echo "ensure-test-tools: docker compose plugin unavailable; the compose check skips" >&2
fi
