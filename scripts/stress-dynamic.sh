#!/usr/bin/env bash
# Stress test of the dynamic_upstream API under traffic (not part of the
# quick suite).
#
# wrk sends keep-alive traffic through a zone upstream of 3 peers while an
# admin loop, for the same time, adds peers one by one past the 64-peer
# line (every added peer is a live backend), toggles peers down and up, and
# removes the added peers again, over and over. At the end it checks that:
#   - every proxied request succeeded (an up peer existed at all times);
#   - no worker exited on a signal, and error.log has no [alert]/[crit];
#   - the upstream is back to its 3 original peers.
#
#   scripts/stress-dynamic.sh [SECONDS] [--valgrind]
#   STRESS_ZONE=64m ...   the zone's size (default 1m; from about 3.3m on,
#                         before nginx 1.27.3, requests borrow their
#                         `tried` bitmaps from the workers' spares: 32
#                         connections are more than the spares of a 64m
#                         zone, so both ways are taken)
#
# With --valgrind nginx runs under valgrind's memcheck (--trace-children,
# 2 workers) and the run also fails on any invalid read or write.
source "$(dirname "$0")/common.sh"

count_and_valgrind 20 SECONDS "$@"
duration=$count

scripts/setup.sh
module=$(build_module dev)
out=$(fresh_out_dir stress-dynamic)
chmod 755 "$out"

# Ports: one for the proxy/admin server, 3 base backends, 80 extra backends,
# in a block below Linux's ephemeral range that nothing listens on.
extra=80
base=$(free_port_block $((extra + 10)))
front=$base
first_extra=$((base + 10))
listen_lines=""
for i in $(seq 0 $((3 + extra - 1))); do
    if [ "$i" -lt 3 ]; then port=$((base + 1 + i)); else port=$((first_extra + i - 3)); fi
    listen_lines+="        listen 127.0.0.1:$port;"$'\n'
done

workers=4
[ "$valgrind" = 1 ] && workers=2
cat > "$out/conf/nginx.conf" <<EOF
$(nginx_conf_head "$out" $workers 4096 notice "$module")
    upstream backends {
        zone backends ${STRESS_ZONE:-1m};
        server 127.0.0.1:$((base + 1));
        server 127.0.0.1:$((base + 2));
        server 127.0.0.1:$((base + 3));
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$front;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /dynamic { dynamic_upstream; }
    }
    server {
$listen_lines
        location / { return 200 "\$server_port\n"; }
    }
}
EOF

nginx_cmd=("$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log -g "daemon off;")
if [ "$valgrind" = 1 ]; then
    nginx_cmd=(valgrind --tool=memcheck --trace-children=yes --leak-check=full --error-exitcode=0
               --log-file="$out/logs/valgrind.%p.log" "${nginx_cmd[@]}")
fi
"${nginx_cmd[@]}" &
nginx_pid=$!
stop_nginx() {
    # Only the nginx this script started.
    kill -QUIT "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
}
trap stop_nginx EXIT

api() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$front/dynamic?upstream=backends&$1"; }
started=0
for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$front/")" = 200 ] && { started=1; break; }
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.1
done
if [ "$started" != 1 ]; then
    echo "nginx did not start; see $out/logs/error.log" >&2
    exit 1
fi

wrk_out="$out/wrk.txt"
wrk -t2 -c32 -d"${duration}s" --latency "http://127.0.0.1:$front/" > "$wrk_out" 2>&1 &
wrk_pid=$!

ops=0
failed_ops=0
cycles=0
deadline=$((SECONDS + duration))
op() {
    local code
    code=$(api "$1")
    ops=$((ops + 1))
    if [ "$code" != 200 ]; then
        failed_ops=$((failed_ops + 1))
        echo "admin op failed ($code): $1" >> "$out/failed-ops.txt"
    fi
}
while [ "$SECONDS" -lt "$deadline" ]; do
    added=0
    for i in $(seq 0 $((extra - 1))); do
        op "add=&server=127.0.0.1:$((first_extra + i))"
        added=$((added + 1))
        if [ $((i % 8)) = 0 ]; then
            op "server=127.0.0.1:$((base + 2))&down="
            op "server=127.0.0.1:$((first_extra + i))&weight=$((i % 5 + 1))"
            op "server=127.0.0.1:$((base + 2))&up="
        fi
        [ "$SECONDS" -lt "$deadline" ] || break
    done
    for i in $(seq 0 $((added - 1))); do
        op "remove=&server=127.0.0.1:$((first_extra + i))"
    done
    cycles=$((cycles + 1))
done
wait "$wrk_pid" || true

final=$(curl -s "http://127.0.0.1:$front/dynamic?upstream=backends")
expected=$(printf 'server 127.0.0.1:%s;\n' $((base + 1)) $((base + 2)) $((base + 3)))
stop_nginx
trap - EXIT

requests=$(awk '/requests in/ {print $1}' "$wrk_out")
non2xx=$(awk -F: '/Non-2xx/ {gsub(/ /,"",$2); print $2}' "$wrk_out")
socket_errors=$(grep -o 'Socket errors:.*' "$wrk_out" || true)
rps=$(awk '/Requests\/sec/ {print $2}' "$wrk_out")
p99=$(awk '$1 == "99%" {print $2}' "$wrk_out")
alerts=$(grep -cE '\[(alert|crit|emerg)\]|exited on signal' "$out/logs/error.log" || true)
invalid=0
if [ "$valgrind" = 1 ]; then
    invalid=$(cat "$out"/logs/valgrind.*.log | grep -cE 'Invalid (read|write)|uninitialised|Invalid free' || true)
fi

status=0
echo "== stress-dynamic: ${duration}s, $workers workers$([ "$valgrind" = 1 ] && echo ', under valgrind')"
echo "proxied requests:   ${requests:-0} (${rps:-0} req/s, p99 ${p99:-?})"
echo "non-2xx responses:  ${non2xx:-0}"
echo "socket errors:      ${socket_errors:-none}"
echo "admin operations:   $ops in $cycles add/remove cycles (failed: $failed_ops)"
echo "alert/crit/signal:  $alerts"
[ "$valgrind" = 1 ] && echo "valgrind errors:    $invalid (logs: $out/logs/valgrind.*.log)"
[ "${non2xx:-0}" = 0 ] || status=1
[ -z "$socket_errors" ] || status=1
[ "$failed_ops" = 0 ] || status=1
[ "$alerts" = 0 ] || status=1
[ "$invalid" = 0 ] || status=1
if [ "$final" != "$expected" ]; then
    echo "final list differs from the original:"; echo "$final"; status=1
fi
[ "$status" = 0 ] && echo "RESULT: PASS" || echo "RESULT: FAIL (see $out)"
exit $status
