# dynamic_upstream_api: the NGINX Plus API's read endpoints (versions,
# /nginx, /connections, /http/requests, /processes, empty objects,
# upstreams, servers), their exact shapes, and the errors of reads.
use lib 't/lib';
use NginxTest;
use NginxTest::PlusApi;
use NginxTest::Gdb;
use JSON::PP ();

our $T = JSON::PP::true;
our $F = JSON::PP::false;

run_tests();
__DATA__

=== TEST 1: the location lists the versions; each version its endpoints
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /api { dynamic_upstream_api; }
--- perl
for my $uri ('/api', '/api/') {
    is_deeply(main::plus_json(http_get($uri), 200, $uri), [6, 7, 8, 9], "$uri: versions");
}
for my $v (6 .. 9) {
    is_deeply(main::plus_json(http_get("/api/$v/"), 200, "/api/$v/"),
              [qw(nginx processes connections slabs http resolvers ssl), $v >= 9 ? 'workers' : ()], "version $v: root endpoints");
}
# /workers (API version 9; Debian 13's prometheus-nginx-exporter 1.4.1 reads it and could not scrape without it):
# open-source nginx keeps no per-worker statistics.
is(http_get('/api/9/workers')->{body}, '[]', '/api/9/workers: an empty array');
is(http_get('/api/8/workers')->{status}, 404, '/api/8/workers: 404, as before version 9');
is_deeply(main::plus_json(http_get('/api/9/http/'), 200, 'http'),
          [qw(requests server_zones location_zones caches limit_conns limit_reqs keyvals upstreams)], 'http endpoints');
for my $empty (qw(ssl slabs resolvers http/server_zones http/location_zones http/caches http/limit_conns
                  http/limit_reqs http/keyvals)) {
    is_deeply(main::plus_json(http_get("/api/8/$empty"), 200, $empty), {}, "$empty: empty object");
}
main::plus_error(http_get('/api/5/nginx'), 404, 'UnknownVersion', 'unknown version', 'version 5');
main::plus_error(http_get('/api/10/'), 404, 'UnknownVersion', 'unknown version', 'version 10');
main::plus_error(http_get('/api/9/stream/upstreams'), 404, 'PathNotFound', 'path not found', 'stream');
main::plus_error(http_get('/api/9/http/upstreams/backends/peers'), 404, 'PathNotFound', 'path not found', 'bad path');

