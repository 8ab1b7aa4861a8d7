# Active health checks and the NGINX Plus API: servers a PUT adds to a
# checked upstream start default_down and are checked, the ones it removes
# are no longer probed; the per-server health_checks object and the
# "unhealthy" state (Prometheus: 6, nginx-prometheus-exporter's value) come
# from the checks. Backends are processes the block starts and kills
# (NginxTest::Backend); passive checks are off (max_fails=0).
use lib 't/lib';
use NginxTest;
use NginxTest::Backend qw(backend wait_until spread);
use NginxTest::PlusApi;

# The Plus API's status of server ADDR of upstream UPSTREAM ("backends").
sub peer {
    my ($addr, $upstream) = @_;
    $upstream //= 'backends';
    my $u = JSON::PP->new->decode(http_get("/api/9/http/upstreams/$upstream")->{body});
    my ($p) = grep { $_->{server} eq $addr } @{ $u->{peers} };
    return $p;
}

# A PUT moves checked server port 2 to the other list (to the backup list
# if $to_backup): it keeps its record (up at once, not default_down, with
# its checks so far); a PUT that removes it stops its checks.
sub move_then_remove {
    my ($to_backup) = @_;
    my ($p1, $p2) = map { port($_) } 1 .. 2;
    my ($b1, $b2) = (main::backend($p1), main::backend($p2));
    ok(defined main::wait_until(3, sub { main::peer("127.0.0.1:$p2")->{state} eq 'up' }), 'port 2 is probed and up');
    my $checks = main::peer("127.0.0.1:$p2")->{health_checks}{checks};
    my $backup = $to_backup ? ',"backup":true' : '';
    my $r = http('PUT', '/api/9/http/upstreams/backends/servers',
                 qq([{"server":"127.0.0.1:$p1","max_fails":0},{"server":"127.0.0.1:$p2","max_fails":0$backup}]));
    main::plus_json($r, 200, 'PUT: it moves to the other list');
    my $moved = main::peer("127.0.0.1:$p2");
    is($moved->{backup} ? 'backup' : 'primary', $to_backup ? 'backup' : 'primary', 'listed in its new list');
    is($moved->{state}, 'up', 'it is up at once (its record, not default_down)');
    cmp_ok($moved->{health_checks}{checks}, '>=', $checks, 'with its checks so far');
    $r = http('PUT', '/api/9/http/upstreams/backends/servers', qq([{"server":"127.0.0.1:$p1","max_fails":0}]));
    main::plus_json($r, 200, 'PUT: the server is removed');
    main::no_more_probes($b2);
}

# BACKEND, whose server a PUT just removed, gets no probe for 7 intervals
# (one may be in flight as it goes).
sub no_more_probes {
    my ($backend) = @_;
    my $probes = $backend->accepted;
    ok(!defined main::wait_until(1.5, sub { $backend->accepted > $probes + 1 }), 'no probe of the removed server for 7 intervals')
        or diag($backend->accepted - $probes . ' more probes');
}

run_tests();
__DATA__

