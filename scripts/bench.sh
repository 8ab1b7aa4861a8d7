#!/usr/bin/env bash
# Benchmarks of the module (not part of the test suite).
#
#   scripts/bench.sh [--quick]
#   scripts/bench.sh --nginx 1.22|1.26|1.28 [N1 N2]
#
# --nginx V: only the request path on that nginx (1.26: Debian 13's 1.26.3,
# 1.28: nginx 1.28.3), in
# instructions per request: scripts/bench/callgrind.sh --nginx V (ZONES and
# BALANCERS as there). The scenarios below run on Debian's 1.22.1.
#
# Five scenarios, everything on 127.0.0.1, each comparing two arms in the
# same run (alternating, several rounds; figures are medians):
#   1. request path: stock nginx vs. nginx with the module (zone upstream,
#      keep-alive); then proxy_pass http://$host with 100 and 1,000
#      upstreams of the configuration vs. as many created through dyups;
#   2. a change (1 of 3 servers down, then up), 100 times: rewrite the
#      configuration + HUP vs. the query-string API, under a wrk load,
#      then 50 times more with no load (API: paced, and back to back);
#   3. admin operations/s and latency (wrk + scripts/bench/wrk.lua) vs. a
#      trivial `return 200` on the same server;
#   4. scale: 10 .. 10,000 peers in one zone, 10 .. 10,000 run-time
#      upstreams (BENCH_DYUPS_SIZES="10 100 1000" to skip the largest);
#      peers per 1m zone, module vs. nginx's own configuration;
#   5. propagation to 4 workers after a POST vs. reaching them at all.
#
# The backends are a separate stock nginx (same work in every arm). Output:
# the table on stdout and in scripts/out/bench/results.md, one line per
# measurement in scripts/out/bench/raw.tsv, the scale curves in
# scripts/out/bench/scale.png, every nginx's prefix under
# scripts/out/bench/nginx/. The default run takes about 8 minutes,
# --quick about 2 (fewer rounds, shorter runs, sizes up to 1,000).
#
# Needs gnuplot (gnuplot-nox, installed here if missing) besides what
# scripts/setup.sh installs. Helpers: scripts/bench/bench.pl (keep-alive
# timed clients, reload driver, RSS sampler), scripts/bench/wrk.lua,
# scripts/bench/scale.gp.
source "$(dirname "$0")/common.sh"

if [ "${1:-}" = --nginx ]; then
    exec scripts/bench/callgrind.sh "$@"
fi
quick=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        *) echo "usage: $0 [--quick] | --nginx 1.22|1.26|1.28 [N1 N2]" >&2; exit 2 ;;
    esac
done

started_at=$SECONDS
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
scripts/setup.sh
module=$(build_module release)
if ! command -v gnuplot >/dev/null 2>&1; then
    # Not in setup.sh's list (yet): only this script needs it.
    echo "bench: installing gnuplot-nox" >&2
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null  # also in setup.sh
fi

here="$REPO_ROOT/scripts/bench"
out="$REPO_ROOT/scripts/out/bench"
rm -rf "$out"
mkdir -p "$out/nginx"
chmod 755 "$out" "$out/nginx"
raw="$out/raw.tsv"
printf 'scenario\tarm\tround\tmetric\tvalue\tunit\n' > "$raw"

if [ "$quick" = 1 ]; then
    rounds=3; dur=2                 # scenario 1: rounds x seconds per arm
    s2_rounds=1; s2_changes=20      # scenario 2 (under load)
    s2_idle_changes=10              #            (no load)
    s3_rounds=2; s3_dur=1           # scenario 3
    scale_sizes=(10 100 1000)       # scenario 4: peers of one zone
    dyups_sizes=(10 100 1000)       #             run-time upstreams
    s4_rounds=2; s4_dur=2
    prop_trials=10                  # scenario 5
else
    rounds=5; dur=5
    s2_rounds=3; s2_changes=100
    s2_idle_changes=50
    s3_rounds=5; s3_dur=2
    scale_sizes=(10 100 1000 10000)
    dyups_sizes=(10 100 1000 10000)
    s4_rounds=3; s4_dur=3
    prop_trials=30
fi
[ -n "${BENCH_DYUPS_SIZES:-}" ] && read -r -a dyups_sizes <<< "$BENCH_DYUPS_SIZES"
host_counts=(100 1000)
warm=2                  # seconds of wrk before the rounds, per arm
[ "$quick" = 1 ] && warm=1
s2_pace_ms=100          # one change per 100 ms (or slower, if a change takes longer)

# --- Ports: a block of 40 in 20000-29999 that nothing listens on.
nports=40
ports_free() {
    ! ss -Hltn | awk '{print $4}' | grep -qE ":($(seq -s '|' "$1" "$(($1 + nports - 1))"))\$"
}
base=$((20000 + RANDOM % 240 * 40))
until ports_free "$base"; do base=$((20000 + RANDOM % 240 * 40)); done
B1=$base B2=$((base + 1)) B3=$((base + 2))      # backends
next_port=$((base + 3))
alloc_port() { printf -v "$1" '%s' "$next_port"; next_port=$((next_port + 1)); }

