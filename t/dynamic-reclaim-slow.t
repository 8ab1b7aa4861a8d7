# Removed peers are freed while a slow request is still in flight: only
# the peer that request holds waits for it (on every balancer that accepts
# removals), and a request that moved on keeps its first peer's name.
use lib 't/lib';
use NginxTest;
use NginxTest::Traffic;
use IO::Select;
use IO::Socket::INET;

# A peer name of fixed length for churn number $i (0 .. 9999): same-size
# slab blocks every time, and no literal port.
sub churn_peer {
    my ($i) = @_;
    return sprintf('127.1.%d.%d:%d', 100 + int($i / 100), 100 + $i % 100, port(2));
}

# Adds churn peers (with the query flags $flags) to upstream $up (default
# backends) until its zone is full (507); removes them again. Returns how
# many fitted.
sub zone_capacity {
    my ($flags, $up) = @_;
    $up //= 'backends';
    my $n = 0;
    while (1) {
        my $add = http_get("/dynamic?upstream=$up&add=$flags&server=" . churn_peer($n));
        last if $add->{status} == 507;
        die "add $n: $add->{status} $add->{body}" if $add->{status} != 200 || $n > 5000;
        $n++;
    }
    for my $i (0 .. $n - 1) {
        my $remove = http_get("/dynamic?upstream=$up&remove=&server=" . churn_peer($i));
        die "remove $i: $remove->{status} $remove->{body}" if $remove->{status} != 200;
    }
    return $n;
}

# Adds and removes $cycles churn peers (with $flags) in upstream $up
# (default backends), one at a time; true if every change succeeded.
sub churn {
    my ($flags, $cycles, $up) = @_;
    $up //= 'backends';
    for my $i (0 .. $cycles - 1) {
        my $add = http_get("/dynamic?upstream=$up&add=$flags&server=" . churn_peer($i));
        my $remove = http_get("/dynamic?upstream=$up&remove=&server=" . churn_peer($i));
        next if $add->{status} == 200 && $remove->{status} == 200;
        diag("cycle $i: add $add->{status} $add->{body}remove $remove->{status} $remove->{body}");
        return 0;
    }
    return 1;
}

# The upstream (backends through the main server, or $up through port(9)
# with Host $up) starts with the one peer 127.0.0.1:port(1) reachable (a
# backup when $flags is '&backup='). A request is held on it, the peer is
# removed, and peers (with $flags) are added and removed until three times
# the zone's capacity went through it; then the request ends.
sub churn_past_slow_request {
    my ($flags, $up) = @_;
    my ($p1, $p2) = (port(1), port(2));
    my @via = $up ? (port(9), $up) : ();
    $up //= 'backends';
    my $log = prefix() . 'logs/upstream.log';
    truncate($log, 0) if -e $log;
    my $capacity = zone_capacity($flags, $up);
    ok($capacity > 10, "$up: the zone holds $capacity churn peers");

    my $listener = main::silent_backend($p1);
    my ($client, $upstream) = main::hold_proxied_request($listener, @via);
    is(http_get("/dynamic?upstream=$up&add=$flags&server=127.0.0.1:$p2")->{status}, 200, 'second peer added');
    is(http_get("/dynamic?upstream=$up&remove=&server=127.0.0.1:$p1")->{status}, 200, 'held peer removed');

    ok(churn($flags, 3 * $capacity, $up), '3 zones worth of churn while the slow request is in flight: every change succeeded');

    print $upstream "HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nslow done\n";
    close $upstream;
    my $reply = do { local $/; <$client> };
    like($reply, qr/^HTTP\/1\.1 200 .*\r\n\r\nslow done\n\z/s, 'the slow request completed on its removed peer');
    ok(poll_until(sub { -s $log }, 5, 'access log written'), 'logged');
    is(NginxTest::Files::slurp($log), "127.0.0.1:$p1 200\n", '$upstream_addr of the removed peer is logged intact');
    # Had the held peer been freed and its memory reused by the churn, its
    # free would have taken a connection off whatever lives there now.
    my $json = http_get("/dynamic?upstream=$up&format=json")->{body};
    my @conns = $json =~ /"conns":(\d+)/g;
    ok(@conns && !grep({ $_ != 0 } @conns), 'no remaining peer counts a connection') or diag($json);

    is(http_get("/dynamic?upstream=$up&add=$flags&server=127.0.0.1:$p1")->{status}, 200, 'held peer added back');
    is(http_get("/dynamic?upstream=$up&remove=&server=127.0.0.1:$p2")->{status}, 200, 'second peer removed');
    is(zone_capacity($flags, $up), $capacity, 'the zone holds as many peers as at the start: nothing leaked');
}

