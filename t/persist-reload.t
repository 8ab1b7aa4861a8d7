# No accepted change is lost across a reload. A worker of a configuration
# that a reload replaced refuses zone-upstream changes (query API, Lua
# ngx.dynamic) with 503 "Service Unavailable: nginx is reloading ...", so
# nothing it accepted can be missing from the state file the new
# configuration read; dyups changes are shared by every configuration and
# are accepted (and written) by such a worker too.
#
# To have a request handled by a worker that is being replaced, a block
# either holds a request half-sent across the reload (the request line and
# headers without the final empty line: the connection is not idle, so the
# old worker keeps it, and handles the request once it is completed), or
# runs Lua that waits until its worker is exiting (ngx.worker.exiting()).
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups;
use NginxTest::Files;
use NginxTest::QueryApi;
use IO::Socket::INET;
use IO::Select;

our $HEADER = "# Written by nginx-dynamic-upstream after every change through its APIs.\n";

# Whether the server side of the connection 127.0.0.1:CLIENT_PORT ->
# 127.0.0.1:SERVER_PORT has read everything sent (its receive queue in
# /proc/net/tcp is empty): a worker accepted it and read the bytes.
sub server_side_read {
    my ($server_port, $client_port) = @_;
    open my $fh, '<', '/proc/net/tcp' or return 0;
    scalar <$fh>;
    while (my $l = <$fh>) {
        my @f = split ' ', $l;
        my ($lp) = $f[1] =~ /:([0-9A-Fa-f]+)$/;
        my ($rp) = $f[2] =~ /:([0-9A-Fa-f]+)$/;
        next unless hex($lp) == $server_port && hex($rp) == $client_port;
        my (undef, $rx) = split /:/, $f[4];
        return hex($rx) == 0;
    }
    return 0;
}

# Sends HEAD (a request without its final empty line) to the main server
# and waits until a worker has read it. Returns the socket.
sub hold_request {
    my ($head) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port(), Timeout => 10)
        or die "connect: $!";
    binmode $s;
    $s->autoflush(1);
    print $s $head;
    my $cport = $s->sockport;
    poll_until(sub { server_side_read(server_port(), $cport) }, 5, 'partial request read')
        or die "no worker read the partial request\n";
    return $s;
}

# Completes a held request with REST and returns [status, body].
sub finish_request {
    my ($s, $rest) = @_;
    print $s $rest;
    my $raw = '';
    my $sel = IO::Select->new($s);
    while ($sel->can_read(10)) {
        my $n = sysread($s, $raw, 65536, length $raw);
        last unless $n;
    }
    my ($status) = $raw =~ m{\AHTTP/1\.\d (\d{3})};
    my ($body) = $raw =~ m{\r\n\r\n(.*)\z}s;
    return [$status // 0, $body // ''];
}

# SIGHUP to the master, then waits until the configured number of new
# workers run and the old ones are all shutting down (or gone). Unlike
# nginx_reload() it does not wait for the old workers to exit.
sub start_reload {
    my ($workers) = @_;
    my %old = map { $_ => 1 } worker_pids();
    kill 'HUP', master_pid() or die "kill HUP: $!";
    poll_until(sub { my @w = worker_pids(); @w >= $workers && !grep { $old{$_} } @w }, 10, 'new workers')
        or die "no new workers within 10 s\n";
    return keys %old;
}

sub gone {
    my ($pid) = @_;
    my $s = slurp("/proc/$pid/stat");
    return !$s || $s =~ /\)\s+[ZX]\s/;
}

run_tests();
__DATA__

=== TEST 1: a query-API change handled by a worker the reload replaced: 503, nothing changed; the new workers accept it
--- workers: 2
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $path = data_dir() . '/backends.state';
is(http_get('/dynamic?upstream=backends&server=' . main::addr(1) . '&weight=2')->{status}, 200, 'a change');
my $lines = main::srv(1, weight => 2) . main::srv(2);
is(main::slurp($path), $main::HEADER . $lines, 'written');

my @held = map {
    main::hold_request("GET /dynamic?upstream=backends&server=" . main::addr(2) . "&weight=$_ HTTP/1.1\r\n"
                     . "Host: localhost\r\nConnection: close\r\n")
} 7, 8;
my @old = main::start_reload(2);
for my $i (0, 1) {
    my ($status, $body) = @{ main::finish_request($held[$i], "\r\n") };
    is($status, 503, "held change $i, completed after the reload: 503");
    like($body, qr/\A503 Service Unavailable: nginx is reloading/, '  "Service Unavailable: nginx is reloading ..."');
}
ok(poll_until(sub { !grep { !main::gone($_) } @old }, 10, 'old workers exit'), 'the old workers exit');
is(main::verbose(), $lines, 'nothing changed in the upstream');
is(main::slurp($path), $main::HEADER . $lines, 'nothing changed in the file');

my $r = http_get('/dynamic?upstream=backends&server=' . main::addr(2) . '&weight=7');
is($r->{status}, 200, 'the same change through a new worker: 200');
$lines = main::srv(1, weight => 2) . main::srv(2, weight => 7);
is(main::verbose(), $lines, '  in effect');
is(main::slurp($path), $main::HEADER . $lines, '  written');
nginx_restart();
is(main::verbose(), $lines, '  and restored after a restart');