# --- nginx instances, each in $out/nginx/NAME, stopped by its pid file.
instances=()
bg_pids=()
cleanup() {
    local pid
    for pid in "${bg_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for name in "${instances[@]}"; do stop_nginx "$name"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# conf_head WORKERS MODULE(0|1) PREFIX: a configuration up to "http {" and
# its common settings.
conf_head() {
    local workers=$1 with_module=$2 dir=$3
    [ "$with_module" = 1 ] && echo "load_module $module;"
    cat <<EOF
worker_processes $workers;
pid logs/nginx.pid;
error_log logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000;
    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;
EOF
}

# start_nginx NAME WORKERS MODULE(0|1) <<< "http block body": writes the
# configuration, starts nginx, waits for its workers.
start_nginx() {
    local name=$1 workers=$2 with_module=$3 dir="$out/nginx/$1"
    mkdir -p "$dir/conf" "$dir/logs"
    chmod 755 "$dir"
    { conf_head "$workers" "$with_module" "$dir"; cat; echo "}"; } > "$dir/conf/nginx.conf"
    if ! "$NGINX_BIN" -p "$dir/" -c conf/nginx.conf -e logs/error.log; then
        echo "bench: nginx $name did not start; see $dir/logs/error.log" >&2
        tail -5 "$dir/logs/error.log" >&2 || true
        exit 1
    fi
    instances+=("$name")
    local master i
    for i in $(seq 1 100); do [ -s "$dir/logs/nginx.pid" ] && break; sleep 0.05; done
    master=$(cat "$dir/logs/nginx.pid")
    for i in $(seq 1 200); do
        [ "$(worker_pids "$master" | wc -w)" -ge "$workers" ] && return 0
        sleep 0.05
    done
    echo "bench: nginx $name started fewer than $workers workers" >&2
    exit 1
}

worker_pids() { ps -o pid= --ppid "$1" 2>/dev/null || true; }
master_of() { cat "$out/nginx/$1/logs/nginx.pid"; }

stop_nginx() {
    local name=$1 pid i rest=()
    pid=$(cat "$out/nginx/$name/logs/nginx.pid" 2>/dev/null) || pid=
    if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then
        for i in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
    fi
    for i in "${instances[@]}"; do [ "$i" = "$name" ] || rest+=("$i"); done
    instances=("${rest[@]}")
}

# Sum of VmRSS (KiB) of an instance's master and children.
rss_of() {
    local master pid sum=0 kb
    master=$(master_of "$1")
    for pid in "$master" $(worker_pids "$master"); do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || kb=0
        sum=$((sum + ${kb:-0}))
    done
    echo "$sum"
}

wait_http() {   # URL [HOST]: until it answers 200
    local i
    for i in $(seq 1 200); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: ${2:-localhost}" "$1")" = 200 ] && return 0
        sleep 0.05
    done
    echo "bench: $1 does not answer 200" >&2
    exit 1
}

# --- Recording.
unit_of() {
    case "$1" in
        *_us) echo us ;; *_ms) echo ms ;; *_s) echo s ;; rps) echo req/s ;; *_kib) echo KiB ;;
        *bytes*) echo B ;; *) echo count ;;
    esac
}
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "${6:-$(unit_of "$4")}" >> "$raw"; }

# bench_pl SCEN ARM ROUND ARGS...: runs bench.pl, records its lines.
bench_pl() {
    local scen=$1 arm=$2 round=$3 metric value unit
    shift 3
    while IFS=$'\t' read -r metric value unit; do
        record "$scen" "$arm" "$round" "$metric" "$value" "$unit"
    done < <(perl "$here/bench.pl" "$@")
}

# record_wrk SCEN ARM ROUND FILE: records the WRK line of a wrk output.
record_wrk() {
    local line kv
    line=$(grep '^WRK ' "$4") || { echo "bench: wrk gave no result ($4):" >&2; cat "$4" >&2; exit 1; }
    for kv in ${line#WRK }; do record "$1" "$2" "$3" "${kv%%=*}" "${kv#*=}"; done
}

# run_wrk SCEN ARM ROUND SECONDS URL [wrk options]; BENCH_* from the
# environment (see wrk.lua).
wrk_n=0
run_wrk() {
    local scen=$1 arm=$2 round=$3 secs=$4 url=$5 f
    shift 5
    wrk_n=$((wrk_n + 1))
    f="$out/wrk/$wrk_n-$scen-$arm-$round.txt"
    mkdir -p "$out/wrk"
    wrk "$@" -d"${secs}s" --timeout 2s -s "$here/wrk.lua" "$url" > "$f" 2>&1 || true
    [ "$scen" = warmup ] && return 0
    record_wrk "$scen" "$arm" "$round" "$f"
}

# --- Reading raw.tsv.
vals() { awk -F'\t' -v s="$1" -v a="$2" -v m="$3" '$1 == s && $2 == a && $4 == m {print $5}' "$raw"; }
med() {
    vals "$@" | sort -g | awk '{v[NR] = $1} END {
        if (NR == 0) { print "NA"; exit }
        print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
total() { vals "$@" | awk '{s += $1} END {print s + 0}'; }
fmt() {
    awk -v x="$1" 'BEGIN {
        if (x == "NA" || x == "") { print "n/a"; exit }
        a = (x < 0) ? -x : x
        if (a >= 1000) printf "%\047d\n", x + 0.5 * (x < 0 ? -1 : 1)
        else if (a >= 100) printf "%.0f\n", x
        else if (a >= 10) printf "%.1f\n", x
        else if (a == 0) print "0"
        else printf "%.3g\n", x }'
}
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "NA" || b == "NA" || a + 0 == 0) { print "n/a"; exit }
        r = b / a; printf (r >= 100 ? "%.0f\n" : (r >= 10 ? "%.1f\n" : (r >= 0.1 ? "%.2f\n" : "%.2g\n"))), r }'
}

