#!/usr/bin/env bash
# No accepted change is lost across reloads (not part of the quick suite).
#
#   scripts/reload-loop.sh [RELOADS]        (default 100)
#
# Starts its own nginx (4 workers; prefix scripts/out/reload-loop/, ports
# in 20000-29999 checked free with ss) with a zone upstream that has a
# dynamic_state_file and a dyups_upstream_conf, then sends RELOADS
# `kill -HUP`s to its master, one after the other (each waits until the new
# workers run and the old ones have exited), while two clients
# (scripts/reload-loop/client.pl) send changes continuously: one through
# the query API (weight, max_fails/fail_timeout, down/up, add/remove), one
# through the REST API (POST text and JSON, DELETE and re-create, of a
# run-time and of a configuration upstream). A client applies every change
# answered 200 to its model, re-sends a change answered 503 (a worker the
# reload replaced refusing a zone-upstream change), and checks right after
# each 200 that the state file and the listing hold the model.
#
# At the end (scripts/reload-loop/check.pl), and again after a restart of
# nginx: the state files, the listings (verbose query API, GET /detail,
# GET /upstream/NAME) and the proxied traffic all equal the models, i.e.
# the last accepted change of every object. Prints the figures and
# PASS/FAIL; exits 1 on FAIL. Everything is kept in scripts/out/reload-loop/
# (changes.*: every accepted change; problems.*: the first mismatches).
source "$(dirname "$0")/common.sh"

reloads=${1:-100}
case "$reloads" in
    '' | *[!0-9]*) echo "usage: $0 [RELOADS]" >&2; exit 2 ;;
esac
workers=4
scripts/setup.sh
module=$(build_module dev)
out="$REPO_ROOT/scripts/out/reload-loop"
rm -rf "$out"
mkdir -p "$out/logs" "$out/conf" "$out/data"
chmod 777 "$out/data"

# Ten free ports: front, admin, (unused), six backends.
base=$(free_port_block 10)
front=$base
admin=$((base + 1))
b0=$((base + 4))
backend_listens=""
for i in 0 1 2 3 4 5; do backend_listens+="        listen 127.0.0.1:$((b0 + i));"$'\n'; done