=== TEST 2: a dyups change handled by a worker the reload replaced is accepted, seen by the new workers and written
--- workers: 2
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my $path = data_dir() . '/dyups.conf';
my $body = 'server ' . main::addr(2) . ';';
my $s = main::hold_request("POST /upstream/dyhost HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                         . 'Content-Length: ' . length($body) . "\r\n");
my @old = main::start_reload(2);
my ($status, $answer) = @{ main::finish_request($s, "\r\n$body") };
is("$status $answer", '200 success', 'POST completed in a worker the reload replaced: 200 success');
ok(poll_until(sub { !grep { !main::gone($_) } @old }, 10, 'old workers exit'), 'the old workers exit');
is(http_get('/upstream/dyhost')->{body},
   'server ' . main::addr(2) . " weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n",
   'the new workers have it');
my $r = http('GET', 'http://127.0.0.1:' . port(9) . '/', undef, { Host => 'dyhost' });
is("$r->{status} $r->{body}", '200 ' . port(2) . "\n", 'and proxy to it');
is(main::slurp($path), "${main::HEADER}upstream dyhost {\n    server " . main::addr(2) . " weight=1 max_fails=1 fail_timeout=10;\n}\n",
   'it is written');
nginx_restart();
is(http_get('/upstream/dyhost')->{status}, 200, 'and restored after a restart');



=== TEST 3: Lua in a worker the reload replaced: ngx.dynamic refuses (nil and "...reloading..."), ngx.dyups is accepted
--- workers: 2
--- modules: lua
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
location = /late {
    content_by_lua_block {
        local d = require "ngx.dynamic"
        local dyups = require "ngx.dyups"
        local f = assert(io.open("$TEST_NGINX_DATA_DIR/started", "w"))
        f:write(ngx.worker.pid())
        f:close()
        local waited = 0
        while not ngx.worker.exiting() and waited < 15 do
            ngx.sleep(0.01)
            waited = waited + 0.01
        end
        ngx.say("exiting: ", tostring(ngx.worker.exiting()))
        local ok, err = d.update_peer("zone_for_backends", ngx.var.arg_server, { weight = 9 })
        ngx.say("update_peer: ", tostring(ok), ", ", tostring(err))
        local status, msg = dyups.update("late", "server " .. ngx.var.arg_server .. ";")
        ngx.say("dyups.update: ", status, ", ", msg)
    }
}
--- perl
my $zone_path = data_dir() . '/backends.state';
is(http_get('/dynamic?upstream=backends&server=' . main::addr(1) . '&down=')->{status}, 200, 'a change');
my $lines = main::srv(1, down => 1) . main::srv(2);
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port(), Timeout => 30) or die "connect: $!";
$s->autoflush(1);
print $s 'GET /late?server=' . main::addr(2) . " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
ok(poll_until(sub { -s data_dir() . '/started' }, 5, 'Lua started'), 'the Lua handler runs in an old worker');
nginx_reload();
my $raw = do { local $/; <$s> } // '';
my ($body) = $raw =~ m{\r\n\r\n(.*)\z}s;
$body //= $raw;
like($body, qr/^exiting: true$/m, 'the Lua handler saw its worker exiting');
like($body, qr/^update_peer: nil, .*reloading/m, 'ngx.dynamic.update_peer: nil, "... reloading ..."');
like($body, qr/^dyups\.update: 200, success$/m, 'ngx.dyups.update: 200, success');
is(main::verbose(), $lines, 'the zone upstream is unchanged');
is(main::slurp($zone_path), $main::HEADER . $lines, 'its file is unchanged');
is(http_get('/dynamic?upstream=backends&server=' . main::addr(2) . '&weight=9')->{status}, 200,
   'the same change in a new worker: 200');
like(main::slurp(data_dir() . '/dyups.conf') // '', qr/^upstream late \{\n    server \Q${\ main::addr(2)}\E weight=1 /m,
     'the dyups change is written');



=== TEST 4: a worker the reload replaced stops routing to an upstream the new configuration dropped once the API deletes it
--- workers: 1
--- http_config
upstream hostx { server 127.0.0.1:$TEST_NGINX_PORT_1; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8;
    location / { dyups_interface; }
}
--- config
location / { proxy_pass http://$host; }
--- perl
# hostx, an upstream of the configuration, is replaced through the API; a
# request for it is held in an old worker across a reload to a configuration
# without `upstream hostx`, where the API deletes it (its peer list is
# retired and, after the grace period, freed). The held request must get
# 502, not the freed list. One worker per cycle: the old worker is the one
# that saw the replacement (a worker that never saw it routes by its own
# configuration, which is safe too).
is(main::admin('POST', '/upstream/hostx', main::servers(2))->{status}, 200, 'replace hostx');
my $r = http('GET', '/', undef, { Host => 'hostx' });
is("$r->{status} $r->{body}", '200 ' . port(2) . "\n", 'hostx routes to the replacement');
my $held = main::hold_request("GET / HTTP/1.1\r\nHost: hostx\r\nConnection: close\r\n");
my $conf = main::slurp(conf_file());
$conf =~ s/upstream hostx \{[^}]*\}\n// or die "no upstream hostx in the configuration\n";
main::spew(conf_file(), $conf);
my @old = main::start_reload(1);
is(main::admin('DELETE', '/upstream/hostx')->{status}, 200, 'the new configuration deletes hostx through the API');
# More changes: each runs the reaper, which frees the retired list once no
# registered request can use it.
for my $i (1 .. 3) {
    is(main::admin('POST', '/upstream/churn', main::servers(3))->{status}, 200, "churn $i: POST");
    is(main::admin('DELETE', '/upstream/churn')->{status}, 200, "churn $i: DELETE");
}
my ($status, $body) = @{ main::finish_request($held, "\r\n") };
is($status, 502, 'the held request in the old worker: 502') or diag($body);
ok(poll_until(sub { !grep { !main::gone($_) } @old }, 10, 'old workers exit'), 'the old workers exit');
is(http('GET', '/', undef, { Host => 'hostx' })->{status}, 502, 'a new worker: 502 too');
