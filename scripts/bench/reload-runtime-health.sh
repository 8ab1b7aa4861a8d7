#!/usr/bin/env bash
# What a reload costs with many checked run-time (dyups) upstreams: the time
# from HUP until the new workers run, for two builds side by side in one
# run (each reload's master walks the health records and the registry to
# resume the checks of servers a previous reload left without a record).
# UPSTREAMS run-time upstreams of 4 checked servers (type=tcp, nothing is
# probed meanwhile: interval 60 s), a CHECK_SHM health zone, 2 workers,
# RELOADS reloads per build; prints each build's median and their ratio.
# Also the CPU time the two new workers take in their first 2 s (their
# first ticks find every health record: each run-time upstream's checks
# are read, and its servers' names where a record may have lost its server).
#
#   scripts/bench/reload-runtime-health.sh [UPSTREAMS] [CHECK_SHM] [RELOADS]   (default 1000 16m 5)
#   BASELINE=old.so   the build to compare with (required: e.g. a worktree's target/)
#   MODULE=new.so     the build measured (default: this tree's release build)
source "$(dirname "$0")/../common.sh"

upstreams=${1:-1000}
check_shm=${2:-16m}
reloads=${3:-5}
baseline=${BASELINE:?BASELINE=path/to/the/other/module.so}
module=${MODULE:-$(build_module release)}
out=$(fresh_out_dir reload-runtime-health)
port=$(free_port_block 5)

# reload_times ARM MODULE: prints each reload's seconds and the new workers'
# CPU milliseconds in their first 2 s, one reload a line.
reload_times() {
    local arm=$1 so=$2 dir="$out/$1"
    mkdir -p "$dir/logs" "$dir/conf"
    {
        nginx_conf_head "$dir" 2 1024 warn "$so"
        echo "    dyups_shm_zone_size 64m;"
        echo "    check_shm_size $check_shm;"
        echo "    server { listen 127.0.0.1:$port; location / { dyups_interface; } }"
        echo "}"
    } > "$dir/conf/nginx.conf"
    "$NGINX_BIN" -p "$dir/" -c conf/nginx.conf -e logs/error.log
    local master
    master=$(cat "$dir/logs/nginx.pid")
    perl -I"$REPO_ROOT/t/lib" -MHttpClient -e '
        my ($port, $n, $first) = @ARGV;
        my $c = HttpClient->new(timeout => 10);
        for my $i (1 .. $n) {
            my $body = join("", map { "server 127.0.0.1:" . ($first + $_) . "; " } 0 .. 3)
                     . "check interval=60000 rise=1 fall=1 timeout=1000 type=tcp;";
            my $r = $c->request("POST", $port, "/upstream/u$i", "localhost", $body, "k");
            die "POST u$i: $r->{status} $r->{body}\n" unless $r->{status} == 200;
        }' "$port" "$upstreams" $((port + 1))
    for _ in $(seq 1 "$reloads"); do
        local before start
        before=$(pgrep -P "$master" | sort | tr '\n' ' ')
        start=$(date +%s.%N)
        kill -HUP "$master"
        # Until two children run that were not there before: forked, i.e.
        # the master's init_module done (not the workers' own start-up,
        # the same in both builds; scripts/reload-loop.sh waits for that).
        local waited=0
        while [ "$(pgrep -P "$master" | grep -cvxF -f <(tr ' ' '\n' <<<"$before" | grep .))" -lt 2 ]; do
            if [ $((waited += 1)) -gt 2000 ]; then
                echo "$arm: no new workers 10 s after a reload" >&2
                stop_by_pid_file "$dir/logs/nginx.pid"
                return 1
            fi
            sleep 0.005
        done
        local seconds new cpu=0
        seconds=$(echo "$(date +%s.%N) - $start" | bc)
        new=$(pgrep -P "$master" | grep -vxF -f <(tr ' ' '\n' <<<"$before" | grep .))
        sleep 2
        for pid in $new; do
            # utime + stime (fields 14 and 15; the name, field 2, has no space).
            cpu=$((cpu + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
        done
        echo "$seconds $((cpu * 1000 / $(getconf CLK_TCK)))"
    done
    grep -E '\[(alert|crit|emerg)\]' "$dir/logs/error.log" >&2 || true
    stop_by_pid_file "$dir/logs/nginx.pid"
}

# median COLUMN: the median of that column of stdin.
median() { awk -v c="$1" '{ print $c }' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

base_times=$(reload_times baseline "$baseline")
new_times=$(reload_times measured "$module")
base_median=$(median 1 <<<"$base_times")
new_median=$(median 1 <<<"$new_times")
base_cpu=$(median 2 <<<"$base_times")
new_cpu=$(median 2 <<<"$new_times")
echo "== reload with $upstreams run-time upstreams x 4 checked servers, check_shm_size $check_shm, $reloads reloads each"
echo "baseline ($baseline): median ${base_median} s from HUP to the new workers; their CPU in the first 2 s: ${base_cpu} ms"
echo "measured ($module): median ${new_median} s; ${new_cpu} ms"
awk -v a="$new_median" -v b="$base_median" 'BEGIN { printf "ratio measured/baseline: %.2f\n", a / b }'
awk -v a="$new_cpu" -v b="$base_cpu" 'BEGIN { if (b > 0) printf "CPU ratio measured/baseline: %.2f\n", a / b }'