cat > "$out/conf/nginx.conf" <<EOF
$(nginx_conf_head "$out" $workers 1024 notice "$module")
    dyups_upstream_conf $out/data/dyups.conf;
    upstream backends {
        zone backends 256k;
        dynamic_state_file $out/data/backends.state;
        server 127.0.0.1:$b0;
        server 127.0.0.1:$((b0 + 1));
    }
    upstream host1 { server 127.0.0.1:$b0; }
    server {
        listen 127.0.0.1:$front;
        location /zone { proxy_pass http://backends; }
        location / { proxy_pass http://\$host; }
    }
    server {
        listen 127.0.0.1:$admin;
        add_header X-Worker \$pid always;
        location /dynamic { dynamic_upstream; }
        location / { dyups_interface; }
    }
    server {
$backend_listens
        return 200 "\$server_port\n";
    }
}
EOF

nginx=("$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log)
master() { cat "$out/logs/nginx.pid" 2>/dev/null; }
stop_nginx() {
    # Only the nginx this script started, by its pid file.
    local pid
    pid=$(master) || return 0
    [ -n "$pid" ] || return 0
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    rm -f "$out/logs/nginx.pid"
}
start_nginx() {
    "${nginx[@]}"
    for _ in $(seq 1 200); do
        curl -sf -o /dev/null "http://127.0.0.1:$admin/list" && return 0
        sleep 0.05
    done
    echo "nginx did not start; see $out/logs/error.log" >&2
    return 1
}
# Active workers (not shutting down) of master $1, one pid per line, sorted.
workers_of() { { ps -o pid=,args= --ppid "$1" 2>/dev/null || true; } | awk '/worker process$/ {print $1}' | sort; }

# One reload: HUP, then wait until $workers new workers run and every old
# one has exited (10 s at most each). Fails if the master is gone.
reload_once() {
    local m old new pid i
    m=$(master) || return 1
    kill -0 "$m" 2>/dev/null || return 1
    old=$(workers_of "$m")
    kill -HUP "$m" || return 1
    for i in $(seq 1 1000); do
        kill -0 "$m" 2>/dev/null || return 1
        new=$(workers_of "$m")
        if [ "$(grep -c . <<<"$new")" -ge "$workers" ] && [ -z "$(comm -12 <(echo "$old") <(echo "$new"))" ]; then
            break
        fi
        [ "$i" = 1000 ] && return 1
        sleep 0.01
    done
    for pid in $old; do
        for i in $(seq 1 1000); do
            [ "$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$m" ] || break
            [ "$i" = 1000 ] && return 1
            sleep 0.01
        done
    done
    return 0
}

trap stop_nginx EXIT
start_nginx

started=$(date +%s.%N)
stop_file="$out/stop"
client() { perl "$REPO_ROOT/scripts/reload-loop/client.pl" "$1" "$admin" "$b0" "$out/data" "$out" "$stop_file"; }
client zone > "$out/client.zone.txt" 2>&1 &
zone_client=$!
client dyups > "$out/client.dyups.txt" 2>&1 &
dyups_client=$!

done_reloads=0
failed_reloads=0
for _ in $(seq 1 "$reloads"); do
    if reload_once; then
        done_reloads=$((done_reloads + 1))
    else
        failed_reloads=$((failed_reloads + 1))
        kill -0 "$(master)" 2>/dev/null || { echo "the nginx master is gone" >&2; break; }
    fi
done
touch "$stop_file"
clients_status=0
wait "$zone_client" || clients_status=1
wait "$dyups_client" || clients_status=1
loop_seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')

check() { perl "$REPO_ROOT/scripts/reload-loop/check.pl" "$1" "$admin" "$front" "$b0" "$out/data" "$out"; }
check_status=0
check "after $done_reloads reloads" > "$out/check.txt" 2>&1 || check_status=1
stop_nginx
restart_ok=1
if start_nginx; then
    check "after a restart" >> "$out/check.txt" 2>&1 || check_status=1
else
    restart_ok=0
fi
stop_nginx
trap - EXIT
duration=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')

figure() { awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print; found = 1 } END { if (!found) print 0 }' "$out/stats.$1" 2>/dev/null || echo 0; }
alerts=$(grep -cE '\[(alert|crit|emerg)\]|exited on signal' "$out/logs/error.log" || true)

echo "== reload-loop: $reloads reloads of nginx ($workers workers) under continuous API changes"
printf 'reloads:                  %d done, %d failed\n' "$done_reloads" "$failed_reloads"
for mode in zone dyups; do
    printf '%-6s changes accepted:   %s\n' "$mode" "$(figure "$mode" accepted)"
    printf '%-6s 503 refusals:       %s (retried)\n' "$mode" "$(figure "$mode" refused_503)"
    printf '%-6s unexpected answers: %s\n' "$mode" "$(figure "$mode" unexpected)"
    printf '%-6s stale file/listing right after a 200: %s / %s\n' "$mode" "$(figure "$mode" file_mismatch)" "$(figure "$mode" listing_mismatch)"
    [ "$mode" = dyups ] || printf '%-6s stale listings from workers a reload was replacing: %s (not counted as failures)\n' "$mode" "$(figure "$mode" stale_from_replaced_worker)"
    printf '%-6s last accepted change: %s\n' "$mode" "$(figure "$mode" last)"
done
printf 'duration:                 %.1f s (reload loop %.1f s)\n' "$duration" "$loop_seconds"
printf 'alert/crit/emerg/signal:  %s\n' "$alerts"
cat "$out/check.txt"
for mode in zone dyups; do
    if [ -s "$out/problems.$mode" ]; then echo "first problems ($mode):"; head -40 "$out/problems.$mode" | sed 's/^/  | /'; fi
    if [ -s "$out/client.$mode.txt" ]; then echo "client $mode output:"; sed 's/^/  | /' "$out/client.$mode.txt"; fi
done

status=0
[ "$failed_reloads" = 0 ] && [ "$done_reloads" = "$reloads" ] || status=1
[ "$clients_status" = 0 ] || status=1
[ "$check_status" = 0 ] || status=1
[ "$restart_ok" = 1 ] || status=1
[ "$alerts" = 0 ] || status=1
for mode in zone dyups; do
    [ "$(figure "$mode" accepted)" -gt 0 ] || status=1
    for k in unexpected file_mismatch listing_mismatch dyups_503; do
        [ "$(figure "$mode" "$k")" = 0 ] || status=1
    done
done
[ "$status" = 0 ] && echo "RESULT: PASS" || echo "RESULT: FAIL (see $out)"
exit $status
