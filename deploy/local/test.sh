#!/usr/bin/env bash
# `make test`: lint, types and the whole pytest suite against a real Kafka. Starts the local
# Apache Kafka unless a broker is configured, and stops it again if it started it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
PY="$REPO/.venv/bin/python"

broker="${STREAM_KAFKA__BOOTSTRAP_SERVERS:-${KAFKA_BOOTSTRAP_SERVERS:-}}"
if [[ -z "$broker" ]]; then
  if ! bash deploy/local/kafka.sh status >/dev/null 2>&1; then
    bash deploy/local/kafka.sh up
    trap 'bash deploy/local/kafka.sh down' EXIT
  else
    echo "test: using the local Kafka already running"
  fi
  broker="127.0.0.1:9092"
fi
export KAFKA_BOOTSTRAP_SERVERS="$broker"
# Tests configure the app themselves; a developer's STREAM_* must not leak into them.
while IFS= read -r name; do unset "$name"; done < <(env | grep -o '^STREAM_[A-Z0-9_]*' || true)

echo "test: ruff"
"$PY" -m ruff check .
"$PY" -m ruff format --check .
echo "test: mypy --strict stream/"
"$PY" -m mypy stream
echo "test: pytest (Kafka at $broker)"
"$PY" -m pytest -q "$@"
