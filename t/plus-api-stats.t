# Per-peer statistics as the NGINX Plus API reports them: requests,
# responses by class, fails, unavail, downtime, sent/received, selected,
# header and response times, active; counted in every worker, for zone and
# run-time upstreams, and kept by servers that stay through a PUT.
use lib 't/lib';
use NginxTest;
use NginxTest::PlusApi;
use NginxTest::Traffic;
use JSON::PP ();

run_tests();
__DATA__

=== TEST 1: responses by class, bytes, times and selected, counted by every worker
--- workers: 2
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    location / { return 200 "hello\n"; }
    location /missing { return 404; }
    location /broken { return 503; }
}
--- config
location /api { dynamic_upstream_api; }
location / { proxy_pass http://backends; proxy_next_upstream off; }
--- perl
my %status;
for my $path (('/') x 20, ('/missing') x 4, ('/broken') x 4) {
    $status{ http_get($path)->{status} }++;
}
my $p = main::upstream_peers('backends');
my ($a, $b) = @$p;
is($a->{requests} + $b->{requests}, 28, 'every attempt counted once, whichever worker served it');
is($a->{responses}{'2xx'} + $b->{responses}{'2xx'}, 20, '2xx');
is($a->{responses}{'4xx'} + $b->{responses}{'4xx'}, $status{404}, '4xx');
is($a->{responses}{'5xx'} + $b->{responses}{'5xx'}, $status{503}, '5xx');
for my $peer ($a, $b) {
    is($peer->{responses}{total}, $peer->{requests}, "$peer->{server}: a response per request");
    ok($peer->{sent} > 0 && $peer->{received} > 0, "$peer->{server}: bytes sent and received") or diag(explain $peer);
    like($peer->{selected}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, "$peer->{server}: selected");
    ok(defined $peer->{header_time} && defined $peer->{response_time}, "$peer->{server}: times") or diag(explain $peer);
    is($peer->{active}, 0, "$peer->{server}: no active request");
    is_deeply([@$peer{qw(fails unavail downtime state)}], [0, 0, 0, 'up'], "$peer->{server}: no failure");
}
ok($status{404} && $status{503}, 'some 404 and 503 reached the backend') or diag(explain \%status);

=== TEST 2: fails, unavail, state, downtime; a failed server is unavail, with a downstart, while nginx skips it
--- workers: 1
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=2 fail_timeout=1s;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; location / { return 200 "ok\n"; } }
--- config
location /api { dynamic_upstream_api; }
location / { proxy_pass http://backends; }
--- perl
is(http_get('/')->{status}, 200, "request $_") for 1 .. 6;
my ($ok, $dead) = @{ main::upstream_peers('backends') };
is($dead->{fails}, 2, 'fails: the dead server failed max_fails times');
is($dead->{unavail}, 1, 'unavail: it became unavailable once');
is($dead->{state}, 'unavail', 'state');
is($dead->{responses}{total}, 0, 'no response from it');
is($dead->{requests}, 2, 'two attempts');
ok($dead->{downstart}, 'downstart while unavailable');
ok(poll_until(sub { main::upstream_peers('backends')->[1]{downtime} >= 200 }, 5, 'downtime grows'), 'downtime grows while it is down');
is($ok->{requests}, 6, 'the good server took every request');
is($ok->{fails}, 0, 'and did not fail');

=== TEST 3: run-time upstreams count too; a PUT keeps the counters of servers that stay
--- http_config
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200 "one\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_2; return 200 "two\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_3; location / { dyups_interface; } }
--- config
location /api { dynamic_upstream_api write=on; }
location / { proxy_pass http://$host; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
is(http('POST', "http://127.0.0.1:$p3/upstream/dyhost", "server 127.0.0.1:$p1;")->{status}, 200, 'created');
is(http('GET', '/', undef, { Host => 'dyhost' })->{status}, 200, "request $_") for 1 .. 5;
is(main::upstream_peers('dyhost')->[0]{requests}, 5, 'counted');
my $r = http('PUT', '/api/9/http/upstreams/dyhost/servers', qq([{"server":"127.0.0.1:$p1"},{"server":"127.0.0.1:$p2"}]));
is($r->{status}, 200, 'PUT') or diag($r->{body});
is(http('GET', '/', undef, { Host => 'dyhost' })->{status}, 200, "request $_ after") for 1 .. 4;
my $p = main::upstream_peers('dyhost');
is($p->[0]{requests} + $p->[1]{requests}, 9, 'the server that stayed kept its 5');
is($p->[1]{id}, 1, 'the new server has the next ID');
is(http('POST', "http://127.0.0.1:$p3/upstream/dyhost", "server 127.0.0.1:$p1;")->{status}, 200, 'replaced through REST');
ok(main::upstream_peers('dyhost')->[0]{requests} >= 5, 'a REST replace keeps them too');

=== TEST 4: the other APIs' answers carry no statistics
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200 "ok\n"; }
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
is(http_get('/')->{status}, 200, 'proxied');
my $j = JSON::PP->new->decode(http_get('/dynamic?upstream=backends&format=json')->{body});
is_deeply([sort keys %{ $j->{peers}[0] }], [sort qw(server name weight max_fails fail_timeout max_conns backup down
          conns fails current_weight effective_weight accessed checked)], 'the query API\'s JSON is as before');

