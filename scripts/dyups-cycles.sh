#!/usr/bin/env bash
# Memory check for run-time upstreams (not part of the quick suite).
#
# Runs N cycles (default 10000) of: POST create an upstream, proxy one
# request to it, POST replace it with two servers, proxy again, DELETE it;
# then the same against an upstream of the configuration (replace, proxy).
# Prints the dyups zone's used pages and the workers' resident memory
# after a warm-up and after the run, and fails if the zone grew or any
# request failed.
#
#   scripts/dyups-cycles.sh [CYCLES] [--valgrind]
#
# With --valgrind nginx runs under memcheck and the run also fails on any
# invalid read, write or free.
source "$(dirname "$0")/common.sh"

count_and_valgrind 10000 CYCLES "$@"
cycles=$count
scripts/setup.sh
module=$(build_module dev)
out=$(fresh_out_dir dyups-cycles)

base=$(free_port_block 4)
cat > "$out/conf/nginx.conf" <<EOF
$(nginx_conf_head "$out" 2 1024 notice "$module")
    upstream confhost { server 127.0.0.1:$((base + 2)); }
    server {
        listen 127.0.0.1:$base;
        location / { proxy_pass http://\$host; }
    }
    server {
        listen 127.0.0.1:$((base + 1));
        location / { dyups_interface; }
    }
    server {
        listen 127.0.0.1:$((base + 2));
        listen 127.0.0.1:$((base + 3));
        return 200 "\$server_port\n";
    }
}
EOF

nginx_cmd=("$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log)
if [ "$valgrind" = 1 ]; then
    nginx_cmd=(valgrind --tool=memcheck --trace-children=yes --leak-check=full
               --log-file="$out/logs/valgrind.%p.log" "${nginx_cmd[@]}")
fi
"${nginx_cmd[@]}"
stop_nginx() { stop_by_pid_file "$out/logs/nginx.pid"; }
trap stop_nginx EXIT
for _ in $(seq 1 300); do [ -s "$out/logs/nginx.pid" ] && break; sleep 0.1; done

REPO_ROOT=$REPO_ROOT perl - "$base" "$cycles" "$out/logs/nginx.pid" <<'PERL'
use strict;
use warnings;
use lib "$ENV{REPO_ROOT}/t/lib";
use HttpClient;
use Time::HiRes qw(time sleep);

my ($base, $cycles, $pidfile) = @ARGV;
my ($proxy, $admin, $b1, $b2) = ($base, $base + 1, $base + 2, $base + 3);
my $failed = 0;
my $client = HttpClient->new;
sub request { $client->request(@_) }

sub check {
    my ($res, $code, $what) = @_;
    return if $res->{status} == $code;
    $failed++;
    print "unexpected: $what answered $res->{status} $res->{body}\n" if $failed <= 5;
}

sub post { request('POST', $admin, "/upstream/$_[0]", 'localhost', $_[1]) }

sub proxied {
    my ($host, @ports) = @_;
    my $res = request('GET', $proxy, '/', $host);
    check($res, 200, "proxy to $host");
    my ($port) = $res->{body} =~ /^(\d+)/;
    $failed++ unless defined $port && grep { $_ == $port } @ports;
}

sub cycle {
    my ($i) = @_;
    my $name = "cyc" . ($i % 50);
    check(post($name, "server 127.0.0.1:$b1;"), 200, 'create');
    proxied($name, $b1);
    check(post($name, "server 127.0.0.1:$b1; server 127.0.0.1:$b2 weight=2;"), 200, 'replace');
    proxied($name, $b1, $b2);
    check(request('DELETE', $admin, "/upstream/$name", 'localhost'), 200, 'delete');
    check(post('confhost', $i % 2 ? "server 127.0.0.1:$b1;" : "server 127.0.0.1:$b2;"), 200, 'replace config upstream');
    proxied('confhost', $b1, $b2);
}

sub usage {
    my $status = request('GET', $admin, '/status', 'localhost')->{body};
    my ($pages, $free) = $status =~ /pages=(\d+) free_pages=(\d+)/;
    open(my $fh, '<', $pidfile) or die "pid file: $!";
    chomp(my $master = <$fh>);
    my $rss = 0;
    opendir(my $proc, '/proc') or die;
    for my $pid (grep { /^\d+$/ } readdir $proc) {
        open(my $st, '<', "/proc/$pid/status") or next;
        my ($ppid, $kb) = (0, 0);
        while (<$st>) {
            $ppid = $1 if /^PPid:\s+(\d+)/;
            $kb = $1 if /^VmRSS:\s+(\d+)/;
        }
        $rss += $kb if $ppid == $master;
    }
    return ($pages - $free, $rss);
}

for (1 .. 1200) { last if eval { request('GET', $admin, '/status', 'localhost')->{status} == 200 }; sleep 0.05 }
cycle($_) for 1 .. 200;    # warm-up: pools, connections, first versions
my ($used_before, $rss_before) = usage();
my $start = time;
cycle($_) for 1 .. $cycles;
my $elapsed = time - $start;
my ($used_after, $rss_after) = usage();

printf "== dyups-cycles: %d cycles (create, proxy, replace, proxy, delete, replace config upstream, proxy)\n", $cycles;
printf "operations:           %d in %.1f s (%.0f/s)\n", $cycles * 7, $elapsed, $cycles * 7 / $elapsed;
printf "zone pages used:      %d before, %d after\n", $used_before, $used_after;
printf "worker RSS (2, KiB):  %d before, %d after (%+d)\n", $rss_before, $rss_after, $rss_after - $rss_before;
printf "failed requests:      %d\n", $failed;
my $ok = $failed == 0 && $used_after <= $used_before + 1;
print $ok ? "RESULT: PASS\n" : "RESULT: FAIL\n";
exit($ok ? 0 : 1);
PERL
status=$?
stop_nginx
trap - EXIT
alerts=$(grep -cE '\[(alert|crit|emerg)\]|exited on signal' "$out/logs/error.log" || true)
echo "alert/crit/signal:    $alerts"
[ "$alerts" = 0 ] || status=1
if [ "$valgrind" = 1 ]; then
    invalid=$(cat "$out"/logs/valgrind.*.log | grep -cE 'Invalid (read|write)|uninitialised|Invalid free' || true)
    echo "valgrind errors:      $invalid (logs: $out/logs/valgrind.*.log)"
    [ "$invalid" = 0 ] || status=1
fi
exit $status
