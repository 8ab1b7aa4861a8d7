# Active health checks of run-time (dyups) upstreams: `check ...;` lines
# in POST bodies (REST, JSON, Lua), as Tengine's dyups takes them. A new
# upstream's servers start default_down and are probed from the next tick;
# a replaced upstream checks its new servers and keeps the health of those
# whose address stays; a deleted one is no longer probed; the check is kept
# in dyups_upstream_conf across a restart; hostile check lines answer 400
# and change nothing. Backends are processes the block starts and kills
# (NginxTest::Backend); the proxy on port 9 sends Host NAME to upstream NAME.
use lib 't/lib';
use NginxTest;
use NginxTest::Backend;
use NginxTest::Dyups qw(addr line state proxied proxied_port);
use NginxTest::Files;
use NginxTest::Lua;
use IO::Socket::INET;
use JSON::PP ();
use NginxTest::Traffic ();

$ENV{TEST_NGINX_PROXY} = <<'NGINX';
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; proxy_next_upstream off; proxy_connect_timeout 2s; }
}
NGINX
$ENV{TEST_NGINX_LUA_EVAL} = lua_eval_location([dyups => 'ngx.dyups']);
# 80 servers where nothing listens, for a checked configuration upstream.
$ENV{TEST_NGINX_BIG} = join '', map { "    server 127.0.0.1:$_;\n" } NginxTest::Traffic::dead_ports(80);

# post(NAME, BODY[, JSON]): must answer 200 success.
sub post {
    my ($name, $body, $json) = @_;
    my $r = http('POST', "/upstream/$name", $body, $json ? { 'Content-Type' => 'application/json' } : undef);
    is("$r->{status} $r->{body}", '200 success', "POST /upstream/$name");
}

# The answers of N proxied requests to NAME: { port or "status NNN" => count }.
sub spread {
    my ($name, $n) = @_;
    my %seen;
    $seen{ proxied_port($name) }++ for 1 .. $n;
    return \%seen;
}

# Whether N requests in a row to NAME all land on the ports given.
sub only_on {
    my ($name, $n, @ports) = @_;
    my %want = map { $_ => 1 } @ports;
    return !grep { !$want{$_} } keys %{ spread($name, $n) };
}

sub logged {
    my ($re) = @_;
    open my $fh, '<', prefix() . 'logs/error.log' or return 0;
    return scalar grep { $_ =~ $re } <$fh>;
}

sub dyfile { data_dir() . '/dyups.conf' }

# N server lines of HOST, ports 30001 on (checks only: nothing is proxied
# to them).
sub server_lines {
    my ($host, $n) = @_;
    return join '', map { sprintf 'server %s:%d; ', $host, 30001 + $_ } 0 .. $n - 1;
}

# How many checked peers the health zone holds: the 507 of a POST of run-time
# upstream NAME with more servers (checked by CHECK) than it can hold says.
sub zone_holds {
    my ($name, $check) = @_;
    my $r = http('POST', "/upstream/$name", server_lines('127.0.2.1', 200) . $check);
    my ($holds) = $r->{body} =~ /holds (\d+)/ or die "POST: $r->{status} $r->{body}";
    return $holds;
}

