# dynamic_upstream_api write=on: POST, PATCH, DELETE and the PUT extension
# (declarative replace with ETag/If-Match) on zone and run-time upstreams,
# their errors, IDs that survive reload and restart, and every front end
# seeing every change.
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups;
use NginxTest::PlusApi;
use NginxTest::QueryApi qw(tables_fixed);
use JSON::PP ();

sub etag {
    my ($upstream) = @_;
    my $r = http_get("/api/9/http/upstreams/$upstream/servers");
    return $r->{headers}{etag};
}

run_tests();
__DATA__

=== TEST 1: POST, PATCH, DELETE on a zone upstream; the query API and traffic agree
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200 "one\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_2; return 200 "two\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_3; return 200 "three\n"; }
--- config
location /api { dynamic_upstream_api write=on; }
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $r = http('POST', '/api/9/http/upstreams/backends/servers/', qq({"server":"127.0.0.1:$p3","weight":2,"max_fails":0}),
             { 'Content-Type' => 'application/json' });
is_deeply(main::plus_json($r, 201, 'POST'), { id => 2, server => "127.0.0.1:$p3", weight => 2, max_conns => 0, max_fails => 0,
          fail_timeout => '10s', slow_start => '0s', route => '', backup => JSON::PP::false, down => JSON::PP::false }, 'created');
is(http_get('/dynamic?upstream=backends&verbose=')->{body},
   "server 127.0.0.1:$p1 weight=1 max_fails=1 fail_timeout=10;\nserver 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10;\n"
   . "server 127.0.0.1:$p3 weight=2 max_fails=0 fail_timeout=10;\n", 'the query API sees it');
main::plus_error(http('POST', '/api/9/http/upstreams/backends/servers', qq({"server":"127.0.0.1:$p3"})), 409, 'EntryExists',
                 "server 127.0.0.1:$p3 already exists in upstream \"backends\"", 'POST twice');
$r = http('PATCH', '/api/9/http/upstreams/backends/servers/0', '{"down":true,"weight":4,"max_conns":9,"fail_timeout":"1m"}');
my $j = main::plus_json($r, 200, 'PATCH');
is_deeply([@$j{qw(id weight max_conns fail_timeout)}, $j->{down} ? 1 : 0], [0, 4, 9, '60s', 1], 'patched');
is_deeply(main::server_list('backends'), ["0 127.0.0.1:$p1 w4 down", "1 127.0.0.1:$p2 w1", "2 127.0.0.1:$p3 w2"], 'list');
my %seen;
$seen{ http_get('/')->{body} }++ for 1 .. 30;
ok(!$seen{"one\n"} && $seen{"two\n"} && $seen{"three\n"}, 'traffic follows: not the down server') or diag(explain \%seen);
main::plus_error(http('PATCH', '/api/9/http/upstreams/backends/servers/1', '{"backup":true}'), 400,
                 'UpstreamServerImmutable', 'the "backup" flag of server 1 cannot be changed: DELETE it and POST a new one', 'backup');
main::plus_error(http('PATCH', '/api/9/http/upstreams/backends/servers/1', qq({"server":"127.0.0.1:$p3"})), 400,
                 'UpstreamServerImmutable', 'the address of server 1 cannot be changed: DELETE it and POST a new one', 'address');
main::plus_error(http('PATCH', '/api/9/http/upstreams/backends/servers/1', '{"weight":0,"down":true}'), 400,
                 'UpstreamBadWeight', 'weight must be an integer from 1 to 1000000', 'bad weight: nothing changes');
main::plus_error(http('PATCH', '/api/9/http/upstreams/backends/servers/7', '{"down":true}'), 404,
                 'UpstreamServerNotFound', 'server with ID "7" does not exist', 'unknown id');
