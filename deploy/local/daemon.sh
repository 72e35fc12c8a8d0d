# A local server run in the background with a pid file (sourced by kafka.sh and registry.sh).
# The caller sets HOST and PIDFILE and defines say().

# The pid in PIDFILE if that process is alive, else nothing.
pid_from_file() {
  local pid
  [[ -f "$PIDFILE" ]] || return 0
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

# The major version a java binary reports (17 for "17.0.15").
java_major() {
  "$1" -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p'
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# SIGTERM, then SIGKILL after 30 s; idempotent.
cmd_down() {
  local pid
  pid="$(pid_from_file)"
  if [[ -z "$pid" ]]; then
    rm -f "$PIDFILE"
    say "not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.3; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    say "stopped (pid $pid, SIGKILL after 30s)"
  else
    say "stopped (pid $pid)"
  fi
  rm -f "$PIDFILE"
}

# Wait until the command $2 succeeds, for the process $1 just started ($3 names it in errors);
# stop with the log's tail if the process exits or START_TIMEOUT seconds pass. The caller sets
# LOG and START_TIMEOUT and defines die().
await_start() {
  local pid=$1 answers=$2 what=$3
  local deadline=$((SECONDS + START_TIMEOUT))
  until "$answers"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      echo "--- last lines of $LOG ---" >&2
      tail -n 40 "$LOG" >&2
      die "$what exited during startup"
    fi
    if ((SECONDS >= deadline)); then
      echo "--- last lines of $LOG ---" >&2
      tail -n 40 "$LOG" >&2
      die "$what did not answer within ${START_TIMEOUT}s (pid $pid still running; '$0 down' stops it)"
    fi
    sleep 0.5
  done
}
