#!/usr/bin/env bash
# Chaos run (not part of the quick suite): nginx with 4 workers, wrk traffic
# through a zone upstream and a run-time (dyups) upstream, 8 concurrent API
# writers issuing random valid operations on both APIs, and every few
# seconds a `kill -9` of a random worker or a lifecycle fault: a reload, a
# reload that fails late (a bad directive after the http block, a corrupt
# state file, a port in use), a reload that loads or drops the Lua module
# (when Debian's is installed), a reload that changes dyups_shm_zone_size,
# a binary upgrade (USR2, both instances serve for a second, QUIT of the
# old master: Debian's `service nginx upgrade`).
#
# Each writer owns its own peers and run-time upstreams, so the operations
# it got a 200 for replay, in its own order, into a model of the final
# state. At the end the run checks that:
#   - the master survived (or the last upgrade's); no worker exited on a signal except those it
#     killed, and error.log has no [alert]/[crit]/[emerg] but those of the
#     kills and of the reloads meant to fail;
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

lua_modules=""
for so in ndk_http_module ngx_http_lua_module; do
    [ -f "/usr/lib/nginx/modules/$so.so" ] && lua_modules+="load_module /usr/lib/nginx/modules/$so.so;"$'\n'
done

# write_conf ZONE_SIZE LUA(0|1) [AFTER [IN_HTTP]]: the configuration, AFTER
# after the http block, IN_HTTP at its end.
write_conf() {
    local lua=""
    [ "$2" = 1 ] && lua=$lua_modules
    cat > "$out/conf/nginx.conf" <<EOF
${lua}$(nginx_conf_head "$out" 4 4096 notice "$module")
    dyups_upstream_conf $out/data/dyups.conf;
    dyups_shm_zone_size $1;
    upstream spare {
        zone spare 64k;
        server 127.0.0.1:$first_backend;
        dynamic_state_file $out/data/spare.state;
    }
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
${4:-}
}
${3:-}
EOF
}
zone_size=2m
lua=0
write_conf $zone_size $lua

# The backends run in a nginx of their own, which the chaos never touches:
# a killed worker can then only fail requests it was itself serving.
mkdir -p "$out/backends/logs" "$out/backends/conf"
cat > "$out/backends/conf/nginx.conf" <<EOF
$(nginx_conf_head "$out/backends" 1 4096 notice)
    server {
$listen_lines
        location / { return 200 "\$server_port\n"; }
    }
}
EOF
"$NGINX_BIN" -p "$out/backends/" -c conf/nginx.conf -e logs/error.log

nginx=("$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log)
"${nginx[@]}"
master() { cat "$out/logs/nginx.pid" 2>/dev/null || true; } # (renamed for a moment during an upgrade)
for _ in $(seq 1 100); do [ -n "$(master)" ] && break; sleep 0.1; done
first_master=$(master)
stop_nginx() {
    stop_by_pid_file "$out/logs/nginx.pid"
    # An old master a binary upgrade left running (the run stopped between
    # USR2 and QUIT).
    stop_by_pid_file "$out/logs/nginx.pid.oldbin"
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

# A reload meant to fail: waits for its [emerg]; the caller then puts the
# good configuration back for the next one.
failed_reload() {
    local emergs
    emergs=$(grep -c '\[emerg\]' "$out/logs/error.log" || true)
    kill -HUP "$(master)" 2>/dev/null || return
    for _ in $(seq 1 100); do
        [ "$(grep -c '\[emerg\]' "$out/logs/error.log" || true)" -gt "$emergs" ] && break
        sleep 0.1
    done
    echo "failed reload: $1" >> "$out/chaos.log"
}

# Chaos: every 3-5 s kill -9 one worker, or a lifecycle fault (in turn).
faults=(reload bad-directive zone-size bad-state-file upgrade lua port-in-use)
echo "$first_master" > "$out/master.expected"
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
            continue
        fi
        fault=${faults[$(((n / 2) % ${#faults[@]}))]}
        case $fault in
            bad-directive)
                write_conf $zone_size $lua "chaos_bad_directive;"
                failed_reload "$fault"
                write_conf $zone_size $lua ;;
            bad-state-file)
                echo "chaos: not a state file" > "$out/data/spare.state"
                failed_reload "$fault"
                rm -f "$out/data/spare.state" ;;
            port-in-use)
                write_conf $zone_size $lua "" "server { listen 127.0.0.1:$first_backend; }"
                failed_reload "$fault"
                write_conf $zone_size $lua ;;
            upgrade)
                old=$(master)
                kill -USR2 "$old" 2>/dev/null || continue
                new=""
                for _ in $(seq 1 100); do
                    new=$(master)
                    [ -n "$new" ] && [ "$new" != "$old" ] && [ -f "$out/logs/nginx.pid.oldbin" ] && break
                    sleep 0.1
                done
                sleep 1 # both instances serve, as with Debian's `service nginx upgrade`
                kill -QUIT "$old" 2>/dev/null
                for _ in $(seq 1 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
                echo "$new" > "$out/master.expected"
                echo "upgrade: master $old -> $new" >> "$out/chaos.log" ;;
            *)
                case $fault in
                    zone-size) if [ $zone_size = 2m ]; then zone_size=4m; else zone_size=2m; fi ;;
                    lua) if [ -n "$lua_modules" ]; then lua=$((1 - lua)); fi ;;
                esac
                write_conf $zone_size $lua
                kill -HUP "$(master)" 2>/dev/null && echo "reload: $fault (zone $zone_size, lua $lua)" >> "$out/chaos.log" ;;
        esac
    done
) &
chaos=$!