$r = http('DELETE', '/api/9/http/upstreams/backends/servers/1/');
is_deeply([map { $_->{id} } @{ main::plus_json($r, 200, 'DELETE') }], [0, 2], 'DELETE answers the servers left');
http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$p2");
is_deeply(main::server_list('backends'), ["0 127.0.0.1:$p1 w4 down", "2 127.0.0.1:$p3 w2", "3 127.0.0.1:$p2 w1"],
          'a server added through the query API gets the next ID; IDs are never reused');
http('DELETE', '/api/9/http/upstreams/backends/servers/3');
http('DELETE', '/api/9/http/upstreams/backends/servers/2');
main::plus_error(http('DELETE', '/api/9/http/upstreams/backends/servers/0'), 400, 'UpstreamServerImmutable',
                 'server with ID 0 is the last primary server of upstream "backends" and cannot be removed',
                 'the last server stays');
main::plus_error(http('POST', '/api/9/http/upstreams/backends/servers', '{"server":"127.0.0.1:30001","slow_start":"30s"}'),
                 400, 'UpstreamBadSlowStart', '"slow_start" is not supported by this module (NGINX Plus only)', 'slow_start');
main::plus_error(http('POST', '/api/9/http/upstreams/backends/servers', '{"server":"127.0.0.1:30001",'), 415,
                 'JsonError', qr/^JSON error: /, 'bad JSON');
main::plus_error(http('POST', '/api/9/http/upstreams/nope/servers', '{"server":"127.0.0.1:30001"}'), 404,
                 'UpstreamNotFound', 'upstream "nope" not found', 'unknown upstream');
--- error_log
api=plus upstream=backends: added 127.0.0.1:
api=plus upstream=backends: 127.0.0.1:

=== TEST 2: PUT replaces the list declaratively, under If-Match
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200 "one\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_2; return 200 "two\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_3; return 200 "three\n"; }
--- config
location /api { dynamic_upstream_api write=on; }
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
http_get('/') for 1 .. 4;
my $tag = main::etag('backends');
my $body = qq([{"server":"127.0.0.1:$p2","weight":3},{"server":"127.0.0.1:$p3"},{"server":"127.0.0.1:30001","backup":true}]);
my $r = http('PUT', '/api/9/http/upstreams/backends/servers', $body, { 'If-Match' => $tag });
my $j = main::plus_json($r, 200, 'PUT');
is($r->{headers}{'x-upstream-changed'}, 'true', 'changed');
isnt($r->{headers}{etag}, $tag, 'new revision');
is_deeply(main::server_list('backends'), ["1 127.0.0.1:$p2 w3", "2 127.0.0.1:$p3 w1", "3 127.0.0.1:30001 w1 backup"],
          'the server that stays keeps its ID; new ones get the next');
my $u = main::plus_json(http_get('/api/9/http/upstreams/backends'), 200, 'upstream');
is($u->{peers}[0]{requests}, 2, 'the server that stays keeps its counters');
my %seen;
$seen{ http_get('/')->{body} }++ for 1 .. 40;
ok(!$seen{"one\n"} && $seen{"two\n"} > $seen{"three\n"} && $seen{"three\n"}, 'traffic follows') or diag(explain \%seen);
my $tag2 = $r->{headers}{etag};
$r = http('PUT', '/api/9/http/upstreams/backends/servers', $body, { 'If-Match' => $tag2 });
main::plus_json($r, 200, 'no-op PUT');
is($r->{headers}{'x-upstream-changed'}, 'false', 'a no-op says so');
is($r->{headers}{etag}, $tag2, 'and keeps the revision');
main::plus_error(http('PUT', '/api/9/http/upstreams/backends/servers', qq([{"server":"127.0.0.1:$p1"}]), { 'If-Match' => $tag }),
                 412, 'UpstreamRevisionMismatch',
                 'upstream "backends" changed since the revision given in If-Match: read it again', 'stale If-Match');
http_get("/dynamic?upstream=backends&server=127.0.0.1:$p3&down=");
main::plus_error(http('PUT', '/api/9/http/upstreams/backends/servers', qq([{"server":"127.0.0.1:$p1"}]), { 'If-Match' => $tag2 }),
                 412, 'UpstreamRevisionMismatch', qr/changed since/, 'a change through the query API moves the revision');