table="$out/table.md"
: > "$table"
# Median over rounds of B/A, each round's two arms measured back to back:
# steadier than the ratio of the medians when the machine's speed drifts.
pratio() {   # SCEN ARM_A ARM_B METRIC
    awk -F'\t' -v s="$1" -v a="$2" -v b="$3" -v m="$4" '
        $1 == s && $4 == m && $3 > 0 && $2 == a {va[$3] = $5}
        $1 == s && $4 == m && $3 > 0 && $2 == b {vb[$3] = $5}
        END {for (r in va) if ((r in vb) && va[r] > 0) print vb[r] / va[r]}' "$raw" | sort -g | awk '{v[NR] = $1} END {
        if (NR == 0) { print "n/a"; exit }
        r = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf (r >= 100 ? "%.0f\n" : (r >= 10 ? "%.1f\n" : "%.2f\n")), r }'
}
# row SCENARIO WHAT ARM_A_LABEL VALUE_A ARM_B_LABEL VALUE_B UNIT NOTE [RATIO]
# (RATIO: a paired ratio from pratio, marked "p"; else B/A of the values)
row() {
    local r
    if [ -n "${9:-}" ]; then r="$9 p"; else r=$(ratio "$4" "$6"); fi
    printf '| %s | %s | %s: %s %s | %s: %s %s | %s | %s |\n' "$1" "$2" "$3" "$(fmt "$4")" "$7" "$5" "$(fmt "$6")" "$7" \
        "$r" "$8" >> "$table"
}

section() { echo "== $* ($(( SECONDS - started_at )) s)" >&2; }

# ======================================================================
# Backends: a stock nginx, 3 ports answering their port number.
start_nginx backend 1 0 <<EOF
    server {
        listen 127.0.0.1:$B1;
        listen 127.0.0.1:$B2;
        listen 127.0.0.1:$B3;
        location / { return 200 "\$server_port\n"; }
    }
EOF
wait_http "http://127.0.0.1:$B1/"
servers3="server 127.0.0.1:$B1; server 127.0.0.1:$B2; server 127.0.0.1:$B3;"
proxy_loc='proxy_http_version 1.1; proxy_set_header Connection "";'

