#!/usr/bin/env bash
# Instructions per proxied request, stock nginx vs. nginx with the module
# (both admin APIs configured), counted by callgrind: repeatable whatever
# else the machine does, unlike requests/s.
#
# nginx runs with `master_process off` under callgrind; each arm runs twice
# (N1 and N2 keep-alive requests through a zone upstream) and the
# difference of the totals divided by N2 - N1 is the cost of one request,
# with start-up and shutdown cancelled out.
#
#   scripts/bench/callgrind.sh [N1] [N2]        (default 1000 3000)
source "$(dirname "$0")/../common.sh"

n1=${1:-1000}
n2=${2:-3000}
scripts/setup.sh
module=$(build_module release)
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

# arm NAME LOAD_MODULE ADMIN_LOCATIONS REQUESTS -> total instructions
arm() {
    local name=$1 load=$2 admin=$3 requests=$4 dir="$out/$1.$4"
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
        zone backends 64k;
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
        use lib "$ENV{REPO_ROOT}/scripts/lib"; use HttpClient; use Time::HiRes qw(sleep);
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
# The warm-up request of each run is counted in both N1 and N2 runs alike.
stock1=$(arm stock "" "" "$n1")
stock2=$(arm stock "" "" "$n2")
module1=$(arm module "$with_module" "$admin" "$n1")
module2=$(arm module "$with_module" "$admin" "$n2")

per_request() { awk -v a="$1" -v b="$2" -v n="$((n2 - n1))" 'BEGIN { printf "%.0f", (b - a) / n }'; }
stock=$(per_request "$stock1" "$stock2")
module=$(per_request "$module1" "$module2")
echo "== instructions per proxied request (callgrind, master_process off, $((n2 - n1)) requests)"
echo "| arm | instructions per request |"
echo "|---|---|"
echo "| stock nginx | $stock |"
echo "| with the module | $module |"
echo "| difference | $((module - stock)) ($(awk -v a="$module" -v b="$stock" 'BEGIN { printf "%+.2f%%", (a - b) * 100 / b }')) |"
