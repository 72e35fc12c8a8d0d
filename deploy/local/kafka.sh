#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller in one JVM) for
# development and tests. No Docker: the broker jars come from Maven Central
# (see pom.xml) and everything lives under deploy/local/.cache/ (git-ignored).
#
#   bash deploy/local/kafka.sh up       start (idempotent), wait until it answers
#   bash deploy/local/kafka.sh down     stop (idempotent)
#   bash deploy/local/kafka.sh reset    down + wipe data (keeps jars)
#   bash deploy/local/kafka.sh status   print whether it is running (exit 0 only when both
#                                       listeners answer)
#
# Listeners: PLAINTEXT on KAFKA_PORT (also used between broker and controller) and
# SASL_PLAINTEXT on KAFKA_SASL_PORT with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for one local
# user. The PLAIN user lives in the listener's JAAS config; the SCRAM credentials are
# (re)written with Kafka's ConfigCommand on every 'up', so brokers formatted before the SASL
# listener existed get them too.
#
# Authorization: Kafka's StandardAuthorizer, denying what no ACL allows. The PLAINTEXT
# listener's principal (User:ANONYMOUS, also the broker's and controller's own) and the local
# SASL user are super users, so everything but tests/integration/test_kafka_acls.py (which
# makes its own user and grants it ACLs) may do anything.
#
# Env: KAFKA_PORT (default 9092), KAFKA_CONTROLLER_PORT (default KAFKA_PORT+1),
#      KAFKA_SASL_PORT (default KAFKA_PORT+2), KAFKA_SASL_USER (default loyalty),
#      KAFKA_SASL_PASSWORD (default loyalty-secret; local test credential, not a secret),
#      KAFKA_START_TIMEOUT seconds (default 60), KAFKA_HEAP_OPTS (default -Xmx1g -Xms256m),
#      KAFKA_PYTHON (python with aiokafka for the readiness check; default <repo>/.venv/bin/python),
#      KAFKA_MVN_ARGS extra args for mvn (e.g. -Dmaven.repo.local=/tmp/m2),
#      KAFKA_DATA_DIR the instance's directory: its config, log, pid file and data (default
#      deploy/local/.cache; the jars stay there). With other ports and another KAFKA_DATA_DIR a
#      second broker runs beside the first, e.g.
#        KAFKA_PORT=19092 KAFKA_DATA_DIR=/tmp/kafka-b bash deploy/local/kafka.sh up
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="$HERE/.cache"
LIBS="$CACHE/libs"
STAMP="$LIBS/.complete"
INSTANCE="${KAFKA_DATA_DIR:-$CACHE}"
DATA="$INSTANCE/data"
PROPS="$INSTANCE/server.properties"
LOG4J="$INSTANCE/log4j2.properties"
LOG="$INSTANCE/kafka.log"
PIDFILE="$INSTANCE/kafka.pid"

HOST=127.0.0.1
PORT="${KAFKA_PORT:-9092}"
CTRL_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
SASL_PORT="${KAFKA_SASL_PORT:-$((PORT + 2))}"
SASL_USER="${KAFKA_SASL_USER:-loyalty}"
SASL_PASSWORD="${KAFKA_SASL_PASSWORD:-loyalty-secret}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1g -Xms256m}"
PYTHON="${KAFKA_PYTHON:-$REPO/.venv/bin/python}"
REL_LOG="${LOG#"$REPO"/}"

say() { echo "kafka: $*"; }
die() { echo "kafka: error: $*" >&2; exit 1; }

# The user and password go into a JAAS line ("...") and a ConfigCommand value ([password=...]).
check_sasl_credentials() {
  local user_ok='^[A-Za-z0-9._-]+$' password_ok='^[A-Za-z0-9._~!@#$%^&*()+:;?/<>{}|-]+$'
  [[ "$SASL_USER" =~ $user_ok ]] \
    || die "KAFKA_SASL_USER must be letters, digits, '.', '_' or '-' (got '$SASL_USER')"
  [[ "$SASL_PASSWORD" =~ $password_ok ]] \
    || die "KAFKA_SASL_PASSWORD must be non-empty, without quotes, backslashes, commas, '=', brackets or spaces"
}