# ======================================================================
section "1. request path"
alloc_port P_STOCK; alloc_port P_MOD; alloc_port P_MOD_ADMIN
upstream_backends="upstream backends { zone backends 1m; $servers3 keepalive 32; }"
start_nginx s1-stock 2 0 <<EOF
    $upstream_backends
    server {
        listen 127.0.0.1:$P_STOCK;
        location / { proxy_pass http://backends; $proxy_loc }
    }
EOF
start_nginx s1-module 2 1 <<EOF
    $upstream_backends
    server {
        listen 127.0.0.1:$P_MOD;
        location / { proxy_pass http://backends; $proxy_loc }
        location /dynamic { dynamic_upstream; }
    }
    server {
        listen 127.0.0.1:$P_MOD_ADMIN;
        location / { dyups_interface; }
    }
EOF
wait_http "http://127.0.0.1:$P_STOCK/"; wait_http "http://127.0.0.1:$P_MOD/"
run_wrk warmup stock 0 "$warm" "http://127.0.0.1:$P_STOCK/" -t1 -c32
run_wrk warmup module 0 "$warm" "http://127.0.0.1:$P_MOD/" -t1 -c32
for r in $(seq 1 "$rounds"); do
    arms=(stock module); [ $((r % 2)) = 0 ] && arms=(module stock)
    for arm in "${arms[@]}"; do
        p=$P_STOCK; [ "$arm" = module ] && p=$P_MOD
        run_wrk s1-zone "$arm" "$r" "$dur" "http://127.0.0.1:$p/" -t1 -c32
    done
done
stop_nginx s1-stock; stop_nginx s1-module

# proxy_pass http://$host: N upstreams of the configuration (stock nginx)
# vs. N created by POST (module). Neither keeps upstream connections
# alive: run-time upstreams refuse "keepalive".
alloc_port P_HOST_STOCK; alloc_port P_HOST_MOD; alloc_port P_HOST_ADMIN
start_nginx s1-host-module 2 1 <<EOF
    dyups_shm_zone_size 64m;
    server {
        listen 127.0.0.1:$P_HOST_MOD;
        location / { proxy_pass http://\$host; $proxy_loc }
    }
    server {
        listen 127.0.0.1:$P_HOST_ADMIN;
        location / { dyups_interface; }
    }
EOF
have=0
for n in "${host_counts[@]}"; do
    bench_pl fill "$n" 0 dyups-grow "$P_HOST_ADMIN" 0 "$have" "$n" "$servers3"
    have=$n
    {
        for i in $(seq 0 $((n - 1))); do echo "    upstream up$i { $servers3 }"; done
        cat <<EOF
    server {
        listen 127.0.0.1:$P_HOST_STOCK;
        location / { proxy_pass http://\$host; $proxy_loc }
    }
EOF
    } | start_nginx "s1-host-stock-$n" 2 0
    host="up$((n / 2))"
    wait_http "http://127.0.0.1:$P_HOST_STOCK/" "$host"; wait_http "http://127.0.0.1:$P_HOST_MOD/" "$host"
    run_wrk warmup config 0 "$warm" "http://127.0.0.1:$P_HOST_STOCK/" -t1 -c32 -H "Host: $host"
    run_wrk warmup dyups 0 "$warm" "http://127.0.0.1:$P_HOST_MOD/" -t1 -c32 -H "Host: $host"
    for r in $(seq 1 "$rounds"); do
        arms=(config dyups); [ $((r % 2)) = 0 ] && arms=(dyups config)
        for arm in "${arms[@]}"; do
            p=$P_HOST_STOCK; [ "$arm" = dyups ] && p=$P_HOST_MOD
            run_wrk "s1-host-$n" "$arm" "$r" "$dur" "http://127.0.0.1:$p/" -t1 -c32 -H "Host: $host"
        done
    done
    record "s1-host-$n" config 0 rss_kib "$(rss_of "s1-host-stock-$n")"
    record "s1-host-$n" dyups 0 rss_kib "$(rss_of s1-host-module)"
    stop_nginx "s1-host-stock-$n"
done
stop_nginx s1-host-module

# ======================================================================
section "2. change cost: reload vs. API"
alloc_port P_RELOAD; alloc_port P_API
s2_conf() {   # DOWN(0|1)
    local b2="server 127.0.0.1:$B2;"
    [ "$1" = 1 ] && b2="server 127.0.0.1:$B2 down;"
    cat <<EOF
    upstream backends { zone backends 1m; server 127.0.0.1:$B1; $b2 server 127.0.0.1:$B3; keepalive 32; }
    server {
        listen 127.0.0.1:$P_RELOAD;
        location / { proxy_pass http://backends; $proxy_loc }
    }
EOF
}
s2_conf 0 | start_nginx s2-reload 2 0
reload_dir="$out/nginx/s2-reload/conf"
{ conf_head 2 0 "$out/nginx/s2-reload"; s2_conf 1; echo "}"; } > "$reload_dir/nginx.conf.down"
{ conf_head 2 0 "$out/nginx/s2-reload"; s2_conf 0; echo "}"; } > "$reload_dir/nginx.conf.up"
start_nginx s2-api 2 1 <<EOF
    $upstream_backends
    server {
        listen 127.0.0.1:$P_API;
        location / { proxy_pass http://backends; $proxy_loc }
        location /dynamic { dynamic_upstream; }
        location = /trivial { return 200 "ok\n"; }
    }
EOF
wait_http "http://127.0.0.1:$P_RELOAD/"; wait_http "http://127.0.0.1:$P_API/"
for r in $(seq 1 "$s2_rounds"); do
    arms=(reload api); [ $((r % 2)) = 0 ] && arms=(api reload)
    for arm in "${arms[@]}"; do
        name=s2-$arm
        p=$P_RELOAD; [ "$arm" = api ] && p=$P_API
        perl "$here/bench.pl" rss "$out/nginx/$name/logs/nginx.pid" "$out/rss-$arm-$r.txt" &
        rss_pid=$!; bg_pids+=("$rss_pid")
        wrk_file="$out/wrk/s2-$arm-$r.txt"; mkdir -p "$out/wrk"
        wrk -t1 -c16 -d600s --timeout 2s -s "$here/wrk.lua" "http://127.0.0.1:$p/" > "$wrk_file" 2>&1 &
        wrk_pid=$!; bg_pids+=("$wrk_pid")
        sleep 0.3
        if [ "$arm" = reload ]; then
            bench_pl s2 "$arm" "$r" reload-changes "$reload_dir" "$out/nginx/$name/logs/nginx.pid" 2 "$s2_changes" "$s2_pace_ms"
        else
            bench_pl s2 "$arm" "$r" api-changes "$P_API" backends "127.0.0.1:$B2" "$s2_changes" "$s2_pace_ms"
        fi
        sleep 0.3
        kill -INT "$wrk_pid"; wait "$wrk_pid" || true
        kill -TERM "$rss_pid"; wait "$rss_pid" || true
        bg_pids=()
        record_wrk s2 "$arm" "$r" "$wrk_file"
        record s2 "$arm" "$r" peak_rss_kib "$(cat "$out/rss-$arm-$r.txt")"
    done
done
# The same changes with no load: what a change costs by itself, without
# waiting behind proxied requests in the workers' event loops. Paced API
# changes find client and worker asleep (on a VM, waking an idle vCPU costs
# ~0.2 ms): the back-to-back arm shows the change's own cost.
bench_pl s2-idle reload 1 reload-changes "$reload_dir" "$out/nginx/s2-reload/logs/nginx.pid" 2 "$s2_idle_changes" "$s2_pace_ms"
bench_pl s2-idle api 1 api-changes "$P_API" backends "127.0.0.1:$B2" "$s2_idle_changes" "$s2_pace_ms"
bench_pl s2-idle api_b2b 1 api-changes "$P_API" backends "127.0.0.1:$B2" "$s2_idle_changes" 0
# Control: a `return 200` on the same server, paced and back to back.
bench_pl s2-idle trivial 1 paced-get "$P_API" /trivial "$s2_idle_changes" "$s2_pace_ms"
bench_pl s2-idle trivial_b2b 1 paced-get "$P_API" /trivial "$s2_idle_changes" 0
stop_nginx s2-reload; stop_nginx s2-api

# ======================================================================
section "3. admin operations"
alloc_port P_S3; alloc_port P_S3_ADMIN
start_nginx s3 2 1 <<EOF
    dyups_shm_zone_size 64m;
    upstream adm { zone adm 1m; $servers3 }
    server {
        listen 127.0.0.1:$P_S3;
        location /dynamic { dynamic_upstream; }
        location = /trivial { return 200 "ok\n"; }
        location /adm { proxy_pass http://adm; }
    }
    server {
        listen 127.0.0.1:$P_S3_ADMIN;
        location / { dyups_interface; }
    }
EOF
wait_http "http://127.0.0.1:$P_S3/trivial"
servers10=$(for i in $(seq 1 10); do printf 'server 127.0.3.%d:80;' "$i"; done)
bench_pl fill s3 0 dyups-grow "$P_S3_ADMIN" 0 0 99 "$servers3"
curl -sf -d "$servers10" "http://127.0.0.1:$P_S3_ADMIN/upstream/up99" > /dev/null
q="/dynamic?upstream=adm"
s3_op() {   # NAME: sets BENCH_* and the URL
    BENCH_METHOD=GET BENCH_BODY= url="http://127.0.0.1:$P_S3"
    case "$1" in
        trivial) BENCH_PATHS="/trivial" ;;
        weight) BENCH_PATHS="$q&server=127.0.0.1:$B1&weight=2|$q&server=127.0.0.1:$B1&weight=3" ;;
        add_remove) BENCH_PATHS="$q&add=&server=127.0.2.{id}:80|$q&remove=&server=127.0.2.{id}:80" ;;
        down_up) BENCH_PATHS="$q&server=127.0.0.1:2000{id}&down=|$q&server=127.0.0.1:2000{id}&up=" ;;
        post10) BENCH_METHOD=POST BENCH_BODY="$servers10" BENCH_PATHS="/upstream/up99" url="http://127.0.0.1:$P_S3_ADMIN" ;;
        detail) BENCH_PATHS="/detail" url="http://127.0.0.1:$P_S3_ADMIN" ;;
    esac
    export BENCH_METHOD BENCH_BODY BENCH_PATHS
}
# down/up works on two extra peers (one per wrk thread), so the
# upstream's own servers stay up.
curl -sf "http://127.0.0.1:$P_S3$q&add=&server=127.0.0.1:20001" > /dev/null
curl -sf "http://127.0.0.1:$P_S3$q&add=&server=127.0.0.1:20002" > /dev/null
s3_ops=(trivial weight add_remove down_up post10 detail)
# wrk may stop between an add and its remove: start each run clean.
s3_reset() {
    curl -s -o /dev/null "http://127.0.0.1:$P_S3$q&remove=&server=127.0.2.1:80"
    curl -s -o /dev/null "http://127.0.0.1:$P_S3$q&remove=&server=127.0.2.2:80"
}
for op in "${s3_ops[@]}"; do s3_op "$op"; s3_reset; run_wrk warmup "$op" 0 1 "$url" -t2 -c2; done
for r in $(seq 1 "$s3_rounds"); do
    # a different order each round
    k=$(( (r - 1) % ${#s3_ops[@]} ))
    for op in "${s3_ops[@]:k}" "${s3_ops[@]:0:k}"; do
        s3_op "$op"
        s3_reset
        run_wrk s3 "$op" "$r" "$s3_dur" "$url" -t2 -c2
    done
done
s3_reset
unset BENCH_METHOD BENCH_BODY BENCH_PATHS
s3_final=$(curl -s "http://127.0.0.1:$P_S3$q")
stop_nginx s3

# ======================================================================
section "4. scale"
alloc_port P_S4; alloc_port P_S4_PROXY; alloc_port P_S4_ADMIN
start_nginx s4 2 1 <<EOF
    upstream big { zone big 64m; server 127.0.0.1:$B1; }
    upstream small { zone small 1m; server 127.0.0.1:$B1; }
    server {
        listen 127.0.0.1:$P_S4;
        location /dynamic { dynamic_upstream; }
        location /big { proxy_pass http://big; }
        location /small { proxy_pass http://small; }
    }
EOF
wait_http "http://127.0.0.1:$P_S4/big"
curl -s -o /dev/null "http://127.0.0.1:$P_S4/dynamic?upstream=big"
have=0
for n in "${scale_sizes[@]}"; do
    # n peers in all: the configuration's one and n - 1 added
    bench_pl s4-peers "$n" 1 peers-grow "$P_S4" big "$have" $((n - 1))
    have=$((n - 1))
done
bench_pl s4-zone1m module 1 zone-max "$P_S4" small
stop_nginx s4

# Run-time upstreams, in an nginx of their own (/detail lists the
# configuration's upstreams too).
start_nginx s4-dyups 2 1 <<EOF
    dyups_shm_zone_size 64m;
    server {
        listen 127.0.0.1:$P_S4_PROXY reuseport;
        location / { proxy_pass http://\$host; $proxy_loc add_header X-Worker \$pid always; }
    }
    server {
        listen 127.0.0.1:$P_S4_ADMIN;
        location / { dyups_interface; }
    }
EOF
wait_http "http://127.0.0.1:$P_S4_ADMIN/status"
have=0
for n in "${dyups_sizes[@]}"; do
    t0=$SECONDS
    bench_pl s4-dyups "$n" 1 dyups-grow "$P_S4_ADMIN" "$P_S4_PROXY" "$have" "$n" "$servers3" 2
    record s4-dyups "$n" 1 step_s $((SECONDS - t0))
    have=$n
    host="up$((n / 2))"
    wait_http "http://127.0.0.1:$P_S4_PROXY/" "$host"
    run_wrk warmup "$n" 0 1 "http://127.0.0.1:$P_S4_PROXY/" -t1 -c32 -H "Host: $host"
    for r in $(seq 1 "$s4_rounds"); do
        run_wrk s4-dyups "$n" "$r" "$s4_dur" "http://127.0.0.1:$P_S4_PROXY/" -t1 -c32 -H "Host: $host"
    done
    record s4-dyups "$n" 0 rss_kib "$(rss_of s4-dyups)"
done
stop_nginx s4-dyups

# nginx's own cost: the most `server` lines a `zone x 1m` upstream of the
# configuration takes (nginx copies them into the zone at start and fails
# to start when they do not fit; `nginx -t` does not allocate zones).
probe_dir="$out/nginx/zone-probe"
config_zone_fits() {   # COUNT
    local i
    mkdir -p "$probe_dir/conf" "$probe_dir/logs"
    {
        conf_head 1 0 "$probe_dir"
        echo "    upstream x { zone x 1m;"
        for ((i = 0; i < $1; i++)); do printf '        server 127.1.%d.%d:%d;\n' $(((i >> 8) & 255)) $((i & 255)) $((1000 + (i >> 16))); done
        echo "    }"
        echo "    server { listen 127.0.0.1:$P_S4; location / { proxy_pass http://x; } }"
        echo "}"
    } > "$probe_dir/conf/nginx.conf"
    rm -f "$probe_dir/logs/nginx.pid"
    if "$NGINX_BIN" -p "$probe_dir/" -c conf/nginx.conf -e logs/error.log 2>> "$probe_dir/logs/start.log"; then
        instances+=(zone-probe)
        for i in $(seq 1 100); do [ -s "$probe_dir/logs/nginx.pid" ] && break; sleep 0.02; done
        stop_nginx zone-probe
        return 0
    fi
    return 1
}
lo=1 hi=1024
while config_zone_fits "$hi"; do lo=$hi; hi=$((hi * 2)); [ "$hi" -gt 131072 ] && break; done
while [ $((hi - lo)) -gt 1 ]; do
    mid=$(((lo + hi) / 2))
    if config_zone_fits "$mid"; then lo=$mid; else hi=$mid; fi
done
record s4-zone1m config 1 max_peers "$lo" peers
probe_error=$(grep -m1 -E 'emerg|crit' "$probe_dir/logs/error.log" "$probe_dir/logs/start.log" 2>/dev/null | sed 's/^[^:]*://' || true)

# ======================================================================
section "5. propagation"
alloc_port P_S5; alloc_port P_S5_ADMIN
start_nginx s5 4 1 <<EOF
    server {
        listen 127.0.0.1:$P_S5 reuseport;
        location / { proxy_pass http://\$host; $proxy_loc add_header X-Worker \$pid always; }
    }
    server {
        listen 127.0.0.1:$P_S5_ADMIN;
        location / { dyups_interface; }
    }
EOF
wait_http "http://127.0.0.1:$P_S5_ADMIN/status"
bench_pl s5 propagation 1 propagation "$P_S5" "$P_S5_ADMIN" prop "$B1" "$B2" 4 "$prop_trials"
stop_nginx s5
stop_nginx backend

# ======================================================================
# The tables.
errors_of() {   # SCEN ARM: wrk's socket errors + non-2xx, all rounds
    local k sum=0 v
    for k in err_connect err_read err_write err_timeout non2xx; do
        v=$(total "$1" "$2" "$k"); sum=$((sum + ${v%.*}))
    done
    echo "$sum"
}
s=s1-zone
row "1 request path" "req/s, zone upstream of 3, keep-alive" stock "$(med $s stock rps)" module "$(med $s module rps)" "" \
    "2 workers, wrk -t1 -c32, $rounds x ${dur}s per arm, alternating" "$(pratio $s stock module rps)"
row "1 request path" "p99, zone upstream" stock "$(med $s stock p99_us)" module "$(med $s module p99_us)" µs \
    "p50: stock $(fmt "$(med $s stock p50_us)") µs, module $(fmt "$(med $s module p50_us)") µs; failed requests: stock $(errors_of $s stock), module $(errors_of $s module)" \
    "$(pratio $s stock module p99_us)"
for n in "${host_counts[@]}"; do
    s=s1-host-$n
    row "1 request path" "req/s, \$host among $n upstreams" config "$(med "$s" config rps)" dyups "$(med "$s" dyups rps)" "" \
        "Host: up$((n / 2)); no upstream keep-alive in either arm (dyups refuses it); failed requests: config $(errors_of "$s" config), dyups $(errors_of "$s" dyups)" \
        "$(pratio "$s" config dyups rps)"
    row "1 request path" "p99, \$host among $n" config "$(med "$s" config p99_us)" dyups "$(med "$s" dyups p99_us)" µs \
        "RSS of all processes: config $(fmt "$(med "$s" config rss_kib)") KiB, dyups $(fmt "$(med "$s" dyups rss_kib)") KiB" \
        "$(pratio "$s" config dyups p99_us)"
done
s=s2
row "2 change" "wall time per change" reload "$(med $s reload change_ms)" API "$(med $s api change_ms)" ms \
    "$s2_changes changes (down, up, ...) x $s2_rounds rounds, one per ≥${s2_pace_ms} ms; slowest: reload $(fmt "$(vals $s reload change_max_ms | sort -g | tail -1)") ms, API $(fmt "$(vals $s api change_max_ms | sort -g | tail -1)") ms"
s=s2-idle
row "2 change" "wall time per change, no load" reload "$(med $s reload change_ms)" API "$(med $s api change_ms)" ms \
    "$s2_idle_changes changes per arm, one per ≥${s2_pace_ms} ms, no wrk; slowest: reload $(fmt "$(vals $s reload change_max_ms)") ms, API $(fmt "$(vals $s api change_max_ms)") ms"
row "2 change" "wall time per change, no load, API back to back" reload "$(med $s reload change_ms)" API "$(med $s api_b2b change_ms)" ms \
    "$s2_idle_changes API changes with no pause (no idle wake-up between them); reload as above"
row "2 change" "control: return 200 on the API's server, no load" "one per ${s2_pace_ms} ms" "$(med $s trivial request_ms)" "back to back" "$(med $s trivial_b2b request_ms)" ms \
    "the paced API change's time over back to back is the machine waking up: a trivial request shows it too"
s=s2
row "2 change" "p99 of wrk load during the changes" reload "$(med $s reload p99_us)" API "$(med $s api p99_us)" µs \
    "wrk -t1 -c16 for the whole arm; req/s reload $(fmt "$(med $s reload rps)"), API $(fmt "$(med $s api rps)")" \
    "$(pratio $s reload api p99_us)"
row "2 change" "failed requests (all rounds)" reload "$(errors_of $s reload)" API "$(errors_of $s api)" "" \
    "reload: connect $(total $s reload err_connect), read $(total $s reload err_read), write $(total $s reload err_write), timeout $(total $s reload err_timeout), non-2xx $(total $s reload non2xx); API: read $(total $s api err_read), non-2xx $(total $s api non2xx)"
row "2 change" "peak RSS, master + children" reload "$(med $s reload peak_rss_kib)" API "$(med $s api peak_rss_kib)" KiB \
    "sampled every 50 ms; reloads not done within 30 s: $(total $s reload failures); API changes failed: $(total $s api failures)"
base_rps=$(med s3 trivial rps)
for op in weight add_remove down_up post10 detail; do
    case $op in
        weight) what="weight update (query string)" ;;
        add_remove) what="add, remove (alternating)" ;;
        down_up) what="down, up (alternating)" ;;
        post10) what="POST replacing a 10-server upstream" ;;
        detail) what="GET /detail, 100 run-time upstreams + 1 of the config" ;;
    esac
    row "3 admin" "ops/s: $what" "return 200" "$base_rps" op "$(med s3 "$op" rps)" "" \
        "p50 $(fmt "$(med s3 "$op" p50_us)") µs, p99 $(fmt "$(med s3 "$op" p99_us)") µs (return 200: p50 $(fmt "$(med s3 trivial p50_us)"), p99 $(fmt "$(med s3 trivial p99_us)")); failed $(errors_of s3 "$op"); wrk -t2 -c2, $s3_rounds x ${s3_dur}s" \
        "$(pratio s3 trivial "$op" rps)"
done

# Growth: slope of log(value) over log(N) between the two largest sizes
# (small sizes are dominated by the fixed cost of a request) and by least
# squares over all; the class is from the first.
growth() {   # SCEN METRIC SIZES...
    local scen=$1 metric=$2 n pts=""
    shift 2
    for n in "$@"; do pts+="$n $(med "$scen" "$n" "$metric") "; done
    awk -v pts="$pts" 'BEGIN {
        k = split(pts, a, " "); m = 0
        for (i = 1; i < k; i += 2) if (a[i + 1] != "NA" && a[i + 1] > 0) { m++; x[m] = log(a[i]); y[m] = log(a[i + 1]) }
        if (m < 2) { print "n/a"; exit }
        for (i = 1; i <= m; i++) { sx += x[i]; sy += y[i] }
        for (i = 1; i <= m; i++) { sxx += (x[i] - sx / m) ^ 2; sxy += (x[i] - sx / m) * (y[i] - sy / m) }
        s = sxy / sxx; t = (y[m] - y[m - 1]) / (x[m] - x[m - 1])
        c = (t < 0.2 && t > -0.2) ? "constant" : (t <= -0.2) ? "falls" : (t < 0.75) ? "sub-linear" : (t < 1.3) ? "linear" : (t < 1.75) ? "super-linear" : "quadratic"
        printf "%s (slope %.2f between the two largest sizes, %.2f overall)\n", c, t, s }'
}
# Value at 10,000 from the two largest sizes, when 10,000 was not measured.
at_10k() {   # SCEN METRIC SIZES...
    local scen=$1 metric=$2
    shift 2
    local n1=${*: -2:1} n2=${*: -1}
    [ "$n2" -ge 10000 ] && return 0
    awk -v n1="$n1" -v n2="$n2" -v v1="$(med "$scen" "$n1" "$metric")" -v v2="$(med "$scen" "$n2" "$metric")" 'BEGIN {
        if (v1 == "NA" || v2 == "NA" || v1 <= 0 || v2 <= 0) exit
        t = log(v2 / v1) / log(n2 / n1); printf "; at 10,000: ~%.0f (extrapolated)\n", v2 * (10000 / n2) ^ t }'
}
p_lo=${scale_sizes[0]} p_hi=${scale_sizes[-1]}
for m in add_us update_us downup_us list_us remove_us; do
    row "4 scale, peers of one zone" "${m%_us}, per request" "$p_lo peers" "$(med s4-peers "$p_lo" "$m")" "$p_hi peers" "$(med s4-peers "$p_hi" "$m")" µs \
        "$(growth s4-peers "$m" "${scale_sizes[@]}")"
done
d_lo=${dyups_sizes[0]} d_hi=${dyups_sizes[-1]}
for m in post_create_us post_replace_us proxy_after_change_us status_us list_us get_one_us detail_us; do
    case $m in
        post_create_us) what="POST creating one" ;;
        post_replace_us) what="POST replacing one" ;;
        proxy_after_change_us) what="first proxied request after a POST (slowest worker)" ;;
        status_us) what="GET /status" ;;
        list_us) what="GET /list" ;;
        get_one_us) what="GET /upstream/NAME" ;;
        detail_us) what="GET /detail" ;;
    esac
    row "4 scale, run-time upstreams" "$what" "$d_lo" "$(med s4-dyups "$d_lo" "$m")" "$d_hi" "$(med s4-dyups "$d_hi" "$m")" µs \
        "$(growth s4-dyups "$m" "${dyups_sizes[@]}")$(at_10k s4-dyups "$m" "${dyups_sizes[@]}")"