=== TEST 1: PUT into a checked upstream: added servers start default_down and are checked, removed ones are no longer probed (review H2 finding 7)
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=200 rise=2 fall=1 timeout=400 type=http;
}
--- config
location /api { dynamic_upstream_api write=on; }
location = /metrics { dynamic_upstream_metrics; }
location / { proxy_pass http://backends; proxy_next_upstream off; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my ($b1, $b2) = (main::backend($p1), main::backend($p2));
ok(defined main::wait_until(5, sub { my $s = main::spread(6); $s->{$p1} && $s->{$p2} }), 'both configured peers rose');
my $r = http('PUT', '/api/9/http/upstreams/backends/servers',
             qq([{"server":"127.0.0.1:$p1","max_fails":0},{"server":"127.0.0.1:$p3","max_fails":0}]));
main::plus_json($r, 200, 'PUT');
# Nothing listens on $p3 yet: without checks the new server would answer 502.
my $s = main::spread(20);
is_deeply($s, { $p1 => 20 }, 'the added server gets no request before it rose') or diag(explain($s));
my $p = main::peer("127.0.0.1:$p3");
is($p->{state}, 'unhealthy', 'the added server is unhealthy (default_down)');
my $probes = $b2->accepted;
ok(!defined main::wait_until(1, sub { $b2->accepted > $probes + 1 }), 'no probe of the removed server for 5 intervals')
    or diag($b2->accepted - $probes . ' more');
my $b3 = main::backend($p3);
ok(defined main::wait_until(5, sub { main::spread(4)->{$p3} }), 'the added server rose once its backend answered');
$p = main::peer("127.0.0.1:$p3");
is($p->{state}, 'up', 'up');
cmp_ok($p->{health_checks}{checks}, '>=', 3, 'health_checks.checks counts its checks');
cmp_ok($p->{health_checks}{fails}, '>=', 1, 'health_checks.fails counts the failed ones');
is($p->{health_checks}{unhealthy}, 0, 'it never became unhealthy (it started so)');
is($p->{health_checks}{last_passed}, JSON::PP::true, 'last_passed');
$b3->stop;
ok(defined main::wait_until(5, sub { main::peer("127.0.0.1:$p3")->{state} eq 'unhealthy' }), 'unhealthy once its backend died');
$p = main::peer("127.0.0.1:$p3");
is($p->{health_checks}{unhealthy}, 1, 'health_checks.unhealthy counts the transition');
is($p->{health_checks}{last_passed}, JSON::PP::false, 'last_passed false');
like(http_get('/metrics')->{body}, qr/^nginxplus_upstream_server_state\{upstream="backends",server="127\.0\.0\.1:$p3"\} 6$/m,
     'Prometheus state 6 (unhealthy)');
$p = main::peer("127.0.0.1:$p1");
ok(!exists $p->{health_checks}{last_passed} || $p->{health_checks}{last_passed}, 'the configured peer passes');
--- error_log
health check: server 127.0.0.1:$TEST_NGINX_PORT_3 of upstream "backends" is up



=== TEST 2: run-time upstreams: POST and PUT of the Plus API keep the check; added servers start default_down, removed ones are no longer probed
--- http_config
server { listen 127.0.0.1:$TEST_NGINX_PORT_9; location / { dyups_interface; } }
--- config
location /api { dynamic_upstream_api write=on; }
location / { proxy_pass http://$host; proxy_next_upstream off; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $rest = 'http://127.0.0.1:' . port(9);
my ($b1, $b2) = (main::backend($p1), main::backend($p2));
my $spread = sub {
    my %seen;
    for (1 .. $_[0]) {
        my $r = http('GET', '/', undef, { Host => 'dyhost' });
        $seen{ $r->{status} == 200 ? $r->{body} =~ s/\n//r : "status $r->{status}" }++;
    }
    return \%seen;
};
is(http('POST', "$rest/upstream/dyhost",
        "server 127.0.0.1:$p1 max_fails=0; check interval=200 rise=2 fall=1 timeout=400 type=http;")->{status}, 200, 'created');
ok(defined main::wait_until(5, sub { $spread->(2)->{$p1} }), 'the first server rose');
my $r = http('POST', '/api/9/http/upstreams/dyhost/servers', qq({"server":"127.0.0.1:$p2","max_fails":0}));
main::plus_json($r, 201, 'POST');
is(main::peer("127.0.0.1:$p2", 'dyhost')->{state}, 'unhealthy', 'the POSTed server starts unhealthy (default_down)');
ok(defined main::wait_until(5, sub { $spread->(4)->{$p2} }), 'then rises');
$r = http('PUT', '/api/9/http/upstreams/dyhost/servers',
          qq([{"server":"127.0.0.1:$p1","max_fails":0},{"server":"127.0.0.1:$p3","max_fails":0}]));
main::plus_json($r, 200, 'PUT');
my $s = $spread->(20);
is_deeply($s, { $p1 => 20 }, 'the server the PUT added gets no request before it rose') or diag(explain($s));
my $p = main::peer("127.0.0.1:$p3", 'dyhost');
is($p->{state}, 'unhealthy', 'unhealthy');
my $probes = $b2->accepted;
ok(!defined main::wait_until(1, sub { $b2->accepted > $probes + 1 }), 'no probe of the removed server for 5 intervals')
    or diag($b2->accepted - $probes . ' more');
cmp_ok(main::peer("127.0.0.1:$p1", 'dyhost')->{health_checks}{checks}, '>=', 3, 'the server that stayed keeps its checks');
--- error_log
health check: server 127.0.0.1:$TEST_NGINX_PORT_2 of upstream "dyhost" is up

=== TEST 3: a PUT that moves a checked server from backup to primary keeps its record (and health); a PUT that removes it stops its checks
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0 backup;
    check interval=200 rise=1 fall=1 timeout=400 type=http;
}
--- config
location /api { dynamic_upstream_api write=on; }
location / { proxy_pass http://backends; proxy_next_upstream off; }
--- perl
main::move_then_remove(0);

=== TEST 4: a PUT that moves a checked server from primary to backup keeps its record (and health); a PUT that removes it stops its checks
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=200 rise=1 fall=1 timeout=400 type=http;
}
--- config
location /api { dynamic_upstream_api write=on; }
location / { proxy_pass http://backends; proxy_next_upstream off; }
--- perl
main::move_then_remove(1);

=== TEST 5: a PUT that removes the backup copy of a checked server that is also a primary keeps checking the primary copy; a PUT that removes that one too stops its checks
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0 backup;
    check interval=200 rise=1 fall=1 timeout=400 type=http;
}
--- config
location /api { dynamic_upstream_api write=on; }
location / { proxy_pass http://backends; proxy_next_upstream off; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
my ($b1, $b2) = (main::backend($p1), main::backend($p2));
ok(defined main::wait_until(5, sub { main::peer("127.0.0.1:$p2")->{state} eq 'up' }), 'port 2 is probed and up');
my $r = http('PUT', '/api/9/http/upstreams/backends/servers',
             qq([{"server":"127.0.0.1:$p1","max_fails":0},{"server":"127.0.0.1:$p2","max_fails":0}]));
main::plus_json($r, 200, 'PUT: the backup copy of port 2 is removed');
my $listed = JSON::PP->new->decode(http_get('/api/9/http/upstreams/backends')->{body});
is(join(' ', map { $_->{server} =~ s/.*://r . ($_->{backup} ? '(backup)' : '') } @{ $listed->{peers} }), "$p1 $p2",
   'the primary copy of port 2 is left');
my $probes = $b2->accepted;
ok(defined main::wait_until(3, sub { $b2->accepted > $probes + 2 }), 'it is still probed');
$b2->stop;
ok(defined main::wait_until(3, sub { main::peer("127.0.0.1:$p2")->{state} eq 'unhealthy' }), '  and its health follows its backend');
$b2 = main::backend($p2);
ok(defined main::wait_until(3, sub { main::peer("127.0.0.1:$p2")->{state} eq 'up' }), '  up again');
$r = http('PUT', '/api/9/http/upstreams/backends/servers', qq([{"server":"127.0.0.1:$p1","max_fails":0}]));
main::plus_json($r, 200, 'PUT: the primary copy is removed too');
main::no_more_probes($b2);
