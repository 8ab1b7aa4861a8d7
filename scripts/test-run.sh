#!/usr/bin/env bash
# Runs scripts/run.sh as a newcomer would, but headless (in the background,
# no terminal): waits until the demo answers, sends it the README's and
# run.sh's curl commands and checks the exact answers, then stops it with
# SIGINT (what Ctrl-C sends, and what run.sh traps) and checks that its
# nginx is gone. Skips, saying why, if a demo port is already in use.
source "$(dirname "$0")/common.sh"

ports=(8080 8081 8082 8083 8088 8089)
busy=$(ss -Hltn | awk '{print $4}' | grep -E ":($(IFS='|'; echo "${ports[*]}"))\$" || true)
if [ -n "$busy" ]; then
    echo "test-run: skipped: the demo's ports are in use ($(echo "$busy" | tr '\n' ' '))"
    exit 0
fi

log=$(mktemp /tmp/test-run.XXXXXX)
# Job control: the background run.sh gets SIGINT's default disposition
# (without it, bash starts background jobs with SIGINT ignored, and run.sh
# could not trap it).
set -m
scripts/run.sh </dev/null >"$log" 2>&1 &
run_pid=$!
set +m
cleanup() {
    kill -INT "$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
    rm -f "$log"
}
trap cleanup EXIT

passed=0 failed=0
check() {
    local what=$1 expected=$2 got=$3
    if [ "$got" = "$expected" ]; then
        passed=$((passed + 1))
        echo "ok - $what"
    else
        failed=$((failed + 1))
        printf 'not ok - %s\n# expected: %q\n#      got: %q\n' "$what" "$expected" "$got"
    fi
}

# run.sh may first install packages and build the module (minutes).
echo "test-run: waiting for the demo (run.sh builds first; its output: $log)"
deadline=$((SECONDS + 1200))
until curl -sf -o /dev/null http://127.0.0.1:8088/list; do
    if ! kill -0 "$run_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
        echo "test-run: the demo did not start:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.2
done

check "README: the upstream backends, verbose" \
    "$(printf 'server 127.0.0.1:%s weight=1 max_fails=1 fail_timeout=10;\n' 8081 8082 8083)" \
    "$(curl -s 'http://127.0.0.1:8088/dynamic?upstream=backends&verbose=')"
check "README: 8083 down" \
    "$(printf 'server 127.0.0.1:%s weight=1 max_fails=1 fail_timeout=10%s;\n' 8081 '' 8082 '' 8083 ' down')" \
    "$(curl -s 'http://127.0.0.1:8088/dynamic?upstream=backends&server=127.0.0.1:8083&down=')"
answers=$(for _ in 1 2 3 4 5 6; do curl -s http://127.0.0.1:8080/; done | sort -u)
check "README: never backend 8083 now" "$(printf 'backend 8081\nbackend 8082')" "$answers"
check "run.sh: /list" "backends" "$(curl -s http://127.0.0.1:8088/list)"
check "run.sh: create demo" "success" \
    "$(curl -s -d 'server 127.0.0.1:8081;server 127.0.0.1:8082;' http://127.0.0.1:8088/upstream/demo)"
answers=$(for _ in 1 2 3 4; do curl -s -H 'Host: demo' http://127.0.0.1:8089/; done | sort -u)
check "run.sh: Host: demo" "$(printf 'backend 8081\nbackend 8082')" "$answers"

nginx_pid=$(cat build/demo/logs/nginx.pid)
kill -INT "$run_pid"
deadline=$((SECONDS + 30))
while kill -0 "$run_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
check "Ctrl-C (SIGINT) stops run.sh" "stopped" "$(kill -0 "$run_pid" 2>/dev/null && echo running || echo stopped)"
check "and its nginx" "stopped" "$(kill -0 "$nginx_pid" 2>/dev/null && echo running || echo stopped)"

echo "test-run: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
