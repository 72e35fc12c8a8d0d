# Sourced by test.sh and bench/bench.sh: use the configured broker, or start the local Apache
# Kafka (and stop it again on exit if this run started it); export KAFKA_BOOTSTRAP_SERVERS and
# drop a developer's STREAM_* settings, which the caller's processes must not inherit.
# $1: the caller's name for messages.
broker="${STREAM_KAFKA__BOOTSTRAP_SERVERS:-${KAFKA_BOOTSTRAP_SERVERS:-}}"
if [[ -z "$broker" ]]; then
  if ! bash deploy/local/kafka.sh status >/dev/null 2>&1; then
    bash deploy/local/kafka.sh up
    trap 'bash deploy/local/kafka.sh down' EXIT
  else
    echo "$1: using the local Kafka already running"
  fi
  broker="127.0.0.1:9092"
fi
export KAFKA_BOOTSTRAP_SERVERS="$broker"
while IFS= read -r name; do unset "$name"; done < <(env | grep -o '^STREAM_[A-Z0-9_]*' || true)
