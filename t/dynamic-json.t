# dynamic_upstream: JSON answers (format=json or Accept: application/json),
# for listings, changes and errors.
use lib 't/lib';
use NginxTest;
use NginxTest::QueryApi ();
use JSON::PP ();

our @PEER_FIELDS = qw(server name weight max_fails fail_timeout max_conns backup down
                      conns fails current_weight effective_weight accessed checked);

# json_ok(RESPONSE, STATUS, NAME): checks status and Content-Type, decodes.
sub json_ok {
    my ($r, $status, $name) = @_;
    is($r->{status}, $status, "$name: status $status");
    like($r->{headers}{'content-type'} // '', qr{^application/json\b}, "$name: application/json");
    my $j = eval { JSON::PP->new->decode($r->{body}) };
    ok(defined $j, "$name: body is JSON") or diag("$@\n$r->{body}");
    return $j;
}

# The peers as [name, weight, max_fails, fail_timeout, max_conns, backup, down].
sub summary {
    my ($j) = @_;
    return [ map { [ $_->{name}, $_->{weight}, $_->{max_fails}, $_->{fail_timeout}, $_->{max_conns},
                     $_->{backup} ? 1 : 0, $_->{down} ? 1 : 0 ] } @{ $j->{peers} || [] } ];
}

# json_error_ok(RESPONSE, STATUS, TEXT_OR_REGEX, NAME)
sub json_error_ok {
    my ($r, $status, $text, $name) = @_;
    my $j = json_ok($r, $status, $name) or return;
    is(ref $j->{error}, 'HASH', "$name: error object");
    is_deeply([sort keys %{ $j->{error} || {} }], [qw(code status text)], "$name: error has status, code, text");
    is($j->{error}{status}, $status, "$name: error.status");
    like($j->{error}{code} // '', qr/^[a-z][a-z_]*$/, "$name: error.code is a word");
    if (ref $text) { like($j->{error}{text}, $text, "$name: error.text") }
    else           { is($j->{error}{text}, $text, "$name: error.text") }
    return $j;
}

run_tests();
__DATA__

=== TEST 1: format=json lists upstream, zone and every peer field
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 weight=3 max_fails=2 fail_timeout=30s max_conns=5;
    server 127.0.0.1:$TEST_NGINX_PORT_3 down;
    server 127.0.0.1:$TEST_NGINX_PORT_4 backup;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
for my $u ('zone_for_backends', 'backends') {
    my $j = main::json_ok(http_get("/dynamic?upstream=$u&format=json"), 200, "list by $u");
    is_deeply([sort keys %$j], [qw(peers upstream zone)], 'top-level keys');
    is($j->{upstream}, 'backends', 'upstream is the upstream name');
    is($j->{zone}, 'zone_for_backends', 'zone is the zone name');
    is(ref $j->{peers}, 'ARRAY', 'peers is an array');
    is(scalar @{ $j->{peers} }, 4, 'four peers');
    for my $peer (@{ $j->{peers} }) {
        is_deeply([sort keys %$peer], [sort @main::PEER_FIELDS], "fields of $peer->{name}");
        for my $f (qw(weight max_fails fail_timeout max_conns conns fails current_weight effective_weight accessed checked)) {
            like($peer->{$f}, qr/^-?\d+$/, "$peer->{name} $f is an integer");
            ok(!ref $peer->{$f}, "$peer->{name} $f is a number, not an object");
        }
        ok(JSON::PP::is_bool($peer->{backup}), "$peer->{name} backup is a boolean");
        ok(JSON::PP::is_bool($peer->{down}), "$peer->{name} down is a boolean");
        is($peer->{server}, $peer->{name}, "$peer->{name}: server is the configured address");
    }
    is_deeply(main::summary($j), [
        ["127.0.0.1:$p1", 1, 1, 10, 0, 0, 0],
        ["127.0.0.1:$p2", 3, 2, 30, 5, 0, 0],
        ["127.0.0.1:$p3", 1, 1, 10, 0, 0, 1],
        ["127.0.0.1:$p4", 1, 1, 10, 0, 1, 0],
    ], 'peers in list order with their parameters') or diag(explain($j));
    is($j->{peers}[1]{effective_weight}, 3, 'effective_weight of a weight=3 peer');
    is($j->{peers}[0]{conns}, 0, 'no connections');
}



=== TEST 2: Accept: application/json answers JSON
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my ($p1, $p2) = (port(1), port(2));
for my $accept ('application/json', 'text/html, application/json;q=0.9', 'Application/JSON') {
    my $j = main::json_ok(http('GET', '/dynamic?upstream=backends', undef, { Accept => $accept }), 200,
                          "Accept: $accept");
    is($j->{upstream}, 'backends', "Accept: $accept: upstream");
    is_deeply([map { $_->{name} } @{ $j->{peers} }], ["127.0.0.1:$p1", "127.0.0.1:$p2"], "Accept: $accept: peers");
}
my $r = http('GET', '/dynamic?upstream=backends', undef, { Accept => 'text/plain' });
is($r->{status}, 200, 'Accept: text/plain');
is($r->{body}, "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\n", 'Accept: text/plain answers text');
$r = http('GET', '/dynamic?upstream=backends', undef, { Accept => '*/*' });
is($r->{body}, "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\n", 'Accept: */* answers text');
is($r->{headers}{'content-type'}, 'text/plain', 'Accept: */* is text/plain');



=== TEST 3: changes answer the JSON list when JSON is asked for
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my ($p1, $p2, $p3, $p4, $p5) = map { port($_) } 1 .. 5;
my $j = main::json_ok(http_get("/dynamic?upstream=backends&format=json&server=127.0.0.1:$p3&weight=10&max_fails=5&fail_timeout=5&max_conns=8"),
                      200, 'update');
is_deeply(main::summary($j), [
    ["127.0.0.1:$p1", 1, 1, 10, 0, 0, 0],
    ["127.0.0.1:$p2", 1, 1, 10, 0, 0, 0],
    ["127.0.0.1:$p3", 10, 5, 5, 8, 0, 0],
], 'update shows in JSON');
is($j->{peers}[2]{effective_weight}, 10, 'effective_weight follows the new weight');

$j = main::json_ok(http_get("/dynamic?upstream=backends&format=json&server=127.0.0.1:$p2&down="), 200, 'down');
ok($j->{peers}[1]{down}, 'down is true');
ok(!$j->{peers}[0]{down}, 'others stay up');

$j = main::json_ok(http('GET', "/dynamic?upstream=backends&server=127.0.0.1:$p2&up=", undef,
                        { Accept => 'application/json' }), 200, 'up with Accept');
ok(!$j->{peers}[1]{down}, 'down is false again');

$j = main::json_ok(http_get("/dynamic?upstream=backends&format=json&add=&server=127.0.0.1:$p4"), 200, 'add');
is_deeply(main::summary($j)->[3], ["127.0.0.1:$p4", 1, 1, 10, 0, 0, 0], 'added peer last');
is($j->{peers}[3]{server}, "127.0.0.1:$p4", 'added peer server field');

$j = main::json_ok(http_get("/dynamic?upstream=backends&format=json&add=&backup=&server=127.0.0.1:$p5&down="),
                   200, 'add backup');
is_deeply(main::summary($j)->[4], ["127.0.0.1:$p5", 1, 1, 10, 0, 1, 1], 'backup peer flagged backup and down');

$j = main::json_ok(http_get("/dynamic?upstream=backends&format=json&remove=&server=127.0.0.1:$p1"), 200, 'remove');
is_deeply([map { $_->{name} } @{ $j->{peers} }],
          ["127.0.0.1:$p2", "127.0.0.1:$p3", "127.0.0.1:$p4", "127.0.0.1:$p5"], 'removed peer gone');

$j = main::json_ok(http_get("/dynamic?upstream=backends&format=json&add=&server=[::1]:$p1"), 200, 'add IPv6');
is($j->{peers}[3]{name}, "[::1]:$p1", 'IPv6 name');
$j = main::json_ok(http_get("/dynamic?upstream=backends&format=json&add=&server=unix:/tmp/j.sock"), 200, 'add unix');
is($j->{peers}[4]{name}, 'unix:/tmp/j.sock', 'unix name');
is($j->{peers}[5]{name}, "127.0.0.1:$p5", 'backup still last');



=== TEST 4: errors in JSON, and nothing changes
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
upstream plain {
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream rnd {
    random;
    zone rnd 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
my $expected = [
    ["127.0.0.1:$p1", 1, 1, 10, 0, 0, 0],
    ["127.0.0.1:$p2", 1, 1, 10, 0, 0, 0],
    ["127.0.0.1:$p3", 1, 1, 10, 0, 0, 0],
];
my @cases = (
    ['GET', "upstream=nope", 404, 'upstream "nope" not found'],
    ['GET', "upstream=backends&server=127.0.0.1:$p4&down=", 400, qq{server 127.0.0.1:$p4 is not in upstream "backends"}],
    ['GET', "upstream=backends&server=127.0.0.1:$p3&weight=0", 400, 'weight must be an integer from 1 to 1000000'],
    ['GET', "upstream=backends&server=127.0.0.1:$p3&weight=99999999999999999999", 400,
     'weight must be an integer from 1 to 1000000'],
    ['GET', "upstream=backends&server=127.0.0.1:$p3&down=&up=", 400, 'down and up cannot be combined'],
    ['GET', "upstream=backends&add=&server=127.0.0.1:$p3", 400, qq{server 127.0.0.1:$p3 already exists in upstream "backends"}],
    ['GET', "upstream=backends&add=&server=localhost:80", 400,
     'server "localhost:80" is a host name; only IP addresses and unix sockets are accepted (names are not resolved at run time)'],
    ['GET', "upstream=backends&foo=1", 400, 'unknown parameter foo'],
    ['GET', "upstream=backends&weight=1&weight=2", 400, 'parameter weight is given more than once'],
    ['GET', "server=127.0.0.1:$p3&down=", 400, 'the upstream parameter is required'],
    ['GET', "upstream=backends&remove=", 400, 'the server parameter is required for remove'],
    ['GET', "upstream=plain", 400, qr/^upstream "plain" has no zone/],
    ['POST', "upstream=backends&server=127.0.0.1:$p3&down=", 405, 'only GET and HEAD are accepted'],
    ['DELETE', "upstream=backends&remove=&server=127.0.0.1:$p3", 405, 'only GET and HEAD are accepted'],
);
for my $c (@cases) {
    my ($method, $q, $status, $text) = @$c;
    main::json_error_ok(http($method, "/dynamic?$q&format=json"), $status, $text, "$method $q (format=json)");
    main::json_error_ok(http($method, "/dynamic?$q", undef, { Accept => 'application/json' }), $status, $text,
                        "$method $q (Accept)");
    my $l = main::json_ok(http_get('/dynamic?upstream=backends&format=json'), 200, "list after $q");
    is_deeply(main::summary($l), $expected, "nothing changed by $method $q");
    is(http_get('/dynamic?upstream=backends&verbose=')->{body},
       join('', map { "server 127.0.0.1:$_ weight=1 max_fails=1 fail_timeout=10;\n" } $p1, $p2, $p3),
       "verbose list unchanged by $method $q");
}
my $rnd_add = http_get('/dynamic?upstream=rnd&add=&server=127.0.0.1:9&format=json');
if (NginxTest::QueryApi::tables_fixed()) {
    main::json_error_ok($rnd_add, 409, qr/^upstream "rnd" uses the random balancer/, 'random add (JSON)');
} else {
    is($rnd_add->{status}, 200, 'random add (JSON): nginx rebuilds its table');
    is(http_get('/dynamic?upstream=rnd&remove=&server=127.0.0.1:9')->{status}, 200, 'and remove');
}
is(http_get('/dynamic?upstream=rnd&verbose=')->{body},
   "server 127.0.0.1:$p1 weight=1 max_fails=1 fail_timeout=10;\nserver 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10;\n",
   'random upstream unchanged');



=== TEST 5: HEAD with format=json has no body
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $r = http('HEAD', '/dynamic?upstream=backends&format=json');
is($r->{status}, 200, 'HEAD status');
is($r->{body}, '', 'no body');
like($r->{headers}{'content-type'}, qr{^application/json}, 'content type');



=== TEST 6: live figures: a failed peer shows fails, accessed and checked
--- workers: 1
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_9 max_fails=3;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p9) = (port(1), port(9));
my $before = time;
my %seen;
for (1 .. 4) { my $r = http_get('/'); $seen{"$r->{status} $r->{body}"}++ }
is_deeply(\%seen, { "200 $p1\n" => 4 }, 'every request answered by the live peer (the dead one is skipped)');
my $j = main::json_ok(http_get('/dynamic?upstream=backends&format=json'), 200, 'list');
my ($dead) = grep { $_->{name} eq "127.0.0.1:$p9" } @{ $j->{peers} };
cmp_ok($dead->{fails}, '>=', 1, 'the refusing peer has failures');
cmp_ok($dead->{accessed}, '>=', $before - 1, 'accessed is a recent unix time');
cmp_ok($dead->{checked}, '>=', $before - 1, 'checked is a recent unix time');
is($j->{peers}[0]{fails}, 0, 'the live peer has no failures');
is($j->{peers}[0]{conns}, 0, 'no connection open now');

=== TEST 9: JSON only for an Accept header that prefers application/json to text/plain: client libraries' defaults (axios' "application/json, text/plain, */*") answer text, as the C modules do (any mention of application/json answered JSON, hunt 34); so for dyups' listings
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_2; location / { dyups_interface; } }
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $text = "server 127.0.0.1:" . port(1) . ";\n";
for my $accept ('application/json, text/plain, */*', 'text/plain;q=1, application/json;q=0.1',
                'text/plain, application/json, application/*+json, */*', 'application/json;q=0, */*') {
    my $r = http('GET', '/dynamic?upstream=backends', undef, { Accept => $accept });
    is("$r->{status} $r->{headers}{'content-type'} $r->{body}", "200 text/plain $text", "Accept: $accept: text");
    $r = http('GET', 'http://127.0.0.1:' . port(2) . '/list', undef, { Accept => $accept });
    is("$r->{status} $r->{headers}{'content-type'} $r->{body}", "200 text/plain backends\n", "  dyups /list: text");
}
for my $accept ('application/json, */*;q=0.8', 'text/plain;q=0.5, application/json') {
    my $r = http('GET', '/dynamic?upstream=backends', undef, { Accept => $accept });
    like("$r->{status} $r->{headers}{'content-type'}", qr{^200 application/json}, "Accept: $accept: JSON");
}
my $r = http('GET', '/dynamic?upstream=backends&FORMAT=json');
like("$r->{status} $r->{headers}{'content-type'}", qr{^200 application/json}, 'FORMAT=json: JSON (names in any case)');
