#!/usr/bin/env bash
# `make bench`: the benchmark figures (bench/README.md) against a real Kafka. Starts the local
# Apache Kafka unless a broker is configured, and stops it again if it started it.
# Arguments go to `python -m bench` (e.g. --only a,b,c --events 20000).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PY:-$REPO/.venv/bin/python}"

broker="${STREAM_KAFKA__BOOTSTRAP_SERVERS:-${KAFKA_BOOTSTRAP_SERVERS:-}}"
if [[ -z "$broker" ]]; then
  if ! bash deploy/local/kafka.sh status >/dev/null 2>&1; then
    bash deploy/local/kafka.sh up
    trap 'bash deploy/local/kafka.sh down' EXIT
  else
    echo "bench: using the local Kafka already running"
  fi
  broker="127.0.0.1:9092"
fi
export KAFKA_BOOTSTRAP_SERVERS="$broker"
# The benchmark configures its workers itself; a developer's STREAM_* must not leak into them.
while IFS= read -r name; do unset "$name"; done < <(env | grep -o '^STREAM_[A-Z0-9_]*' || true)

"$PY" -m bench "$@"
