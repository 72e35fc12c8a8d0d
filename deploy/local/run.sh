#!/usr/bin/env bash
# `make run`: Kafka (unless a broker is configured), the Ometria stand-in (unless an API key is
# configured), the worker, sample events, and what Ometria received. `run.sh stop` stops what
# it started (not Kafka: `make kafka-down`). An API key for a real Ometria is refused unless
# LOYALTY_RUN_REAL_OMETRIA=yes (ometria_guard.sh): the demo customers would land in that account.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
if [[ "${1:-}" != "stop" ]]; then
  bash deploy/local/ometria_guard.sh
fi
PY="$REPO/.venv/bin/python"
RUN="$REPO/.run"
SANDBOX_URL="http://127.0.0.1:8085"
mkdir -p "$RUN"

stop_pid() {  # stop_pid NAME: SIGTERM the process in .run/NAME.pid and wait for it
  local file="$RUN/$1.pid" pid
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "run: stopped $1 (pid $pid)"
  fi
  rm -f "$file"
}

if [[ "${1:-}" == "stop" ]]; then
  stop_pid worker
  stop_pid sandbox
  exit 0
fi

broker="${STREAM_KAFKA__BOOTSTRAP_SERVERS:-${KAFKA_BOOTSTRAP_SERVERS:-}}"
if [[ -z "$broker" ]]; then
  bash deploy/local/kafka.sh up
  broker="127.0.0.1:9092"
else
  echo "run: using the configured Kafka at $broker"
fi
export STREAM_KAFKA__BOOTSTRAP_SERVERS="$broker"

show=()
if [[ -z "${STREAM_OMETRIA__API_KEY:-}${STREAM_OMETRIA__API_KEY_FILE:-}" ]]; then
  if ! curl -fsS "$SANDBOX_URL/healthz" >/dev/null 2>&1; then
    nohup "$PY" -m stream sandbox >"$RUN/sandbox.log" 2>&1 &
    echo $! >"$RUN/sandbox.pid"
    for _ in $(seq 100); do curl -fsS "$SANDBOX_URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS "$SANDBOX_URL/healthz" >/dev/null || { tail -20 "$RUN/sandbox.log"; exit 1; }
    echo "run: started the Ometria stand-in on $SANDBOX_URL (log .run/sandbox.log)"
  else
    echo "run: the Ometria stand-in is already up on $SANDBOX_URL"
  fi
  export STREAM_OMETRIA__API_KEY="sandbox-key" STREAM_OMETRIA__BASE_URL="$SANDBOX_URL"
  show=(--show-sandbox "$SANDBOX_URL")
else
  echo "run: pushing to the configured Ometria at ${STREAM_OMETRIA__BASE_URL:-https://api.ometria.com}"
fi

stop_pid worker
: >"$RUN/worker.log"
nohup "$PY" -m stream worker >"$RUN/worker.log" 2>&1 &
echo $! >"$RUN/worker.pid"
echo "run: starting the worker (pid $(cat "$RUN/worker.pid"), log .run/worker.log)"
deadline=$((SECONDS + 120))
until grep -q "Worker\]: Ready" "$RUN/worker.log"; do
  if ! kill -0 "$(cat "$RUN/worker.pid")" 2>/dev/null || ((SECONDS > deadline)); then
    echo "run: the worker did not become ready; its log ends with:" >&2
    tail -30 "$RUN/worker.log" >&2
    exit 1
  fi
  sleep 0.2
done
echo "run: worker ready"

"$PY" -m stream send-sample "${show[@]}"
echo
echo "run: the worker and the stand-in keep running. Logs: .run/worker.log, .run/sandbox.log."
echo "run: send more with '.venv/bin/python -m stream send-sample'; stop with 'make stop' (and 'make kafka-down')."