run_tests();
__DATA__

=== TEST 1: add/remove churn past a request that never gets an answer: every add fits, nothing leaks
--- workers: 1
--- http_config
log_format upstream '$upstream_addr $status';
upstream backends {
    zone small 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
location / {
    proxy_pass http://backends;
    proxy_read_timeout 1h;
    access_log logs/upstream.log upstream;
}
--- perl
main::churn_past_slow_request('');

=== TEST 2: the same with keepalive, the held peer and the churn in the backup list
--- workers: 1
--- http_config
log_format upstream '$upstream_addr $status';
upstream backends {
    zone small 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_3 down;
    server 127.0.0.1:$TEST_NGINX_PORT_1 backup;
    keepalive 4;
}
--- config
location /dynamic { dynamic_upstream; }
location / {
    proxy_pass http://backends;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_read_timeout 1h;
    access_log logs/upstream.log upstream;
}
--- perl
main::churn_past_slow_request('&backup=');

=== TEST 3: a worker killed while it held a request: the next worker serves and churn still succeeds
--- workers: 1
--- http_config
upstream backends {
    zone small 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "two\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; proxy_read_timeout 1h; }
--- allow_error_log
exited on signal 9
--- perl
my ($p1, $p2) = (port(1), port(2));
my $capacity = main::zone_capacity('');
my $listener = main::silent_backend($p1);
my ($client, $upstream) = main::hold_proxied_request($listener);
my ($worker) = worker_pids();
kill 'KILL', $worker;
ok(poll_until(sub { my @w = worker_pids(); @w == 1 && $w[0] != $worker }, 10, 'respawned'), 'a new worker runs');
is(http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$p2")->{status}, 200, 'second peer added');
is(http_get("/dynamic?upstream=backends&remove=&server=127.0.0.1:$p1")->{status}, 200, 'the dead request\'s peer removed');
ok(main::churn('', 3 * $capacity), '3 zones worth of churn after the kill: every change succeeded');
my $reply = http_get('/');
is("$reply->{status} $reply->{body}", "200 two\n", 'the new worker proxies to the remaining peer');

=== TEST 4: dyups: more workers than a block of grace-period slots, all killed while holding requests: replaced lists are still freed
--- workers: 66
--- http_config
dyups_shm_zone_size 256k;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; proxy_read_timeout 1h; }
}
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
--- perl
my ($p1, $p2) = (port(1), port(2));
is(http('POST', '/upstream/slow', "server 127.0.0.1:$p1;")->{status}, 200, 'upstream slow created');
# Every worker registers in the grace period (its sync timer) at start.
my $listener = main::silent_backend($p1, 1024);
# With reuseport, connections spread over the workers: every worker holds
# some of these requests (so do the ones that found no slot before the fix).
my (@clients, @upstreams);
for (1 .. 400) {
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(9)) or die "connect: $!";
    print $c "GET / HTTP/1.0\r\nHost: slow\r\n\r\n";
    push @clients, $c;
}
my $select = IO::Select->new($listener);
while (@upstreams < 400 && $select->can_read(10)) {
    push @upstreams, $listener->accept;
}
is(scalar @upstreams, 400, 'every request reached the silent backend');
my @killed = worker_pids();
kill 'KILL', @killed;
my %old = map { $_ => 1 } @killed;
ok(poll_until(sub { my @w = worker_pids(); @w == 66 && !grep { $old{$_} } @w }, 20, 'respawned'), '66 new workers run');
my $failed = '';
for my $i (1 .. 2000) {
    my $r = http('POST', '/upstream/churn', "server 127.0.0.1:$p2 weight=" . (1 + $i % 9) . ';');
    next if $r->{status} == 200;
    $failed = "replace $i: $r->{status} $r->{body}";
    last;
}
is($failed, '', '2000 replacements of one upstream in a 256k zone after the kill: every one succeeded');
close $_ for @upstreams, @clients;

