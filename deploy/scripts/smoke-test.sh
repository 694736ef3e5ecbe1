#!/usr/bin/env bash
# Smoke-test a running Counter Web Server over HTTP.
#
#   deploy/scripts/smoke-test.sh BASE_URL                 health, POST then GET, an idempotent retry
#   deploy/scripts/smoke-test.sh BASE_URL --count NAME    print the current count of counter NAME
#
# Exits non-zero with a message on the first thing that is wrong. Needs curl and python3.
set -euo pipefail

usage() {
    echo "usage: $0 BASE_URL [--count NAME]" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
base_url="${1%/}"
ready_timeout="${SMOKE_READY_TIMEOUT:-120}"

fail() {
    echo "smoke-test: FAIL: $*" >&2
    exit 1
}

# curl wrapper: fails on HTTP errors, prints the body.
http() {
    curl --silent --show-error --fail-with-body --max-time 10 "$@"
}

count_of() {
    python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])'
}

wait_ready() {
    local deadline=$((SECONDS + ready_timeout))
    until http --output /dev/null "${base_url}/health/ready" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            fail "${base_url}/health/ready did not answer 200 within ${ready_timeout}s"
        fi
        sleep 2
    done
}

if [[ $# -eq 3 && "$2" == "--count" ]]; then
    wait_ready
    http "${base_url}/counters/$3" | count_of
    exit 0
fi
[[ $# -eq 1 ]] || usage

wait_ready
echo "smoke-test: ${base_url} is ready"

live="$(http "${base_url}/health/live")" || fail "GET /health/live: ${live}"
echo "smoke-test: GET /health/live -> ${live}"

name="smoke-$(date +%s)-${RANDOM}"
before="$(http "${base_url}/counters/${name}" | count_of)" || fail "GET /counters/${name}"
after_post="$(http -X POST "${base_url}/counters/${name}" | count_of)" || fail "POST /counters/${name}"
[[ "${after_post}" -eq $((before + 1)) ]] || fail "POST /counters/${name} returned ${after_post}, expected $((before + 1))"
read_back="$(http "${base_url}/counters/${name}" | count_of)" || fail "GET /counters/${name}"
[[ "${read_back}" -eq "${after_post}" ]] || fail "GET /counters/${name} returned ${read_back}, expected ${after_post}"
echo "smoke-test: POST then GET /counters/${name}: ${before} -> ${after_post} -> ${read_back}"

key="smoke-${name}"
first="$(http -X POST -H "Idempotency-Key: ${key}" "${base_url}/counters/${name}" | count_of)" || fail "POST with Idempotency-Key"
retry="$(http -X POST -H "Idempotency-Key: ${key}" "${base_url}/counters/${name}" | count_of)" || fail "POST retry with Idempotency-Key"
final="$(http "${base_url}/counters/${name}" | count_of)" || fail "GET /counters/${name}"
[[ "${first}" -eq "${retry}" && "${final}" -eq "${first}" ]] \
    || fail "an idempotent retry was counted twice: first ${first}, retry ${retry}, stored ${final}"
echo "smoke-test: POST twice with one Idempotency-Key counted once (${final})"

default_count="$(http -X POST "${base_url}/counter" | count_of)" || fail "POST /counter"
[[ "$(http "${base_url}/counter" | count_of)" -ge "${default_count}" ]] || fail "GET /counter went backwards"
echo "smoke-test: POST /counter -> ${default_count}"
echo "smoke-test: OK"
