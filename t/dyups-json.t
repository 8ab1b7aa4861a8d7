# dyups_interface JSON: ?format=json or Accept: application/json on the GET
# routes, JSON bodies for POST (Content-Type: application/json), and errors
# as {"error":{"status":..,"code":..,"text":..}}.
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups;
use JSON::PP ();

my @PEER_KEYS = qw(server name weight max_fails fail_timeout max_conns backup down
                   conns fails current_weight effective_weight accessed checked);

sub decode {
    my ($r, $what) = @_;
    my $j = eval { JSON::PP->new->decode($r->{body}) };
    ok(defined $j, "$what: body is JSON") or diag("$@ body: $r->{body}");
    return $j;
}

sub bool { $_[0] ? 1 : 0 }

# Checks one peer object: every key is there and the given ones have the
# given values (backup/down compared as booleans).
sub peer_is {
    my ($peer, $want, $what) = @_;
    is_deeply([sort keys %$peer], [sort @PEER_KEYS], "$what: every peer key, nothing else");
    for my $k (sort keys %$want) {
        if ($k eq 'backup' || $k eq 'down') {
            is(bool($peer->{$k}), $want->{$k}, "$what: $k");
            ok(JSON::PP::is_bool($peer->{$k}), "$what: $k is a JSON boolean");
        } else {
            is($peer->{$k}, $want->{$k}, "$what: $k");
        }
    }
}

sub defaults {
    my ($server, %o) = @_;
    return { server => $server, name => $server, weight => 1, max_fails => 1, fail_timeout => 10,
             max_conns => 0, backup => 0, down => 0, %o };
}