=== TEST 5: dyups: replacements past a request that never gets an answer: every one fits, nothing leaks
--- http_config
dyups_shm_zone_size 256k;
log_format upstream '$upstream_addr $status';
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; proxy_read_timeout 1h; access_log logs/upstream.log upstream; }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $free_pages = sub { http_get('/status')->{body} =~ /free_pages=(\d+)/ ? $1 : die 'no /status' };
my $replace = sub {
    my ($name, $servers) = @_;
    my $r = http('POST', "/upstream/$name", $servers);
    return $r->{status} == 200 ? '' : "POST /upstream/$name: $r->{status} $r->{body}";
};
is($replace->('slow', "server 127.0.0.1:$p1;"), '', 'upstream slow created');
is($replace->('churn', "server 127.0.0.1:$p2;"), '', 'upstream churn created');
my $start = $free_pages->();

my ($client, $upstream) = main::hold_proxied_request(main::silent_backend($p1), port(9), 'slow');
is($replace->('slow', "server 127.0.0.1:$p1 weight=2;"), '', 'the held list replaced');

my $failed = '';
for my $i (1 .. 2000) {
    $failed = $replace->('churn', "server 127.0.0.1:$p2 weight=" . (1 + $i % 9) . ';') and last;
}
is($failed, '', '2000 replacements in a 256k zone while the slow request is in flight: every one succeeded');

print $upstream "HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nslow done\n";
close $upstream;
my $reply = do { local $/; <$client> };
like($reply, qr/^HTTP\/1\.1 200 .*\r\n\r\nslow done\n\z/s, 'the slow request completed on its replaced list');
ok(poll_until(sub { -s prefix() . 'logs/upstream.log' }, 5, 'access log written'), 'logged');
is(NginxTest::Files::slurp(prefix() . 'logs/upstream.log'), "127.0.0.1:$p1 200\n", '$upstream_addr intact');
is($replace->('churn', "server 127.0.0.1:$p2;"), '', 'one more replacement frees the list the request held');
is($free_pages->(), $start, 'the zone has as many free pages as at the start: nothing leaked');

=== TEST 6: a request fails over from its removed peer to a held one (nginx ≥ 1.27.3: it gets 502, no live upstreams); churn frees and reuses the first: $upstream_addr still names both
--- workers: 1
--- http_config
log_format upstream '$upstream_addr $status';
upstream backends {
    zone small 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
    server 127.0.0.1:$TEST_NGINX_PORT_4 down;
    server 127.0.0.1:$TEST_NGINX_PORT_1 weight=2;
}
--- config
location /dynamic { dynamic_upstream; }
location / {
    proxy_pass http://backends;
    proxy_next_upstream error;
    proxy_read_timeout 1h;
    access_log logs/upstream.log upstream;
}
--- perl
my ($p1, $p3) = (port(1), port(3));
my $capacity = main::zone_capacity('');
my $second = main::silent_backend($p3);
# Round robin's first pick is the heaviest peer, port 1. It is last in the
# list, so that removing it moves no peer to the position the request
# marked tried; the down peer keeps the list from being a single peer once
# it is removed (nginx gives up on a failed request of a single peer).
my ($client, $first_upstream) = main::hold_proxied_request(main::silent_backend($p1));
is(http_get("/dynamic?upstream=backends&remove=&server=127.0.0.1:$p1")->{status}, 200, 'held peer removed');
# The request's free of its failed peer must leave it nothing of that peer.
close $first_upstream;
if (nginx_at_least('1.27.3')) {
    # nginx's own rule: a request whose list changed since it started gets
    # no further peer from it (502, "no live upstreams"); the removed peer
    # it held was nginx's zombie, freed as the request let go.
    my $reply = do { local $/; <$client> };
    like($reply, qr/^HTTP\/1\.1 502 /, 'the request whose list changed gets no further peer: 502');
    ok(main::churn('', 3 * $capacity), '3 zones worth of churn after it: every change succeeded');
    ok(poll_until(sub { -s prefix() . 'logs/upstream.log' }, 5, 'access log written'), 'logged');
    is(NginxTest::Files::slurp(prefix() . 'logs/upstream.log'), "127.0.0.1:$p1, backends 502\n",
        '$upstream_addr names the removed peer (nginx copied its name)');
    like(error_log_text(), qr/no live upstreams while connecting to upstream/, 'logged as no live upstreams');
} else {
    IO::Select->new($second)->can_read(10) or die 'the request never failed over to the second peer';
    my $second_upstream = $second->accept or die "accept: $!";
    ok(main::churn('', 3 * $capacity), '3 zones worth of churn after the failover: every change succeeded');
    print $second_upstream "HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nslow done\n";
    close $second_upstream;
    my $reply = do { local $/; <$client> };
    like($reply, qr/^HTTP\/1\.1 200 .*\r\n\r\nslow done\n\z/s, 'the request completed on the second peer');
    ok(poll_until(sub { -s prefix() . 'logs/upstream.log' }, 5, 'access log written'), 'logged');
    is(NginxTest::Files::slurp(prefix() . 'logs/upstream.log'), "127.0.0.1:$p1, 127.0.0.1:$p3 200\n",
        '$upstream_addr names the freed peer and the second one');
}
my $json = http_get('/dynamic?upstream=backends&format=json')->{body};
my @conns = $json =~ /"conns":(\d+)/g;
ok(@conns == 2 && !grep({ $_ != 0 } @conns), 'no remaining peer counts a connection') or diag($json);

