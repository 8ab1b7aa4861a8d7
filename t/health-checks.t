# Active health checks of a zone upstream's configured peers: a backend
# that dies is excluded within fall x interval (+ one interval), it comes
# back after rise x interval; default_down keeps a peer out until its
# first rises; an administrator's down and the checks' down stay apart.
# Backends are processes the block starts and kills (NginxTest::Backend);
# passive checks are off (max_fails=0), so only the active checks exclude a
# peer, and proxy_next_upstream is off, so a request that reaches a dead
# peer answers 502.
use lib 't/lib';
use NginxTest;
use NginxTest::Backend qw(backend wait_until spread);
use NginxTest::Traffic ();
use IO::Socket::INET;
use POSIX ();
use JSON::PP ();

$ENV{TEST_NGINX_PROXY} = <<'NGINX';
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; proxy_next_upstream off; proxy_connect_timeout 2s; }
NGINX
# The same through keep-alive connections to the backends.
$ENV{TEST_NGINX_PROXY_KEEPALIVE} = <<'NGINX';
location / {
    proxy_pass http://backends;
    proxy_next_upstream off;
    proxy_connect_timeout 2s;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
}
NGINX

# Whether N requests in a row all land on the ports given.
sub only_on {
    my ($n, @ports) = @_;
    my $seen = spread($n);
    my %want = map { $_ => 1 } @ports;
    return !grep { !$want{$_} } keys %$seen;
}

# The checks' health of the upstream's peers in the query API's JSON:
# "ADDR=HEALTH ADDR(backup)=HEALTH ...".
sub health {
    my $j = JSON::PP->new->decode(http_get('/dynamic?upstream=backends&format=json')->{body});
    return join ' ', map { "$_->{name}" . ($_->{backup} ? '(backup)' : '') . "=$_->{health}" } @{ $j->{peers} };
}

# Whether the error log (or FILE) has a line matching RE.
sub logged {
    my ($re, $file) = @_;
    open my $fh, '<', $file // prefix() . 'logs/error.log' or return 0;
    return scalar grep { $_ =~ $re } <$fh>;
}

# A second nginx of one process (master_process off) next to the harness's,
# in prefix()/single, with a checked upstream of 127.0.0.1:$p1 served on
# 127.0.0.1:$p3 and a health zone of $shm.
sub single_conf {
    my ($dir, $shm, $p1, $p3) = @_;
    NginxTest::Files::spew("$dir/conf/nginx.conf", <<"CONF");
load_module $NginxTest::MODULE;
master_process off;
daemon off;
pid logs/nginx.pid;
error_log logs/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    check_shm_size $shm;
    client_body_temp_path logs; proxy_temp_path logs; fastcgi_temp_path logs; uwsgi_temp_path logs; scgi_temp_path logs;
    upstream backends {
        zone backends 128k;
        server 127.0.0.1:$p1 max_fails=0;
        check interval=200 rise=1 fall=1 timeout=300 type=http;
    }
    server { listen 127.0.0.1:$p3; location / { proxy_pass http://backends; proxy_next_upstream off; } }
}
CONF
}

# Starts it; returns its pid and directory.
sub start_single {
    my ($shm, $p1, $p3) = @_;
    my $dir = prefix() . 'single';
    mkdir $_ for $dir, "$dir/logs", "$dir/conf";
    single_conf($dir, $shm, $p1, $p3);
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', "$dir/logs/stderr.log";
        exec $NginxTest::BINARY, '-p', "$dir/", '-c', 'conf/nginx.conf', '-e', 'logs/error.log' or POSIX::_exit(1);
    }
    return ($pid, $dir);
}

sub stop_single {
    my ($pid) = @_;
    kill 'QUIT', $pid;
    waitpid($pid, 0);
}

# The status of GET / on 127.0.0.1:$port (0 if none).
sub get_status {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 2) or return 0;
    print $s "GET / HTTP/1.0\r\nHost: x\r\n\r\n";
    my $reply = do { local $/; <$s> } // '';
    return ($reply =~ m{^HTTP/1\.\d (\d+)})[0] // 0;
}

