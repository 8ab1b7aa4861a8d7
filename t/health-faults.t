# Active health checks against faults: peers that answer badly (silent,
# closing mid-line, garbage, a status line past the parser's 4 KiB, a
# 1 MiB body, chunked) each get their verdict and crash nothing; a worker
# killed while its probes are in flight is replaced by one that probes
# again, and a graceful quit with probes in flight exits at once.
use lib 't/lib';
use NginxTest;
use NginxTest::Backend qw(backend wait_until spread);
use NginxTest::Files;
use NginxTest::Gdb;
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();

# raw_peer(PORT, MODE): a forked peer that answers every connection as
# MODE says; killed at the end of the file.
my @kids;
sub raw_peer {
    my ($port, $mode) = @_;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 64, ReuseAddr => 1)
        or die "listen $port: $!";
    my $pid = fork // die "fork: $!";
    if ($pid) { close $l; push @kids, $pid; return $pid }
    my @hold;
    while (my $c = $l->accept) {
        if ($mode eq 'silent') { push @hold, $c; next }
        # The probe's request read first: a close with it unread would be a
        # reset (a connection error), not the close the mode means.
        sysread($c, my $request, 65536) if IO::Select->new($c)->can_read(1);
        if ($mode eq 'half') { print $c "HTTP/1.1 20" }
        elsif ($mode eq 'garbage') { print $c "\x00\xffSSH-2.0-OpenSSH\r\n" }
        elsif ($mode eq 'huge_line') { print $c 'HTTP/1.1 200 ' . ('A' x 65536) }
        elsif ($mode eq 'huge_body') { print $c "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" . ('B' x 1048576) }
        elsif ($mode eq 'chunked') { print $c "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" }
        close $c;
    }
    POSIX::_exit(0);
}
END { kill 'KILL', @kids if @kids }

# Each peer's "HEALTH LAST_ERROR" in the query API's JSON.
sub health {
    my $j = JSON::PP->new->decode(http_get('/dynamic?upstream=backends&format=json')->{body});
    return { map { $_->{name} => "$_->{health} $_->{last_error}" } @{ $j->{peers} } };
}

sub logged {
    my ($re) = @_;
    open my $fh, '<', prefix() . 'logs/error.log' or return 0;
    return scalar grep { $_ =~ $re } <$fh>;
}

# 1,000 checked servers of one upstream (addresses nothing listens on:
# their probes go to port= instead).
$ENV{TEST_NGINX_MANY_SERVERS} = join '', map { "    server 127.0.0.1:$_ max_fails=0;\n" } 30000 .. 30999;
# Those 1,000 servers, probed on port 2 (see hanging_listener) with a 20 s
# timeout, and a location that answers without them.
$ENV{TEST_NGINX_MANY_HANGING} = "check_shm_size 4m;\nupstream many {\n    zone many 2m;\n$ENV{TEST_NGINX_MANY_SERVERS}" . <<'NGINX';
    check interval=500 rise=1 fall=1 timeout=20000 default_down=false type=http port=$TEST_NGINX_PORT_2;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_3; location /ok { return 200 "ok\n"; } }
NGINX

# A listener on PORT that completes every connection (a backlog of 2048,
# never accepted) and answers none: a probe of it holds its connection
# until its timeout.
sub hanging_listener {
    my ($port) = @_;
    my $listener = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 2048, ReuseAddr => 1)
        or die "listen: $!";
    return $listener;
}

run_tests();
__DATA__

=== TEST 1: hostile peers: silent, closing mid-line, garbage, a 64 KiB status line, a 1 MiB body, chunked
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_3 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_4 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_5 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_6 max_fails=0;
    check interval=200 rise=1 fall=1 timeout=300 default_down=false type=http;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my @modes = qw(silent half garbage huge_line huge_body chunked);
main::raw_peer(port($_ + 1), $modes[$_]) for 0 .. $#modes;
my $want = {
    "127.0.0.1:" . port(1) => 'down timed out',
    "127.0.0.1:" . port(2) => 'down closed before a status line',
    "127.0.0.1:" . port(3) => 'down invalid status line',
    "127.0.0.1:" . port(4) => 'down status line longer than 4096 bytes',
    "127.0.0.1:" . port(5) => 'up ',
    "127.0.0.1:" . port(6) => 'up ',
};
my $json = JSON::PP->new->canonical;
ok(defined main::wait_until(4, sub { $json->encode(main::health()) eq $json->encode($want) }), 'each peer has its verdict')
    or diag(explain(main::health()));

