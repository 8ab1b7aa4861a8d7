#!/usr/bin/env bash
# Resource exhaustion (not part of the quick suite): do 1,000 concurrent
# admin connections starve proxied traffic?
#
# Measures proxied requests/s and p99 through a zone upstream, in
# alternating rounds: alone; while 1,000 connections hammer the admin APIs
# (listings and details of both APIs, plus a steady stream of changes);
# while the same 1,000 connections hammer a plain `return 200` location
# (the control: what any flood costs nginx's event loop); and while they
# hammer the admin APIs behind `limit_req` (the recommended protection).
# Prints the medians side by side.
#
#   scripts/admin-flood.sh [SECONDS_PER_ROUND] [ROUNDS]     (default 5 3)
source "$(dirname "$0")/common.sh"

seconds=${1:-5}
rounds=${2:-3}
scripts/setup.sh
module=$(build_module release)
out="$REPO_ROOT/scripts/out/admin-flood"
rm -rf "$out"
mkdir -p "$out/logs" "$out/conf" "$out/backends/logs" "$out/backends/conf"

base=$(free_port_block 7)
front=$base admin=$((base + 1))
cat > "$out/conf/nginx.conf" <<EOF
worker_rlimit_nofile 16384;
$(nginx_conf_head "$out" 2 8192 warn "$module")
    upstream backends {
        zone backends 256k;
        server 127.0.0.1:$((base + 2));
        server 127.0.0.1:$((base + 3));
        server 127.0.0.1:$((base + 4));
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$front;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    limit_req_zone \$server_port zone=admin:1m rate=200r/s;
    server {
        listen 127.0.0.1:$admin backlog=4096;
        location /dynamic { dynamic_upstream; }
        location / { dyups_interface; }
    }
    server {
        listen 127.0.0.1:$((base + 5)) backlog=4096;
        location / { return 200 "static\n"; }
    }
    server {
        listen 127.0.0.1:$((base + 6)) backlog=4096;
        limit_req zone=admin burst=5000;
        location /dynamic { dynamic_upstream; }
        location / { dyups_interface; }
    }
}
EOF
# Backends in a nginx of their own, so they are not slowed by the flood.
cat > "$out/backends/conf/nginx.conf" <<EOF
$(nginx_conf_head "$out/backends" 1 4096 warn)
    server {
        listen 127.0.0.1:$((base + 2));
        listen 127.0.0.1:$((base + 3));
        listen 127.0.0.1:$((base + 4));
        location / { return 200 "ok\n"; }
    }
}
EOF
"$NGINX_BIN" -p "$out/backends/" -c conf/nginx.conf -e logs/error.log
"$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log
trap 'stop_by_pid_file "$out/logs/nginx.pid"; stop_by_pid_file "$out/backends/logs/nginx.pid"' EXIT
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$front/" && break; sleep 0.1; done
for i in $(seq 1 20); do curl -sf -o /dev/null -d "server 127.0.0.1:$((base + 2)); server 127.0.0.1:$((base + 3));" "http://127.0.0.1:$admin/upstream/dy$i"; done

# The flood: listings and details of both APIs, and changes, round robin.
cat > "$out/flood.lua" <<EOF
local paths = {
    "/dynamic?upstream=backends&verbose=",
    "/detail",
    "/dynamic?upstream=backends&server=127.0.0.1:$((base + 4))&weight=2",
    "/list",
    "/dynamic?upstream=backends&format=json",
    "/dynamic?upstream=backends&server=127.0.0.1:$((base + 4))&weight=1",
}
local i = 0
request = function()
    i = i % #paths + 1
    return wrk.format("GET", paths[i])
end
EOF

ulimit -n 16384
proxied() { wrk -t1 -c16 -d"${seconds}s" --latency "http://127.0.0.1:$front/" > "$1" 2>&1; }
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }
to_ms() { awk '{ v = $1; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.3f\n", v }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

flood_during() {
    local port=$1 result=$2 flood_out=$3
    wrk -t1 -c1000 -d"$((seconds + 2))s" -s "$out/flood.lua" "http://127.0.0.1:$port" > "$flood_out" 2>&1 &
    local flood=$!
    sleep 1    # let the 1,000 connections open
    proxied "$result"
    wait "$flood" || true
}
arms="alone admin static limited"
for r in $(seq 1 "$rounds"); do
    proxied "$out/alone.$r.txt"
    flood_during "$admin" "$out/admin.$r.txt" "$out/flood-admin.$r.txt"
    flood_during "$((base + 5))" "$out/static.$r.txt" "$out/flood-static.$r.txt"
    flood_during "$((base + 6))" "$out/limited.$r.txt" "$out/flood-limited.$r.txt"
done

figure() { for r in $(seq 1 "$rounds"); do "$1" "$out/$2.$r.txt"; done | median; }
p99_ms() { p99 "$1" | to_ms; }
alone_rps=$(figure rps alone)
alone_p99=$(figure p99_ms alone)
echo "== admin-flood: $rounds rounds of ${seconds}s, 2 workers, floods of 1,000 connections"
echo "| proxied traffic | req/s | p99 (ms) | req/s vs alone | p99 vs alone | flood req/s |"
echo "|---|---|---|---|---|---|"
for arm in $arms; do
    arm_rps=$(figure rps "$arm")
    arm_p99=$(figure p99_ms "$arm")
    flood_rps=-
    [ "$arm" = alone ] || flood_rps=$(figure rps "flood-$arm")
    case $arm in
        alone) label="alone" ;;
        admin) label="admin APIs flooded" ;;
        static) label="\`return 200\` flooded (control)" ;;
        limited) label="admin APIs flooded, behind limit_req" ;;
    esac
    echo "| $label | $arm_rps | $arm_p99 | $(awk -v a="$arm_rps" -v b="$alone_rps" 'BEGIN { printf "%.2f", a / b }') | $(awk -v a="$arm_p99" -v b="$alone_p99" 'BEGIN { printf "%.2f", a / b }') | $flood_rps |"
done
alerts=$(grep -cE '\[(alert|crit|emerg)\]|exited on signal' "$out/logs/error.log" || true)
echo "alert/crit/signal lines: $alerts"
[ "$alerts" = 0 ]