=== TEST 7: TEST 1 on least_conn, ip_hash and hash
--- workers: 1
--- http_config
log_format upstream '$upstream_addr $status';
upstream least_conn {
    least_conn;
    zone least_conn 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream ip_hash {
    ip_hash;
    zone ip_hash 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream hash {
    hash $request_uri;
    zone hash 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; proxy_read_timeout 1h; access_log logs/upstream.log upstream; }
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
main::churn_past_slow_request('', $_) for qw(least_conn ip_hash hash);

=== TEST 8: dyups: an old worker killed inside a grace-period section, whose slot no new worker takes: replaced lists are still freed
--- workers: 1
--- http_config
dyups_shm_zone_size 256k;
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
--- perl
SKIP: {
# gdb stops the worker inside a section; a memory tool's workers cannot be stopped at a breakpoint.
skip 'needs gdb, and no memory tool', 4 if !-x '/usr/bin/gdb' || $INC{'NginxTestUnderTool.pm'};
is(http('POST', '/upstream/churn', 'server 127.0.0.1:' . port(2) . ';')->{status}, 200, 'upstream churn created');
my ($old) = worker_pids();
my $gdb_log = prefix() . 'logs/gdb.log';
# gdb holds the worker at the breakpoint until its input closes (the
# shell's `read` returns).
open(my $gdb, '|-', "exec gdb -q -batch -p $old -ex 'break ngx_http_dynamic_upstream_module::dyups::grace::GracePeriod::leave' "
    . "-ex continue -ex 'shell read line' > $gdb_log 2>&1") or die "gdb: $!";
my $gdb_says = sub { my ($what) = @_; sub { (NginxTest::Files::slurp($gdb_log) // '') =~ $what } };
poll_until($gdb_says->(qr/^Breakpoint 1 at /m), 20, 'gdb attached') or die 'gdb never set its breakpoint';
# The worker stops where this request leaves its section: still counted.
my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port()) or die $!;
print $c "GET /upstream/churn HTTP/1.0\r\nHost: localhost\r\n\r\n";
poll_until($gdb_says->(qr/^Breakpoint 1, /m), 10, 'in the section') or die 'the worker never reached the breakpoint';
# A new worker (it takes a slot of its own: the stopped one is alive) ...
kill 'HUP', master_pid();
ok(poll_until(sub { grep { $_ != $old } worker_pids() }, 10, 'new worker'), 'a new worker runs');
is(http_get('/upstream/churn')->{status}, 200, 'the new worker answers (it has its slot)');
# ... then the old one dies in its section; nobody replaces it.
kill 'KILL', $old;
close $gdb;
my $failed = '';
for my $i (1 .. 2000) {
    my $r = http('POST', '/upstream/churn', 'server 127.0.0.1:' . port(2) . ' weight=' . (1 + $i % 9) . ';');
    next if $r->{status} == 200;
    $failed = "replace $i: $r->{status} $r->{body}";
    last;
}
is($failed, '', '2000 replacements in a 256k zone after the kill: every one succeeded');
close $c;
}