writers_status=0
REPO_ROOT=$REPO_ROOT perl "$REPO_ROOT/scripts/chaos/writers.pl" "$admin" "$front" "$first_backend" "$writers" "$per_writer" "$duration" "$out" \
    > "$out/writers.txt" || writers_status=$?
wait "$wrk_zone" "$wrk_dyups" "$chaos" 2>/dev/null || true

# Let the last reload settle, then check the final state.
sleep 2
master_status=0
expected_master=$(cat "$out/master.expected")
[ "$(master)" = "$expected_master" ] && kill -0 "$expected_master" 2>/dev/null || master_status=1
check_status=0
REPO_ROOT=$REPO_ROOT perl "$REPO_ROOT/scripts/chaos/check.pl" "$admin" "$front" "$first_backend" "$out" > "$out/check.txt" || check_status=$?
stop_nginx
trap - EXIT

kills=$(grep -c '^kill' "$out/chaos.log" || true)
reloads=$(grep -c '^reload' "$out/chaos.log" || true)
upgrades=$(grep -c '^upgrade' "$out/chaos.log" || true)
failed_reloads=$(grep -c '^failed reload' "$out/chaos.log" || true)
fault_counts=$(sed -n 's/^\(failed \)\{0,1\}reload: \([a-z-]*\).*/\2/p' "$out/chaos.log" | sort | uniq -c | awk '{printf "%s %s, ", $2, $1}')
signals=$(grep -c 'exited on signal' "$out/logs/error.log" || true)
unexpected_signals=$(grep 'exited on signal' "$out/logs/error.log" | grep -vc 'signal 9' || true)
# nginx logs the workers we killed at [alert], and the reloads meant to
# fail at [emerg]: those lines are expected.
expected='exited on signal 9|unknown directive "chaos_bad_directive"|spare\.state.*line 1|bind\(\) to 127\.0\.0\.1:'"$first_backend"' failed|still could not bind'
alerts=$(grep -E '\[(alert|crit|emerg)\]' "$out/logs/error.log" | grep -Evc "$expected" || true)
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
echo "reloads: $reloads, failed reloads: $failed_reloads (${fault_counts%, }), binary upgrades: $upgrades, workers killed: $kills, exited on a signal: $signals (other than 9: $unexpected_signals)"
echo "alert/crit/emerg lines (other than the kills): $alerts"
cat "$out/check.txt"
status=0
[ "$master_status" = 0 ] && echo "master: alive from start to end (the last upgrade's)" || { echo "master: gone or replaced"; status=1; }
[ "$writers_status" = 0 ] || status=1
[ "$check_status" = 0 ] || status=1
[ "$unexpected_signals" = 0 ] || status=1
[ "$alerts" = 0 ] || status=1
if grep -q 'Non-2xx' "$out/wrk-zone.txt" "$out/wrk-dyups.txt"; then status=1; fi
[ "$status" = 0 ] && echo "RESULT: PASS" || echo "RESULT: FAIL (see $out)"
exit $status