for my $bad ([qq([]), 400, 'UpstreamConfFormatError', 'the server list is empty: an upstream needs at least one server'],
             [qq([{"server":"127.0.0.1:$p1"},{"server":"127.0.0.1:$p1"}]), 400, 'UpstreamConfFormatError',
              "server \"127.0.0.1:$p1\" is given twice"],
             [qq([{"server":"127.0.0.1:$p1","weight":0}]), 400, 'UpstreamBadWeight', 'weight must be an integer from 1 to 1000000'],
             [qq([{"server":"example.com"}]), 400, 'UpstreamBadAddress', 'server "example.com" is a host name; only IP addresses and unix sockets are accepted (names are not resolved at run time)'],
             [qq({"server":"127.0.0.1:$p1"}), 400, 'UpstreamConfFormatError', 'the body must be a JSON array of server objects']) {
    main::plus_error(http('PUT', '/api/9/http/upstreams/backends/servers', $bad->[0]), @$bad[1 .. 3], "PUT $bad->[0]");
}
is_deeply(main::server_list('backends'), ["1 127.0.0.1:$p2 w3", "2 127.0.0.1:$p3 w1 down", "3 127.0.0.1:30001 w1 backup"],
          'refused PUTs changed nothing');
--- error_log
api=plus upstream=backends: replaced: 2 servers -> 3