=== TEST 2: a worker killed with -9 while probing: the new worker probes again; a graceful quit with probes in flight exits at once
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=200 rise=1 fall=1 timeout=60000 default_down=false type=http;
}
--- config
location / { proxy_pass http://backends; proxy_next_upstream off; }
--- perl
my $b1 = main::backend(port(1));
# Port 2 accepts and never answers: its probe stays in flight (timeout 60 s).
my $silent = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => port(2), Listen => 64, ReuseAddr => 1)
    or die "listen: $!";
ok(IO::Select->new($silent)->can_read(5), 'a probe is in flight on the silent peer');
my @old = worker_pids();
kill 'KILL', @old;
ok(poll_until(sub { my @new = worker_pids(); @new == @old && !grep { my $o = $_; grep { $_ == $o } @new } @old }, 5),
    'the workers are replaced');
my $before = $b1->accepted;
ok(defined main::wait_until(3, sub { $b1->accepted >= $before + 3 }), 'the live peer is probed again');
my $master = master_pid();
kill 'QUIT', $master;
ok(poll_until(sub { !kill(0, $master) }, 5), 'a graceful quit with probes in flight exits within 5 s');
# (A worker killed while it held a zone's mutex makes the master unlock it,
# with an alert of nginx's own.)
is(main::logged(qr/open socket|\[alert\](?!.*(exited on signal 9|was locked by))/), 0, 'no socket left open, no alert')
    or diag(`grep -E 'alert|open socket' ${\ prefix()}logs/error.log`);
--- allow_error_log
exited on signal 9
shared memory zone ".*" was locked by \d+


