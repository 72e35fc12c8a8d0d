#!/usr/bin/env bash
# `make test`: lint, types and the whole pytest suite against a real Kafka and a real Schema
# Registry. Starts the local Apache Kafka and Apicurio Registry unless they are configured
# (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL) or running, and stops what it started.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
PY="$REPO/.venv/bin/python"

# Tests configure the app themselves.
source deploy/local/broker.sh test

# The command of the EXIT trap, if any (`trap -p` prints: trap -- 'command' EXIT).
exit_trap() {
  local current
  current="$(trap -p EXIT)"
  [[ -n "$current" ]] || return 0
  eval "set -- $current"
  echo "$3"
}

# A real Schema Registry for the producers on Confluent's serializers
# (tests/integration/test_schema_registry_producers.py): the one SCHEMA_REGISTRY_URL names, or
# the local Apicurio Registry, stopped again on exit if this run started it.
if [[ -z "${SCHEMA_REGISTRY_URL:-}" ]]; then
  if ! bash deploy/local/registry.sh status >/dev/null 2>&1; then
    bash deploy/local/registry.sh up
    # Before whatever broker.sh set to run on exit (stopping the Kafka it started).
    kafka_exit="$(exit_trap)"
    trap "bash deploy/local/registry.sh down${kafka_exit:+; $kafka_exit}" EXIT
  else
    echo "test: using the local Schema Registry already running"
  fi
  SCHEMA_REGISTRY_URL="$(bash deploy/local/registry.sh url)"
fi
export SCHEMA_REGISTRY_URL

echo "test: ruff"
"$PY" -m ruff check .
"$PY" -m ruff format --check .
echo "test: mypy --strict stream/"
"$PY" -m mypy stream
echo "test: pytest (Kafka at $broker, Schema Registry at $SCHEMA_REGISTRY_URL)"
# Three processes (TEST_WORKERS), each taking tests from the others when it runs out (worksteal:
# the integration tests last from 1 to 70 s). Each test has its own topics, group, ports and data
# directory. The slowest tests are listed, so that the suite can be kept well under 15 minutes.
"$PY" -m pytest -q -n "${TEST_WORKERS:-3}" --dist worksteal --durations=20 "$@"