=== TEST 2: /nginx, /connections, /http/requests, /processes
--- workers: 1
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /api { dynamic_upstream_api; }
--- perl
my $n = main::plus_json(http_get('/api/9/nginx'), 200, 'nginx');
is_deeply([sort keys %$n], [qw(address build generation load_timestamp pid ppid timestamp version)], 'nginx keys');
is($n->{version}, nginx_version(), 'version');
like($n->{build}, qr/^nginx-dynamic-upstream-\d+\.\d+\.\d+$/, 'build');
is($n->{address}, '127.0.0.1', 'address that accepted the request');
is($n->{generation}, 0, 'no reload yet');
is($n->{ppid}, master_pid(), 'ppid is the master');
is_deeply([$n->{pid}], [worker_pids()], 'pid is the worker');
like($_, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO 8601 with ms') for @$n{qw(load_timestamp timestamp)};
nginx_reload();
my $after = main::plus_json(http_get('/api/9/nginx'), 200, 'nginx after reload');
is($after->{generation}, 1, 'one reload');
is($after->{ppid}, $n->{ppid}, 'same master');
ok($after->{load_timestamp} ge $n->{load_timestamp}, 'load time moved');
my $c = main::plus_json(http_get('/api/9/connections'), 200, 'connections');
is_deeply([sort keys %$c], [qw(accepted active dropped idle)], 'connections keys');
ok($c->{accepted} >= 2 && $c->{active} >= 1 && $c->{dropped} == 0, 'connection counts') or diag(explain $c);
my $q1 = main::plus_json(http_get('/api/9/http/requests'), 200, 'requests');
is_deeply([sort keys %$q1], [qw(current total)], 'requests keys');
is($q1->{current}, 1, 'this request is the current one');
my $q2 = main::plus_json(http_get('/api/9/http/requests'), 200, 'requests again');
is($q2->{total}, $q1->{total} + 1, 'total counts every request');
is_deeply(main::plus_json(http_get('/api/9/processes'), 200, 'processes'), { respawned => 0 }, 'processes');

=== TEST 3: upstreams, one upstream, its servers and one server
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 weight=3 max_fails=2 fail_timeout=30s max_conns=5;
    server 127.0.0.1:$TEST_NGINX_PORT_3 down;
    server 127.0.0.1:$TEST_NGINX_PORT_4 backup;
}
upstream static { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location /api { dynamic_upstream_api; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
my $all = main::plus_json(http_get('/api/9/http/upstreams'), 200, 'upstreams');
is_deeply([sort keys %$all], ['backends'], 'zone upstreams only');
my $u = main::plus_json(http_get('/api/9/http/upstreams/backends/'), 200, 'upstream');
is_deeply($u, $all->{backends}, 'one upstream as in the list');
is_deeply([sort keys %$u], [qw(keepalive peers runtime zombies zone)], 'upstream keys');
is_deeply([@$u{qw(keepalive zombies zone runtime)}], [0, 0, 'backends', $main::F], 'upstream values');
my @keys = qw(active backup downtime fails health_checks id max_conns name received requests responses sent
              server state unavail weight);
is_deeply([sort keys %{ $u->{peers}[0] }], \@keys, 'peer keys (nothing selected yet)');
is_deeply([map { [$_->{id}, $_->{server}, $_->{weight}, $_->{state}, $_->{backup} ? 1 : 0, $_->{max_conns}] } @{ $u->{peers} }],
          [[0, "127.0.0.1:$p1", 1, 'up', 0, 0], [1, "127.0.0.1:$p2", 3, 'up', 0, 5],
           [2, "127.0.0.1:$p3", 1, 'down', 0, 0], [3, "127.0.0.1:$p4", 1, 'up', 1, 0]], 'peers in order');
is_deeply($u->{peers}[0]{responses}, { '1xx' => 0, '2xx' => 0, '3xx' => 0, '4xx' => 0, '5xx' => 0, total => 0 },
          'responses');
is_deeply($u->{peers}[0]{health_checks}, { checks => 0, fails => 0, unhealthy => 0 }, 'health_checks');
my $r = http_get('/api/9/http/upstreams/backends/servers');
my $s = main::plus_json($r, 200, 'servers');
like($r->{headers}{etag} // '', qr/^"\d+"$/, 'ETag is the revision');
is_deeply($s->[1], { id => 1, server => "127.0.0.1:$p2", weight => 3, max_conns => 5, max_fails => 2,
                     fail_timeout => '30s', slow_start => '0s', route => '', backup => $main::F, down => $main::F },
          'server object');
is($r->{body} =~ /^\[\{"id":0,"server":"127\.0\.0\.1:\d+","weight":1,"max_conns":0,"max_fails":1,"fail_timeout":"10s","slow_start":"0s","route":"","backup":false,"down":false\}/ ? 1 : 0,
   1, 'field order as NGINX Plus');
is_deeply(main::plus_json(http_get('/api/9/http/upstreams/backends/servers/3'), 200, 'server 3'), $s->[3], 'one server');
main::plus_error(http_get('/api/9/http/upstreams/nope'), 404, 'UpstreamNotFound', 'upstream "nope" not found', 'unknown upstream');
main::plus_error(http_get('/api/9/http/upstreams/nope/servers'), 404, 'UpstreamNotFound', 'upstream "nope" not found', 'unknown upstream servers');
main::plus_error(http_get('/api/9/http/upstreams/backends/servers/9'), 404, 'UpstreamServerNotFound',
                 'server with ID "9" does not exist', 'unknown id');
main::plus_error(http_get('/api/9/http/upstreams/backends/servers/x'), 400, 'UpstreamBadServerId',
                 'invalid server ID "x"', 'bad id');
main::plus_error(http_get('/api/9/http/upstreams/static'), 400, 'UpstreamStatic',
                 'upstream "static" has no zone: its peers are not shared between workers and cannot be changed '
                 . '(add "zone NAME SIZE;" to it)', 'no zone');

=== TEST 4: ?fields= keeps the named fields of each upstream, in their order; empty, only the names
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /api { dynamic_upstream_api; }
location /upstream { dyups_interface; }
--- perl
my $p1 = port(1);
is(http('POST', '/upstream/rt', "server 127.0.0.1:$p1;")->{status}, 200, 'run-time upstream created');
my $body = sub { my $r = http_get($_[0]); is($r->{status}, 200, "$_[0]: 200"); $r->{body} };
is($body->('/api/9/http/upstreams?fields=runtime,zone'),
   '{"backends":{"zone":"backends","runtime":false},"rt":{"zone":"dynamic_upstream_dyups_v8","runtime":true}}',
   'zone and runtime, in the upstream object\'s order');
is($body->('/api/9/http/upstreams?fields='), '{"backends":{},"rt":{}}', 'empty: only the names');
is($body->('/api/9/http/upstreams/rt/?fields=zombies%2Ckeepalive'), '{"keepalive":0,"zombies":0}',
   'one upstream, the list percent-encoded');
is($body->('/api/9/http/upstreams/backends?fields=nonsense'), '{}', 'an unknown field is not shown');
my $peers = main::plus_json(http_get('/api/9/http/upstreams/backends?fields=peers'), 200, 'peers only');
is_deeply([keys %$peers], ['peers'], 'peers only: one key');
is_deeply([map { $_->{server} } @{ $peers->{peers} }], ["127.0.0.1:$p1"], 'peers only: the server');
is_deeply(main::plus_json(http_get('/api/9/http/upstreams?a=1&fields=peers,keepalive,zombies,zone,runtime'), 200, 'all'),
          main::plus_json(http_get('/api/9/http/upstreams'), 200, 'no fields'), 'every field named: as without fields');

=== TEST 5: read-only: every change answers 405 MethodDisabled; other methods MethodNotSupported
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /api { dynamic_upstream_api; }
location /api-off { dynamic_upstream_api write=off; }
--- perl
my $text = 'method disabled: this location is read-only (dynamic_upstream_api write=on enables changes)';
for my $base ('/api', '/api-off') {
    main::plus_error(http('POST', "$base/9/http/upstreams/backends/servers", '{"server":"127.0.0.1:30001"}'),
                     405, 'MethodDisabled', $text, "$base POST");
    main::plus_error(http('PUT', "$base/9/http/upstreams/backends/servers", '[{"server":"127.0.0.1:30001"}]'),
                     405, 'MethodDisabled', $text, "$base PUT");
    main::plus_error(http('PATCH', "$base/9/http/upstreams/backends/servers/0", '{"down":true}'),
                     405, 'MethodDisabled', $text, "$base PATCH");
    main::plus_error(http('DELETE', "$base/9/http/upstreams/backends/servers/0"), 405, 'MethodDisabled', $text,
                     "$base DELETE");
}
main::plus_error(http('POST', '/api/9/nginx', '{}'), 405, 'MethodNotSupported', 'method not supported', 'POST nginx');
main::plus_error(http('DELETE', '/api/9/http/upstreams/backends'), 405, 'MethodNotSupported', 'method not supported',
                 'DELETE upstream');
is_deeply([map { $_->{down} ? 1 : 0 } @{ main::plus_json(http_get('/api/9/http/upstreams/backends/servers'), 200, 'unchanged') }],
          [0], 'nothing changed');
is(http('HEAD', '/api/9/nginx')->{status}, 200, 'HEAD');

=== TEST 6: a bad parameter of the directive is refused at configuration
--- config
location /api { dynamic_upstream_api write=yes; }
--- must_die
--- error_log
invalid parameter "write=yes" in "dynamic_upstream_api": write=on or write=off

=== TEST 7: a listing takes no write lock of the peer lists once every server has its ID: it answers while a request reads the list (before, every listing took both write locks to give IDs, and waited for every request on them)
--- workers: 1
--- timeout: 3
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    return 200 "ok\n";
}
--- config
location /api { dynamic_upstream_api; }
location / { proxy_pass http://backends; }
--- perl
my ($worker) = worker_pids();
my $word = main::list_lock_word($worker, sub { is(http_get('/')->{status}, 200, 'a request through backends (gdb reads the lock word)') });
# One reader holds the list, as a request of another worker would.
main::set_shared_word($word, 1);
my $r = http_get('/api/9/http/upstreams/backends/servers');
main::set_shared_word($word, 0);
is($r->{status}, 200, 'the servers listed while the list is read-locked');
my $servers = main::plus_json($r, 200, 'servers');
is_deeply([map { "$_->{id} $_->{server}" } @$servers], ["0 127.0.0.1:" . port(1)], '  with their IDs');
is(http_get('/')->{status}, 200, 'requests go on once it is free');