# Once port(1)'s live peer of upstream "backends" rose and port(2)'s dead
# one is down: a reload that renames the upstream "renamed" (and makes
# EDIT's change to the configuration's text) keeps both verdicts. Returns
# the configuration.
sub renamed_keeps_verdicts {
    my ($what, $edit) = @_;
    my ($p1, $p2) = (port(1), port(2));
    my $before = "127.0.0.1:$p1=up 127.0.0.1:$p2=down";
    ok(defined wait_until(5, sub { health() eq $before }), 'one peer rose, the dead one is down') or diag(health());
    (my $renamed = NginxTest::Files::slurp(conf_file())) =~ s/\bbackends\b/renamed/g;
    $edit->($renamed) if $edit;
    NginxTest::Files::spew(conf_file(), $renamed);
    nginx_reload();
    my %seen;
    $seen{ http_get('/')->{status} }++ for 1 .. 10;
    is_deeply(\%seen, { 200 => 10 }, "$what: the live peer keeps taking requests right after the reload") or diag(explain(\%seen));
    my $j = JSON::PP->new->decode(http_get('/dynamic?upstream=renamed&format=json')->{body});
    is(join(' ', map { "$_->{name}=$_->{health}" } @{ $j->{peers} }), $before, '  each keeps its verdict');
    return $renamed;
}

# 100 servers nobody listens on.
$ENV{TEST_NGINX_DEAD_100} = join '', map { "    server 127.0.0.1:$_ max_fails=0;\n" } NginxTest::Traffic::dead_ports(100);

run_tests();
__DATA__

