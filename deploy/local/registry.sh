#!/usr/bin/env bash
# Local Apicurio Registry (a real Schema Registry, Confluent's API at /apis/ccompat/v7) for the
# tests that produce with confluent-kafka's own serializers. No Docker: the application comes
# from Maven Central (see registry/pom.xml) and lives under deploy/local/.cache/registry/
# (git-ignored). Storage is in memory: every start is an empty registry.
#
#   bash deploy/local/registry.sh up       start (idempotent), wait until the API answers
#   bash deploy/local/registry.sh down     stop (idempotent)
#   bash deploy/local/registry.sh status   exit 0 only when the API answers
#   bash deploy/local/registry.sh url      print the Confluent-compatible API's URL
#
# Apicurio 2.6 runs on Java 17 (registry/pom.xml says why not 3.x): the first Java 17+ of
# REGISTRY_JAVA, $JAVA_HOME/bin/java, `java`, /usr/lib/jvm/*/bin/java runs it.
#
# Env: REGISTRY_PORT (default 8081, the API), REGISTRY_MANAGEMENT_PORT (default REGISTRY_PORT+1,
#      Quarkus's health and metrics), REGISTRY_START_TIMEOUT seconds (default 90),
#      REGISTRY_HEAP_OPTS (default -Xmx384m), REGISTRY_JAVA (a java binary),
#      REGISTRY_MVN_ARGS extra args for mvn (e.g. -Dmaven.repo.local=/tmp/m2).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
POM="$HERE/registry/pom.xml"
CACHE="$HERE/.cache/registry"
STAMP="$CACHE/.complete"
LOG="$CACHE/registry.log"
PIDFILE="$CACHE/registry.pid"

HOST=127.0.0.1
PORT="${REGISTRY_PORT:-8081}"
MANAGEMENT_PORT="${REGISTRY_MANAGEMENT_PORT:-$((PORT + 1))}"
START_TIMEOUT="${REGISTRY_START_TIMEOUT:-90}"
HEAP_OPTS="${REGISTRY_HEAP_OPTS:--Xmx384m}"
URL="http://$HOST:$PORT/apis/ccompat/v7"
REL_LOG="${LOG#"$REPO"/}"

say() { echo "registry: $*"; }
die() { echo "registry: error: $*" >&2; exit 1; }
# shellcheck source=deploy/local/daemon.sh
source "$HERE/daemon.sh"

apicurio_version() { sed -nE 's:.*<apicurio.version>([^<]+)</apicurio.version>.*:\1:p' "$POM"; }
APP="$CACHE/apicurio-registry-$(apicurio_version)"

# The API answers as a Confluent-compatible registry (an empty one answers []).
api_answers() { curl -sf -m 3 -o /dev/null "$URL/subjects"; }

find_java() {
  local candidate major
  for candidate in "${REGISTRY_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" \
    "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
    [[ -n "$candidate" && -x "$candidate" ]] || continue
    major="$(java_major "$candidate")"
    if [[ "$major" =~ ^[0-9]+$ ]] && ((major >= 17)); then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# Apicurio 2.x ships Quarkus's legacy layout (<app>-runner.jar beside lib/), 3.x the fast-jar.
run_jar() {
  local jar
  for jar in "$APP/quarkus-run.jar" "$APP"/*-runner.jar; do
    [[ -f "$jar" ]] && { echo "$jar"; return 0; }
  done
  return 1
}

ensure_app() {
  local want
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && run_jar >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to download Apicurio Registry)"
  say "fetching Apicurio Registry $(apicurio_version) with Maven into ${CACHE#"$REPO"/} ..."
  rm -rf "$APP" "$STAMP"
  mkdir -p "$CACHE"
  # shellcheck disable=SC2086
  if ! mvn -q -B -Dstyle.color=never ${REGISTRY_MVN_ARGS:-} -f "$POM" dependency:unpack >"$CACHE/mvn.log" 2>&1; then
    cat "$CACHE/mvn.log" >&2
    rm -rf "$APP"
    die "maven could not fetch Apicurio Registry (full output above, also in $CACHE/mvn.log)"
  fi
  run_jar >/dev/null || die "no runnable jar in ${APP#"$REPO"/} after unpacking"
  echo "$want" >"$STAMP"
}

cmd_up() {
  local pid java
  pid="$(pid_from_file)"
  if api_answers; then
    say "already running at $URL (pid ${pid:-?})"
    return 0
  fi
  if [[ -n "$pid" ]]; then
    die "pid $pid from $PIDFILE is alive but $URL does not answer; run '$0 down' first"
  fi
  port_open "$PORT" && die "$HOST:$PORT (REGISTRY_PORT) is taken by something that is not a registry"
  port_open "$MANAGEMENT_PORT" && die "$HOST:$MANAGEMENT_PORT (REGISTRY_MANAGEMENT_PORT) is taken"
  java="$(find_java)" || die "Apicurio Registry $(apicurio_version) needs Java 17+; none found (set REGISTRY_JAVA to one; \`java\` is: $(java -version 2>&1 | head -n1))"
  ensure_app
  rm -f "$PIDFILE"
  : >"$LOG"
  cd "$APP"
  # shellcheck disable=SC2086
  nohup "$java" $HEAP_OPTS -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dquarkus.http.host="$HOST" -Dquarkus.http.port="$PORT" \
    -Dquarkus.management.host="$HOST" -Dquarkus.management.port="$MANAGEMENT_PORT" \
    -jar "$(run_jar)" >>"$LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  await_start "$pid" api_answers "the registry at $URL"
  say "started Apicurio Registry $(apicurio_version) at $URL (pid $pid, log $REL_LOG)"
}

cmd_status() {
  local pid
  pid="$(pid_from_file)"
  if api_answers; then
    say "running at $URL (pid ${pid:-?})"
  elif [[ -n "$pid" ]]; then
    say "pid $pid alive but $URL does not answer (starting or wedged)"
    return 1
  else
    say "not running"
    return 3
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 {up|down|status|url}" >&2; exit 2 ;;
esac
