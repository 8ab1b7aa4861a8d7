#!/usr/bin/env bash
# Many run-time upstreams of one server each, restored from
# `dyups_upstream_conf`: the time of a start (the master restores every
# upstream before it forks the workers), of `nginx -t`, of one POST of a new
# upstream, and of a DELETE (the mean of 100 in a row)
# (`dyups_interface`), for each N. With BASELINE, the same with that build
# of the module, side by side, and the ratio. Two workers; servers are
# 127.0.0.1 ports nothing listens on.
#
#   scripts/bench/dyups-many.sh [N ...]     (default 5000 10000 20000)
#   MODULE=path/to/module.so ...      measure that build instead of building the release one
#   BASELINE=path/to/module.so ...    and this one beside it (e.g. a build of an earlier commit)
source "$(dirname "$0")/../common.sh"

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(5000 10000 20000)
module=${MODULE:-$(build_module release)}
out=$(fresh_out_dir dyups-many)
mkdir -p "$out/data" && chmod 777 "$out/data"
port=$(free_port_block 1)
trap 'stop_by_pid_file "$out/logs/nginx.pid"' EXIT

# measure MODULE N: prints "start nginx-t post delete" in seconds.
measure() {
    local module=$1 n=$2 t0 start test_time post delete
    {
        nginx_conf_head "$out" 2 1024 warn "$module"
        echo "    dyups_shm_zone_size 256m;"
        echo "    dyups_upstream_conf $out/data/dyups.conf;"
        echo "    server { listen 127.0.0.1:$port; location / { dyups_interface; } }"
        echo "}"
    } > "$out/conf/nginx.conf"
    awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++)
        printf "upstream u%d {\n    server 127.0.0.1:%d;\n}\n", i, 40000 + i % 20000 }' > "$out/data/dyups.conf"
    t0=$(now_seconds)
    "$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log -t 2>/dev/null
    test_time=$(seconds_since "$t0")
    t0=$(now_seconds)
    "$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log
    start=$(seconds_since "$t0")
    post=$(curl -s -o /dev/null -w '%{time_total}' -d 'server 127.0.0.1:39999;' "http://127.0.0.1:$port/upstream/new")
    t0=$(now_seconds)
    for ((i = 0; i < 100; i++)); do
        echo "url = \"http://127.0.0.1:$port/upstream/u$i\""
        echo 'output = "/dev/null"'
    done | curl -s -X DELETE -K -
    delete=$(awk -v s="$(seconds_since "$t0")" 'BEGIN { printf "%.4f", s / 100 }')
    local listed
    listed=$(curl -s "http://127.0.0.1:$port/list" | wc -l)
    stop_by_pid_file "$out/logs/nginx.pid"
    [ "$listed" = "$((n - 100 + 1))" ] || echo "listed $listed upstreams, not $((n - 100 + 1))" >&2
    echo "$start $test_time $post $delete"
}

echo "== N run-time upstreams restored at start (module: $module${BASELINE:+; baseline: $BASELINE})"
printf "%6s | %-8s | %-10s | %-9s | %-8s | %-10s\n" N build "start (s)" "nginx -t" "POST (s)" "DELETE (s)"
for n in "${sizes[@]}"; do
    read -r start test_time post delete < <(measure "$module" "$n")
    printf "%6d | %-8s | %-10s | %-9s | %-8s | %-10s\n" "$n" this "$start" "$test_time" "$post" "$delete"
    [ -n "${BASELINE:-}" ] || continue
    read -r b_start b_test b_post b_delete < <(measure "$BASELINE" "$n")
    printf "%6d | %-8s | %-10s | %-9s | %-8s | %-10s\n" "$n" baseline "$b_start" "$b_test" "$b_post" "$b_delete"
    awk -v a="$b_start" -v b="$start" -v c="$b_delete" -v d="$delete" \
        'BEGIN { printf "%6s   baseline/this: start %.1fx, DELETE %.1fx\n", "", a / (b > 0 ? b : 0.01), c / (d > 0 ? d : 0.0001) }'
done