=== TEST 1: a backend that dies is excluded within fall x interval + interval; it is back after rise x interval
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=500 rise=2 fall=2 timeout=400 default_down=false type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
my ($p1, $p2) = (port(1), port(2));
my @b = (main::backend($p1), main::backend($p2));
ok(main::only_on(10, $p1, $p2) && keys %{ main::spread(10) } == 2, 'both peers answer') or diag(explain(main::spread(10)));
$b[0]->stop;
my $t = main::wait_until(5, sub { main::only_on(6, $p2) });
ok(defined $t, 'the dead peer is excluded') or return;
cmp_ok($t, '<=', (2 + 1) * 0.5 + 0.4, "excluded after $t s: within fall x interval + interval (+ the probe's timeout)");
ok(main::only_on(20, $p2), '20 requests after: none reaches the dead peer');
$b[0] = main::backend($p1);
$t = main::wait_until(5, sub { main::spread(4)->{$p1} });
ok(defined $t, 'the peer is back') or return;
cmp_ok($t, '<=', (2 + 1) * 0.5 + 0.2, "back after $t s: within rise x interval + interval");
--- error_log
health check: server 127.0.0.1:$TEST_NGINX_PORT_1 of upstream "backends" is down (
health check: server 127.0.0.1:$TEST_NGINX_PORT_1 of upstream "backends" is up



=== TEST 2: type=tcp excludes a closed port; type=http a peer whose status is not expected
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_3 max_fails=0;
    check interval=200 rise=1 fall=1 timeout=400 default_down=false type=http;
    check_http_expect_alive http_2xx;
}
upstream tcp {
    zone tcp 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_4 max_fails=0;
    check interval=200 rise=1 fall=1 timeout=400 default_down=false type=tcp;
}
--- config
$TEST_NGINX_PROXY
location /tcp { proxy_pass http://tcp; proxy_next_upstream off; }
--- perl
my @b = (main::backend(port(1)), main::backend(port(2), status => 503), main::backend(port(3), status => 302));
ok(defined main::wait_until(5, sub { main::only_on(10, port(1), 'status 302') }),
   'http: the 503 peer is excluded, the 302 one too (only http_2xx is expected)') or diag(explain(main::spread(10)));
ok(defined main::wait_until(5, sub {
    my %seen; for (1 .. 10) { my $r = http_get('/tcp'); $seen{$r->{status}}++ } keys %seen == 1 && $seen{200} }),
   'tcp: the closed port is excluded');
--- error_log
of upstream "backends" is down (status 503 not expected)
of upstream "backends" is down (status 302 not expected)
health check: server 127.0.0.1:$TEST_NGINX_PORT_4 of upstream "tcp" is down (connect failed: 111: Connection refused)



=== TEST 3: default_down=true: a peer gets no request before it rose; a dead one never does
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=300 rise=2 fall=1 timeout=400 type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
my $b = main::backend(port(1));
my $t = main::wait_until(5, sub { main::spread(1)->{port(1)} });
ok(defined $t, 'the live peer rose');
ok(main::only_on(20, port(1)), '20 requests: the peer that never rose gets none');
--- error_log
health check: server 127.0.0.1:$TEST_NGINX_PORT_1 of upstream "backends" is up
--- no_error_log
of upstream "backends" is down



=== TEST 4: an administrator's down survives the checks; up does not clear the checks' down
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=200 rise=1 fall=1 timeout=400 default_down=false type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
my ($p1, $p2) = (port(1), port(2));
my @b = (main::backend($p1), main::backend($p2));
my $q = "/dynamic?upstream=backends&server=127.0.0.1:$p1";
is(http_get("$q&down=")->{status}, 200, 'down by the administrator');
# Several intervals of successful checks.
my $probes = $b[0]->accepted;
ok(defined main::wait_until(5, sub { $b[0]->accepted >= $probes + 3 }), 'the peer is still checked');
ok(main::only_on(20, $p2), 'a check never clears the administrator\'s down');
is(http_get('/dynamic?upstream=backends')->{body},
   "server 127.0.0.1:$p1 down;\nserver 127.0.0.1:$p2;\n", 'the listing shows it down');
# Now the backend dies, then the administrator brings the peer up.
$b[0]->stop;
ok(defined main::wait_until(5, sub { main::logged(qr/127\.0\.0\.1:$p1 of upstream "backends" is down/) }),
   'the checks took it down too');
is(http_get("$q&up=")->{status}, 200, 'up by the administrator');
is(http_get('/dynamic?upstream=backends')->{body},
   "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\n", 'the listing shows it up');
ok(main::only_on(20, $p2), 'up does not clear the checks\' down: no request reaches the dead peer');
$b[0] = main::backend($p1);
ok(defined main::wait_until(5, sub { main::spread(4)->{$p1} }), 'back once its checks pass');



=== TEST 5: a peer added through the query API starts default_down and is checked; a removed one is no longer probed
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    check interval=200 rise=2 fall=1 timeout=400 type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b1 = main::backend($p1);
ok(defined main::wait_until(5, sub { main::spread(1)->{$p1} }), 'the configured peer rose');
# Nothing listens on $p2 yet: without checks the new peer would answer 502.
is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p2&add=&max_fails=0")->{status}, 200, 'added');
ok(main::only_on(20, $p1), 'the added peer gets no request before it rose');
my $b2 = main::backend($p2);
ok(defined main::wait_until(5, sub { main::spread(4)->{$p2} }), 'it rose once its backend answered');
is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p2&remove=")->{status}, 200, 'removed');
my $probes = $b2->accepted;
ok(!defined main::wait_until(1, sub { $b2->accepted > $probes + 1 }), 'no probe of the removed peer for 5 intervals')
    or diag($b2->accepted - $probes . ' more');
--- error_log
health check: server 127.0.0.1:$TEST_NGINX_PORT_2 of upstream "backends" is up



=== TEST 6: health survives a reload for the peers that still exist
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=2000 rise=1 fall=1 timeout=400 default_down=false type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b1 = main::backend($p1);
ok(defined main::wait_until(5, sub { main::logged(qr/:$p2 of upstream "backends" is down/) }), 'the dead peer went down');
nginx_reload();
# A peer starting afresh (default_down=false) would be up until its first
# probe, up to a second after the reload.
ok(main::only_on(20, $p1), 'after the reload, the dead peer still gets no request');



=== TEST 7: 4 workers do not multiply the probes: probes/s = peers/interval
--- workers: 4
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
    server 127.0.0.1:$TEST_NGINX_PORT_4;
    check interval=250 rise=1 fall=1 timeout=400 type=tcp;
}
--- config
$TEST_NGINX_PROXY
--- perl
my @b = map { main::backend(port($_)) } 1 .. 4;
ok(defined main::wait_until(5, sub { (grep { $_->accepted > 0 } @b) == 4 }), 'every peer is probed');
my $before = 0;
$before += $_->accepted for @b;
my $start = Time::HiRes::time();
# A measuring window of 3 s (12 intervals), not a wait for a condition.
main::wait_until(3, sub { 0 });
my $seconds = Time::HiRes::time() - $start;
my $probes = -$before;
$probes += $_->accepted for @b;
my $rate = $probes / $seconds;
note(sprintf '%d probes in %.2f s: %.1f/s (4 peers / 0.25 s = 16/s)', $probes, $seconds, $rate);
cmp_ok($rate, '>=', 16 * 0.9, 'at least 90% of peers/interval');
cmp_ok($rate, '<=', 16 * 1.1, 'at most 110% of peers/interval (not 4 x 16)');



