#!/usr/bin/env bash
# Failover under load with active health checks: wrk sends keep-alive
# requests through an upstream of two backends for SECONDS; KILL_AT seconds
# in, one backend is stopped (SIGTERM: its port refuses connections at
# once). Passive checks are off (max_fails=0) and proxy_next_upstream too,
# so every request sent to the dead backend answers 502 until the checks
# (interval=1000 fall=3 type=http) exclude it. Prints wrk's totals (its
# "Non-2xx" line counts the failed requests) and the checks' log line.
#
#   scripts/bench/health-failover.sh [SECONDS] [KILL_AT]   (default 8 2)
#   MODULE=path/to/module.so ...    measure that build instead of building the release one
source "$(dirname "$0")/../common.sh"

seconds=${1:-8}
kill_at=${2:-2}
module=${MODULE:-$(build_module release)}
out=$(fresh_out_dir health-failover)
base=$(free_port_block 3)
for i in 0 1; do
    mkdir -p "$out/b$i/logs" "$out/b$i/conf"
    { nginx_conf_head "$out/b$i" 1 1024 warn
      echo "    server { listen 127.0.0.1:$((base + i)); return 200 \"$i\\n\"; }"
      echo "}"; } > "$out/b$i/conf/nginx.conf"
    "$NGINX_BIN" -p "$out/b$i/" -c conf/nginx.conf -e logs/error.log
done
{
    nginx_conf_head "$out" 2 1024 warn "$module"
    cat <<CONF
    upstream backends {
        zone backends 64k;
        server 127.0.0.1:$base max_fails=0;
        server 127.0.0.1:$((base + 1)) max_fails=0;
        check interval=1000 rise=2 fall=3 timeout=1000 default_down=false type=http;
    }
    server {
        listen 127.0.0.1:$((base + 2));
        location / { proxy_pass http://backends; proxy_next_upstream off; }
    }
}
CONF
} > "$out/conf/nginx.conf"
"$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log
trap 'stop_by_pid_file "$out/logs/nginx.pid"; stop_by_pid_file "$out/b0/logs/nginx.pid"; stop_by_pid_file "$out/b1/logs/nginx.pid"' EXIT
sleep 1
wrk -t1 -c8 -d"${seconds}s" "http://127.0.0.1:$((base + 2))/" > "$out/wrk.txt" &
wrk_pid=$!
sleep "$kill_at"
echo "backend 127.0.0.1:$((base + 1)) stopped at $(date +%T.%N | cut -c1-12)"
kill -TERM "$(cat "$out/b1/logs/nginx.pid")"
wait "$wrk_pid"
echo "== failover under load: wrk -t1 -c8 ${seconds}s, one of two backends stopped ${kill_at}s in"
cat "$out/wrk.txt"
grep 'health check:' "$out/logs/error.log" || true