done
row "4 scale, run-time upstreams" "proxy req/s by Host" "$d_lo" "$(med s4-dyups "$d_lo" rps)" "$d_hi" "$(med s4-dyups "$d_hi" rps)" "" \
    "$(growth s4-dyups rps "${dyups_sizes[@]}"); no change in flight; wrk -t1 -c32, $s4_rounds x ${s4_dur}s"
row "4 scale, run-time upstreams" "dyups zone bytes per upstream (3 servers)" "$d_lo" "$(med s4-dyups "$d_lo" dyups_bytes_per_upstream)" \
    "$d_hi" "$(med s4-dyups "$d_hi" dyups_bytes_per_upstream)" B "used pages of /status x 4096 / upstreams"
mod_max=$(med s4-zone1m module max_peers) cfg_max=$(med s4-zone1m config max_peers)
row "4 scale, zone 1m" "most peers in a zone 1m" "nginx config" "$cfg_max" "module API" "$mod_max" "" \
    "bytes per peer (1 MiB / count, slab overhead included): config $(fmt "$(awk -v n="$cfg_max" 'BEGIN {print 1048576 / n}')"), module $(fmt "$(awk -v n="$mod_max" 'BEGIN {print 1048576 / n}')")"
s=s5
row "5 propagation" "time until all 4 workers answered (max over workers)" "no change" "$(med $s propagation all_workers_seen_ms)" \
    "new state after POST" "$(med $s propagation all_workers_new_ms)" ms \
    "$prop_trials trials, a new connection per request (reuseport); stale answers after the POST's 200: $(total $s propagation stale_answers); slowest trial $(fmt "$(vals $s propagation all_workers_new_ms | sort -g | tail -1)") ms; connections needed (median) $(fmt "$(med $s propagation connections_needed)")"

