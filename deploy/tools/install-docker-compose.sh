#!/usr/bin/env bash
# Installs the `docker compose` CLI plugin when the docker client lacks it, built from the Docker
# Compose Go module (the Go module proxy is reachable where no binary download is). Used only to
# check deploy/docker-compose.yml with `docker compose config`; no Docker engine is needed.
# Idempotent; takes several minutes the first time (module download + compile).
set -euo pipefail
COMPOSE_VERSION="${COMPOSE_VERSION:-v2.40.3}"
PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"

if ! command -v docker >/dev/null; then
  echo "install-docker-compose: no docker client here; nothing to do" >&2
  exit 0
fi
if docker compose version >/dev/null 2>&1; then
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "install-docker-compose: needs Go to build the plugin; skipping" >&2
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# `go install module/cmd@version` refuses modules whose go.mod has exclude directives (compose's
# does), so fetch the module source and build it as the main module.
cd "$work"
go mod init compose-build >/dev/null 2>&1
go mod download -x "github.com/docker/compose/v2@${COMPOSE_VERSION}" >/dev/null 2>&1
src="$(go env GOMODCACHE)/github.com/docker/compose/v2@${COMPOSE_VERSION}"
cp -r "$src" "$work/compose"
chmod -R u+w "$work/compose"
cd "$work/compose"
echo "install-docker-compose: building docker compose ${COMPOSE_VERSION} (a few minutes)..." >&2
GOFLAGS=-mod=mod go build -trimpath -o "$work/docker-compose" ./cmd
mkdir -p "$PLUGIN_DIR"
install -m 0755 "$work/docker-compose" "$PLUGIN_DIR/docker-compose"
docker compose version