=== TEST 8: a reload that shortens interval takes effect at once (review H2 finding 1)
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=20000 rise=1 fall=1 timeout=300 default_down=false type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
my ($p1, $p2) = (port(1), port(2));
my @b = (main::backend($p1), main::backend($p2));
ok(defined main::wait_until(3, sub { $b[1]->accepted >= 1 }), 'probed once at the long interval');
my $conf = NginxTest::Files::slurp(conf_file());
$conf =~ s/interval=20000/interval=200/;
NginxTest::Files::spew(conf_file(), $conf);
nginx_reload();
$b[1]->stop;
my $t = main::wait_until(3, sub { main::only_on(6, $p1) });
ok(defined $t, 'the dead peer is excluded at the new interval') or diag(explain(main::spread(10)));
--- error_log
health check: server 127.0.0.1:$TEST_NGINX_PORT_2 of upstream "backends" is down



=== TEST 9: every peer of a duplicated server gets the checks' down (review H2 finding 2)
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=200 rise=1 fall=1 timeout=300 default_down=false type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b1 = main::backend($p1);
ok(defined main::wait_until(3, sub { main::logged(qr/:$p2 of upstream "backends" is down/) }), 'the dead server went down');
ok(main::only_on(30, $p1), 'neither of its two peers gets a request') or diag(explain(main::spread(30)));



=== TEST 10: a unix-socket peer (connect completes at once) is probed (review H2 finding 6)
--- http_config
upstream backends {
    zone backends 128k;
    server unix:$TEST_NGINX_DATA_DIR/u.sock max_fails=0;
    check interval=200 rise=1 fall=1 timeout=300 type=http;
}
server {
    listen unix:$TEST_NGINX_DATA_DIR/u.sock;
    return 200 "unix\n";
}
--- config
$TEST_NGINX_PROXY
--- perl
ok(defined main::wait_until(3, sub { main::spread(1)->{unix} }), 'the unix peer rose');
--- error_log
of upstream "backends" is up



=== TEST 11: a worker of the previous configuration refuses a removal; the new configuration's record stays (review H2 finding 5a)
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=200 rise=1 fall=1 timeout=400 default_down=false type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
my ($p1, $p2) = (port(1), port(2));
my @b = (main::backend($p1), main::backend($p2));
ok(defined main::wait_until(5, sub { main::health() eq "127.0.0.1:$p1=up 127.0.0.1:$p2=up" }), 'both checked and up');
# A request the old worker has begun to read: it stays to finish it.
my $old = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port()) or die "connect: $!";
$old->autoflush(1);
print $old "GET /dynamic?upstream=backends&server=127.0.0.1:$p2&remove= HTTP/1.0\r\nHost: localhost\r\n";
my @before = worker_pids();
kill 'HUP', master_pid();
ok(defined main::wait_until(10, sub { my @w = worker_pids(); @w && !grep { my $w = $_; grep { $_ == $w } @before } @w }),
   'the new configuration\'s worker runs');
