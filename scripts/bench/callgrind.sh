#!/usr/bin/env bash
# Instructions per proxied request, stock nginx vs. nginx with the module
# (both admin APIs configured), counted by callgrind: repeatable whatever
# else the machine does, unlike requests/s. One table: zone sizes x
# balancers, plus an upstream without a zone (the dyups request-time check
# alone).
#
# nginx runs with `master_process off` under callgrind; each arm runs twice
# (N1 and N2 keep-alive requests through the upstream) and the difference of
# the totals divided by N2 - N1 is the cost of one request, with start-up and
# shutdown cancelled out.
#
#   scripts/bench/callgrind.sh [--nginx 1.22|1.26|1.28] [N1] [N2]
#                                               (default 1.22, 200 1200)
#   NGINX=1.28 ...                              the same as --nginx 1.28: that
#                                               nginx (scripts/build.sh --nginx
#                                               1.28) and the module's release
#                                               build for it (target/nginx-1.28)
#   ZONES="64k 1m" BALANCERS="rr hash" ...      to measure part of the table
#   PLUS=1 ...                                  with dynamic_upstream_api (statistics counted)
#   ANNOTATE=1 ...                              also write callgrind_annotate
#                                               of each module arm (N2 run)
#   MODULE=path/to/module.so ...                measure that build (another
#                                               branch's) instead of this one
#   STOCK_MODULE=path/to/other.so ...           load that (unrelated) dynamic
#                                               module into the stock arm: what
#                                               loading any module costs a
#                                               request (one more slot in its
#                                               per-module arrays, which can
#                                               take its pool past a block)
#                                               then counts in both arms
source "$(dirname "$0")/../common.sh"
source scripts/lib/nginx-versions.sh

version=${NGINX:-1.22}
if [ "${1:-}" = --nginx ]; then version=${2:-}; shift 2 || shift; fi
case $version in
1.22|1.26|1.28) ;;
*) echo "callgrind.sh: --nginx 1.22, 1.26 or 1.28, not '$version'" >&2; exit 2 ;;
esac
n1=${1:-200}
n2=${2:-1200}
zones=${ZONES:-64k 1m 64m 256m}
balancers=${BALANCERS:-rr least_conn hash}
scripts/setup.sh
if [ "$version" != 1.22 ]; then
    # The nginx of that version (built and cached by scripts/build.sh), and the
    # module built against its tree into its own target dir, as build.sh does.
    NGINX_BIN=$(scripts/build.sh --nginx "$version" | sed -n 1p)
    # 1.26's is a wrapper script (build/nginx-1.26/nginx) that callgrind
    # would count: the binary it runs (no Lua is needed here).
    if [ "$version" = 1.26 ]; then NGINX_BIN=$REPO_ROOT/build/nginx-1.26/sbin/nginx; fi
    NGINX_BUILD_DIR=$(nginx_build_dir "$version")
    CARGO_TARGET_DIR=$(cargo_target_dir "$version")
    export NGINX_BUILD_DIR CARGO_TARGET_DIR
fi
module=${MODULE:-$(build_module release)}
out="$REPO_ROOT/scripts/out/callgrind"
rm -rf "$out"
mkdir -p "$out/backends/logs" "$out/backends/conf"

base=$(free_port_block 4)
cat > "$out/backends/conf/nginx.conf" <<EOF
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log warn;
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:$((base + 1));
        listen 127.0.0.1:$((base + 2));
        listen 127.0.0.1:$((base + 3));
        return 200 "ok\n";
    }
}
EOF
"$NGINX_BIN" -p "$out/backends/" -c conf/nginx.conf -e logs/error.log
trap 'stop_by_pid_file "$out/backends/logs/nginx.pid"' EXIT

# The balancer directive of a short name.
balancer_line() {
    case $1 in
        rr) echo "" ;;
        least_conn) echo "least_conn;" ;;
        hash) echo "hash \$request_uri;" ;;
    esac
}

