#!/usr/bin/perl
# Helper of scripts/bench.sh: the timed clients that wrk cannot be.
#
#   bench.pl peers-grow   DYN_PORT UPSTREAM FROM TO     zone peers: add up to TO, then time ops at TO
#   bench.pl zone-max     DYN_PORT UPSTREAM             add peers until 507; print the count
#   bench.pl dyups-grow   ADMIN_PORT PROXY_PORT FROM TO BODY [WORKERS]
#                         run-time upstreams up to TO, then time ops (PROXY_PORT 0: no
#                         proxied requests; else its answers carry X-Worker: PID)
#   bench.pl api-changes  DYN_PORT UPSTREAM SERVER COUNT PACE_MS   down/up through the API
#   bench.pl paced-get    PORT PATH COUNT PACE_MS        the same pacing for any GET (a control)
#   bench.pl reload-changes CONF_DIR PIDFILE WORKERS COUNT PACE_MS  down/up by rewriting the conf + HUP
#   bench.pl propagation  PROXY_PORT ADMIN_PORT NAME PORT_A PORT_B WORKERS TRIALS
#   bench.pl rss          PIDFILE OUTFILE                peak summed VmRSS (KiB) of master + children, every 50 ms, until TERM
#
# Every measurement is printed as "metric<TAB>value<TAB>unit", one a line;
# bench.sh adds the scenario, arm and round and appends them to raw.tsv.
# Times are from CLOCK_MONOTONIC.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../../t/lib";
use HttpClient;
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC sleep);

$| = 1;
sub now { clock_gettime(CLOCK_MONOTONIC) }

# --- The keep-alive client of t/ and scripts/ (t/lib/HttpClient.pm).
my $client = HttpClient->new(timeout => 10);

# request(METHOD, PORT, PATH, body => B, host => H, key => K): see
# HttpClient::request.
sub request {
    my ($method, $port, $path, %opt) = @_;
    return $client->request($method, $port, $path, $opt{host}, $opt{body}, $opt{key});
}

# A request on a fresh connection (Connection: close), for the workers'
# spread: with reuseport every new connection lands on a hashed worker.
sub one_shot {
    my ($port, $path, $host) = @_;
    return $client->once('GET', $port, $path, $host);
}

# timed(ARGS of request): (seconds, response).
sub timed {
    my @args = @_;
    my $t = now();
    my $res = request(@args);
    my $dt = now() - $t;
    return ($dt, $res);
}

