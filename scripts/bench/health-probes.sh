#!/usr/bin/env bash
# Active health checks' probe rate: PEERS checked peers (type=tcp) every
# INTERVAL ms, nginx with WORKERS workers; the probes are the connections
# the backends accept (a backend nginx listening on every peer's port,
# counted by its stub_status) over SECONDS. With one probe per peer and
# interval whatever the number of workers, the rate is PEERS / INTERVAL.
#
#   scripts/bench/health-probes.sh [PEERS] [INTERVAL_MS] [WORKERS] [SECONDS]   (default 1000 1000 4 10)
#   MODULE=path/to/module.so ...    measure that build instead of building the release one
source "$(dirname "$0")/../common.sh"

peers=${1:-1000}
interval=${2:-1000}
workers=${3:-4}
seconds=${4:-10}
module=${MODULE:-$(build_module release)}
out=$(fresh_out_dir health-probes)
mkdir -p "$out/backends/logs" "$out/backends/conf"
base=$(free_port_block $((peers + 2)))
status_port=$((base + peers))
proxy_port=$((base + peers + 1))

{
    nginx_conf_head "$out/backends" 1 $((peers + 1024)) warn
    echo "    server {"
    for i in $(seq 0 $((peers - 1))); do echo "        listen 127.0.0.1:$((base + i)) backlog=4096;"; done
    echo "        return 200 \"ok\\n\";"
    echo "    }"
    echo "    server { listen 127.0.0.1:$status_port; location / { stub_status; } }"
    echo "}"
    echo "worker_rlimit_nofile $((peers * 2 + 2048));"
} > "$out/backends/conf/nginx.conf"
"$NGINX_BIN" -p "$out/backends/" -c conf/nginx.conf -e logs/error.log

{
    nginx_conf_head "$out" "$workers" 4096 warn "$module"
    echo "    upstream backends {"
    echo "        zone backends 4m;"
    for i in $(seq 0 $((peers - 1))); do echo "        server 127.0.0.1:$((base + i)) max_fails=0;"; done
    echo "        check interval=$interval rise=1 fall=3 timeout=1000 default_down=false type=tcp;"
    echo "    }"
    echo "    server { listen 127.0.0.1:$proxy_port; location / { proxy_pass http://backends; } }"
    echo "}"
    echo "worker_rlimit_nofile 8192;"
} > "$out/conf/nginx.conf"
"$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log
trap 'stop_by_pid_file "$out/logs/nginx.pid"; stop_by_pid_file "$out/backends/logs/nginx.pid"' EXIT

# Accepted connections of the backend nginx (each reading is one more).
accepted() { curl -s "http://127.0.0.1:$status_port/" | awk 'NR == 3 { print $1 }'; }

# Every peer's first probe comes within min(interval, 1 s) of the start.
sleep $(((interval + 999) / 1000 + 1))
a=$(accepted)
sleep "$seconds"
b=$(accepted)
rate=$(awk -v a="$a" -v b="$b" -v s="$seconds" 'BEGIN { printf "%.1f", (b - a - 1) / s }')
expected=$(awk -v p="$peers" -v i="$interval" 'BEGIN { printf "%.1f", p * 1000 / i }')
echo "== health check probes: $peers peers, interval=${interval}ms, $workers workers, ${seconds}s"
echo "probes/s: $rate (peers/interval: $expected)"
grep -E '\[(alert|crit|emerg)\]' "$out/logs/error.log" || true