# A Lua string as show() renders it (%q).
sub luaq { my ($s) = @_; $s =~ s/([\\"])/\\$1/g; return qq{"$s"} }

# Rewrites the configuration file: each (FROM, TO) pair, FROM a regex that
# must match, replaced by TO.
sub edit_conf {
    my @pairs = @_;
    my $conf = NginxTest::Files::slurp(conf_file());
    while (my ($from, $to) = splice @pairs, 0, 2) {
        $conf =~ s/$from/$to/ or die "configuration has no $from";
    }
    NginxTest::Files::spew(conf_file(), $conf);
}

run_tests();
__DATA__

=== TEST 1: Tengine's sequence: POST with check default_down=true answers 502 until the peer rose, then 200
--- http_config
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
--- perl
my $p1 = port(1);
my $b = main::backend($p1);
main::post('dyhost', "server 127.0.0.1:$p1; check interval=1000 rise=2 fall=3 timeout=1000 default_down=true type=tcp;");
is(main::proxied('dyhost')->{status}, 502, 'default_down: 502 before the peer rose');
my $t = main::wait_until(3, sub { main::proxied('dyhost')->{status} == 200 });
ok(defined $t, 'then 200 within 3 s') or return;
cmp_ok($t, '<=', 2 * 1 + 0.2, "up after $t s (rise=2 x interval=1 s)");
is(main::proxied('dyhost')->{body}, "$p1\n", 'routed to the backend');
is(http_get('/upstream/dyhost')->{body}, main::line(main::addr(1)), 'the listing keeps its format (the administrator\'s down only)');
--- error_log
health check: server 127.0.0.1:$TEST_NGINX_PORT_1 of upstream "dyhost" is up



=== TEST 2: a replaced upstream checks its new servers and keeps the health of those that stay
--- http_config
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b1 = main::backend($p1);
my $b2 = main::backend($p2, status => 503);
my $check = 'check interval=200 rise=1 fall=1 timeout=400 type=http;';
main::post('dy', "server 127.0.0.1:$p1 max_fails=0; $check");
ok(defined main::wait_until(3, sub { main::proxied('dy')->{status} == 200 }), 'the first server rose') or return;
main::post('dy', "server 127.0.0.1:$p1 max_fails=0; server 127.0.0.1:$p2 max_fails=0; $check");
ok(main::only_on('dy', 20, $p1), 'at once after the replace: the kept server is still up, the new one starts down');
my $probes = $b2->accepted;
ok(defined main::wait_until(3, sub { $b2->accepted >= $probes + 2 }), 'the new server is probed');
ok(main::only_on('dy', 20, $p1), 'the failing new server gets no request');
$b2->stop;
$b2 = main::backend($p2);
ok(defined main::wait_until(3, sub { main::spread('dy', 6)->{$p2} }), 'the new server rose once it answered 200');
# A body without check: the servers are no longer checked, none is down.
$b1->stop;
main::post('dy', "server 127.0.0.1:$p1 max_fails=0; server 127.0.0.1:$p2 max_fails=0;");
my $seen = main::spread('dy', 10);
ok($seen->{'status 502'} && $seen->{$p2}, 'without check both servers take requests (the dead one answers 502)')
    or diag(explain($seen));
$probes = $b2->accepted;
ok(!defined main::wait_until(1, sub { $b2->accepted > $probes }), 'and they are no longer probed')
    or diag($b2->accepted - $probes . ' more');
--- error_log
health check: server 127.0.0.1:$TEST_NGINX_PORT_1 of upstream "dy" is up
health check: server 127.0.0.1:$TEST_NGINX_PORT_2 of upstream "dy" is up



=== TEST 3: a deleted upstream is no longer probed; the same name created again starts afresh
--- http_config
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
--- perl
my $p1 = port(1);
my $b = main::backend($p1);
main::post('dy', "server 127.0.0.1:$p1; check interval=200 rise=1 fall=1 timeout=400 type=tcp;");
ok(defined main::wait_until(3, sub { $b->accepted >= 3 }), 'probed');
is(http('DELETE', '/upstream/dy')->{status}, 200, 'deleted');
my $probes = $b->accepted;
ok(!defined main::wait_until(1, sub { $b->accepted > $probes + 1 }), 'no probe for 5 intervals after the delete')
    or diag($b->accepted - $probes . ' more');
main::post('dy', "server 127.0.0.1:$p1; check interval=200 rise=2 fall=1 timeout=400 type=tcp;");
is(main::proxied('dy')->{status}, 502, 'created again: default_down until it rose again');
ok(defined main::wait_until(3, sub { main::proxied('dy')->{status} == 200 }), 'then up');



=== TEST 4: dyups_upstream_conf keeps the check lines; a restart restores them
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b1 = main::backend($p1);
main::post('dy', "server 127.0.0.1:$p1 max_fails=0; server 127.0.0.1:$p2 max_fails=0;"
    . ' check interval=200 rise=1 fall=1 timeout=400 type=http; check_http_send "GET /a;b#c HTTP/1.0\r\n\r\n";');
my $file = "# Written by nginx-dynamic-upstream after every change through its APIs.\n"
    . "upstream dy {\n"
    . "    server 127.0.0.1:$p1 weight=1 max_fails=0 fail_timeout=10;\n"
    . "    server 127.0.0.1:$p2 weight=1 max_fails=0 fail_timeout=10;\n"
    . "    check interval=200 rise=1 fall=1 timeout=400 default_down=true type=http;\n"
    . "    check_http_send \"GET /a;b#c HTTP/1.0\\r\\n\\r\\n\";\n"
    . "}\n";
is(main::slurp(main::dyfile()), $file, 'the file holds the check lines');
nginx_restart();
is(main::slurp(main::dyfile()), $file, 'unchanged by the restart');
ok(defined main::wait_until(3, sub { main::proxied('dy')->{status} == 200 }), 'after the restart the live server rose');
ok(main::only_on('dy', 20, $p1), 'the dead one is still checked: no request reaches it');



=== TEST 5: hostile check lines in REST, JSON and Lua bodies answer 400 with the reason and change nothing
--- modules: lua
--- http_config
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
$TEST_NGINX_LUA_EVAL
--- perl
my $a = main::addr(1);
main::post('dy', "server $a;");
my $before = main::state();
for my $case (
    ["server $a; check interval=0;", 'add server failed: interval in "check" must be a number of milliseconds from 1 to 86400000 (got "0")'],
    ["server $a; check type=mysql;", 'add server failed: check type "mysql" is not supported (only tcp and http are)'],
    ["server $a; check rise=1; check rise=2;", 'add server failed: "check" is given more than once'],
    ["server $a; check_http_send \"GET / HTTP/1.0\\r\\n\\r\\n\";", 'add server failed: "check_http_send" has no effect without "check" in the same upstream'],
    ["server $a; check type=http; check_http_send \"GET / HTTP/1.0\\r\\n\\r\\n;", 'add server failed: unexpected end of the body inside a "-quoted string in the body'],
    ["server $a; check type=http; check_http_send \"EHLO\\r\\n\\r\\n\";", 'add server failed: "check_http_send" must start with a request line "METHOD /path HTTP/1.x" (got "EHLO")'],
    ["server $a; check interval=1000; check_keepalive_requests 2;", 'add server failed: "check_keepalive_requests 2" is not supported: each check opens its own connection (only 1, the default)'],
    ["server $a; check port=70000;", 'add server failed: port in "check" must be an integer from 1 to 65535 (got "70000")'],
) {
    my ($body, $reason) = @$case;
    my $r = http('POST', '/upstream/dy', $body);
    is("$r->{status} $r->{body}", "400 $reason", "REST: $body");
    my $lua = main::lua('return show(dyups.update("dy", ' . main::lstr($body) . '))');
    is($lua, '400, ' . main::luaq($reason), "Lua: $body");
}
for my $case (
    ['{"servers":[{"server":"' . $a . '"}],"check":{"interval":0}}', 'add server failed: interval in "check" must be a number of milliseconds from 1 to 86400000 (got "0")'],
    ['{"servers":[{"server":"' . $a . '"}],"check":{"type":"ssl_hello"}}', 'add server failed: check type "ssl_hello" is not supported (only tcp and http are)'],
    ['{"servers":[{"server":"' . $a . '"}],"check":{"rise":-1}}', 'add server failed: "check" field "rise" must be a non-negative integer'],
    ['{"servers":[{"server":"' . $a . '"}],"check":{"http_send":"GET /\r\n\r\n"}}', 'add server failed: "check_http_send" must start with a request line "METHOD /path HTTP/1.x" (got "GET /")'],
    ['{"servers":[{"server":"' . $a . '"}],"check":{"expect_alive":["http_6xx"]}}', 'add server failed: invalid value "http_6xx" in "check_http_expect_alive" (http_2xx, http_3xx, http_4xx or http_5xx)'],
    ['{"servers":[{"server":"' . $a . '"}],"check":{"colour":1}}', 'add server failed: unknown "check" field "colour"'],
) {
    my ($body, $reason) = @$case;
    my $r = http('POST', '/upstream/dy', $body, { 'Content-Type' => 'application/json' });
    is("$r->{status} $r->{body}", "400 $reason", "JSON: $body");
}
is(main::state(), $before, 'nothing changed');

=== TEST 6: a reload that changes check_shm_size keeps checking run-time upstreams (their records move to the new zone)
--- http_config
check_shm_size 1m;
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b1 = main::backend($p1);
my $b2 = main::backend($p2);
main::post('dy', "server 127.0.0.1:$p1 max_fails=0; server 127.0.0.1:$p2 max_fails=0; check interval=200 rise=1 fall=1 timeout=300 default_down=false type=http;");
ok(defined main::wait_until(3, sub { main::spread('dy', 6)->{$p2} }), 'both servers take requests');
$b2->stop;
ok(defined main::wait_until(3, sub { main::only_on('dy', 6, $p1) }), 'the dead server is excluded');
main::edit_conf(qr/check_shm_size 1m;/ => 'check_shm_size 2m;');
nginx_reload();
$b2 = main::backend($p2);
ok(defined main::wait_until(3, sub { main::spread('dy', 6)->{$p2} }), 'after the reload the revived server comes back')
    or diag(explain(main::spread('dy', 10)));
$b1->stop;
ok(defined main::wait_until(3, sub { main::only_on('dy', 6, $p2) }), 'and a server that dies after the reload is excluded')
    or diag(explain(main::spread('dy', 10)));

=== TEST 7: a worker of the previous configuration refuses a run-time change once a reload moved the health records (new check_shm_size): 503, and the retry is checked
--- http_config
check_shm_size 1m;
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
location = /basic_status { stub_status; }
--- perl
my $p1 = port(1);
my $b1 = main::backend($p1);
my $body = "server 127.0.0.1:$p1 max_fails=0; check interval=200 rise=1 fall=1 timeout=300 default_down=true type=http;";
# A POST whose header is still being read by a worker of the first
# configuration (stub_status counts it "Reading") when the reload comes.
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port(), Timeout => 5) or die "connect: $!";
$s->autoflush(1);
print $s "POST /upstream/dy HTTP/1.0\r\nHost: x\r\n";
ok(defined main::wait_until(5, sub { http_get('/basic_status')->{body} =~ /Reading: [1-9]/ }), 'an old worker reads the POST');
my %old = map { $_ => 1 } worker_pids();
main::edit_conf(qr/check_shm_size 1m;/ => 'check_shm_size 2m;');
kill 'HUP', master_pid();
ok(poll_until(sub { my @w = worker_pids(); @w && !grep { $old{$_} } @w }, 10), 'new workers run');
print $s "Content-Length: " . length($body) . "\r\n\r\n$body";
my $reply = do { local $/; <$s> } // '';
like($reply, qr{^HTTP/1\.\d 503 .*retry the request}s, 'the old worker answers 503: retry') or diag($reply);
main::post('dy', $body);
ok(defined main::wait_until(3, sub { main::proxied_port('dy') eq $p1 }), 'the retry is checked: its server rises')
    or diag(explain(main::spread('dy', 4)));

=== TEST 8: a reload to a smaller check_shm_size that also drops a configured upstream's checks: the run-time servers' records move, and stay checked
--- http_config
check_shm_size 1m;
$TEST_NGINX_PROXY
upstream big {
    zone big 256k;
$TEST_NGINX_BIG
    check interval=60000 rise=1 fall=1 timeout=300 type=tcp; # BIGCHECK
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b1 = main::backend($p1);
my $b2 = main::backend($p2);
main::post('dy', "server 127.0.0.1:$p1 max_fails=0; server 127.0.0.1:$p2 max_fails=0; check interval=200 rise=1 fall=1 timeout=300 default_down=false type=http;");
ok(defined main::wait_until(3, sub { main::spread('dy', 6)->{$p2} }), 'both servers take requests');
main::edit_conf(qr/check_shm_size 1m;/ => 'check_shm_size 32k;', qr/^.*# BIGCHECK$/m => '');
nginx_reload();
$b1->stop;
ok(defined main::wait_until(3, sub { main::only_on('dy', 6, $p2) }), 'a run-time server that dies after the reload is excluded')
    or diag(explain(main::spread('dy', 10)));
ok(!main::logged(qr/peers are not checked/), 'nothing was left unchecked');

=== TEST 9: a reload that replaces the registry (new dyups_shm_zone_size, no dyups_upstream_conf) and shrinks check_shm_size: the lost run-time upstreams' records stay behind, the configured peers keep theirs
--- http_config
dyups_shm_zone_size 1m;
check_shm_size 64k;
upstream cfg {
    zone cfg 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    check interval=200 rise=1 fall=1 timeout=300 type=http;
}
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
--- perl
my $p1 = port(1);
my $b1 = main::backend($p1);
ok(defined main::wait_until(3, sub { main::proxied_port('cfg') eq $p1 }), 'cfg is checked and up');
my $servers = join '', map { "server 127.0.0.1:$_; " } NginxTest::Traffic::dead_ports(59);
main::post('dy', "${servers}check interval=1000 rise=1 fall=1 timeout=300 type=tcp;");
my %old = map { $_ => 1 } worker_pids();
main::edit_conf(qr/check_shm_size 64k;/ => 'check_shm_size 32k;', qr/dyups_shm_zone_size 1m;/ => 'dyups_shm_zone_size 2m;');
kill 'HUP', master_pid();
ok(poll_until(sub { my @w = worker_pids(); @w && !grep { $old{$_} } @w }, 10), 'new workers run');
is(http_get('/upstream/dy')->{status}, 404, 'the run-time upstream is gone with the old registry');
is(scalar(grep { /peers are not checked/ } split /\n/, error_log_text()), 0, 'every configured checked peer has a record');
is(main::proxied_port('cfg'), $p1, 'cfg keeps its health across the reload');
$b1->stop;
ok(defined main::wait_until(3, sub { main::proxied_port('cfg') ne $p1 }), 'and is still checked: its dead server goes down');

=== TEST 10: a reload to a check_shm_size too small for a run-time upstream's servers: they are no longer checked, and one a check had set down takes traffic again (it used to stay down for good)
--- http_config
check_shm_size 1m;
$TEST_NGINX_PROXY
upstream big {
    zone big 256k;
$TEST_NGINX_BIG
    check interval=60000 rise=1 fall=1 timeout=300 type=tcp;
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b1 = main::backend($p1);
my $b2 = main::backend($p2);
main::post('dy', "server 127.0.0.1:$p1 max_fails=0; server 127.0.0.1:$p2 max_fails=0; check interval=200 rise=1 fall=1 timeout=300 default_down=false type=http;");
ok(defined main::wait_until(3, sub { main::spread('dy', 6)->{$p2} }), 'both servers take requests');
$b2->stop;
ok(defined main::wait_until(3, sub { main::only_on('dy', 6, $p1) }), 'the dead server is set down by its check');
my %old = map { $_ => 1 } worker_pids();
# A zone the configuration's 80 servers cannot fit is refused (nginx -t
# says how many it holds): keep as many, so that it has no room left.
main::edit_conf(qr/check_shm_size 1m;/ => 'check_shm_size 32k;');
my (undef, $out) = nginx_t();
my ($holds) = $out =~ /check_shm_size 32k holds the records of (\d+) checked peers/ or die "nginx -t: $out";
my @big = $ENV{TEST_NGINX_BIG} =~ /^.*\n/mg;
main::edit_conf(qr/\Q$ENV{TEST_NGINX_BIG}\E/ => join '', @big[0 .. $holds - 1]);
kill 'HUP', master_pid();
ok(poll_until(sub { my @w = worker_pids(); @w && !grep { $old{$_} } @w }, 10), 'new workers run');
ok(main::logged(qr/\[error\].*peers are not checked; raise "check_shm_size"/), 'the reload says some peers are not checked');
$b2 = main::backend($p2);
ok(defined main::wait_until(3, sub { main::spread('dy', 6)->{$p2} }), 'the server left unchecked takes requests again')
    or diag(explain(main::spread('dy', 10)));
# Room again: the reload gives the servers their records back, so their
# checks resume without a replace of the upstream (they used to wait for one).
%old = map { $_ => 1 } worker_pids();
main::edit_conf(qr/check_shm_size 32k;/ => 'check_shm_size 1m;');
kill 'HUP', master_pid();
ok(poll_until(sub { my @w = worker_pids(); @w && !grep { $old{$_} } @w }, 10), 'a reload with room: new workers run');
ok(defined main::wait_until(3, sub { main::spread('dy', 6)->{$p2} }), 'both servers take requests');
$b2->stop;
ok(defined main::wait_until(3, sub { main::only_on('dy', 6, $p1) }), 'the dead server is set down by its check again');
$b2 = main::backend($p2);
ok(defined main::wait_until(3, sub { main::spread('dy', 6)->{$p2} }), 'and up when it is back');
--- allow_error_log
peers are not checked

=== TEST 11: a reload that drops the health zone (Lua's ngx.dyups, no check anywhere in the configuration): a run-time server a check had set down takes traffic again (it used to stay down for good)
--- modules: lua
--- http_config
check_shm_size 1m; # HEALTHZONE
$TEST_NGINX_PROXY
--- config
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b1 = main::backend($p1);
my $b2 = main::backend($p2);
my $body = "server 127.0.0.1:$p1 max_fails=0; server 127.0.0.1:$p2 max_fails=0; check interval=200 rise=1 fall=1 timeout=300 default_down=false type=http;";
is(main::lua('return show(dyups.update("dy", ' . main::lstr($body) . '))'), '200, "success"', 'created through Lua');
ok(defined main::wait_until(3, sub { main::spread('dy', 6)->{$p2} }), 'both servers take requests');
$b2->stop;
ok(defined main::wait_until(3, sub { main::only_on('dy', 6, $p1) }), 'the dead server is set down by its check');
my %old = map { $_ => 1 } worker_pids();
main::edit_conf(qr/^.*# HEALTHZONE$/m => '# HEALTHZONE');
kill 'HUP', master_pid();
ok(poll_until(sub { my @w = worker_pids(); @w && !grep { $old{$_} } @w }, 10), 'new workers run, without a health zone');
$b2 = main::backend($p2);
ok(defined main::wait_until(3, sub { main::spread('dy', 6)->{$p2} }), 'the server takes requests again')
    or diag(explain(main::spread('dy', 10)));
# The health zone back: the servers' checks resume without a replace.
%old = map { $_ => 1 } worker_pids();
main::edit_conf(qr/^# HEALTHZONE$/m => 'check_shm_size 1m; # HEALTHZONE');
kill 'HUP', master_pid();
ok(poll_until(sub { my @w = worker_pids(); @w && !grep { $old{$_} } @w }, 10), 'a reload with a health zone: new workers run');
$b2->stop;
ok(defined main::wait_until(3, sub { main::only_on('dy', 6, $p1) }), 'the dead server is set down by its check again');



=== TEST 12: a reload that gives 1200 run-time servers their records back starts their checks spread over a second, and a probe that finds no free connection is retried rather than counted against its server: every server is checked again and none goes down (all came due at once, the worker's connections ran out and 351 of 600 healthy servers went down: review 14)
--- workers: 1
--- timeout: 120
--- http_config
check_shm_size 1m;
$TEST_NGINX_PROXY
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    return 200 "$server_port\n";
}
--- config
location / { dyups_interface; }
location /status { check_status json; }
--- perl
my @ports = map { port($_) } 1 .. 4;
my $body = join('', map { "server 127.0.0.1:$_; " } @ports)
         . 'check interval=30000 rise=1 fall=1 timeout=2000 default_down=false type=tcp;';
my $posted = grep { http('POST', "/upstream/u$_", $body)->{status} == 200 } 1 .. 300;
is($posted, 300, '300 run-time upstreams of 4 checked servers');
my $status = sub {
    my $s = JSON::PP->new->decode(http_get('/status')->{body})->{servers}{server};
    my %up = map { $_ => 0 } qw(up down);
    $up{ $_->{status} }++ for grep { $_->{upstream} =~ /^u\d+$/ } @$s;
    return "$up{up} up, $up{down} down";
};
for my $size ('32k', '1m') {
    my %old = map { $_ => 1 } worker_pids();
    main::edit_conf(qr/check_shm_size \w+;/ => "check_shm_size $size;");
    kill 'HUP', master_pid();
    ok(poll_until(sub { my @w = worker_pids(); @w && !grep { $old{$_} } @w }, 10), "reload to check_shm_size $size");
}
ok(poll_until(sub { my $rises = () = http_get('/status')->{body} =~ /"rise": [1-9]/g; $rises >= 1200 }, 10),
   'every server probed again after the reload with room');
is($status->(), '1200 up, 0 down', 'all 1200 servers checked and up');
my $failed = grep { main::proxied_port("u$_") !~ /^\d+$/ } 1 .. 300;
is($failed, 0, 'every upstream answers');
--- allow_error_log
peers are not checked

=== TEST 13: a health zone far larger than its use, whose walks stop at the highest slot ever claimed: servers whose records are claimed past that mark (after others were freed) are checked, across a reload that keeps the zone and one that resizes it; the listings show each server's health; a worker's private memory does not grow with check_shm_size (each kept a cache entry per slot of the zone: 48 MB for 256m)
--- http_config
check_shm_size 256m;
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2, $p3) = (port(1), port(2), port(3));
my ($d1, $d2, $d3) = NginxTest::Traffic::dead_ports(3);
my %b = map { $_ => main::backend($_) } $p1, $p2, $p3;
# default_down=true: a server comes up only once a probe passed.
my $check = 'check interval=200 rise=1 fall=1 timeout=300 default_down=true type=http;';
my $servers = sub { join('', map { "server 127.0.0.1:$_ max_fails=0; " } @_) . $check };
# Each server's health in dyups' /detail (one listing of every upstream).
my $detail = sub {
    my $j = JSON::PP->new->decode(http_get('/detail?format=json')->{body});
    return { map { my $u = $_->{upstream}; map { ("$u $_->{name}" => $_->{health}) } @{ $_->{peers} } } @{ $j->{upstreams} } };
};
main::post('a', $servers->($p1, $d1));    # slots 0 and 1
main::post('b', $servers->($p2));         # slot 2: the mark is 3
ok(defined main::wait_until(3, sub { main::only_on('a', 6, $p1) && main::proxied_port('b') eq $p2 }), 'a and b are checked');
for my $w (worker_pids()) {
    open my $fh, '<', "/proc/$w/smaps_rollup" or next;
    my ($kb) = map { /^Private_Dirty:\s+(\d+)/ ? $1 : () } <$fh>;
    cmp_ok($kb, '<', 24 * 1024, "worker $w: private memory below 24 MB with check_shm_size 256m") or diag("$kb kB");
}
is(http('DELETE', '/upstream/a')->{status}, 200, 'a deleted: slots 0 and 1 free');
main::post('c', $servers->($d2, $p3, $p1));    # slots 0, 1 and 3 (past the mark)
ok(defined main::wait_until(3, sub { my $s = main::spread('c', 8); $s->{$p1} && $s->{$p3} && keys %$s == 2 }),
   'the server claimed past the mark rises') or diag(explain(main::spread('c', 8)));
my $h = $detail->();
is_deeply([@$h{"c 127.0.0.1:$d2", "c 127.0.0.1:$p3", "c 127.0.0.1:$p1", "b 127.0.0.1:$p2"}], [qw(down up up up)], '/detail: each server\'s health')
    or diag(explain($h));

nginx_reload();    # the zone is kept, with its mark
is(http('DELETE', '/upstream/b')->{status}, 200, 'b deleted: slot 2 free');
main::post('e', $servers->($d3, $p2));    # slots 2 and 4 (past the mark)
ok(defined main::wait_until(3, sub { main::only_on('e', 6, $p2) }), 'after a reload that keeps the zone, a server claimed past the mark rises')
    or diag(explain(main::spread('e', 6)));
$b{$p3}->stop;
ok(defined main::wait_until(3, sub { main::only_on('c', 6, $p1) }), 'and one claimed before goes down when it dies')
    or diag(explain(main::spread('c', 6)));

main::edit_conf(qr/check_shm_size 256m;/ => 'check_shm_size 128m;');
nginx_reload();    # a new zone: the records move into it
$b{$p3} = main::backend($p3);
ok(defined main::wait_until(3, sub { main::spread('c', 8)->{$p3} }), 'after a reload that resizes the zone, a moved record is checked')
    or diag(explain(main::spread('c', 8)));
is(http('DELETE', '/upstream/c')->{status}, 200, 'c deleted');
main::post('f', $servers->($d1, $d2, $p3));
ok(defined main::wait_until(3, sub { main::only_on('f', 6, $p3) }), 'and servers claimed in the new zone are checked')
    or diag(explain(main::spread('f', 6)));
$h = $detail->();
is_deeply([@$h{"e 127.0.0.1:$d3", "e 127.0.0.1:$p2", "f 127.0.0.1:$d1", "f 127.0.0.1:$d2", "f 127.0.0.1:$p3"}], [qw(down up down down up)],
          '/detail: each server\'s health') or diag(explain($h));

=== TEST 14: a run-time server given twice has one health record: one line per transition
--- http_config
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
--- perl
# Review 21: each of its lines got a record, probed and logged apart.
my $p1 = port(1);
my $b = main::backend($p1);
main::post('dup', "server 127.0.0.1:$p1; server 127.0.0.1:$p1; check interval=300 rise=1 fall=1 timeout=1000 default_down=true type=tcp;");
my $up = sub { my @n = error_log_text() =~ /server 127\.0\.0\.1:$p1 of upstream "dup" is up/g; scalar @n };
ok(poll_until(sub { $up->() >= 1 }, 5, 'up'), 'the server rises');
ok(!defined main::wait_until(1, sub { $up->() > 1 }), 'said once');

=== TEST 15: a replace that shortens the check interval puts the servers it keeps on the new interval at once: a server that starts down rises within the new interval, not after the old one (hunt 25: it kept its old schedule, down for up to the old interval: up to a day)
--- http_config
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
--- perl
my $p1 = port(1);
my $b = main::backend($p1);
main::post('dy', "server 127.0.0.1:$p1; check interval=60000 rise=2 fall=1 timeout=1000 type=tcp;");
ok(defined main::wait_until(3, sub { $b->accepted >= 1 }), 'probed once: it rose once of twice, still down');
is(main::proxied('dy')->{status}, 502, '  requests: 502');
main::post('dy', "server 127.0.0.1:$p1; check interval=200 rise=2 fall=1 timeout=1000 type=tcp;");
my $t = main::wait_until(3, sub { main::proxied('dy')->{status} == 200 });
ok(defined $t, 'with interval=200 it rises within 3 s');
is(main::proxied('dy')->{body}, "$p1\n", '  and serves');

=== TEST 16: a run-time upstream's check interval shorter than the workers' 100 ms tick is kept: 40 probes at interval=20 take well under the 4 s a 100 ms tick needs (hunt 25: the tick followed the configuration's shortest interval only, and a run-time interval=20 was probed every 100 ms at best)
--- workers: 1
--- http_config
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
--- perl
my $p1 = port(1);
my $b = main::backend($p1);
main::post('dy', "server 127.0.0.1:$p1; check interval=20 rise=1 fall=1 timeout=1000 type=tcp;");
ok(defined main::wait_until(3, sub { $b->accepted >= 1 }), 'probed');
my $from = $b->accepted;
my $t = main::wait_until(10, sub { $b->accepted - $from >= 40 });
ok(defined $t && $t < 2.5, '40 more probes within 2.5 s (4 s at least on a 100 ms tick)') or diag('took ' . ($t // 'over 10') . ' s');

=== TEST 22: a reload that changes check_shm_size and dyups_shm_zone_size at once keeps the run-time upstreams' verdicts: a server its check set down gets no request (the new registry, loaded from dyups_upstream_conf only later, had no upstream to say whose records to move: none moved, and the server came back up, review 39)
--- http_config
check_shm_size 1m;
dyups_shm_zone_size 2m;
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b1 = main::backend($p1);
main::post('dy', "server 127.0.0.1:$p1 max_fails=0; server 127.0.0.1:$p2 max_fails=0; check interval=1000 rise=1 fall=3 timeout=300 default_down=false type=http;");
ok(defined main::wait_until(8, sub { main::only_on('dy', 6, $p1) }), 'the dead server is set down by its check');
my %old = map { $_ => 1 } worker_pids();
main::edit_conf(qr/check_shm_size 1m;/ => 'check_shm_size 2m;', qr/dyups_shm_zone_size 2m;/ => 'dyups_shm_zone_size 4m;');
kill 'HUP', master_pid();
ok(poll_until(sub { my @w = worker_pids(); @w && !grep { $old{$_} } @w }, 10), 'new workers run');
ok(main::only_on('dy', 10, $p1), 'right after the reload, the dead server still gets no request') or diag(explain(main::spread('dy', 10)));

=== TEST 23: without dyups_upstream_conf, the same reload (both sizes) with more checked servers in the configuration: the run-time records of the replaced registry, which restores none, leave their room to them (every run-time record moved, and took the room of configuration servers, which stayed unchecked, review 40)
--- http_config
check_shm_size 32k;
dyups_shm_zone_size 2m;
upstream cfg {
    zone cfg 512k;
    server 127.0.1.1:30001;
    check interval=60000 rise=1 fall=1 timeout=300 type=tcp;
}
--- config
location / { dyups_interface; }
location /status { check_status json; }
--- perl
my $check = 'check interval=60000 rise=1 fall=1 timeout=300 type=tcp;';
my $holds = main::zone_holds('dy', $check);
main::post('dy', main::server_lines('127.0.2.1', $holds - 1) . $check);
my $more = $holds + 21;    # fits a 64k zone (about twice 32k's), not beside the run-time servers
my %old = map { $_ => 1 } worker_pids();
main::edit_conf(qr/check_shm_size 32k;/ => 'check_shm_size 64k;', qr/dyups_shm_zone_size 2m;/ => 'dyups_shm_zone_size 4m;',
                qr/    server 127\.0\.1\.1:30001;\n/ => join '', map { "    server 127.0.1.1:$_;\n" } 30001 .. 30000 + $more);
kill 'HUP', master_pid();
ok(poll_until(sub { my @w = worker_pids(); @w && !grep { $old{$_} } @w }, 10), 'new workers run');
my $status = JSON::PP->new->decode(http_get('/status')->{body});
is(scalar(grep { $_->{upstream} eq 'cfg' } @{ $status->{servers}{server} }), $more, "all $more configuration servers are checked");
ok(!main::logged(qr/peers are not checked/), '  none said to be unchecked');

=== TEST 24: a reload that keeps the health zone and gives the configuration more checked servers than the run-time upstreams leave room for: the configuration's servers take the run-time records they need (they stayed unchecked and took requests, dead or not: the run-time records were never freed, review 37 R1); the [error] names the run-time servers left unchecked
--- http_config
check_shm_size 32k;
upstream cfg {
    zone cfg 512k;
    server 127.0.1.1:30001;
    check interval=60000 rise=1 fall=1 timeout=300 type=tcp;
}
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
location /status { check_status json; }
--- perl
my $check = 'check interval=60000 rise=1 fall=1 timeout=300 type=tcp;';
my $holds = main::zone_holds('dy', $check);
main::post('dy', main::server_lines('127.0.2.1', $holds - 1) . $check);
my $rows = sub {
    my ($upstream) = @_;
    my $status = JSON::PP->new->decode(http_get('/status')->{body});
    return scalar grep { $_->{upstream} eq $upstream } @{ $status->{servers}{server} };
};
is($rows->('dy') + $rows->('cfg'), $holds, "the zone is full: $holds records");
# 21 configuration servers: they fit the zone (nginx -t passes), not beside the run-time ones.
main::edit_conf(qr/    server 127\.0\.1\.1:30001;\n/ => join '', map { "    server 127.0.1.1:$_;\n" } 30001 .. 30021);
my ($rc, $out) = nginx_t();
is($rc, 0, 'nginx -t accepts the configuration') or diag($out);
my $size = -s prefix() . 'logs/error.log';
nginx_reload();
is($rows->('cfg'), 21, 'every configuration server has a record');
is($rows->('dy'), $holds - 21, '  the run-time upstream gave up 20 of its records');
my $log = substr(error_log_text(), $size);
my @unchecked = $log =~ /^.*\[error\].*the health zone holds $holds checked peers: 20 peers are not checked; raise "check_shm_size" \((.*)\)$/m
    or diag($log);
my @named = ($unchecked[0] // '') =~ /127\.0\.2\.1:(\d+)/g;
is(scalar @named, 10, '  the [error] names the first run-time servers left unchecked');
like($unchecked[0] // '', qr/^upstream "dy": 127\.0\.2\.1:\d+, .*, and 10 more$/, '  of upstream "dy", and says how many more');
my $statuses = join ' ', map { main::proxied('cfg')->{status} } 1 .. 10;
is($statuses, join(' ', ('502') x 10), 'every configuration server is checked down: no request reaches one (502)');
$log = substr(error_log_text(), $size);
is(scalar(() = $log =~ /connect\(\) failed .*upstream: "http:\/\/127\.0\.1\.1:/g), 0, '  no request was sent to a dead configuration server');
--- allow_error_log
peers are not checked

=== TEST 25: the run-time records a reload gives to the configuration's servers are those of servers that are up first: a run-time server its check set down keeps its record, and still gets no request (losing it, it would be unchecked and take requests again)
--- http_config
check_shm_size 32k;
upstream cfg {
    zone cfg 512k;
    server 127.0.1.1:30001;
    check interval=60000 rise=1 fall=1 timeout=300 type=tcp;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200; }
$TEST_NGINX_PROXY
--- config
location / { dyups_interface; }
location /status { check_status json; }
--- perl
my $holds = main::zone_holds('dn', 'check type=tcp;');
# "up": 30 servers probed on port 1, which answers (nothing is sent to
# them); "dn": dead servers, down after their first probe.
main::post('up', main::server_lines('127.0.0.1', 30) . 'check interval=60000 rise=1 fall=1 timeout=300 type=tcp port=' . port(1) . ';');
main::post('dn', main::server_lines('127.0.2.1', $holds - 31) . 'check interval=60000 rise=1 fall=1 timeout=300 default_down=false type=tcp;');
my $health = sub {
    my $status = JSON::PP->new->decode(http_get('/status')->{body});
    my %n;
    $n{"$_->{upstream} $_->{status}"}++ for @{ $status->{servers}{server} };
    return join ', ', map { "$_ $n{$_}" } sort keys %n;
};
my $before = "cfg down 1, dn down " . ($holds - 31) . ', up up 30';
ok(poll_until(sub { $health->() eq $before }, 5), 'the zone is full; up is up, dn down') or diag($health->());
main::edit_conf(qr/    server 127\.0\.1\.1:30001;\n/ => join '', map { "    server 127.0.1.1:$_;\n" } 30001 .. 30021);
my $size = -s prefix() . 'logs/error.log';
nginx_reload();
is($health->(), "cfg down 21, dn down " . ($holds - 31) . ', up up 10', 'the 20 records the configuration took were up servers\'');
my $statuses = join ' ', map { main::proxied('dn')->{status} } 1 .. 5;
is($statuses, join(' ', ('502') x 5), 'the checked-down run-time servers still get no request (502)');
my $log = substr(error_log_text(), $size);
is(scalar(() = $log =~ /connect\(\) failed .*upstream: "http:\/\/127\.0\.2\.1:/g), 0, '  none was sent to one');
like($log, qr/\[error\].*: 20 peers are not checked; raise "check_shm_size" \(upstream "up": 127\.0\.0\.1:/, '  the [error] names up\'s servers');
--- allow_error_log
peers are not checked
