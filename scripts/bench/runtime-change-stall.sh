#!/usr/bin/env bash
# What a change of a large checked run-time (dyups) upstream costs the
# worker's other requests: after each change, the worker's next health tick
# reads the upstream's checks again and the names of its list's peers (a
# record whose server left the list is freed). One worker, a run-time
# upstream of SERVERS checked servers (type=tcp, interval 60 s: nothing is
# probed meanwhile), CHANGES replaces one second apart (each swaps one
# server), while one client sends GET /ping on a keepalive connection;
# prints, for two builds side by side in one run, the pings' p99 and
# slowest, the time they spent over 2 ms in all, and the POSTs' median.
#
#   scripts/bench/runtime-change-stall.sh [SERVERS] [CHANGES]   (default 10000 8)
#   BASELINE=old.so   the build to compare with (required)
#   MODULE=new.so     the build measured (default: this tree's release build)
source "$(dirname "$0")/../common.sh"

servers=${1:-10000}
changes=${2:-8}
baseline=${BASELINE:?BASELINE=path/to/the/other/module.so}
module=${MODULE:-$(build_module release)}
out=$(fresh_out_dir runtime-change-stall)
port=$(free_port_block 2)

# stalls ARM MODULE: prints "p99_ms max_ms over_2ms_ms post_median_ms".
stalls() {
    local arm=$1 so=$2 dir="$out/$1"
    mkdir -p "$dir/logs" "$dir/conf"
    {
        nginx_conf_head "$dir" 1 1024 warn "$so"
        echo "    client_max_body_size 10m;"
        echo "    client_body_buffer_size 10m;"
        echo "    dyups_shm_zone_size 64m;"
        echo "    check_shm_size 32m;"
        echo "    server { listen 127.0.0.1:$port; location / { dyups_interface; } location = /ping { return 200; } }"
        echo "}"
    } > "$dir/conf/nginx.conf"
    "$NGINX_BIN" -p "$dir/" -c conf/nginx.conf -e logs/error.log
    perl -I"$REPO_ROOT/t/lib" -MHttpClient -MTime::HiRes=time -e '
        my ($port, $n, $changes, $dead) = @ARGV;
        # Servers on 127.1.0.0/16 (a port nothing listens on: never probed
        # within the run); change K shifts the list by K.
        my $body = sub {
            my ($k) = @_;
            join("", map { my $i = $_ + $k; sprintf "server 127.1.%d.%d:%d; ", $i / 250, $i % 250 + 1, $dead } 0 .. $n - 1)
                . "check interval=60000 rise=1 fall=1 timeout=1000 type=tcp;";
        };
        my ($admin, $client) = (HttpClient->new(timeout => 60), HttpClient->new(timeout => 60));
        my $r = $admin->request("POST", $port, "/upstream/big", "localhost", $body->(0), "k");
        die "POST: $r->{status} $r->{body}\n" unless $r->{status} == 200;
        # The first ticks after the creation are not measured.
        my $settle = time + 2;
        $client->request("GET", $port, "/ping", "localhost", undef, "k") while time < $settle;
        my (@pings, @posts);
        my ($next, $k, $end) = (time + 1, 0, time + $changes + 1.5);
        while (time < $end) {
            if (time >= $next && $k < $changes) {
                my $t = time;
                $r = $admin->request("POST", $port, "/upstream/big", "localhost", $body->(++$k), "k");
                die "POST $k: $r->{status} $r->{body}\n" unless $r->{status} == 200;
                push @posts, 1000 * (time - $t);
                $next += 1;
            }
            my $t = time;
            $client->request("GET", $port, "/ping", "localhost", undef, "k");
            push @pings, 1000 * (time - $t);
        }
        @pings = sort { $a <=> $b } @pings;
        @posts = sort { $a <=> $b } @posts;
        my $over = 0;
        $over += $_ - 2 for grep { $_ > 2 } @pings;
        printf "%.2f %.1f %.0f %.0f\n", $pings[int(@pings * 0.99)], $pings[-1], $over, $posts[@posts / 2];
    ' "$port" "$servers" "$changes" $((port + 1))
    grep -E '\[(alert|crit|emerg)\]' "$dir/logs/error.log" >&2 || true
    stop_by_pid_file "$dir/logs/nginx.pid"
}

read -r base_p99 base_max base_over base_post < <(stalls baseline "$baseline")
read -r new_p99 new_max new_over new_post < <(stalls measured "$module")
echo "== a checked run-time upstream of $servers servers, $changes changes 1 s apart, one worker, GET /ping meanwhile"
echo "baseline ($baseline): ping p99 ${base_p99} ms, slowest ${base_max} ms, ${base_over} ms over 2 ms in all; POST median ${base_post} ms"
echo "measured ($module): ping p99 ${new_p99} ms, slowest ${new_max} ms, ${new_over} ms over 2 ms in all; POST median ${new_post} ms"
awk -v a="$new_max" -v b="$base_max" -v c="$new_over" -v d="$base_over" \
    'BEGIN { printf "ratio measured/baseline: slowest %.2f, over 2 ms %.2f\n", a / b, (d > 0 ? c / d : 0) }'
