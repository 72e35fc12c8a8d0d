#!/usr/bin/env bash
# `make test`: lint, types and the whole pytest suite against a real Kafka. Starts the local
# Apache Kafka unless a broker is configured, and stops it again if it started it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
PY="$REPO/.venv/bin/python"

# Tests configure the app themselves.
source deploy/local/broker.sh test

echo "test: ruff"
"$PY" -m ruff check .
"$PY" -m ruff format --check .
echo "test: mypy --strict stream/"
"$PY" -m mypy stream
echo "test: pytest (Kafka at $broker)"
# Three processes (TEST_WORKERS), each taking tests from the others when it runs out (worksteal:
# the integration tests last from 1 to 70 s). Each test has its own topics, group, ports and data
# directory. The slowest tests are listed, so that the suite can be kept well under 15 minutes.
"$PY" -m pytest -q -n "${TEST_WORKERS:-3}" --dist worksteal --durations=20 "$@"
