#!/usr/bin/env bash
# What `dynamic_state_file` costs a start, where the master restores every
# file before it forks the workers (hunt 22 F1, F3):
#   zones N:   N zone upstreams of one server, each with its state file in
#              one directory: the first start, then a restart (the files'
#              `.lock` files are in the directory by then);
#   random M:  one `random;` zone upstream of M servers whose state file
#              holds one server marked down: a restart (on nginx 1.22-1.27.2
#              such a balancer's parameters are restored in place).
# With BASELINE, the same with that build of the module, side by side, and
# the ratio. Two workers; servers are 127.0.0.x ports nothing listens on.
#
#   scripts/bench/state-start.sh [N [M]]   (default 5000 20000)
#   MODULE=path/to/module.so ...    measure that build instead of building the release one
#   BASELINE=path/to/module.so ...  and this one beside it (e.g. a build of an earlier commit)
source "$(dirname "$0")/../common.sh"

zones=${1:-5000}
servers=${2:-20000}
module=${MODULE:-$(build_module release)}
out=$(fresh_out_dir state-start)
port=$(free_port_block 1)
trap 'stop_by_pid_file "$out/logs/nginx.pid"' EXIT

start_nginx() { "$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log; }

# timed COMMAND...: runs it, prints its seconds.
timed() {
    local t0
    t0=$(now_seconds)
    "$@"
    seconds_since "$t0"
}

# measure_zones MODULE N: prints "first-start restart".
measure_zones() {
    local module=$1 n=$2 first restart
    rm -rf "$out/data" && mkdir -p "$out/data" && chmod 777 "$out/data"
    {
        nginx_conf_head "$out" 2 1024 warn "$module"
        awk -v n="$n" -v d="$out/data" 'BEGIN { for (i = 0; i < n; i++)
            printf "    upstream u%d { zone u%d 32k; dynamic_state_file %s/u%d.state; server 127.0.0.1:%d; }\n",
                   i, i, d, i, 40000 + i % 20000 }'
        echo "    server { listen 127.0.0.1:$port; location / { dynamic_upstream; } }"
        echo "}"
    } > "$out/conf/nginx.conf"
    first=$(timed start_nginx)
    curl -sf -o /dev/null "http://127.0.0.1:$port/?upstream=u1&server=127.0.0.1:40001&down=" ||
        echo "the change to u1 failed" >&2
    stop_by_pid_file "$out/logs/nginx.pid"
    restart=$(timed start_nginx)
    stop_by_pid_file "$out/logs/nginx.pid"
    echo "$first $restart"
}

# measure_random MODULE M: prints the restart's seconds.
measure_random() {
    local module=$1 m=$2 restart down
    rm -rf "$out/data" && mkdir -p "$out/data" && chmod 777 "$out/data"
    {
        nginx_conf_head "$out" 2 1024 warn "$module"
        echo "    upstream big { random; zone big 64m; dynamic_state_file $out/data/big.state;"
        awk -v m="$m" 'BEGIN { for (i = 0; i < m; i++)
            printf "        server 127.0.%d.%d:40000;\n", int(i / 250), i % 250 + 1 }'
        echo "    }"
        echo "    server { listen 127.0.0.1:$port; location / { dynamic_upstream; } }"
        echo "}"
    } > "$out/conf/nginx.conf"
    start_nginx
    curl -sf -o /dev/null "http://127.0.0.1:$port/?upstream=big&server=127.0.0.5:40000&down=" ||
        echo "the change to big failed" >&2
    stop_by_pid_file "$out/logs/nginx.pid"
    restart=$(timed start_nginx)
    down=$(curl -s "http://127.0.0.1:$port/?upstream=big&verbose=" | grep -c 'down;')
    stop_by_pid_file "$out/logs/nginx.pid"
    [ "$down" = 1 ] || echo "after the restart $down servers are down, not 1" >&2
    echo "$restart"
}

echo "== start and restart with state files (module: $module${BASELINE:+; baseline: $BASELINE})"
builds=(this)
[ -z "${BASELINE:-}" ] || builds+=(baseline)
declare -A first restart random
for build in "${builds[@]}"; do
    m=$module
    [ "$build" = this ] || m=$BASELINE
    read -r first[$build] restart[$build] < <(measure_zones "$m" "$zones")
    random[$build]=$(measure_random "$m" "$servers")
done
printf "%-8s | %-28s | %-28s | %s\n" build "$zones zones: first start (s)" "$zones zones: restart (s)" \
    "random, $servers servers: restart (s)"
for build in "${builds[@]}"; do
    printf "%-8s | %-28s | %-28s | %s\n" "$build" "${first[$build]}" "${restart[$build]}" "${random[$build]}"
done
[ -n "${BASELINE:-}" ] || exit 0
awk -v a="${restart[baseline]}" -v b="${restart[this]}" -v c="${random[baseline]}" -v d="${random[this]}" \
    'BEGIN { printf "baseline/this: zones restart %.1fx, random restart %.1fx\n", a / (b > 0 ? b : 0.01), c / (d > 0 ? d : 0.01) }'
