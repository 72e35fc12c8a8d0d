#!/usr/bin/env bash
# `make run` pushes demo customers to whatever Ometria it is given: refuse an API key for an
# Ometria that is not a local stand-in unless LOYALTY_RUN_REAL_OMETRIA=yes. Exit 1 (with why on
# stderr) to refuse, 0 to go on. Run by run.sh before it starts anything; on its own:
#   bash deploy/local/ometria_guard.sh
# The key is never printed.
set -euo pipefail

key_set="${STREAM_OMETRIA__API_KEY:-}${STREAM_OMETRIA__API_KEY_FILE:-}"
[[ -z "$key_set" ]] && exit 0  # run.sh starts the stand-in and points the worker at it

url="${STREAM_OMETRIA__BASE_URL:-https://api.ometria.com}"
# A local stand-in: plain HTTP to this machine's loopback, nothing after the port but a path.
if [[ "$url" =~ ^http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?(/.*)?$ ]]; then
  exit 0
fi

if [[ "${LOYALTY_RUN_REAL_OMETRIA:-}" == "yes" ]]; then
  echo "run: LOYALTY_RUN_REAL_OMETRIA=yes: pushing the demo customers and their campaign events to the Ometria account of the configured key at $url" >&2
  exit 0
fi

cat >&2 <<MESSAGE
run: refused: STREAM_OMETRIA__API_KEY (or _FILE) is set and STREAM_OMETRIA__BASE_URL is $url,
not a local stand-in: \`make run\` would push its demo customers and campaign events into that
Ometria account. To try it locally, unset STREAM_OMETRIA__API_KEY and STREAM_OMETRIA__API_KEY_FILE
(\`make run\` then starts the stand-in). To send the demo to that account on purpose, run it
again with LOYALTY_RUN_REAL_OMETRIA=yes. Going live is docs/going-live.md.
MESSAGE
exit 1
