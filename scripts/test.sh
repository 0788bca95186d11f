#!/usr/bin/env bash
# `make test`: every test suite, in the project's virtualenv (scripts/venv.sh), after installing
# the programs the tests need (scripts/ensure-test-tools.sh); fails if pytest collected nothing.
# Arguments go to pytest: `bash scripts/test.sh tests/unit -k rules`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
bash scripts/ensure-test-tools.sh
status=0
"$PYTHON" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose, a green run must have run tests" >&2
  exit 1
fi
exit "$status"