=== TEST 3: a zone without room for a PUT changes nothing (507)
--- http_config
upstream backends {
    zone backends 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /api { dynamic_upstream_api write=on; }
--- perl
my $body = '[' . join(',', map { qq({"server":"127.0.0.1:$_"}) } 30001 .. 30140) . ']';
my $r = http('PUT', '/api/9/http/upstreams/backends/servers', $body);
my $j = main::plus_json($r, 507, 'PUT of 140 servers');
is($j->{error}{code}, 'UpstreamOutOfMemory', 'code');
like($j->{error}{text}, qr/^shared memory zone "backends" \(64k\) has no room left$|more than the \d+ its zone/, 'text');
is(scalar @{ main::server_list('backends') }, 1, 'nothing changed');

=== TEST 4: run-time (dyups) upstreams: GET, POST, PATCH, DELETE, PUT keep the balancer; the REST API agrees
--- http_config
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200 "one\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_2; return 200 "two\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_3; return 200 "three\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_4; location / { dyups_interface; } }
--- config
location /api { dynamic_upstream_api write=on; }
location / { proxy_pass http://$host; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
my $rest = "http://127.0.0.1:$p4";
is(http('POST', "$rest/upstream/dyhost", "least_conn; server 127.0.0.1:$p1; server 127.0.0.1:$p2;")->{status}, 200, 'created');
my $all = main::plus_json(http_get('/api/9/http/upstreams'), 200, 'upstreams');
is_deeply([sort keys %$all], ['dyhost'], 'listed');
is($all->{dyhost}{runtime}, JSON::PP::true, 'runtime: true');
is_deeply(main::server_list('dyhost'), ["0 127.0.0.1:$p1 w1", "1 127.0.0.1:$p2 w1"], 'IDs');
my $r = http('POST', '/api/9/http/upstreams/dyhost/servers', qq({"server":"127.0.0.1:$p3","weight":5}));
is(main::plus_json($r, 201, 'POST')->{id}, 2, 'new ID');
$r = http('PATCH', '/api/9/http/upstreams/dyhost/servers/0', '{"down":true}');
is(main::plus_json($r, 200, 'PATCH')->{down}, JSON::PP::true, 'down');
is(http_get("$rest/upstream/dyhost")->{body},
   "server 127.0.0.1:$p1 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=1\n"
   . "server 127.0.0.1:$p2 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n"
   . "server 127.0.0.1:$p3 weight=5 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n", 'the REST API sees it');
my %seen;
$seen{ http('GET', '/', undef, { Host => 'dyhost' })->{body} }++ for 1 .. 30;
ok(!$seen{"one\n"} && $seen{"three\n"}, 'traffic follows') or diag(explain \%seen);
is_deeply([map { $_->{id} } @{ main::plus_json(http('DELETE', '/api/9/http/upstreams/dyhost/servers/1'), 200, 'DELETE') }], [0, 2], 'deleted');
my $tag = main::etag('dyhost');
$r = http('PUT', '/api/9/http/upstreams/dyhost/servers', qq([{"server":"127.0.0.1:$p3","weight":5},{"server":"127.0.0.1:$p2"}]),
          { 'If-Match' => $tag });
main::plus_json($r, 200, 'PUT');
is($r->{headers}{'x-upstream-changed'}, 'true', 'changed');
is_deeply(main::server_list('dyhost'), ["2 127.0.0.1:$p3 w5", "3 127.0.0.1:$p2 w1"], 'kept ID 2, new ID 3');
like(http_get("$rest/detail")->{body}, qr/^dyhost\n/, 'REST detail');
main::plus_error(http('PUT', '/api/9/http/upstreams/dyhost/servers', qq([{"server":"127.0.0.1:$p1"}]), { 'If-Match' => $tag }),
                 412, 'UpstreamRevisionMismatch', qr/changed since/, 'stale If-Match');
$r = http('PUT', '/api/9/http/upstreams/dyhost/servers', qq([{"server":"127.0.0.1:$p3","weight":5},{"server":"127.0.0.1:$p2"}]));
is($r->{headers}{'x-upstream-changed'}, 'false', 'no-op');
is(http('DELETE', "$rest/upstream/dyhost")->{status}, 200, 'deleted through REST');
main::plus_error(http_get('/api/9/http/upstreams/dyhost/servers'), 404, 'UpstreamNotFound', 'upstream "dyhost" not found', 'gone');

=== TEST 5: IDs survive reload and restart with the state files
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
}
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
server { listen 127.0.0.1:$TEST_NGINX_PORT_4; location / { dyups_interface; } }
--- config
location /api { dynamic_upstream_api write=on; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
http('DELETE', '/api/9/http/upstreams/backends/servers/0');
http('POST', '/api/9/http/upstreams/backends/servers', qq({"server":"127.0.0.1:$p3"}));
is(http('POST', "http://127.0.0.1:$p4/upstream/dyhost", "server 127.0.0.1:$p1; server 127.0.0.1:$p2;")->{status}, 200, 'dyups');
http('DELETE', '/api/9/http/upstreams/dyhost/servers/0');
http('POST', '/api/9/http/upstreams/dyhost/servers', qq({"server":"127.0.0.1:$p3"}));
my @zone = ("1 127.0.0.1:$p2 w1", "2 127.0.0.1:$p3 w1");
my @dy = ("1 127.0.0.1:$p2 w1", "2 127.0.0.1:$p3 w1");
is_deeply(main::server_list('backends'), \@zone, 'zone IDs');
is_deeply(main::server_list('dyhost'), \@dy, 'dyups IDs');
open(my $fh, '<', data_dir() . '/backends.state') or die;
my $state = do { local $/; <$fh> };
like($state, qr/^server 127\.0\.0\.1:$p2 weight=1 max_fails=1 fail_timeout=10; # id=1$/m, 'the state file keeps IDs as comments');
nginx_reload();
is_deeply(main::server_list('backends'), \@zone, 'zone IDs after reload');
is_deeply(main::server_list('dyhost'), \@dy, 'dyups IDs after reload');
nginx_restart();
is_deeply(main::server_list('backends'), \@zone, 'zone IDs after restart');
is_deeply(main::server_list('dyhost'), \@dy, 'dyups IDs after restart');
http('POST', '/api/9/http/upstreams/backends/servers', qq({"server":"127.0.0.1:$p1"}));
is((main::server_list('backends'))->[-1], "3 127.0.0.1:$p1 w1", 'the next ID after a restart');

=== TEST 6: a PUT moves nginx's generation word: random and hash ... consistent follow the new set at once (nginx >= 1.27.3)
--- http_config
upstream rnd {
    zone rnd 128k;
    random;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream consistent {
    zone consistent 128k;
    hash $arg_k consistent;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200 "one\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_2; return 200 "two\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_3; return 200 "three\n"; }
--- config
location /api { dynamic_upstream_api write=on; }
location /rnd { proxy_pass http://rnd; }
location /consistent { proxy_pass http://consistent; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
for my $u (qw(rnd consistent)) {
    my %seen;
    $seen{ http_get("/$u?k=$_")->{body} }++ for 1 .. 20;
    ok($seen{"one\n"} && $seen{"two\n"}, "$u: built its table from the configured servers") or diag(explain \%seen);
    my $r = http('PUT', "/api/9/http/upstreams/$u/servers", qq([{"server":"127.0.0.1:$p2"},{"server":"127.0.0.1:$p3"}]));
    if (main::tables_fixed()) {
        is($r->{status}, 409, "$u: fixes its table at start before nginx 1.27.3: the PUT is refused");
        next;
    }
    main::plus_json($r, 200, "$u: PUT");
    %seen = ();
    $seen{ http_get("/$u?k=$_")->{body} }++ for 1 .. 30;
    ok(!$seen{"one\n"} && $seen{"two\n"} && $seen{"three\n"}, "$u: the new set, none to the removed server")
        or diag(explain \%seen);
}

=== TEST 7: two upstreams in one zone: a POST to the second adds to the second, not to the first
--- http_config
upstream first {
    zone shared 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream second {
    zone shared;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200 "one\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_2; return 200 "two\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_3; return 200 "three\n"; }
--- config
location /api { dynamic_upstream_api write=on; }
location /first { proxy_pass http://first; }
location /second { proxy_pass http://second; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $r = http('POST', '/api/9/http/upstreams/second/servers', qq({"server":"127.0.0.1:$p3"}));
is(main::plus_json($r, 201, 'POST to the second')->{server}, "127.0.0.1:$p3", 'the new server is answered');
is_deeply(main::server_list('second'), ["0 127.0.0.1:$p2 w1", "1 127.0.0.1:$p3 w1"], 'the second has it');
is_deeply(main::server_list('first'), ["0 127.0.0.1:$p1 w1"], 'the first does not');
my %seen;
$seen{ http_get('/second')->{body} }++ for 1 .. 20;
ok($seen{"two\n"} && $seen{"three\n"}, 'traffic of the second reaches it') or diag(explain \%seen);
%seen = ();
$seen{ http_get('/first')->{body} }++ for 1 .. 10;
is_deeply(\%seen, { "one\n" => 10 }, 'traffic of the first does not');

=== TEST 8: a PUT of what GET lists, with a server the configuration names by host name (`server localhost:PORT;`, listed so): nothing changes, the peer keeps its ID and spelling; the spelling with another ID, or one no server has, is refused (it was refused as a host name, hunt 36)
--- http_config
upstream backends {
    zone backends 128k;
    server localhost:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /api { dynamic_upstream_api write=on; }
--- perl
my $servers = '/api/9/http/upstreams/backends/servers';
my $listed = http_get($servers)->{body};
like($listed, qr/"server":"localhost:@{[port(1)]}"/, 'listed as the configuration spells it');
my $r = http('PUT', $servers, $listed);
is($r->{status}, 200, 'a PUT of what GET lists: 200') or diag($r->{body});
is($r->{headers}{'x-upstream-changed'}, 'false', '  nothing changed');
is(http_get($servers)->{body}, $listed, '  the same listing: IDs and spellings');
$r = http('PUT', $servers, qq([{"server":"localhost:@{[port(1)]}","weight":3},{"server":"127.0.0.1:@{[port(2)]}"}]));
is($r->{status}, 200, 'the spelling without its ID (one server has it): 200') or diag($r->{body});
like(http_get($servers)->{body}, qr/"id":0,"server":"localhost:@{[port(1)]}","weight":3,/, '  that server re-weighted') or diag(http_get($servers)->{body});
$r = http('PUT', $servers, qq([{"server":"nosuch.example:80"},{"server":"127.0.0.1:@{[port(2)]}"}]));
is($r->{status}, 400, 'a host name no server is spelled with: 400');
like($r->{body}, qr/"code":"UpstreamBadAddress"/, '  UpstreamBadAddress') or diag($r->{body});

=== TEST 9: a POST of an IPv4-compatible IPv6 server, which nginx names in its own spelling ([::5.6.7.8]:80 for the [::506:708]:80 the module's parser prints): 201 with the server, in a zone upstream and a run-time one (the server was added and the answer was 409 "UpstreamChanged": it was looked for by the parser's spelling, review/study 53); a PATCH that sends its address back as listed changes it (it was refused as a change of the address: compared in the parser's spelling)
--- http_config
upstream zu {
    zone zu 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /api { dynamic_upstream_api write=on; }
location /upstream { dyups_interface; }
--- perl
is(http('POST', '/upstream/dy', 'server 127.0.0.1:' . port(1) . ';')->{status}, 200, 'a run-time upstream dy');
for my $upstream ('zu', 'dy') {
    my $r = http('POST', "/api/9/http/upstreams/$upstream/servers", '{"server":"[::5.6.7.8]:80"}');
    is(main::plus_json($r, 201, "POST to $upstream")->{server}, '[::5.6.7.8]:80', "  $upstream: the new server is answered");
    is_deeply(main::server_list($upstream), ['0 127.0.0.1:' . port(1) . ' w1', '1 [::5.6.7.8]:80 w1'], "  $upstream has it once");
    # A PATCH that sends the address back as listed (it was refused as a
    # change of the address: compared in the parser's spelling).
    $r = http('PATCH', "/api/9/http/upstreams/$upstream/servers/1", '{"server":"[::5.6.7.8]:80","weight":3}');
    is(main::plus_json($r, 200, "PATCH of ${upstream}'s server with its address")->{weight}, 3, '  the weight changes');
}

=== TEST 10: a PATCH of each server object as GET lists it, the configuration spelling servers otherwise than nginx names them (a host name, a port with a leading zero): the weight changes (they were refused as a host name and as an invalid port, review 54); another server's spelling is refused as a host name
--- http_config
upstream backends {
    zone backends 128k;
    server localhost:$TEST_NGINX_PORT_1;
    server 127.0.0.1:0$TEST_NGINX_PORT_2;
}
--- config
location /api { dynamic_upstream_api write=on; }
--- perl
use JSON::PP ();
my $servers = '/api/9/http/upstreams/backends/servers';
my $listed = JSON::PP->new->decode(http_get($servers)->{body});
is_deeply([map { $_->{server} } @$listed], ['localhost:' . port(1), '127.0.0.1:0' . port(2)], 'listed as the configuration spells them');
for my $server (@$listed) {
    my $id = $server->{id};
    my $r = http('PATCH', "$servers/$id", JSON::PP->new->encode({ %$server, weight => 5 + $id }));
    is(main::plus_json($r, 200, "PATCH of server $id as listed, weight " . (5 + $id))->{weight}, 5 + $id, "  server $id re-weighted");
}
# Only the server's own spelling: another's is a host name (review 55).
my $r = http('PATCH', "$servers/1", JSON::PP->new->encode({ server => 'localhost:' . port(1) }));
main::plus_error($r, 400, 'UpstreamBadAddress',
                 "server \"localhost:@{[port(1)]}\" is a host name; only IP addresses and unix sockets are accepted (names are not resolved at run time)",
                 'PATCH of server 1 with server 0\'s spelling');