sub median {
    my @v = sort { $a <=> $b } @_;
    return 0 unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub pct {
    my ($p, @v) = @_;
    @v = sort { $a <=> $b } @v;
    return 0 unless @v;
    my $i = int($p / 100 * @v + 0.999999) - 1;
    $i = 0 if $i < 0;
    $i = $#v if $i > $#v;
    return $v[$i];
}

sub out { printf "%s\t%s\t%s\n", $_[0], (($_[1] =~ /\./) ? sprintf('%.3f', $_[1]) : $_[1]), $_[2] }
sub us { $_[0] * 1e6 }

my $failures = 0;
sub expect {
    my ($res, $code, $what) = @_;
    return 1 if $res->{status} == $code;
    $failures++;
    my $c = substr($res->{body} // '', 0, 200);
    $c =~ s/\s+/ /g;
    print STDERR "bench.pl: $what answered $res->{status} (expected $code): $c\n" if $failures <= 5;
    return 0;
}

# Peer address number $i, never routed to (nothing proxies to these
# upstreams): 127.1.X.Y:Z.
sub peer_addr {
    my ($i) = @_;
    return sprintf('127.1.%d.%d:%d', ($i >> 8) & 255, $i & 255, 1000 + ($i >> 16));
}

my $cmd = shift @ARGV // die "usage: see the head of $0\n";

if ($cmd eq 'peers-grow') {
    my ($port, $up, $from, $to) = @ARGV;
    my $q = "/dynamic?upstream=$up";
    my @adds;
    my $last_bytes = 0;
    for my $i ($from .. $to - 1) {
        my ($dt, $res) = timed('GET', $port, "$q&add=&server=" . peer_addr($i));
        expect($res, 200, "add peer $i") or last;
        push @adds, $dt;
        $last_bytes = length $res->{body};
    }
    # adds close to the target size (the last 100, or all for small steps)
    my @tail = @adds > 100 ? @adds[-100 .. -1] : @adds;
    out('add_us', us(median(@tail)), 'us');
    out('add_response_bytes', $last_bytes, 'B');
    my (@upd, @list, @down, @rm);
    my $n = $to + 1;    # plus the peer of the configuration
    for my $k (1 .. 100) {
        # a random peer of those added (the list is searched by address)
        my ($dt, $res) = timed('GET', $port, "$q&server=" . peer_addr(int(rand($to))) . '&weight=' . (1 + $k % 7));
        expect($res, 200, 'weight update');
        push @upd, $dt;
    }
    out('update_us', us(median(@upd)), 'us');
    for my $k (1 .. 50) {
        my $a = peer_addr(($k * 7919) % $to);
        my ($dt, $res) = timed('GET', $port, "$q&server=$a&down=");
        expect($res, 200, 'down');
        push @down, $dt;
        ($dt, $res) = timed('GET', $port, "$q&server=$a&up=");
        expect($res, 200, 'up');
        push @down, $dt;
    }
    out('downup_us', us(median(@down)), 'us');
    my $reps = $n >= 5000 ? 10 : 30;
    my $list_bytes = 0;
    for (1 .. $reps) {
        my ($dt, $res) = timed('GET', $port, $q);
        expect($res, 200, 'list');
        push @list, $dt;
        $list_bytes = length $res->{body};
    }
    out('list_us', us(median(@list)), 'us');
    out('list_bytes', $list_bytes, 'B');
    for my $k (1 .. 30) {
        my $a = peer_addr(900000 + $k);
        my ($dt, $res) = timed('GET', $port, "$q&add=&server=$a");
        expect($res, 200, 'extra add');
        ($dt, $res) = timed('GET', $port, "$q&remove=&server=$a");
        expect($res, 200, 'remove');
        push @rm, $dt;
    }
    out('remove_us', us(median(@rm)), 'us');
    out('failures', $failures, 'count');
    exit 0;
}

if ($cmd eq 'zone-max') {
    my ($port, $up) = @ARGV;
    my $q = "/dynamic?upstream=$up";
    my $peers = scalar(() = request('GET', $port, $q)->{body} =~ /^server /mg);
    my $last;
    for my $i (0 .. 1_000_000) {
        $last = request('GET', $port, "$q&add=&server=" . peer_addr($i));
        last if $last->{status} != 200;
        $peers++;
    }
    my $reason = $last->{body};
    $reason =~ s/\s+/ /g;
    out('max_peers', $peers, 'peers');
    out('stop_status', $last->{status}, 'http');
    print STDERR "zone-max: stopped at $peers peers with $last->{status} $reason\n";
    exit 0;
}

if ($cmd eq 'dyups-grow') {
    my ($admin, $proxy, $from, $to, $body, $workers) = @ARGV;
    $workers //= 2;
    my @posts;
    for my $i ($from .. $to - 1) {
        my ($dt, $res) = timed('POST', $admin, "/upstream/up$i", body => $body);
        expect($res, 200, "POST up$i") or last;
        push @posts, $dt;
    }
    my @tail = @posts > 100 ? @posts[-100 .. -1] : @posts;
    out('post_create_us', us(median(@tail)), 'us');
    my (@replace, @after, @plain, @get);
    # One kept-alive proxy connection per worker (found by X-Worker). After
    # each POST, one request on each: the slowest is the worker that had to
    # sync its view of every upstream (the POST's own worker synced in the
    # POST); then again, with nothing to sync.
    my $target = 'up' . int($to / 2);
    my @wkeys;
    if ($proxy) {
        my %have;
        for my $k (1 .. 200) {
            my $key = "proxy$k";
            my $res = request('GET', $proxy, '/', host => $target, key => $key);
            my $pid = $res->{headers}{'x-worker'};
            if (defined $pid && !$have{$pid}++) {
                push @wkeys, $key;
            } else {
                $client->forget($key);
            }
            last if @wkeys >= $workers;
        }
        print STDERR "bench.pl: proxy connections reach only " . scalar(@wkeys) . " of $workers workers\n" if @wkeys < $workers;
    }
    my $reps = 50;
    my $slowest = sub {
        my ($what) = @_;
        my $max = 0;
        for my $key (@wkeys) {
            my ($dt, $res) = timed('GET', $proxy, '/', host => $target, key => $key);
            expect($res, 200, $what);
            $max = $dt if $dt > $max;
        }
        return $max;
    };
    for my $k (1 .. $reps) {
        my $name = 'up' . int(rand($to));
        my ($dt, $res) = timed('POST', $admin, "/upstream/$name", body => $body);
        expect($res, 200, "POST replace $name");
        push @replace, $dt;
        next unless @wkeys;
        push @after, $slowest->('proxy after a change');
        push @plain, $slowest->('proxy');
    }
    my @status;
    my (@one, @list);
    for (1 .. ($to >= 5000 ? 5 : 20)) {
        my ($dt, $res) = timed('GET', $admin, '/detail');
        expect($res, 200, 'GET /detail');
        push @get, $dt;
        ($dt, $res) = timed('GET', $admin, '/list');
        expect($res, 200, 'GET /list');
        push @list, $dt;
        ($dt, $res) = timed('GET', $admin, "/upstream/$target");
        expect($res, 200, "GET /upstream/$target");
        push @one, $dt;
        ($dt, $res) = timed('GET', $admin, '/status');
        expect($res, 200, 'GET /status');
        push @status, $dt;
    }
    my $status = request('GET', $admin, '/status')->{body};
    my ($pages, $free, $n) = $status =~ /pages=(\d+) free_pages=(\d+) upstreams=(\d+)/;
    out('post_replace_us', us(median(@replace)), 'us');
    out('status_us', us(median(@status)), 'us');
    if (@wkeys) {
        out('proxy_after_change_us', us(median(@after)), 'us');
        out('proxy_plain_us', us(median(@plain)), 'us');
    }
    out('detail_us', us(median(@get)), 'us');
    out('list_us', us(median(@list)), 'us');
    out('get_one_us', us(median(@one)), 'us');
    if (defined $pages) {
        out('dyups_zone_used_bytes', ($pages - $free) * 4096, 'B');
        out('dyups_bytes_per_upstream', ($pages - $free) * 4096 / ($n || 1), 'B');
        out('dyups_upstreams', $n, 'count');
    }
    out('failures', $failures, 'count');
    exit 0;
}

# paced_gets(PORT, COUNT, PACE_MS, PATH_OF_K): COUNT timed GETs on one
# kept-alive connection, one per PACE_MS at most (0: back to back), each
# expected to answer 200; returns their times.
sub paced_gets {
    my ($port, $count, $pace_ms, $path_of) = @_;
    my @t;
    for my $k (1 .. $count) {
        my $slot = now();
        my $path = $path_of->($k);
        my ($dt, $res) = timed('GET', $port, $path);
        expect($res, 200, "GET $path");
        push @t, $dt;
        my $left = $pace_ms / 1000 - (now() - $slot);
        sleep($left) if $left > 0;
    }
    return @t;
}

if ($cmd eq 'api-changes') {
    my ($port, $up, $server, $count, $pace_ms) = @ARGV;
    my $start = now();
    my @t = paced_gets($port, $count, $pace_ms,
                       sub { "/dynamic?upstream=$up&server=$server&" . ($_[0] % 2 ? 'down' : 'up') . '=' });
    out('change_ms', median(@t) * 1000, 'ms');
    out('change_max_ms', pct(100, @t) * 1000, 'ms');
    out('arm_wall_s', now() - $start, 's');
    out('failures', $failures, 'count');
    exit 0;
}

if ($cmd eq 'paced-get') {
    my ($port, $path, $count, $pace_ms) = @ARGV;
    my @t = paced_gets($port, $count, $pace_ms, sub { $path });
    out('request_ms', median(@t) * 1000, 'ms');
    out('failures', $failures, 'count');
    exit 0;
}

sub children_of {
    my ($ppid) = @_;
    my @kids;
    opendir(my $d, '/proc') or die;
    for my $pid (grep { /^\d+$/ } readdir $d) {
        open(my $st, '<', "/proc/$pid/stat") or next;
        my $line = <$st> // next;
        # pid (comm) state ppid ...
        my ($state, $pp) = $line =~ /\)\s+(\S)\s+(\d+)/ or next;
        push @kids, $pid if $pp == $ppid && $state ne 'Z';
    }
    return @kids;
}

if ($cmd eq 'reload-changes') {
    # CONF_DIR has nginx.conf (live), nginx.conf.down and nginx.conf.up.
    my ($dir, $pidfile, $workers, $count, $pace_ms) = @ARGV;
    open(my $fh, '<', $pidfile) or die "pid file $pidfile: $!";
    chomp(my $master = <$fh>);
    my (@t, @leftover);
    my $start = now();
    for my $k (1 .. $count) {
        my $slot = now();
        my $which = $k % 2 ? 'down' : 'up';
        my @old = children_of($master);
        my $t0 = now();
        # rename(2) is atomic: the master reads either file, never half of one
        system('cp', "$dir/nginx.conf.$which", "$dir/nginx.conf.tmp") == 0 or die;
        rename("$dir/nginx.conf.tmp", "$dir/nginx.conf") or die "rename: $!";
        kill 'HUP', $master or die "HUP $master: $!";
        # Done when every old worker is gone and the new ones run: then
        # every worker routes by the new configuration.
        my %old = map { $_ => 1 } @old;
        my $deadline = $t0 + 30;
        while (1) {
            my @now = children_of($master);
            my $old_left = grep { $old{$_} } @now;
            last if !$old_left && @now >= $workers;
            if (now() > $deadline) { push @leftover, $k; last }
            sleep(0.001);
        }
        push @t, now() - $t0;
        my $left = $pace_ms / 1000 - (now() - $slot);
        sleep($left) if $left > 0;
    }
    out('change_ms', median(@t) * 1000, 'ms');
    out('change_max_ms', pct(100, @t) * 1000, 'ms');
    out('arm_wall_s', now() - $start, 's');
    out('failures', scalar @leftover, 'count');
    exit 0;
}

if ($cmd eq 'propagation') {
    my ($proxy, $admin, $name, $pa, $pb, $workers, $trials) = @ARGV;
    my $stale_total = 0;
    my $timeouts = 0;
    my $state = $pa;
    expect(request('POST', $admin, "/upstream/$name", body => "server 127.0.0.1:$pa;"), 200, 'POST initial');
    # warm every worker up
    for (1 .. 200) { one_shot($proxy, '/', $name) }
    for my $k (1 .. $trials) {
        for my $change (1, 0) {
            my $new = $state;
            my $t0;
            if ($change) {
                $new = $state == $pa ? $pb : $pa;
                my $res = request('POST', $admin, "/upstream/$name", body => "server 127.0.0.1:$new;");
                $t0 = now();    # the POST's 200 is in
                expect($res, 200, 'POST switch');
            } else {
                $t0 = now();
            }
            my (%seen, $stale, $conns);
            ($stale, $conns) = (0, 0);
            while (keys %seen < $workers) {
                my $res = one_shot($proxy, '/', $name);
                $conns++;
                my $pid = $res->{headers}{'x-worker'};
                my ($port) = $res->{body} =~ /(\d+)/;
                if ($res->{status} != 200 || !defined $pid) {
                    $failures++;
                } elsif (defined $port && $port == $new) {
                    $seen{$pid} //= now() - $t0;
                } else {
                    $stale++;
                }
                if (now() - $t0 > 5) { $timeouts++; last }
            }
            my $max = 0;
            for (values %seen) { $max = $_ if $_ > $max }
            if ($change) {
                out('all_workers_new_ms', $max * 1000, 'ms');
                out('stale_answers', $stale, 'count');
                out('connections_needed', $conns, 'count');
                $stale_total += $stale;
                $state = $new;
            } else {
                out('all_workers_seen_ms', $max * 1000, 'ms');
                out('connections_needed_nochange', $conns, 'count');
            }
        }
    }
    out('stale_total', $stale_total, 'count');
    out('timeouts', $timeouts, 'count');
    out('failures', $failures, 'count');
    exit 0;
}

if ($cmd eq 'rss') {
    my ($pidfile, $outfile) = @ARGV;
    my $peak = 0;
    my $stop = 0;
    $SIG{TERM} = sub { $stop = 1 };
    $SIG{INT} = sub { $stop = 1 };
    open(my $fh, '<', $pidfile) or die "pid file $pidfile: $!";
    chomp(my $master = <$fh>);
    close $fh;
    while (!$stop) {
        my $sum = 0;
        for my $pid ($master, children_of($master)) {
            open(my $st, '<', "/proc/$pid/status") or next;
            while (<$st>) { if (/^VmRSS:\s+(\d+)/) { $sum += $1; last } }
        }
        $peak = $sum if $sum > $peak;
        sleep(0.05);
    }
    open(my $o, '>', $outfile) or die;
    print $o "$peak\n";
    close $o;
    exit 0;
}

die "bench.pl: unknown command $cmd\n";
