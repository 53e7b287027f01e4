#!/usr/bin/env bash
# Runs the browser test (browser.mjs) against the Python mock of the REST API, then
# mock-extras.mjs against a second mock that wants a bearer token: no Rust build needed.
# Screenshots go to ${EDDY_SCREENSHOT:-/tmp/eddy-ui/mock.png} and siblings.
#   tests/ui/against-mock.sh
set -euo pipefail
cd "$(dirname "$0")"
[[ -d node_modules/playwright-core ]] || npm ci --no-audit --no-fund

mocks=()
logs=()
trap 'kill "${mocks[@]}" 2>/dev/null; rm -f "${logs[@]}"' EXIT
# start_mock ARGS...: starts a mock on a free port; sets $url and $log.
start_mock() {
    log="$(mktemp)"
    logs+=("$log")
    python3 mock_server.py --port 0 "$@" >"$log" &
    mocks+=($!)
    for _ in $(seq 100); do grep -q '^listening on ' "$log" && break; sleep 0.1; done
    url="$(sed -n 's/^listening on //p' "$log")"
    [[ -n "$url" ]] || { echo "the mock did not start:" >&2; cat "$log" >&2; exit 1; }
}

start_mock
job="$(awk '$1 == "job" && $3 == "copy" { print $2; exit }' "$log")"
export EDDY_SCREENSHOT="${EDDY_SCREENSHOT:-/tmp/eddy-ui/mock.png}"
mkdir -p "$(dirname "$EDDY_SCREENSHOT")"
EDDY_URL="$url" EDDY_JOB="$job" node browser.mjs

start_mock --auth-token s3cret
EDDY_URL="$url" EDDY_TOKEN=s3cret node mock-extras.mjs
