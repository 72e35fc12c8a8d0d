# A local server run in the background with a pid file (sourced by kafka.sh and registry.sh).
# The caller sets HOST and PIDFILE and defines say().

# The pid in PIDFILE if that process is alive, else nothing.
pid_from_file() {
  local pid
  [[ -f "$PIDFILE" ]] || return 0
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
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