sub post_json {
    my ($name, $body, $headers) = @_;
    return http('POST', "/upstream/$name", $body, { 'Content-Type' => 'application/json', %{ $headers // {} } });
}

# A JSON error answer: status, the error object's status/code/text.
sub json_error_is {
    my ($r, $status, $text_re, $what) = @_;
    is($r->{status}, $status, "$what: $status");
    like($r->{headers}{'content-type'} // '', qr{^application/json}, "$what: Content-Type application/json");
    my $j = decode($r, $what) or return;
    is_deeply([sort keys %$j], ['error'], "$what: one key, error");
    my $e = $j->{error} // {};
    is_deeply([sort keys %$e], [qw(code status text)], "$what: error has status, code, text");
    is($e->{status}, $status, "$what: error.status");
    like($e->{code} // '', qr/\A[a-z_]+\z/, "$what: error.code is a word");
    like($e->{text} // '', $text_re, "$what: error.text");
}

run_tests();
__DATA__

=== TEST 1: /list as JSON, by ?format=json and by Accept
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
--- config
location / { dyups_interface; }
--- perl
is(http('POST', '/upstream/dyhost', 'server ' . main::addr(3) . ';')->{status}, 200, 'create dyhost');
for my $case (['/list?format=json', {}], ['/list', { Accept => 'application/json' }],
              ['/list?x=1&format=json', {}], ['/list', { Accept => 'text/html, application/json;q=0.9' }]) {
    my ($uri, $h) = @$case;
    my $what = "$uri " . join(' ', %$h);
    my $r = http('GET', $uri, undef, $h);
    is($r->{status}, 200, "$what: 200");
    like($r->{headers}{'content-type'} // '', qr{^application/json}, "$what: Content-Type");
    is_deeply(main::decode($r, $what), { upstreams => [qw(host1 host2 dyhost)] }, "$what: names in order");
}
is(http_get('/list')->{body}, "host1\nhost2\ndyhost\n", 'without either: text');

=== TEST 2: /detail as JSON: every upstream with its zone (null without one, the registry's for a run-time upstream, as the NGINX Plus API names them; hunt 29: always null) and every peer field
--- http_config
upstream zoned { zone zoned 64k; server 127.0.0.1:$TEST_NGINX_PORT_5; }
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 {
    server 127.0.0.1:$TEST_NGINX_PORT_2 weight=5 max_fails=3 fail_timeout=7 max_conns=9;
    server 127.0.0.1:$TEST_NGINX_PORT_3 backup;
}
--- config
location / { dyups_interface; }
--- perl
my $sock = data_dir() . '/a.sock';
is(http('POST', '/upstream/dyhost', 'server ' . main::addr(4) . " weight=2 max_fails=0 fail_timeout=3 max_conns=4; server unix:$sock down;")->{status},
   200, 'create dyhost');
for my $case (['/detail?format=json', {}], ['/detail', { Accept => 'application/json' }]) {
    my ($uri, $h) = @$case;
    my $what = "$uri " . join(' ', %$h);
    my $r = http('GET', $uri, undef, $h);
    is($r->{status}, 200, "$what: 200");
    like($r->{headers}{'content-type'} // '', qr{^application/json}, "$what: Content-Type");
    my $j = main::decode($r, $what) or next;
    is_deeply([keys %$j], ['upstreams'], "$what: one key, upstreams");
    my @u = @{ $j->{upstreams} // [] };
    is_deeply([map { $_->{upstream} } @u], [qw(zoned host1 host2 dyhost)], "$what: upstreams in order");
    for my $u (@u) {
        is_deeply([sort keys %$u], [qw(peers upstream zone)], "$what $u->{upstream}: keys");
    }
    is_deeply([map { $_->{zone} } @u], ['zoned', undef, undef, 'dynamic_upstream_dyups_v8'], "$what: zones");
    shift @u;
    is(scalar @{ $u[0]{peers} }, 1, "$what host1: one peer");
    main::peer_is($u[0]{peers}[0], main::defaults(main::addr(1)), "$what host1 peer");
    is(scalar @{ $u[1]{peers} }, 2, "$what host2: two peers");
    main::peer_is($u[1]{peers}[0], main::defaults(main::addr(2), weight => 5, max_fails => 3, fail_timeout => 7, max_conns => 9),
                  "$what host2 peer 1");
    main::peer_is($u[1]{peers}[1], main::defaults(main::addr(3), backup => 1), "$what host2 backup");
    is(scalar @{ $u[2]{peers} }, 2, "$what dyhost: two peers");
    main::peer_is($u[2]{peers}[0], main::defaults(main::addr(4), weight => 2, max_fails => 0, fail_timeout => 3, max_conns => 4),
                  "$what dyhost peer 1");
    main::peer_is($u[2]{peers}[1], main::defaults("unix:$sock", down => 1), "$what dyhost unix peer");
    for my $p (map { @{ $_->{peers} } } @u) {
        for my $k (qw(conns fails current_weight effective_weight accessed checked)) {
            like($p->{$k} // 'null', qr/\A\d+\z/, "$what $p->{server}: $k is a number");
        }
    }
}

=== TEST 3: /upstream/NAME as JSON
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- perl
is(http('POST', '/upstream/dyhost', 'server ' . main::addr(2) . '; server ' . main::addr(3) . ' weight=3;')->{status}, 200, 'create');
for my $case (['/upstream/dyhost?format=json', {}], ['/upstream/dyhost', { Accept => 'application/json' }]) {
    my ($uri, $h) = @$case;
    my $what = "$uri " . join(' ', %$h);
    my $r = http('GET', $uri, undef, $h);
    is($r->{status}, 200, "$what: 200");
    like($r->{headers}{'content-type'} // '', qr{^application/json}, "$what: Content-Type");
    my $j = main::decode($r, $what) or next;
    is_deeply([sort keys %$j], [qw(peers upstream zone)], "$what: keys");
    is($j->{upstream}, 'dyhost', "$what: upstream");
    is($j->{zone}, 'dynamic_upstream_dyups_v8', "$what: zone, the registry's");
    is(scalar @{ $j->{peers} }, 2, "$what: two peers");
    main::peer_is($j->{peers}[0], main::defaults(main::addr(2)), "$what peer 1");
    main::peer_is($j->{peers}[1], main::defaults(main::addr(3), weight => 3, effective_weight => 3), "$what peer 2");
}
my $j = main::decode(http_get('/upstream/host1?format=json'), 'host1');
is($j->{upstream}, 'host1', 'a configured upstream too');
ok(exists $j->{zone} && !defined $j->{zone}, 'host1: zone null (it has none)');
main::peer_is($j->{peers}[0], main::defaults(main::addr(1)), 'host1 peer');

=== TEST 4: POST with a JSON body
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my ($a1, $a2, $a3) = map { main::addr($_) } 1 .. 3;
my $r = main::post_json('dyhost', qq({"servers":[{"server":"$a1","weight":3}],"balancer":"least_conn"}));
is($r->{status}, 200, 'the example body: 200') or diag($r->{body});
is($r->{body}, 'success', 'success');
is(http_get('/upstream/dyhost')->{body},
   "server $a1 weight=3 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n", 'the server with its weight');
is(main::proxied('dyhost')->{body}, port(1) . "\n", 'routes');

$r = main::post_json('dyhost', qq({"servers":[
    {"server":"$a1","weight":2,"max_fails":5,"fail_timeout":6,"max_conns":7},
    {"server":"$a2","down":true},
    {"server":"$a3","backup":true}]}));
is($r->{status}, 200, 'every per-server field') or diag($r->{body});
my @lines = split /\n/, http_get('/upstream/dyhost')->{body};
is_deeply([sort @lines], [sort
    "server $a1 weight=2 max_conns=7 max_fails=5 fail_timeout=6 backup=0 down=0",
    "server $a2 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=1",
    "server $a3 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=1 down=0"], 'shown as given');
is(main::proxied('dyhost')->{body}, port(1) . "\n", 'the up primary gets the traffic');

$r = main::post_json('dyhost', qq({"servers":[{"server":"$a2"},{"server":"$a3","backup":false,"down":false}]}), { 'Content-Type' => 'application/json; charset=utf-8' });
is($r->{status}, 200, 'Content-Type with a charset') or diag($r->{body});
my %seen = map { main::proxied('dyhost')->{body} => 1 } 1 .. 6;
is_deeply([sort keys %seen], [sort map { port($_) . "\n" } 2, 3], 'no balancer: round robin over both');

for my $b (qw(round_robin least_conn ip_hash random)) {
    $r = main::post_json('dyhost', qq({"servers":[{"server":"$a1"},{"server":"$a2"}],"balancer":"$b"}));
    is($r->{status}, 200, "balancer $b") or diag($r->{body});
    is(http_get('/upstream/dyhost')->{body} =~ tr/\n//, 2, "balancer $b: two servers");
}
$r = main::post_json('dyhost', qq({"servers":[{"server":"$a1"},{"server":"$a2"}],"balancer":"ip_hash"}));
my %ip = map { main::proxied('dyhost')->{body} => 1 } 1 .. 10;
is(scalar(keys %ip), 1, 'ip_hash from JSON sticks');
for my $b (qw(hash consistent_hash)) {
    $r = main::post_json('dyhost', qq({"servers":[{"server":"$a1"},{"server":"$a2"},{"server":"$a3"}],"balancer":"$b","hash_key":"\$arg_k"}));
    is($r->{status}, 200, "balancer $b with hash_key") or diag($r->{body});
    for my $k (qw(a b)) {
        my %h = map { main::proxied('dyhost', "/?k=$k")->{body} => 1 } 1 .. 8;
        is(scalar(keys %h), 1, "$b: key $k always reaches one peer");
    }
    my %spread = map { main::proxied('dyhost', "/?k=key$_")->{body} => 1 } 1 .. 30;
    cmp_ok(scalar(keys %spread), '>=', 2, "$b: keys spread");
}

$r = main::post_json('dyhost', qq(  {\n  "servers" : [ { "server" : "$a3" } ]\n}\n  ));
is($r->{status}, 200, 'whitespace in JSON') or diag($r->{body});
is(main::proxied('dyhost')->{body}, port(3) . "\n", 'routes');

=== TEST 5: a bad JSON body changes nothing; errors are JSON when asked for
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- perl
is(http('POST', '/upstream/dyhost', 'server ' . main::addr(2) . ';')->{status}, 200, 'create dyhost');
my $a1 = main::addr(1);
my @bad = (
    ['not json',                                                       qr/\Aadd server failed: /],
    ['{"servers":[{"server":"' . $a1 . '"}]',                          qr/\Aadd server failed: /],
    ['{"servers":[]}',                                                 qr/\Aadd server failed: no server given\z/],
    ['{}',                                                             qr/\Aadd server failed: /],
    ['[]',                                                             qr/\Aadd server failed: /],
    ['{"servers":[{"server":"' . $a1 . '","weight":0}]}',              qr/\Aadd server failed: weight must be an integer from 1 to 1000000\z/],
    ['{"servers":[{"server":"' . $a1 . '","weight":"3"}]}',            qr/weight/],
    ['{"servers":[{"server":"' . $a1 . '","weight":1.5}]}',            qr/weight/],
    ['{"servers":[{"server":"' . $a1 . '","max_fails":-1}]}',          qr/max_fails/],
    ['{"servers":[{"server":"' . $a1 . '","max_fails":1000001}]}',     qr/max_fails/],
    ['{"servers":[{"server":"' . $a1 . '","max_conns":-1}]}',          qr/max_conns/],
    ['{"servers":[{"server":"' . $a1 . '","fail_timeout":"soon"}]}',   qr/fail_timeout/],
    ['{"servers":[{"server":"' . $a1 . '","backup":1}]}',              qr/backup/],
    ['{"servers":[{"server":"' . $a1 . '","color":"red"}]}',           qr/color/],
    ['{"servers":[{"server":"localhost:80"}]}',                        qr/"localhost:80" is a host name/],
    ['{"servers":[{"server":"127.0.0.1:0"}]}',                         qr/127\.0\.0\.1:0/],
    ['{"servers":[{"server":"' . $a1 . '"}],"balancer":"fastest"}',    qr/fastest/],
    ['{"servers":[{"server":"' . $a1 . '"}],"balancer":"hash"}',       qr/hash_key/],
    ['{"servers":[{"server":"' . $a1 . '"}],"balancer":"consistent_hash"}', qr/hash_key/],
    ['{"servers":[{"server":"' . $a1 . '"}],"balancer":"hash","hash_key":"$nosuchvar"}', qr/unknown variable "\$nosuchvar" in hash key/],
    ['{"servers":[{"server":"' . $a1 . '"},{"server":"127.0.0.1:1","backup":true}],"balancer":"ip_hash"}',
                                                                       qr/\Aadd server failed: backup server 127\.0\.0\.1:1 is not allowed with the ip_hash balancer\z/],
    ['{"servers":[{"server":"' . $a1 . '","backup":true}]}',           qr/\Aadd server failed: every server is a backup; at least one primary is needed\z/],
    ['{"servers":[{"server":"' . $a1 . '"}],"keepalive":8}',           qr/keepalive/],
);
for my $case (@bad) {
    my ($body, $re) = @$case;
    my $before = main::state();
    my $r = main::post_json('dyhost', $body);
    is($r->{status}, 400, "text error for $body: 400");
    like($r->{body}, qr/\Aadd server failed: /, "text error for $body: add server failed");
    like($r->{body}, $re, "text error for $body: names the problem");
    is(main::state(), $before, "$body: nothing changed");
    $r = main::post_json('newname', $body, { Accept => 'application/json' });
    main::json_error_is($r, 400, $re, "JSON error for $body");
    $r = http('POST', '/upstream/dyhost?format=json', $body, { 'Content-Type' => 'application/json' });
    main::json_error_is($r, 400, $re, "?format=json error for $body");
    is(main::state(), $before, "$body: still nothing changed");
}

# A JSON body without the JSON Content-Type is read as text, and refused.
my $before = main::state();
my $r = http('POST', '/upstream/dyhost', '{"servers":[{"server":"' . $a1 . '"}]}');
is($r->{status}, 400, 'JSON body sent as text: 400');
like($r->{body}, qr/\Aadd server failed: /, 'add server failed');
is(main::state(), $before, 'nothing changed');
# A text body is refused when sent as JSON.
$r = main::post_json('dyhost', "server $a1;");
is($r->{status}, 400, 'text body sent as JSON: 400');
is(main::state(), $before, 'nothing changed');

=== TEST 6: other errors are JSON too when asked for
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- perl
main::json_error_is(http_get('/upstream/nosuch?format=json'), 404, qr/nosuch/, 'GET unknown upstream');
main::json_error_is(http('GET', '/upstream/nosuch', undef, { Accept => 'application/json' }), 404, qr/nosuch/, 'GET unknown upstream, Accept');
main::json_error_is(http('DELETE', '/upstream/nosuch?format=json'), 404, qr/\Aupstream "nosuch" not found\z/, 'DELETE unknown upstream');
main::json_error_is(http('DELETE', '/upstream/nosuch', undef, { Accept => 'application/json' }), 404, qr/\Aupstream "nosuch" not found\z/, 'DELETE unknown, Accept');
main::json_error_is(http('PUT', '/upstream/host1?format=json', 'x'), 405, qr/./, 'PUT');
main::json_error_is(http('POST', '/upstream/a;b?format=json', 'server 127.0.0.1:1;'), 400, qr/./, 'bad name');
main::json_error_is(http('DELETE', '/upstream/a;b', undef, { Accept => 'application/json' }), 400, qr/./, 'bad name, DELETE');
main::json_error_is(http_get('/nowhere?format=json'), 404, qr/./, 'unknown path');
my $r = http('DELETE', '/upstream/nosuch');
is($r->{status}, 404, 'without JSON: 404');
is($r->{body}, 'upstream "nosuch" not found', 'plain text');
is(http_get('/list')->{body}, "host1\n", 'nothing changed');
