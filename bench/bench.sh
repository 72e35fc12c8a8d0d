#!/usr/bin/env bash
# `make bench`: the benchmark figures (bench/README.md) against a real Kafka. Starts the local
# Apache Kafka unless a broker is configured, and stops it again if it started it.
# A broker in STREAM_KAFKA__BOOTSTRAP_SERVERS or KAFKA_BOOTSTRAP_SERVERS is used as it is (never
# started or stopped). Arguments go to `python -m bench` (e.g. --only a,b,c --events 20000), or
# to `python -m bench.scale` after a first `--scale` (`make bench-scale`).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PY:-$REPO/.venv/bin/python}"

source deploy/local/broker.sh bench

if [[ "${1:-}" == --scale ]]; then
  shift
  "$PY" -m bench.scale "$@"
else
  "$PY" -m bench "$@"
fi