# Scale tables: every size.
scale_table="$out/scale.md"
{
    printf '| peers in one zone (µs per request) |'; for n in "${scale_sizes[@]}"; do printf ' %s |' "$n"; done; printf ' growth |\n'
    printf '|---|'; for n in "${scale_sizes[@]}"; do printf -- '---:|'; done; printf -- '---|\n'
    for m in add_us update_us downup_us list_us remove_us add_response_bytes; do
        printf '| %s |' "$m"; for n in "${scale_sizes[@]}"; do printf ' %s |' "$(fmt "$(med s4-peers "$n" "$m")")"; done
        printf ' %s |\n' "$(growth s4-peers "$m" "${scale_sizes[@]}")"
    done
    echo
    printf '| run-time upstreams (µs per request) |'; for n in "${dyups_sizes[@]}"; do printf ' %s |' "$n"; done; printf ' growth |\n'
    printf '|---|'; for n in "${dyups_sizes[@]}"; do printf -- '---:|'; done; printf -- '---|\n'
    for m in post_create_us post_replace_us proxy_plain_us proxy_after_change_us status_us list_us get_one_us detail_us rps rss_kib \
             dyups_bytes_per_upstream step_s; do
        printf '| %s |' "$m"; for n in "${dyups_sizes[@]}"; do printf ' %s |' "$(fmt "$(med s4-dyups "$n" "$m")")"; done
        printf ' %s |\n' "$(growth s4-dyups "$m" "${dyups_sizes[@]}")"
    done
} > "$scale_table"

