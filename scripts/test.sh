#!/usr/bin/env bash
# Second command of README (and CI): set up, then run the whole test suite.
# The suite runs in one process per core (pytest-xdist; SOHOA_TEST_PROCESSES to change it, 0 for
# one process). Each test file stays in one process, so a file's shared set-up is made once.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest -n "${SOHOA_TEST_PROCESSES:-auto}" --dist loadfile "$@"
