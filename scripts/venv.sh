#!/usr/bin/env bash
# The Python environment of `make run`, `make test`, `make lint`: the active virtualenv if there
# is one (VIRTUAL_ENV), else the project's own `.venv`, created on first use. omnid is installed
# into it (editable, with the dev and bench extras) when it is missing, installed from another
# checkout, or pyproject.toml changed since the last install.
#
#   . scripts/venv.sh            sourced: exports VIRTUAL_ENV, PATH and PYTHON for the caller
#   bash scripts/venv.sh CMD...  runs CMD inside the environment
set -euo pipefail

omnid_project="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
omnid_venv="${VIRTUAL_ENV:-$omnid_project/.venv}"

if [[ ! -x "$omnid_venv/bin/python" ]]; then
  echo "venv: creating the project virtualenv $omnid_venv (first run)..." >&2
  python3 -m venv "$omnid_venv" || {
    echo "venv: python3 -m venv failed; on Debian/Ubuntu: sudo apt-get install python3-venv" >&2
    exit 1
  }
fi
export VIRTUAL_ENV="$omnid_venv"
export PATH="$omnid_venv/bin:$PATH"
export PYTHON="$omnid_venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# What the last install was made from; a different checkout or pyproject.toml reinstalls. An
# install that failed is not retried until pyproject.toml changes again, as long as omnid is
# importable from this checkout: the shell goes on with what is installed, and a dependency
# that is missing shows as an ImportError in whatever needs it.
omnid_install_stamp="$omnid_venv/.omnid-install"
omnid_install_from="$omnid_project $(sha256sum "$omnid_project/pyproject.toml" | cut -c1-16)"
omnid_installed_here() {
  "$PYTHON" - "$omnid_project/src" <<'PY' 2>/dev/null
import sys
import omnid.cli
sys.exit(0 if omnid.cli.__file__.startswith(sys.argv[1]) else 1)
PY
}
omnid_stamp="$(cat "$omnid_install_stamp" 2>/dev/null || true)"
if [[ "$omnid_stamp" == "failed $omnid_install_from" ]] && omnid_installed_here; then
  echo "venv: pyproject.toml did not install into $omnid_venv; going on with what is installed" >&2
elif [[ "$omnid_stamp" != "$omnid_install_from" ]] || ! omnid_installed_here; then
  echo "venv: installing omnid into $omnid_venv (pip install -e '.[dev,bench]')..." >&2
  if "$PYTHON" -m pip install -q -e "$omnid_project[dev,bench]"; then
    echo "$omnid_install_from" >"$omnid_install_stamp"
  elif omnid_installed_here; then
    echo "failed $omnid_install_from" >"$omnid_install_stamp"
    echo "venv: pip install failed (above); going on with the omnid already installed" >&2
  else
    exit 1
  fi
fi
unset omnid_project omnid_venv omnid_install_stamp omnid_install_from omnid_stamp
unset -f omnid_installed_here

if [[ "${BASH_SOURCE[0]}" == "$0" && $# -gt 0 ]]; then
  exec "$@"
fi