# Plot.
{
    echo "# N add_us update_us downup_us list_us remove_us"
    for n in "${scale_sizes[@]}"; do
        echo "$n $(med s4-peers "$n" add_us) $(med s4-peers "$n" update_us) $(med s4-peers "$n" downup_us)" \
            "$(med s4-peers "$n" list_us) $(med s4-peers "$n" remove_us)"
    done
} > "$out/scale-peers.dat"
{
    echo "# N post_create_us post_replace_us proxy_after_change_us get_one_us proxy_plain_us rps"
    for n in "${dyups_sizes[@]}"; do
        echo "$n $(med s4-dyups "$n" post_create_us) $(med s4-dyups "$n" post_replace_us) $(med s4-dyups "$n" proxy_after_change_us)" \
            "$(med s4-dyups "$n" get_one_us) $(med s4-dyups "$n" proxy_plain_us) $(med s4-dyups "$n" rps)"
    done
} > "$out/scale-dyups.dat"
gnuplot -e "peers='$out/scale-peers.dat'; dyups='$out/scale-dyups.dat'; outfile='$out/scale.png'" "$here/scale.gp" \
    2> "$out/gnuplot.log" || echo "bench: gnuplot failed, see $out/gnuplot.log" >&2

# error.log of every instance (the zone probe's failures are expected).
logs_table=$(
    for d in "$out"/nginx/*/; do
        name=$(basename "$d")
        [ "$name" = zone-probe ] && continue
        f="$d/logs/error.log"
        [ -f "$f" ] || continue
        bad=$(grep -cE '\[(alert|crit|emerg)\]|exited on signal' "$f" || true)
        err=$(grep -c '\[error\]' "$f" || true)
        warn=$(grep -c '\[warn\]' "$f" || true)
        echo "| $name | $bad | $err | $warn |"
    done
)

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
elapsed=$((SECONDS - started_at))
{
    echo "# Benchmark of the dynamic upstream module$([ "$quick" = 1 ] && echo ' (--quick)')"
    echo
    echo "- machine: $(nproc) CPUs, $cpu, $mem RAM, Linux $(uname -r)"
    echo "- $("$NGINX_BIN" -v 2>&1), $(rustc -V), $(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}')"
    echo "- run: $(date -u '+%Y-%m-%d %H:%M UTC'), $elapsed s; load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- backends: a separate stock nginx (1 worker) on 3 ports; every nginx under test has 2 workers (5: 4)"
    echo "- B/A: \"p\" marks the median of per-round ratios (both arms measured back to back in each round),"
    echo "  otherwise the ratio of the two medians shown"
    awk -v l="${load_before%% *}" -v n="$(nproc)" 'BEGIN { if (l + 0 > n / 2) printf "- **note:** the 1-minute load average was %s before the run: other processes were busy, figures are noisy\n", l }'
    echo
    echo "| scenario | figure | arm A | arm B | B/A | note |"
    echo "|---|---|---|---|---|---|"
    cat "$table"
    echo
    echo "## Scale (medians; times in µs)"
    echo
    cat "$scale_table"
    echo
    echo "nginx's configuration in a zone 1m: the first count that does not fit fails at start with: ${probe_error:-?}"
    echo
    echo "## error.log"
    echo
    echo "| instance | alert/crit/emerg/signal | error | warn |"
    echo "|---|---:|---:|---:|"
    echo "$logs_table"
    echo
    echo "Scenario 3 left the upstream adm as: $(echo "$s3_final" | tr '\n' ' ')"
} > "$out/results.md"
cat "$out/results.md"
echo
echo "raw figures: $raw; plot: $out/scale.png"