# arm DIR LOAD_MODULE ADMIN_LOCATIONS ZONE_LINE BALANCER_LINE REQUESTS -> total instructions
arm() {
    local dir="$out/$1" load=$2 admin=$3 zone=$4 balancer=$5 requests=$6
    mkdir -p "$dir/logs" "$dir/conf"
    cat > "$dir/conf/nginx.conf" <<EOF
$load
master_process off;
daemon off;
pid logs/nginx.pid;
error_log logs/error.log warn;
events {}
http {
    access_log off;
    upstream backends {
        $zone
        $balancer
        server 127.0.0.1:$((base + 1));
        server 127.0.0.1:$((base + 2));
        server 127.0.0.1:$((base + 3));
        keepalive 8;
    }
    server {
        listen 127.0.0.1:$base;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        $admin
    }
}
EOF
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
        "$NGINX_BIN" -p "$dir/" -c conf/nginx.conf -e logs/error.log 2> "$dir/valgrind.txt" &
    local vg=$!
    REPO_ROOT=$REPO_ROOT perl -e '
        use lib "$ENV{REPO_ROOT}/t/lib"; use HttpClient; use Time::HiRes qw(sleep);
        my ($port, $n) = @ARGV;
        my $http = HttpClient->new;
        for (1 .. 600) { last if $http->request("GET", $port, "/")->{status} == 200; sleep 0.1 }
        for (1 .. $n) { $http->request("GET", $port, "/")->{status} == 200 or die "request failed\n" }
    ' "$base" "$requests"
    stop_by_pid_file "$dir/logs/nginx.pid"
    wait "$vg" || true
    awk '/^summary:|^totals:/ {print $2; exit}' "$dir/callgrind.out"
}

with_module="load_module $module;"
admin='location /dynamic { dynamic_upstream; } location /dyups { dyups_interface; }'
# PLUS=1: the NGINX Plus API too, so that requests count per-peer statistics.
if [ -n "${PLUS:-}" ]; then admin="$admin location /api { dynamic_upstream_api; }"; fi

# per_request NAME LOAD ADMIN ZONE_LINE BALANCER_LINE -> instructions per request
# (the warm-up request of each run is counted in both runs alike)
per_request() {
    local a b
    a=$(arm "$1.$n1" "$2" "$3" "$4" "$5" "$n1")
    b=$(arm "$1.$n2" "$2" "$3" "$4" "$5" "$n2")
    if [ -n "${ANNOTATE:-}" ] && [ -n "$2" ]; then
        callgrind_annotate --inclusive=yes "$out/$1.$n2/callgrind.out" > "$out/$1.annotate.txt" 2>/dev/null || true
    fi
    awk -v a="$a" -v b="$b" -v n="$((n2 - n1))" 'BEGIN { printf "%.0f", (b - a) / n }'
}

row() {
    local label=$1 zone=$2 balancer=$3 name=$4 stock module
    stock=$(per_request "stock.$name" "${STOCK_MODULE:+load_module $STOCK_MODULE;}" "" "$zone" "$balancer")
    module=$(per_request "module.$name" "$with_module" "$admin" "$zone" "$balancer")
    echo "| $label | $stock | $module | $((module - stock)) | $(awk -v a="$module" -v b="$stock" 'BEGIN { printf "%.4f", a / b }') |"
}

echo "== instructions per proxied request (callgrind, master_process off, $((n2 - n1)) keep-alive requests, nginx $("$NGINX_BIN" -v 2>&1 | sed 's|.*/||'))"
echo "| upstream | stock nginx | with the module | difference | ratio |"
echo "|---|---|---|---|---|"
for b in $balancers; do
    for z in $zones; do
        row "zone $z, $b" "zone backends $z;" "$(balancer_line "$b")" "$b.$z"
    done
done
row "no zone (dyups check only), rr" "" "" "nozone"
