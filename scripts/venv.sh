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

# What the last install was made from; a different checkout or pyproject.toml reinstalls.
omnid_install_stamp="$omnid_venv/.omnid-install"
omnid_install_from="$omnid_project $(sha256sum "$omnid_project/pyproject.toml" | cut -c1-16)"
if [[ "$(cat "$omnid_install_stamp" 2>/dev/null)" != "$omnid_install_from" ]] ||
  ! "$PYTHON" -c 'import omnid.cli' 2>/dev/null; then
  echo "venv: installing omnid into $omnid_venv (pip install -e '.[dev,bench]')..." >&2
  "$PYTHON" -m pip install -q -e "$omnid_project[dev,bench]"
  echo "$omnid_install_from" >"$omnid_install_stamp"
fi
unset omnid_project omnid_venv omnid_install_stamp omnid_install_from

if [[ "${BASH_SOURCE[0]}" == "$0" && $# -gt 0 ]]; then
  exec "$@"
fi