# PID from the pid file if that process is alive, else empty.
pid_from_file() {
  local pid
  [[ -f "$PIDFILE" ]] || return 0
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

# PID of whatever listens on HOST:PORT (empty if nobody, "?" if unknown).
listener_pid() {
  local line
  line="$(ss -Hltnp "sport = :$PORT" 2>/dev/null | head -n1 || true)"
  [[ -n "$line" ]] || return 0
  if [[ "$line" =~ pid=([0-9]+) ]]; then echo "${BASH_REMATCH[1]}"; else echo "?"; fi
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

kafka_version() {
  local jars=("$LIBS"/kafka_2.13-*.jar) jar
  jar="${jars[0]##*/kafka_2.13-}"
  echo "${jar%.jar}"
}

ensure_libs() {
  local want
  want="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to download the Kafka jars)"
  say "fetching Kafka jars with Maven into ${LIBS#"$REPO"/} ..."
  rm -rf "$LIBS"
  mkdir -p "$CACHE"
  # shellcheck disable=SC2086
  if ! mvn -q -B -Dstyle.color=never ${KAFKA_MVN_ARGS:-} -f "$HERE/pom.xml" dependency:copy-dependencies >"$CACHE/mvn.log" 2>&1; then
    cat "$CACHE/mvn.log" >&2
    rm -rf "$LIBS"
    die "maven could not fetch the Kafka jars (full output above, also in $CACHE/mvn.log)"
  fi
  echo "$want" >"$STAMP"
}

write_config() {
  mkdir -p "$DATA"
  cat >"$PROPS" <<EOF
# Generated by deploy/local/kafka.sh -- edits are overwritten on every 'up'.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CTRL_PORT
listeners=PLAINTEXT://$HOST:$PORT,SASL_PLAINTEXT://$HOST:$SASL_PORT,CONTROLLER://$HOST:$CTRL_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,SASL_PLAINTEXT://$HOST:$SASL_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
# SASL for clients only (inter-broker and controller traffic stay on PLAINTEXT).
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER="$SASL_PASSWORD";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
# ACLs are enforced, and nothing is allowed without one, except for the super users: the
# PLAINTEXT listeners' principal (every test but the ACL test, and the broker itself) and the
# local SASL user.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:ANONYMOUS;User:$SASL_USER
log.dirs=$DATA
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
EOF
  cat >"$LOG4J" <<'EOF'
# Generated by deploy/local/kafka.sh. stdout is redirected to kafka.log beside this file.
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.channel.name = kafka.network.RequestChannel$
logger.channel.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
EOF
}

jvm_args() {
  # shellcheck disable=SC2206
  JVM_ARGS=($HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$LOG4J" "-Dkafka.logs.dir=$INSTANCE" -cp "$LIBS/*")
}

java_cmd() { jvm_args; java "${JVM_ARGS[@]}" "$@"; }

format_storage() {
  [[ -f "$DATA/meta.properties" ]] && return 0
  local id
  id="$(java_cmd kafka.tools.StorageTool random-uuid 2>>"$LOG" | tail -n1)"
  [[ -n "$id" ]] || die "could not generate a cluster id (see $LOG)"
  if ! java_cmd kafka.tools.StorageTool format -t "$id" -c "$PROPS" >>"$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    die "formatting KRaft storage failed"
  fi
}

# Ready = a real Kafka request succeeds (aiokafka metadata call), else the log says started.
broker_answers() {
  if [[ -x "$PYTHON" ]] && "$PYTHON" -c 'import aiokafka' 2>/dev/null; then
    "$PYTHON" - "$HOST:$PORT" >/dev/null 2>&1 <<'EOF'
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient

async def main():
    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=3000)
    await admin.start()
    try:
        await admin.describe_cluster()
        await admin.list_topics()
    finally:
        await admin.close()

asyncio.run(asyncio.wait_for(main(), 10))
EOF
  else
    port_open "$PORT" && grep -qE 'Kafka Server started|started \(kafka.server.KafkaRaftServer\)' "$LOG"
  fi
}

# (Re)write the SCRAM-SHA-256/512 credentials of the local user; idempotent. One call per
# mechanism: KRaft refuses to alter one user's credentials twice in the same request.
ensure_scram_user() {
  local mechanism out
  for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
    if ! out="$(java_cmd kafka.admin.ConfigCommand --bootstrap-server "$HOST:$PORT" --alter \
      --add-config "$mechanism=[password=$SASL_PASSWORD]" \
      --entity-type users --entity-name "$SASL_USER" 2>&1)"; then
      echo "$out" | grep -vF -- "$SASL_PASSWORD" | grep -vE '^\[.*\] INFO ' | tail -n 20 >&2 || true
      die "could not create the $mechanism credential of user '$SASL_USER'"
    fi
  done
}

# 0: the broker enforces ACLs; 1: it has no authorizer (started by an older kafka.sh);
# 2: cannot tell (no aiokafka in KAFKA_PYTHON, or no answer).
authorizer_state() {
  have_aiokafka || return 2
  "$PYTHON" - "$HOST:$PORT" >/dev/null 2>&1 <<'EOF'
import asyncio, sys
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import DescribeAclsRequest

SECURITY_DISABLED = 54
ANY = 1  # resource type, pattern type, operation and permission: any

async def main():
    client = AIOKafkaClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000)
    await client.bootstrap()
    try:
        request = DescribeAclsRequest(ANY, None, ANY, None, None, ANY, ANY)
        response = await client.send(client.get_random_node(), request)
    finally:
        await client.close()
    sys.exit(1 if response.error_code == SECURITY_DISABLED else 0 if response.error_code == 0 else 2)

try:
    asyncio.run(asyncio.wait_for(main(), 15))
except Exception:
    sys.exit(2)
EOF
}

have_aiokafka() { [[ -x "$PYTHON" ]] && "$PYTHON" -c 'import aiokafka' 2>/dev/null; }

# Every SASL mechanism authenticates as the local user on the SASL listener (needs aiokafka).
sasl_logins_work() {
  KAFKA_SASL_PASSWORD="$SASL_PASSWORD" "$PYTHON" - "$HOST:$SASL_PORT" "$SASL_USER" \
    >/dev/null 2>&1 <<'EOF'
import asyncio, os, sys
from aiokafka.admin import AIOKafkaAdminClient

async def main():
    for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        admin = AIOKafkaAdminClient(
            bootstrap_servers=sys.argv[1], request_timeout_ms=3000,
            security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
            sasl_plain_username=sys.argv[2], sasl_plain_password=os.environ["KAFKA_SASL_PASSWORD"],
        )
        await admin.start()
        try:
            await admin.describe_cluster()
        finally:
            await admin.close()

asyncio.run(asyncio.wait_for(main(), 15))
EOF
}

# After the broker answers on PLAINTEXT: make sure the SCRAM user exists with this password
# (skipped when all three logins already work), then wait until SASL logins work.
sasl_ready() {
  local deadline=$((SECONDS + START_TIMEOUT))
  if ! have_aiokafka; then
    ensure_scram_user
    port_open "$SASL_PORT" || die "nothing listens on $HOST:$SASL_PORT (see $LOG)"
    return 0
  fi
  sasl_logins_work && return 0
  ensure_scram_user
  # The credential reaches the broker through the metadata log, a moment after the call returns.
  until sasl_logins_work; do
    if ((SECONDS >= deadline)); then
      die "SASL logins as '$SASL_USER' on $HOST:$SASL_PORT fail after ${START_TIMEOUT}s (see $LOG)"
    fi
    sleep 0.5
  done
}

cmd_up() {
  local pid lp
  pid="$(pid_from_file)"
  lp="$(listener_pid)"
  check_sasl_credentials
  if [[ -n "$lp" ]] || port_open "$PORT"; then
    [[ -n "$pid" ]] || pid="${lp:-?}"
    if ! port_open "$SASL_PORT"; then
      # Started by an older kafka.sh (or another checkout): no SASL listener. Not restarted
      # here, since another checkout's or a test run's broker may be in use.
      die "a broker is running on $HOST:$PORT (pid $pid) without the SASL_PLAINTEXT listener on $HOST:$SASL_PORT (started by an older kafka.sh?); restart it: '$0 down && $0 up' (if 'down' says 'not running', stop pid $pid from the checkout that started it)"
    fi
    local authorizer=0
    authorizer_state || authorizer=$?
    if ((authorizer == 1)); then
      die "the broker running on $HOST:$PORT (pid $pid) has no authorizer (started by an older kafka.sh); restart it: '$0 down && $0 up' (if 'down' says 'not running', stop pid $pid from the checkout that started it)"
    fi
    # The PLAIN user is fixed when the broker starts: a changed user/password needs a restart.
    if [[ -n "$(pid_from_file)" && -f "$PROPS" ]] && ! grep -qF -- "user_$SASL_USER=\"$SASL_PASSWORD\";" "$PROPS"; then
      die "the running broker (pid $pid) was started with another KAFKA_SASL_USER/KAFKA_SASL_PASSWORD; restart it: '$0 down && $0 up'"
    fi
    ensure_libs
    sasl_ready
    say "already running on $HOST:$PORT, SASL_PLAINTEXT on $HOST:$SASL_PORT (pid $pid)"
    return 0
  fi
  if port_open "$SASL_PORT"; then
    die "nothing listens on $HOST:$PORT but $HOST:$SASL_PORT (KAFKA_SASL_PORT) is taken by another process"
  fi
  if [[ -n "$pid" ]]; then
    # Our JVM is alive but not listening (yet): still starting, or wedged. Don't start a second one.
    die "pid $pid from $PIDFILE is alive but nothing listens on $HOST:$PORT; run '$0 down' first"
  fi
  rm -f "$PIDFILE"
  command -v java >/dev/null || die "java not found (Kafka 4.x needs Java 17+)"
  local jv
  jv="$(java -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p')"
  if ! [[ "$jv" =~ ^[0-9]+$ ]] || ((jv < 17)); then
    die "Kafka 4.x needs Java 17+, found: $(java -version 2>&1 | head -n1)"
  fi
  ensure_libs
  write_config
  : >"$LOG"
  format_storage
  cd "$INSTANCE"
  jvm_args
  nohup java "${JVM_ARGS[@]}" kafka.Kafka "$PROPS" >>"$LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until broker_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      echo "--- last lines of $LOG ---" >&2
      tail -n 40 "$LOG" >&2
      die "broker exited during startup"
    fi
    if ((SECONDS >= deadline)); then
      echo "--- last lines of $LOG ---" >&2
      tail -n 40 "$LOG" >&2
      die "broker did not answer on $HOST:$PORT within ${START_TIMEOUT}s (pid $pid still running; '$0 down' stops it)"
    fi
    sleep 0.5
  done
  sasl_ready
  say "started Apache Kafka $(kafka_version) on $HOST:$PORT, SASL_PLAINTEXT on $HOST:$SASL_PORT as '$SASL_USER' (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) (pid $pid, log $REL_LOG)"
}

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

cmd_reset() {
  cmd_down
  rm -rf "$DATA"
  say "data wiped (${DATA#"$REPO"/})"
}

cmd_status() {
  local pid lp
  pid="$(pid_from_file)"
  lp="$(listener_pid)"
  if [[ -n "$lp" ]] || port_open "$PORT"; then
    if ! port_open "$SASL_PORT"; then
      say "running on $HOST:$PORT (pid ${pid:-${lp:-?}}) but nothing listens on SASL_PLAINTEXT $HOST:$SASL_PORT (started by an older kafka.sh?); run '$0 down && $0 up'"
      return 1
    fi
    local authorizer=0
    authorizer_state || authorizer=$?
    if ((authorizer == 1)); then
      say "running on $HOST:$PORT (pid ${pid:-${lp:-?}}) without an authorizer (started by an older kafka.sh?); run '$0 down && $0 up'"
      return 1
    fi
    say "running on $HOST:$PORT, SASL_PLAINTEXT on $HOST:$SASL_PORT (pid ${pid:-${lp:-?}})"
  elif [[ -n "$pid" ]]; then
    say "pid $pid alive but not listening on $HOST:$PORT (starting or wedged)"
    return 1
  else
    say "not running"
    return 3
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  reset) cmd_reset ;;
  status) cmd_status ;;
  *) echo "usage: $0 {up|down|reset|status}" >&2; exit 2 ;;
esac