print $old "\r\n";
my $answer = '';
while (sysread($old, my $buf, 4096)) { $answer .= $buf }
like($answer, qr{^HTTP/1\.1 503 .*\r\n\r\n503 Service Unavailable: nginx is reloading and this worker's configuration is being replaced: retry the request\n\z}s,
     'the old worker refuses the change (the reload guard)') or diag($answer);
ok(defined main::wait_until(2, sub { main::health() eq "127.0.0.1:$p1=up 127.0.0.1:$p2=up" }),
   'the new configuration still checks it') or diag(main::health());
$b[1]->stop;
ok(defined main::wait_until(3, sub { main::only_on(6, $p1) }), 'and excludes it when it dies');



=== TEST 12: removing one of two peers of a server given twice keeps the other checked (review H2 finding 5)
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0 backup;
    check interval=200 rise=1 fall=1 timeout=400 default_down=false type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
my ($p1, $p2) = (port(1), port(2));
my @b = (main::backend($p1), main::backend($p2));
ok(defined main::wait_until(5, sub { main::health() eq "127.0.0.1:$p1=up 127.0.0.1:$p2=up 127.0.0.1:$p2(backup)=up" }), 'checked')
    or diag(main::health());
is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p2&remove=")->{status}, 200, 'the primary peer removed');
is(main::health(), "127.0.0.1:$p1=up 127.0.0.1:$p2(backup)=up", 'the backup peer of the same server is still checked');
is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p2&remove=")->{status}, 200, 'the backup peer removed');
is(main::health(), "127.0.0.1:$p1=up", 'gone');
my $probes = $b[1]->accepted;
ok(!defined main::wait_until(1, sub { $b[1]->accepted > $probes + 1 }), 'no probe of the removed server for 5 intervals')
    or diag($b[1]->accepted - $probes . ' more');

=== TEST 13: a reload that raises check_shm_size (as the 507 answer says to) keeps the configured peers' health
--- http_config
check_shm_size 1m;
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    check interval=1000 rise=2 fall=2 timeout=300 type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
my $p1 = port(1);
my $b1 = main::backend($p1);
ok(defined main::wait_until(4, sub { http_get('/')->{status} == 200 }), 'the peer rose');
my $conf = NginxTest::Files::slurp(conf_file());
$conf =~ s/check_shm_size 1m;/check_shm_size 2m;/ or die 'no check_shm_size';
NginxTest::Files::spew(conf_file(), $conf);
nginx_reload();
# Without its record the peer would start down again (default_down) in the
# new workers, for rise x interval (2 s).
my %seen;
$seen{ http_get('/')->{status} }++ for 1 .. 10;
is_deeply(\%seen, { 200 => 10 }, 'the live peer keeps taking requests right after the reload') or diag(explain(\%seen));
like(main::health(), qr/^127\.0\.0\.1:$p1=up$/, 'listed up');

=== TEST 14: ip_hash with keepalive: a checked-down peer gets no request, and comes back
--- http_config
upstream backends {
    zone backends 128k;
    ip_hash;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=200 rise=1 fall=1 timeout=300 default_down=false type=http;
    keepalive 4;
}
--- config
$TEST_NGINX_PROXY_KEEPALIVE
--- perl
my ($p1, $p2) = (port(1), port(2));
my %b = ($p1 => main::backend($p1), $p2 => main::backend($p2));
ok(defined main::wait_until(3, sub { my $s = main::spread(6); !grep { !/^\d+$/ } keys %$s }), 'up');
# ip_hash sends this client to one peer: that one dies.
my ($first) = keys %{ main::spread(1) };
my ($other) = grep { $_ != $first } ($p1, $p2);
$b{$first}->stop;
ok(defined main::wait_until(3, sub { main::only_on(10, $other) }), "the dead peer is excluded")
    or diag(explain(main::spread(10)));
ok(main::only_on(30, $other), '30 requests after: none reaches it');
$b{$first} = main::backend($first);
ok(defined main::wait_until(3, sub { main::spread(10)->{$first} }), 'it comes back') or diag(explain(main::spread(10)));

=== TEST 15: backup: with the primary checked down the backup takes the traffic, and gives it back
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0 backup;
    check interval=200 rise=1 fall=1 timeout=300 default_down=false type=http;
    keepalive 4;
}
--- config
$TEST_NGINX_PROXY_KEEPALIVE
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b1 = main::backend($p1);
my $b2 = main::backend($p2);
ok(defined main::wait_until(3, sub { main::only_on(6, $p1) }), 'the primary takes the traffic');
$b1->stop;
ok(defined main::wait_until(3, sub { main::only_on(10, $p2) }), 'the backup takes it once the primary is down');
$b1 = main::backend($p1);
ok(defined main::wait_until(3, sub { main::only_on(10, $p1) }), 'back on the primary');

