#!/usr/bin/env bash
# `make bench`: the benchmark figures (bench/README.md) against a real Kafka. Starts the local
# Apache Kafka unless a broker is configured, and stops it again if it started it.
# Arguments go to `python -m bench` (e.g. --only a,b,c --events 20000).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PY:-$REPO/.venv/bin/python}"

source deploy/local/broker.sh bench

"$PY" -m bench "$@"
