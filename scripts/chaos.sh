#!/usr/bin/env bash
# Chaos run (not part of the quick suite): nginx with 4 workers, wrk traffic
# through a zone upstream and a run-time (dyups) upstream, 8 concurrent API
# writers issuing random valid operations on both APIs, and every few
# seconds a `kill -9` of a random worker and an `nginx -s reload`.
#
# Each writer owns its own peers and run-time upstreams, so the operations
# it got a 200 for replay, in its own order, into a model of the final
# state. At the end the run checks that:
#   - no worker exited on a signal except those it killed, and error.log
#     has no [alert]/[crit];
#   - every proxied request succeeded (non-2xx: 0), except connections cut
#     off by a killed worker (wrk's socket read errors, counted apart);
#   - the final state (both APIs' listings, the state files) equals the
#     model, and traffic reaches exactly the peers the model says are up.
#
#   scripts/chaos.sh [SECONDS]        (default 60)
source "$(dirname "$0")/common.sh"

duration=${1:-60}
scripts/setup.sh
module=$(build_module dev)
out="$REPO_ROOT/scripts/out/chaos"
rm -rf "$out"
mkdir -p "$out/logs" "$out/conf" "$out/data"
chmod 777 "$out/data"

writers=8
per_writer=4
backends=$((2 + writers * per_writer))
base=$(free_port_block $((backends + 10)))
front=$base
admin=$((base + 1))
first_backend=$((base + 10))
listen_lines=""
for i in $(seq 0 $((backends - 1))); do listen_lines+="        listen 127.0.0.1:$((first_backend + i));"$'\n'; done

cat > "$out/conf/nginx.conf" <<EOF
load_module $module;
worker_processes 4;
pid logs/nginx.pid;
error_log logs/error.log notice;
events { worker_connections 4096; }
http {
    access_log off;
$(temp_paths "$out")
    dyups_upstream_conf $out/data/dyups.conf;
    upstream backends {
        zone backends 1m;
        server 127.0.0.1:$first_backend;
        server 127.0.0.1:$((first_backend + 1));
        dynamic_state_file $out/data/backends.state;
    }
    server {
        listen 127.0.0.1:$front;
        location /zone { proxy_pass http://backends; }
        location / { proxy_pass http://\$host; }
    }
    server {
        listen 127.0.0.1:$admin;
        location /dynamic { dynamic_upstream; }
        location / { dyups_interface; }
    }
}
EOF

# The backends run in a nginx of their own, which the chaos never touches:
# a killed worker can then only fail requests it was itself serving.
mkdir -p "$out/backends/logs" "$out/backends/conf"
cat > "$out/backends/conf/nginx.conf" <<EOF
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log notice;
events { worker_connections 4096; }
http {
    access_log off;
    server {
$listen_lines
        location / { return 200 "\$server_port\n"; }
    }
}
EOF
"$NGINX_BIN" -p "$out/backends/" -c conf/nginx.conf -e logs/error.log

nginx=("$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log)
"${nginx[@]}"
master() { cat "$out/logs/nginx.pid" 2>/dev/null; }
stop_nginx() {
    stop_by_pid_file "$out/logs/nginx.pid"
    stop_by_pid_file "$out/backends/logs/nginx.pid"
}
trap stop_nginx EXIT
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$admin/list" && break; sleep 0.1; done

# A run-time upstream for the traffic; its server is never touched.
curl -sf -o /dev/null -d "server 127.0.0.1:$first_backend;" "http://127.0.0.1:$admin/upstream/traffic"

wrk -t2 -c32 -d"${duration}s" "http://127.0.0.1:$front/zone" > "$out/wrk-zone.txt" 2>&1 &
wrk_zone=$!
wrk -t1 -c16 -d"${duration}s" -H 'Host: traffic' "http://127.0.0.1:$front/" > "$out/wrk-dyups.txt" 2>&1 &
wrk_dyups=$!

# Chaos: every 3-5 s kill -9 one worker, or reload.
(
    end=$((SECONDS + duration - 2))
    n=0
    while [ "$SECONDS" -lt "$end" ]; do
        sleep "$((3 + RANDOM % 3))"
        n=$((n + 1))
        if [ $((n % 2)) = 1 ]; then
            workers=$(ps -o pid= --ppid "$(master)" 2>/dev/null | tr -s ' ' '\n' | grep -v '^$' || true)
            victim=$(echo "$workers" | shuf -n1)
            if [ -n "$victim" ]; then kill -9 "$victim" 2>/dev/null && echo "kill $victim" >> "$out/chaos.log"; fi
        else
            kill -HUP "$(master)" 2>/dev/null && echo "reload" >> "$out/chaos.log"
        fi
    done
) &
chaos=$!

writers_status=0
REPO_ROOT=$REPO_ROOT perl "$REPO_ROOT/scripts/chaos/writers.pl" "$admin" "$front" "$first_backend" "$writers" "$per_writer" "$duration" "$out" \
    > "$out/writers.txt" || writers_status=$?
wait "$wrk_zone" "$wrk_dyups" "$chaos" 2>/dev/null || true

# Let the last reload settle, then check the final state.
sleep 2
check_status=0
REPO_ROOT=$REPO_ROOT perl "$REPO_ROOT/scripts/chaos/check.pl" "$admin" "$front" "$first_backend" "$out" > "$out/check.txt" || check_status=$?
stop_nginx
trap - EXIT

kills=$(grep -c '^kill' "$out/chaos.log" || true)
reloads=$(grep -c '^reload' "$out/chaos.log" || true)
signals=$(grep -c 'exited on signal' "$out/logs/error.log" || true)
unexpected_signals=$(grep 'exited on signal' "$out/logs/error.log" | grep -vc 'signal 9' || true)
# nginx logs the workers we killed at [alert]: those lines are expected.
alerts=$(grep -E '\[(alert|crit|emerg)\]' "$out/logs/error.log" | grep -vc 'exited on signal 9' || true)
wrk_figures() {
    local file=$1 requests errors non2xx
    requests=$(awk '/requests in/ {print $1}' "$file")
    non2xx=$(awk -F: '/Non-2xx/ {gsub(/ /,"",$2); print $2}' "$file")
    errors=$(grep -o 'Socket errors:.*' "$file" || echo 'no socket errors')
    echo "${requests:-0} requests, ${non2xx:-0} non-2xx, $errors"
}

echo "== chaos: ${duration}s, 4 workers, $writers writers"
cat "$out/writers.txt"
echo "traffic (zone upstream):    $(wrk_figures "$out/wrk-zone.txt")"
echo "traffic (run-time upstream): $(wrk_figures "$out/wrk-dyups.txt")"
echo "reloads: $reloads, workers killed: $kills, exited on a signal: $signals (other than 9: $unexpected_signals)"
echo "alert/crit/emerg lines (other than the kills): $alerts"
cat "$out/check.txt"
status=0
[ "$writers_status" = 0 ] || status=1
[ "$check_status" = 0 ] || status=1
[ "$unexpected_signals" = 0 ] || status=1
[ "$alerts" = 0 ] || status=1
if grep -q 'Non-2xx' "$out/wrk-zone.txt" "$out/wrk-dyups.txt"; then status=1; fi
[ "$status" = 0 ] && echo "RESULT: PASS" || echo "RESULT: FAIL (see $out)"
exit $status
