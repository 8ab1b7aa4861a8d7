#!/usr/bin/env bash
# Active health checks at scale: what N checked peers of one upstream cost
# nginx, side by side with the same configuration without its `check` line
# (module loaded in both): the time of `nginx -t` (the master's init_module
# gives every peer its health record and sets its health bit), the time from
# the start to a first answer, and the slowest answer of the first 3 s (the
# worker's first tick applies every record to the peer list; a worker busy in
# it answers nothing), and a Plus API PUT that replaces the N servers by N
# others (each removed server's health record is freed, each added one
# claims one). One worker; the peers are 127.0.0.1 ports nothing listens
# on (refused at once), probed every 30 s.
#
#   scripts/bench/health-scale.sh [N ...]   (default 1000 2000 4000 8000)
#   MODULE=path/to/module.so ...    measure that build instead of building the release one
source "$(dirname "$0")/../common.sh"

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 2000 4000 8000)
module=${MODULE:-$(build_module release)}
out=$(fresh_out_dir health-scale)
port=$(free_port_block 1)
trap 'stop_by_pid_file "$out/logs/nginx.pid"' EXIT

# conf N CHECKED: nginx.conf with N peers, checked or not.
conf() {
    local n=$1 checked=$2 i
    nginx_conf_head "$out" 1 1024 warn "$module"
    echo "    check_shm_size 16m;"
    echo "    upstream many {"
    echo "        zone many 32m;"
    for ((i = 0; i < n; i++)); do echo "        server 127.0.0.1:$((40000 + i)) max_fails=0;"; done
    [ "$checked" = 0 ] || echo "        check interval=30000 rise=1 fall=1 timeout=1000 default_down=false type=tcp;"
    echo "    }"
    echo "    server { listen 127.0.0.1:$port; location / { return 200; } location /api/ { dynamic_upstream_api write=on; } }"
    echo "}"
    echo "worker_rlimit_nofile 4096;"
}


# measure N CHECKED: prints "NGINX_T FIRST SLOWEST PUT" in seconds.
measure() {
    local t0 t_test first slowest=0 took end put
    conf "$1" "$2" > "$out/conf/nginx.conf"
    t0=$(now_seconds)
    "$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log -t 2>/dev/null || { echo "nginx -t failed" >&2; exit 1; }
    t_test=$(seconds_since "$t0")
    t0=$(now_seconds)
    "$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log
    until curl -sf -o /dev/null --max-time 60 "http://127.0.0.1:$port/"; do sleep 0.01; done
    first=$(seconds_since "$t0")
    end=$(awk -v t="$(now_seconds)" 'BEGIN { printf "%.3f", t + 3 }')
    while awk -v t="$(now_seconds)" -v e="$end" 'BEGIN { exit !(t < e) }'; do
        took=$(curl -s -o /dev/null --max-time 60 -w '%{time_total}' "http://127.0.0.1:$port/")
        slowest=$(awk -v a="$slowest" -v b="$took" 'BEGIN { print (b > a ? b : a) }')
    done
    awk -v n="$1" 'BEGIN { printf "["; for (i = 0; i < n; i++) printf "%s{\"server\":\"127.0.0.1:%d\",\"max_fails\":0}",
        (i ? "," : ""), 40000 + n + i; print "]" }' > "$out/put.json"
    put=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -X PUT --data-binary @"$out/put.json" \
        "http://127.0.0.1:$port/api/9/http/upstreams/many/servers")
    [ "${put% *}" = 200 ] || echo "PUT answered ${put% *}" >&2
    stop_by_pid_file "$out/logs/nginx.pid"
    echo "$t_test $first $slowest ${put#* }"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0.005 ? a / b : a / 0.005) }'; }

echo "== health checks at scale: one upstream of N peers, checked vs not (module: $module)"
printf "%6s | %-24s | %-24s | %-24s | %-24s\n" N "nginx -t (s): checked/not" "first answer (s)" "slowest in 3 s (s)" \
    "PUT of N others (s)"
for n in "${sizes[@]}"; do
    read -r ct cf cs cp < <(measure "$n" 1)
    read -r ut uf us up < <(measure "$n" 0)
    printf "%6d | %6s / %-6s x%-8s | %6s / %-6s x%-8s | %6s / %-6s x%-8s | %6s / %-6s x%-8s\n" "$n" \
        "$ct" "$ut" "$(ratio "$ct" "$ut")" "$cf" "$uf" "$(ratio "$cf" "$uf")" "$cs" "$us" "$(ratio "$cs" "$us")" \
        "$cp" "$up" "$(ratio "$cp" "$up")"
done