=== TEST 3: probes that hang keep clients' connections: a worker keeps a quarter of its worker_connections for probes, and never has nginx close an idle client connection for one
--- workers: 1
--- http_config
$TEST_NGINX_MANY_HANGING
--- config
--- perl
# Before, the one worker's 1,024 connections all went to the 1,000 probes:
# nginx closed idle keep-alive clients to make room, then new ones at once.
my $hang = main::hanging_listener(port(2));
my $keepalive = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(3)) or die "connect: $!";
sub ask {
    my ($sock) = @_;
    print $sock "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n";
    my $answer = '';
    while (IO::Select->new($sock)->can_read(5)) {
        my $n = sysread($sock, $answer, 4096, length $answer);
        last if !$n || $answer =~ /\r\n\r\nok\n/;
    }
    return $answer =~ m{^HTTP/1.1 200 .*ok\n$}s ? 'ok' : 'closed';
}
is(ask($keepalive), 'ok', 'an idle keep-alive client before the probes start');
my $worker = (worker_pids())[0];
# The worker's sockets: its probes, its listeners and its clients.
my $sockets = sub { scalar grep { (readlink($_) // '') =~ /^socket:/ } glob("/proc/$worker/fd/*") };
ok(poll_until(sub { main::logged(qr/health checks: \d+ probes wait for a connection/) }, 10, 'probes capped'),
   'the worker says its probes wait for connections');
ok(poll_until(sub { $sockets->() >= 256 }, 5, 'a quarter probe'), 'a quarter of the 1,024 connections probe');
ok(!defined main::wait_until(2, sub { $sockets->() > 256 + 10 }), 'and no more, for four ticks')
    or diag('sockets: ' . $sockets->());
is(ask($keepalive), 'ok', 'the idle keep-alive client is still served');
my @fresh = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(3)) } 1 .. 20;
is(join(' ', map { ask($_) } @fresh), join(' ', ('ok') x 20), 'twenty new clients are served');
is(main::logged(qr/worker_connections are not enough|\[alert\]|\[crit\]/), 0, 'nginx never ran out of connections');
--- no_error_log
[alert]

=== TEST 4: probes that wait for room take turns: with a quarter of the connections for 1,000 hanging probes, every server is probed within seconds
--- workers: 1
--- http_config
check_shm_size 4m;
upstream many {
    zone many 2m;
$TEST_NGINX_MANY_SERVERS
    check interval=500 rise=1 fall=1 timeout=1000 default_down=false type=http port=$TEST_NGINX_PORT_2;
}
--- config
location /status { check_status json; }
--- perl
# Each probe hangs for its 1 s timeout: 256 at a time probe the 1,000
# servers in about 4 s. Before, each tick gave the room to the lowest slots
# due, which were due again when their probes ended: the others never got
# a probe.
my $hang = main::hanging_listener(port(2));
my $never_checked = sub { my @n = http_get('/status')->{body} =~ /"last_check": 0\b/g; scalar @n };
ok(poll_until(sub { $never_checked->() == 0 }, 15, 'every server probed'), 'every one of the 1,000 servers is probed')
    or diag($never_checked->() . ' never probed');
--- allow_error_log
probes wait for a connection

=== TEST 5: a unix-socket peer that is gone: its probes' connect() failures are the verdict's line, not nginx's [crit] per probe per worker
--- http_config
upstream backends {
    zone backends 128k;
    server unix:$TEST_NGINX_DATA_DIR/gone.sock max_fails=0;
    check interval=100 rise=1 fall=1 timeout=1000 default_down=false type=http;
}
--- config
location / { proxy_pass http://backends; }
--- perl
# nginx logs a connect() that fails at once itself, at its own level
# ([crit] for ENOENT, [error] for EAGAIN), whatever the connection's
# log_error: before, one such line per probe per worker, forever.
ok(poll_until(sub { error_log_text() =~ /gone\.sock of upstream "backends" is down \(connect failed: 2: No such file or directory\)/ },
              5, 'down'), 'the verdict names the error');
my $verdicts = sub { my @n = error_log_text() =~ /health check: server unix:\S+gone\.sock of upstream "backends" is down/g; scalar @n };
ok(!defined main::wait_until(1, sub { $verdicts->() > 1 }), 'one line, for ten probes a second in each worker');
is(main::logged(qr/connect\(\) to unix:\S+gone\.sock failed/), 0, 'none of nginx\'s own');

=== TEST 6: a busy worker still probes: with three quarters of its connections held by idle clients, a peer that dies is taken down
--- workers: 1
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=200 rise=1 fall=1 timeout=1000 default_down=false type=http;
}
--- config
location / { proxy_pass http://backends; proxy_next_upstream off; }
--- perl
# Review 20: a first version started a probe only while a quarter of the
# connections were free: a worker this busy checked nothing.
my ($b1, $b2) = (main::backend(port(1)), main::backend(port(2)));
my @idle = grep { defined } map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port()) } 1 .. 800;
is(scalar @idle, 800, '800 of the worker\'s 1,024 connections held by idle clients');
$b1->stop;
ok(poll_until(sub { error_log_text() =~ /127\.0\.0\.1:${\ port(1)} of upstream "backends" is down/ }, 5, 'down'),
   'the dead peer is taken down');

=== TEST 7: probes leave clients file descriptors: with worker_rlimit_nofile 128, 1,000 hanging probes hold at most 32
--- workers: 1
--- main_config
worker_rlimit_nofile 128;
--- http_config
$TEST_NGINX_MANY_HANGING
--- config
--- perl
# Review 20: the cap counted worker_connections only: hanging probes took
# every descriptor, and nginx refused every client (accept4() failed (24)).
my $hang = main::hanging_listener(port(2));
ok(poll_until(sub { main::logged(qr/health checks: \d+ probes wait for a connection: 32 are in flight, .* of the 128 connections it can have/) },
              10, 'capped'), 'the worker caps its probes at a quarter of its descriptors');
my @answers = map { http_get('http://127.0.0.1:' . port(3) . '/ok')->{status} } 1 .. 20;
is("@answers", join(' ', (200) x 20), 'clients are served');
is(main::logged(qr/Too many open files/), 0, 'no descriptor ran out');

