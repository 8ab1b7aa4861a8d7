#!/usr/bin/env bash
# One large run-time upstream: the time of a POST of N servers
# (`dyups_interface`), of a `GET /list` another worker answers meanwhile
# (the registry's lock is held while the list is built), of `nginx -t` and of
# a restart with the `dyups_upstream_conf` the POST wrote (both read it), and
# of the same servers with `check` POSTed twice (the second time every
# server keeps its health record and its counters), for each N. Two
# workers; servers are 127.0.0.1 ports nothing listens on.
#
#   scripts/bench/dyups-large.sh [N ...]   (default 5000 10000 20000)
#   MODULE=path/to/module.so ...    measure that build instead of building the release one
source "$(dirname "$0")/../common.sh"

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(5000 10000 20000)
module=${MODULE:-$(build_module release)}
out=$(fresh_out_dir dyups-large)
mkdir -p "$out/data" && chmod 777 "$out/data"
port=$(free_port_block 1)
trap 'stop_by_pid_file "$out/logs/nginx.pid"' EXIT

{
    nginx_conf_head "$out" 2 1024 warn "$module"
    echo "    dyups_shm_zone_size 64m;"
    echo "    check_shm_size 64m;"
    echo "    client_max_body_size 4m;"
    echo "    dyups_upstream_conf $out/data/dyups.conf;"
    echo "    server { listen 127.0.0.1:$port; location / { dyups_interface; } }"
    echo "}"
} > "$out/conf/nginx.conf"

start() { "$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log; }

echo "== one run-time upstream of N servers (module: $module)"
printf "%6s | %-10s | %-22s | %-10s | %-10s | %-18s\n" N "POST (s)" "GET /list meanwhile (s)" "nginx -t" "restart" "checked: POST, again"
for n in "${sizes[@]}"; do
    rm -f "$out/data/dyups.conf"
    for ((i = 0; i < n; i++)); do echo "server 127.0.0.1:$((40000 + i % 20000)) weight=$((1 + i / 20000));"; done \
        > "$out/servers.txt"
    start
    curl -s -o /dev/null -w '%{time_total}' --data-binary @"$out/servers.txt" "http://127.0.0.1:$port/upstream/big" \
        > "$out/post.time" &
    sleep 0.2
    list=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/list")
    wait
    t0=$(now_seconds)
    "$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log -t 2>/dev/null
    test_time=$(seconds_since "$t0")
    stop_by_pid_file "$out/logs/nginx.pid"
    t0=$(now_seconds)
    start
    restart=$(seconds_since "$t0")
    servers=$(curl -s "http://127.0.0.1:$port/upstream/big" | grep -c '^server')
    [ "$servers" = "$n" ] || echo "after the restart: $servers servers, not $n" >&2
    { cat "$out/servers.txt"; echo "check interval=60000 rise=1 fall=1 timeout=1000 type=tcp;"; } > "$out/checked.txt"
    checked=""
    for _ in first again; do
        checked+=$(curl -s -o /dev/null -w '%{time_total} ' --data-binary @"$out/checked.txt" \
            "http://127.0.0.1:$port/upstream/checked")
    done
    stop_by_pid_file "$out/logs/nginx.pid"
    printf "%6d | %-10s | %-22s | %-10s | %-10s | %-18s\n" "$n" "$(cat "$out/post.time")" "$list" "$test_time" "$restart" \
        "$checked"
done