=== TEST 16: master_process off: the one process probes (checked peers start down and rise)
--- http_config
--- config
--- perl
my ($p1, $p3) = (port(1), port(3));
my $b1 = main::backend($p1);
my ($pid, $dir) = main::start_single('1m', $p1, $p3);
my $up = main::wait_until(5, sub { main::get_status($p3) == 200 });
main::stop_single($pid);
ok(defined $up, 'the checked peer rose: proxied requests answer 200');
is(main::logged(qr/\[(alert|crit|emerg)\]|exited on signal/, "$dir/logs/error.log"), 0, 'its error log has no alert')
    or diag(NginxTest::Files::slurp("$dir/logs/error.log"));

=== TEST 17: master_process off, three reloads that change check_shm_size: the process survives each (its prober leaves the freed zone)
--- http_config
--- config
--- perl
# nginx's own reload of a single process never sets up the new cycle's
# connections ("worker_connections are not enough" from then on): the
# prober cannot connect after it, but must not touch the zone nginx freed.
# The process runs each reload's init_module itself: nothing there may
# take the running (old) cycle's zones (review 10: one kept there crashed
# the second reload).
my ($p1, $p3) = (port(1), port(3));
my $b1 = main::backend($p1);
my ($pid, $dir) = main::start_single('1m', $p1, $p3);
ok(defined main::wait_until(5, sub { main::get_status($p3) == 200 }), 'up');
my $reloads = 0;
for my $shm ('2m', '3m', '1m') {
    main::single_conf($dir, $shm, $p1, $p3);
    kill 'HUP', $pid;
    $reloads++;
    ok(defined main::wait_until(5, sub { main::logged(qr/: reconfiguring$/, "$dir/logs/error.log") == $reloads }),
       "reloaded to check_shm_size $shm");
    ok(!defined main::wait_until(1, sub { waitpid($pid, POSIX::WNOHANG()) != 0 }), "alive 10 ticks after reload $reloads");
}
main::stop_single($pid);
is(main::logged(qr/\[(crit|emerg)\]|exited on signal|\[alert\](?!.*worker_connections are not enough)/,
                "$dir/logs/error.log"), 0, 'its error log has no alert but nginx\'s own')
    or diag(NginxTest::Files::slurp("$dir/logs/error.log"));

