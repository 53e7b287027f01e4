#!/usr/bin/env bash
# Runs the browser test (browser.mjs) against the Python mock of the REST API: no Rust
# build needed. Screenshots go to ${EDDY_SCREENSHOT:-/tmp/eddy-ui/mock.png} and siblings.
#   tests/ui/against-mock.sh
set -euo pipefail
cd "$(dirname "$0")"
[[ -d node_modules/playwright-core ]] || npm ci --no-audit --no-fund
out="$(mktemp)"
python3 mock_server.py --port 0 >"$out" &
mock=$!
trap 'kill "$mock" 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q '^listening on ' "$out" && break; sleep 0.1; done
url="$(sed -n 's/^listening on //p' "$out")"
job="$(awk '$1 == "job" && $3 == "copy" { print $2; exit }' "$out")"
[[ -n "$url" && -n "$job" ]] || { echo "the mock did not start:" >&2; cat "$out" >&2; exit 1; }
export EDDY_SCREENSHOT="${EDDY_SCREENSHOT:-/tmp/eddy-ui/mock.png}"
mkdir -p "$(dirname "$EDDY_SCREENSHOT")"
EDDY_URL="$url" EDDY_JOB="$job" node browser.mjs
