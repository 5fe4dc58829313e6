#!/usr/bin/env bash
# Property-based test of the HTTP API: schemathesis generates requests from
# /v1/openapi.json (valid and invalid ones) and checks every answer against the document
# (`--checks all`: no 5xx, documented status codes, content types and schemas, invalid input
# refused, ...). It runs against `ccc-dialer serve` on a loopback port with the built-in
# stand-in as the CCC endpoint and a random token, so nothing leaves the machine.
#
#   tests/schemathesis.sh                 # debug build, about 2 minutes after the build
#   tests/schemathesis.sh --release       # release build
#   SCHEMATHESIS_MAX_TIME=600 tests/schemathesis.sh   # a longer run
#   tests/schemathesis.sh -- --phases fuzzing         # extra arguments for schemathesis
#
# Needs python3 with venv; schemathesis comes from PyPI (pinned), installed once into a venv
# cached per machine and version. Exit status: schemathesis's (0 = clean).
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.32.5
venv="${XDG_CACHE_HOME:-$HOME/.cache}/ccc-dialer-ci/schemathesis-$version"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
    rm -rf "$venv" "$venv.tmp"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv.tmp"
    "$venv.tmp/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
    mv "$venv.tmp" "$venv"
    # The venv's scripts name their interpreter by path: rewrite them for the final place.
    sed -i "1s|$venv.tmp|$venv|" "$venv"/bin/*
fi

profile=debug
build=(cargo build --bin ccc-dialer)
if [[ "${1:-}" == "--release" ]]; then
    profile=release
    build+=(--release)
    shift
fi
[[ "${1:-}" == "--" ]] && shift
"${build[@]}"
bin="target/$profile/ccc-dialer"

work=$(mktemp -d)
serve_pid=
cleanup() {
    if [[ -n "$serve_pid" ]]; then
        kill "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The stand-in answers fast and accepts every call; campaigns are rescheduled an hour on
# ("outside calling hours") so the store stays small however many the run creates.
cat >"$work/faults.toml" <<'TOML'
[[rule]]
callee = "*"
outcomes = ["error:FailedOperation.CalloutRuleNotWorkTime"]
TOML
cat >"$work/dialer.toml" <<TOML
[tencentcloud]
endpoint = "builtin"
[campaign]
sdk_app_id = 1400000000
ai_agent_id = 15
default_country = "CN"
[retry]
later_delay = "1h"
[mock]
faults = "$work/faults.toml"
TOML

token=$(head -c 32 /dev/urandom | base64 | tr -d '/+=\n')
mkfifo "$work/out"
CCC_DIALER_API_TOKEN="$token" "$bin" --log-format json serve \
    --config "$work/dialer.toml" --state "$work/state.db" --listen 127.0.0.1:0 \
    --inbox "$work/inbox" --max-body-mib 1 >"$work/out" 2>"$work/serve.log" &
serve_pid=$!
read -r line <"$work/out"
base=${line#listening on }
if [[ "$base" != http://* ]]; then
    echo "serve did not start: $line" >&2
    cat "$work/serve.log" >&2
    exit 2
fi
# Keep draining stdout so serve never blocks on it.
cat "$work/out" >/dev/null &
echo "schemathesis $version against $base ($profile build)"

status=0
# Run from the scratch folder: schemathesis keeps a `.schemathesis/` cache in its working folder.
config="$PWD/tests/schemathesis.toml"
(cd "$work" && "$venv/bin/schemathesis" --config-file "$config" run "$base/v1/openapi.json" \
    --checks all \
    --header "Authorization: Bearer $token" \
    --max-time "${SCHEMATHESIS_MAX_TIME:-120}" \
    --workers 2 \
    --request-timeout 10 \
    --suppress-health-check too_slow,filter_too_much \
    --no-color \
    "$@") || status=$?
if grep -q '"level":"ERROR"' "$work/serve.log"; then
    echo "serve logged errors:" >&2
    grep '"level":"ERROR"' "$work/serve.log" | head -20 >&2
    [[ $status -eq 0 ]] && status=1
fi
exit "$status"