=== TEST 18: a peer that refuses connections is a health verdict, not an [error] per probe: nginx's connection errors of probes go to the info level, the verdict's line names the error
--- log_level: notice
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    check interval=100 rise=1 fall=1 timeout=400 default_down=false type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
my $b = main::backend(port(1));
my $down = qr/health check: server 127\.0\.0\.1:${\ port(2)} of upstream "backends" is down/;
ok(poll_until(sub { error_log_text() =~ $down }, 5, 'down'), 'the refusing peer is down');
# The verdict's line says why, as nginx's own lines would have.
my ($line) = grep { /$down/ } split /\n/, error_log_text();
like($line, qr/ is down \(connect failed: 111: Connection refused\)$/, 'the line names the system error');
my @errors = grep { /\[error\]/ } split /\n/, error_log_text();
is("@errors", '', 'no [error] line') or diag(join "\n", @errors);

=== TEST 19: a reload that renames a checked upstream, or moves a server to another one, keeps each address's verdict: the live peer keeps taking requests and the dead one gets none (they started afresh, default_down: 502 until the live one rose, where the C module keeps the verdict by address, hunt 37)
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=1000 rise=2 fall=1 timeout=300 type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
my $p1 = port(1);
my $b1 = main::backend($p1);
my $renamed = main::renamed_keeps_verdicts('renamed');
# The live server moves to an upstream of its own.
my $line = "\n    server 127.0.0.1:$p1 max_fails=0;";
(my $moved = $renamed) =~ s/\Q$line\E// or die 'no server line';
$moved =~ s/upstream renamed \{/upstream other {\n    zone other 64k;$line\n    check interval=1000 rise=2 fall=1 timeout=300 type=http;\n}\nupstream renamed {/;
NginxTest::Files::spew(conf_file(), $moved);
nginx_reload();
my $j = JSON::PP->new->decode(http_get('/dynamic?upstream=other&format=json')->{body});
is(join(' ', map { "$_->{name}=$_->{health}" } @{ $j->{peers} }), "127.0.0.1:$p1=up", 'moved to another upstream: still up');

=== TEST 20: the same when the reload also changes check_shm_size (the records move to a new zone: a renamed upstream's stayed behind, and its live peer started down again, review 37)
--- http_config
check_shm_size 1m;
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=1000 rise=2 fall=1 timeout=300 type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
my $b1 = main::backend(port(1));
main::renamed_keeps_verdicts('renamed, check_shm_size raised', sub { $_[0] =~ s/check_shm_size 1m;/check_shm_size 2m;/ or die });

=== TEST 21: a reload to a smaller check_shm_size that removes servers: the records of the servers kept move first (in the table's order the removed ones took the room, and a live server kept started down again: 502 until it rose, review 37)
--- http_config
check_shm_size 64k;
upstream backends {
    zone backends 256k;
$TEST_NGINX_DEAD_100
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    check interval=1000 rise=2 fall=1 timeout=300 type=http;
}
--- config
$TEST_NGINX_PROXY
--- perl
# The dead servers' records come first in the table, the live one's last.
my $p1 = port(1);
my $b1 = main::backend($p1);
ok(defined main::wait_until(5, sub { http_get('/')->{status} == 200 }), 'the live server rose');
my $conf = NginxTest::Files::slurp(conf_file());
my @dead = $ENV{TEST_NGINX_DEAD_100} =~ /^.*\n/mg;
my $with = sub {
    my ($size, @lines) = @_;
    NginxTest::Files::spew(conf_file(), $conf =~ s/check_shm_size 64k;/check_shm_size $size;/r
        =~ s/\Q$ENV{TEST_NGINX_DEAD_100}\E/join '', @lines/er);
};
$with->('32k', @dead);
my (undef, $out) = nginx_t();
my ($holds) = $out =~ /check_shm_size 32k holds the records of (\d+) checked peers/ or die "nginx -t: $out";
$with->('32k', @dead[0 .. $holds - 2]);
nginx_reload();
my %seen;
$seen{ http_get('/')->{status} }++ for 1 .. 10;
is_deeply(\%seen, { 200 => 10 }, "32k ($holds records), the live server and " . ($holds - 1) . ' others kept: it keeps taking requests')
    or diag(explain(\%seen));