=== TEST 8: a worker that dies holding the health zone's mutex while the master reads a reload's configuration: the master takes the mutex from it and the reload completes (the master waited on it for ever, deaf to every signal, while nginx, which frees a dead worker's mutexes when it reaps it, reaps nothing during a reload; hunt 24)
--- workers: 2
--- http_config
check_shm_size 1m;
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    check interval=100 rise=1 fall=1 timeout=1000 type=http;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "ok\n";
}
--- config
location / { proxy_pass http://backends; }
location /status { check_status json; }
--- perl
my $master = master_pid();
my ($worker, @others) = worker_pids();
# The health zone: the only shared mapping of 1 MiB (check_shm_size).
no warnings 'portable'; # 64-bit addresses
my @zones = grep { $_->[1] - $_->[0] == 1 << 20 }
            map { /^([0-9a-f]+)-([0-9a-f]+) rw-s / ? [hex $1, hex $2] : () } split /\n/, main::slurp("/proc/$worker/maps");
is(scalar @zones, 1, 'the health zone mapped in the worker');
my $zone = $zones[0][0];
# gdb stops the worker at the unlock of that zone's mutex (a probe's
# verdict), stops it there with SIGSTOP, and lets go: it holds the mutex.
my $gdb_out = main::gdb_batch($worker, undef, "break ngx_shmtx_unlock if *(long *) \$rdi == $zone", 'continue',
                              "shell kill -STOP $worker", 'detach', 'quit');
ok(poll_until(sub { (main::slurp("/proc/$worker/stat") // '') =~ /^\d+ \(.*\) T /s }, 5, 'stopped'),
   "worker $worker stopped holding the health zone's mutex") or diag($gdb_out);
kill 'HUP', $master or die "kill HUP: $!";
ok(poll_until(sub { error_log_text() =~ /shared zone "dynamic_upstream_check_v\d+" has been locked by process $worker for 1 s/ }, 10, 'waits'),
   'the reload waits for the mutex, saying so');
kill 'KILL', $worker;
ok(poll_until(sub { error_log_text() =~ /shared zone "dynamic_upstream_check_v\d+" was locked by process $worker, which has ended: unlocked/ }, 10, 'taken'),
   'once the worker is dead the master takes the mutex from it');
my @now;
ok(poll_until(sub { @now = worker_pids(); @now == 2 && !grep { $_ == $worker || $_ == $others[0] } @now }, 15, 'reloaded'),
   'the reload completes: two new workers') or diag("workers: @now");
is(http_get('/')->{body}, "ok\n", 'requests are served');
my $status;
ok(poll_until(sub {
    my $r = http_get('/status');
    $status = $r->{status} == 200 ? JSON::PP::decode_json($r->{body}) : undef;
    $status && 2 == grep { $_->{status} eq 'up' } @{ $status->{servers}{server} };
}, 5, 'checked'), 'both servers checked and up') or diag(explain($status));
--- allow_error_log
exited on signal 9

=== TEST 9: a replace that shortens a run-time upstream's check interval while a probe of a server it keeps is in flight: that probe hands the server back on the new interval (review 26: on the old one, 30 s here, which the replace could not change while the probe held the server)
--- http_config
check_shm_size 1m;
--- config
location / { dyups_interface; }
location /api { dynamic_upstream_api; }
--- perl
my $p1 = port(1);
my $hang = main::hanging_listener($p1);
my $checks = sub {
    my $r = http_get('/api/9/http/upstreams/dy');
    return $r->{status} == 200 ? JSON::PP->new->decode($r->{body})->{peers}[0]{health_checks}{checks} : -1;
};
my $in_flight = sub { scalar grep { /:$p1\b/ } split /\n/, `ss -Htn state established '( dport = :$p1 )'` };
my $check = 'rise=1 fall=1 timeout=1000 default_down=false type=http';
is(http('POST', '/upstream/dy', "server 127.0.0.1:$p1; check interval=30000 $check;")->{status}, 200, 'POST, interval 30 s');
ok(poll_until(sub { $in_flight->() >= 1 }, 3, 'probing'), 'its first probe is in flight (it waits out its 1 s timeout)');
is(http('POST', '/upstream/dy', "server 127.0.0.1:$p1; check interval=200 $check;")->{status}, 200, 'POST, interval 0.2 s');
is($checks->(), 0, '  while the probe is still in flight');
ok(poll_until(sub { $checks->() >= 2 }, 4, 'probed again'), 'the server is probed again on the new interval') or diag($checks->());
