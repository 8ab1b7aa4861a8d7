#!/usr/bin/env bash
# Active health checks over many small upstreams: N zone upstreams of 2
# checked servers each, side by side with the same configuration without
# `check` (module loaded in both): the time from the start to a first answer
# and the slowest answer in the 3 s after a reload (a worker's first tick
# finds every health record's upstream; a worker busy in it answers nothing,
# and at a reload the old workers no longer listen). One worker; the peers
# are 127.0.0.1 ports nothing listens on, probed every 30 s.
#
#   scripts/bench/health-upstreams.sh [N ...]   (default 1000 2000 5000)
#   MODULE=path/to/module.so ...      measure that build instead of building the release one
#   BASELINE=path/to/module.so ...    and this one beside it, checked (e.g. a build of an earlier commit)
source "$(dirname "$0")/../common.sh"

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 2000 5000)
module=${MODULE:-$(build_module release)}
out=$(fresh_out_dir health-upstreams)
port=$(free_port_block 1)
trap 'stop_by_pid_file "$out/logs/nginx.pid"' EXIT

# conf MODULE N CHECKED: nginx.conf with N upstreams of 2 peers, checked or not.
conf() {
    local so=$1 n=$2 checked=$3 i
    nginx_conf_head "$out" 1 1024 warn "$so"
    echo "    check_shm_size 16m;"
    for ((i = 0; i < n; i++)); do
        echo -n "    upstream u$i { zone u$i 32k; server 127.0.0.1:40000 max_fails=0; server 127.0.0.1:40001 max_fails=0;"
        [ "$checked" = 0 ] || echo -n " check interval=30000 rise=1 fall=1 timeout=1000 default_down=false type=tcp;"
        echo " }"
    done
    echo "    server { listen 127.0.0.1:$port; location / { return 200; } }"
    echo "}"
}

# slowest_for SECONDS: the slowest answer of requests sent one after the other.
slowest_for() {
    local slowest=0 took end
    end=$(awk -v t="$(now_seconds)" -v s="$1" 'BEGIN { printf "%.3f", t + s }')
    while awk -v t="$(now_seconds)" -v e="$end" 'BEGIN { exit !(t < e) }'; do
        took=$(curl -s -o /dev/null --max-time 60 -w '%{time_total}' "http://127.0.0.1:$port/")
        slowest=$(awk -v a="$slowest" -v b="$took" 'BEGIN { print (b > a ? b : a) }')
    done
    echo "$slowest"
}

# measure MODULE N CHECKED: prints "FIRST SLOWEST_AFTER_RELOAD" in seconds.
measure() {
    local t0 first slowest
    conf "$1" "$2" "$3" > "$out/conf/nginx.conf"
    t0=$(now_seconds)
    "$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log
    until curl -sf -o /dev/null --max-time 60 "http://127.0.0.1:$port/"; do sleep 0.01; done
    first=$(seconds_since "$t0")
    slowest_for 1 > /dev/null
    kill -HUP "$(cat "$out/logs/nginx.pid")"
    slowest=$(slowest_for 3)
    stop_by_pid_file "$out/logs/nginx.pid"
    echo "$first $slowest"
}

echo "== N zone upstreams of 2 checked servers vs unchecked (module: $module${BASELINE:+; baseline: $BASELINE})"
printf "%6s | %-30s | %-30s\n" N "first answer (s): checked/not" "slowest after a reload (s)"
for n in "${sizes[@]}"; do
    read -r cf cs < <(measure "$module" "$n" 1)
    read -r uf us < <(measure "$module" "$n" 0)
    printf "%6d | %7s / %-7s             | %7s / %-7s\n" "$n" "$cf" "$uf" "$cs" "$us"
    [ -n "${BASELINE:-}" ] || continue
    read -r bf bs < <(measure "$BASELINE" "$n" 1)
    printf "%6s | %7s baseline, checked     | %7s baseline, checked\n" "" "$bf" "$bs"
done