=== TEST 5: a one-server upstream: its failures count in fails, never in unavail, and it has no downtime (nginx never makes the only server unavailable: every failure counted unavail and started downtime, hunt 38)
--- workers: 1
--- http_config
upstream one {
    zone one 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /api { dynamic_upstream_api; }
location / { proxy_pass http://one; }
--- perl
is(http_get('/')->{status}, 502, "request $_: nothing listens") for 1 .. 3;
my ($peer) = @{ main::upstream_peers('one') };
is_deeply([@$peer{qw(requests fails unavail downtime state)}], [3, 3, 0, 0, 'up'], 'fails 3, unavail 0, downtime 0, up')
    or diag(explain $peer);
ok(!exists $peer->{downstart}, 'no downstart');
--- allow_error_log
connect() failed

=== TEST 6: downtime ends when nginx tries the server again (fail_timeout after its last failure, in nginx's seconds), not at its next success: an idle server that failed once is listed up with a frozen downtime and no downstart; failing again once tried makes it unavail again (hunt 38 F2 a)
--- workers: 1
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=1 fail_timeout=1s;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; location / { return 200 "ok\n"; } }
--- config
location /api { dynamic_upstream_api; }
location /metrics { dynamic_upstream_metrics; }
location / { proxy_pass http://backends; }
--- perl
my $dead = sub { main::upstream_peers('backends')->[1] };
my $fail_once = sub {
    my $want = shift;
    for (1 .. 6) {
        is(http_get('/')->{status}, 200, 'answered by the live server');
        return 1 if $dead->()->{fails} >= $want;
    }
    return 0;
};
ok($fail_once->(1), 'nothing listens on the second server: it failed');
my $p = $dead->();
is_deeply([@$p{qw(fails unavail state)}], [1, 1, 'unavail'], 'one failure reaches max_fails=1: unavail') or diag(explain $p);
ok(my $start = $p->{downstart}, 'downstart while unavail');
ok(poll_until(sub { $dead->()->{state} eq 'up' }, 4), 'listed up after fail_timeout');
$p = $dead->();
ok(!exists $p->{downstart}, 'no downstart once nginx would send it requests again') or diag(explain $p);
my $down = $p->{downtime};
ok($down > 1000 && $down <= 2000, "downtime $down: from the failure to the second after fail_timeout (nginx's rule)");
select(undef, undef, undef, 1.2);
$p = $dead->();
is_deeply([@$p{qw(state downtime)}], ['up', $down], 'no traffic: still up, downtime frozen') or diag(explain $p);
like(http_get('/metrics')->{body}, qr/^nginxplus_upstream_server_downtime\{[^}]*server="127\.0\.0\.1:\d+"[^}]*\} $down$/m,
    '/metrics: the same downtime');
ok($fail_once->(2), 'nginx tries it again, and it fails again');
$p = $dead->();
is_deeply([@$p{qw(fails unavail state)}], [2, 2, 'unavail'], 'unavail again: counted a second time') or diag(explain $p);
ok($p->{downstart} && $p->{downstart} gt $start, "a new downstart: $p->{downstart} after $start") or diag(explain $p);
ok($p->{downtime} >= $down, 'downtime runs on from where it stopped');
ok(poll_until(sub { $dead->()->{state} eq 'up' }, 4), 'up again after fail_timeout');
$p = $dead->();
# From the second nginx let the request through to the first second more
# than fail_timeout after its failure (the same second, unless it ended in
# the next one).
ok(!exists $p->{downstart} && $p->{downtime} >= $down + 2000 && $p->{downtime} <= $down + 3000,
    "the second stretch added 2 s (3 if the failure came a second later): $p->{downtime}") or diag(explain $p);
--- allow_error_log
connect() failed
upstream server temporarily disabled

=== TEST 7: a request sent before the failure that succeeds while the server is unavail does not end the downtime (nginx still skips the server: it resets fails only for a request sent after the failure, accessed < checked) (hunt 38 F2 b)
--- workers: 1
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 down;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=1 fail_timeout=2s;
}
--- config
location /api { dynamic_upstream_api; }
location / { proxy_pass http://backends; }
--- perl
my $server = sub { main::upstream_peers('backends')->[1] };
my $listener = main::silent_backend(port(2));
my ($slow, $slow_upstream) = main::hold_proxied_request($listener);
my ($failing, $failing_upstream) = main::hold_proxied_request($listener);
close $failing_upstream;
my $answer = do { local $/; <$failing> };
like($answer, qr{^HTTP/1\.1 502}, 'the second request failed: the server closed its connection');
my $p = $server->();
is_deeply([@$p{qw(fails unavail state)}], [1, 1, 'unavail'], 'unavail') or diag(explain $p);
ok(my $start = $p->{downstart}, 'downstart');
print $slow_upstream "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
close $slow_upstream;
$answer = do { local $/; <$slow> };
like($answer, qr{^HTTP/1\.1 200}, 'the request sent before the failure succeeded');
$p = $server->();
is_deeply([@$p{qw(state downstart)}], ['unavail', $start], 'still unavail, with the same downstart') or diag(explain $p);
my $down = $p->{downtime};
ok(poll_until(sub { $server->()->{downtime} > $down }, 2), 'downtime still runs');
is(http_get('/')->{status}, 502, 'nginx still skips it: no live upstreams');
ok(poll_until(sub { $server->()->{state} eq 'up' }, 5), 'up after fail_timeout');
$p = $server->();
ok(!exists $p->{downstart} && $p->{downtime} > 2000 && $p->{downtime} <= 3000,
    "then no downstart, downtime $p->{downtime} (2 to 3 s)") or diag(explain $p);
--- allow_error_log
no live upstreams
upstream server temporarily disabled
upstream prematurely closed connection

=== TEST 8: a server that is the only one left of its list, failing while its downtime runs: the downtime is kept (on nginx 1.28, whose free resets the only server's fails after a failure too, the running stretch was lost: downtime fell to 0, a counter reset for Prometheus, review 43)
--- workers: 1
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=1 fail_timeout=30s;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; location / { return 200 "ok\n"; } }
--- config
location /api { dynamic_upstream_api write=on; }
location / { proxy_pass http://backends; }
--- perl
my $dead = sub { (grep { $_->{server} eq '127.0.0.1:' . port(2) } @{ main::upstream_peers('backends') })[0] };
ok(poll_until(sub { http_get('/'); $dead->()->{unavail} == 1 }, 5), 'nothing listens on the second server: unavail');
ok(poll_until(sub { $dead->()->{downtime} >= 1000 }, 3), 'its downtime runs');
my $live = (grep { $_->{server} eq '127.0.0.1:' . port(1) } @{ main::upstream_peers('backends') })[0];
is(http('DELETE', "/api/9/http/upstreams/backends/servers/$live->{id}")->{status}, 200, 'the live server deleted: the dead one is the only one');
my $before = $dead->()->{downtime};
is(http_get('/')->{status}, 502, 'a request to it fails');
my $after = $dead->()->{downtime};
ok($after >= $before, "downtime kept: $before ms before the failure, $after after") or diag(explain $dead->());
select(undef, undef, undef, 0.3);
ok($dead->()->{downtime} >= $after, 'and never lower later');
--- allow_error_log
connect() failed
upstream server temporarily disabled

=== TEST 9: a server left alone in its list by a change while unavail: listed up at once, its downtime frozen, as nginx serves it (nginx never skips the only server; before 1.27.3 it kept its failures, and the APIs listed it unavail with its downtime running while it served every request, review 44)
--- workers: 1
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=1 fail_timeout=20s;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; location / { if ($arg_fail) { return 500; } return 200 "A\n"; } }
server { listen 127.0.0.1:$TEST_NGINX_PORT_2; location / { return 200 "B\n"; } }
--- config
location /api { dynamic_upstream_api write=on; }
location / { proxy_pass http://backends; proxy_next_upstream error http_500; }
--- perl
my $peer = sub { my ($port) = @_; (grep { $_->{server} eq "127.0.0.1:$port" } @{ main::upstream_peers('backends') })[0] };
ok(poll_until(sub { http_get('/?fail=1'); $peer->(port(1))->{unavail} == 1 }, 5), 'the first server fails once (the second answers)');
my $a = $peer->(port(1));
is_deeply([@$a{qw(state unavail)}], ['unavail', 1], 'unavail') or diag(explain $a);
my $other = $peer->(port(2));
is(http('DELETE', "/api/9/http/upstreams/backends/servers/$other->{id}")->{status}, 200, 'the other server deleted');
$a = $peer->(port(1));
is_deeply([$a->{state}, exists $a->{downstart}], ['up', ''], 'the only server: up, no downstart') or diag(explain $a);
my $down = $a->{downtime};
is(http_get('/')->{body}, "A\n", 'nginx serves it') for 1 .. 3;
select(undef, undef, undef, 1.1);
$a = $peer->(port(1));
is_deeply([@$a{qw(state downtime)}], ['up', $down], 'still up, downtime frozen') or diag(explain $a);
--- allow_error_log
upstream server temporarily disabled

=== TEST 10: selected is when nginx picked the server for its last attempt, not when that attempt ended (a 1 s request was listed as selected a second late: hunt 38 F3), and the latest pick whichever attempt ends last (a long one ending after a later, quick one moved it back: review 49)
--- modules: echo
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    location /slow { echo_sleep 1; echo "slow"; }
    location / { echo "quick"; }
}
--- config
location /api { dynamic_upstream_api; }
location / { proxy_pass http://backends; }
--- perl
use IO::Socket::INET;
use Time::HiRes ();
use Time::Local ();
my $now = sub { int(Time::HiRes::time() * 1000) };
my $selected = sub {
    my ($y, $mo, $d, $h, $mi, $s, $f) = (main::upstream_peers('backends')->[0]{selected} // '')
        =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)\.(\d+)Z$/ or return undef;
    return Time::Local::timegm($s, $mi, $h, $d, $mo - 1, $y) * 1000 + $f;
};
my $sent = $now->();
is(http_get('/slow')->{body}, "slow\n", 'a request of one second');
my $answered = $now->();
my $at = $selected->();
ok(defined $at && $at >= $sent - 20 && $at < $sent + 500 && $at < $answered - 500,
   'selected is when the request was sent to it') or diag("sent $sent, selected " . ($at // 'none') . ", answered $answered");
my $slow = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port()) or die "connect: $!";
print $slow "GET /slow HTTP/1.0\r\nHost: localhost\r\n\r\n";
# The quick request's pick comes measurably later than the slow one's.
Time::HiRes::sleep(0.3);
my $quick_sent = $now->();
is(http_get('/')->{body}, "quick\n", 'a quick request while a slow one runs');
my $answer = do { local $/; <$slow> };
like($answer, qr/slow/, '  the slow one ends after it');
$at = $selected->();
ok(defined $at && $at >= $quick_sent - 20, 'selected is the quick request\'s pick, the later one')
    or diag("quick sent $quick_sent, selected " . ($at // 'none'));
