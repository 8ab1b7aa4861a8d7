# dyups_interface, reading: GET /list, GET /detail and GET /upstream/NAME in
# Tengine dyups' plain-text formats.
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups;

run_tests();
__DATA__

=== TEST 1: /list names the upstream {} blocks in config order, one per line
--- http_config
upstream zeta  { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream alpha { zone alpha 64k; server 127.0.0.1:$TEST_NGINX_PORT_2; }
upstream mid   { ip_hash; server 127.0.0.1:$TEST_NGINX_PORT_3; }
--- config
location / { dyups_interface; }
--- request
GET /list
--- error_code: 200
--- response_body
zeta
alpha
mid



=== TEST 2: implicit upstreams of proxy_pass http://ADDR are not listed
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location /a { proxy_pass http://127.0.0.1:$TEST_NGINX_PORT_2; }
    location /b { proxy_pass http://host1; }
    location /c { proxy_pass http://localhost:$TEST_NGINX_PORT_3/x; }
}
--- config
location / { dyups_interface; }
--- steps
>>> GET /list
<<< 200
host1

>>> GET /detail
<<< 200 like
\Ahost1\nserver 127\.0\.0\.1:$TEST_NGINX_PORT_1 [^\n]*\n\n\z



=== TEST 3: /list and /detail answer 204 with an empty body when there is no upstream
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://127.0.0.1:$TEST_NGINX_PORT_1; }
}
--- config
location / { dyups_interface; }
--- steps
>>> GET /list
<<< 204

>>> GET /detail
<<< 204

>>> GET /upstream/host1
<<< 404 any



=== TEST 4: /list is 204 again once the only upstreams are deleted
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- steps
>>> POST /upstream/dyhost

server 127.0.0.1:$TEST_NGINX_PORT_2;
<<< 200 chomp
success

>>> DELETE /upstream/dyhost
<<< 200 chomp
success

>>> DELETE /upstream/host1
<<< 200 chomp
success

>>> GET /list
<<< 204

>>> GET /detail
<<< 204



=== TEST 5: /detail of configured upstreams: name, one line per server, empty line
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 {
    server 127.0.0.1:$TEST_NGINX_PORT_2 weight=5 max_fails=3 fail_timeout=7s max_conns=9;
    server 127.0.0.1:$TEST_NGINX_PORT_3 down;
    server 127.0.0.1:$TEST_NGINX_PORT_4 backup;
}
--- config
location / { dyups_interface; }
--- perl
my $r = http_get('/detail');
is($r->{status}, 200, '/detail status');
is($r->{body},
   "host1\n" . main::line(main::addr(1)) . "\n"
   . "host2\n"
   . main::line(main::addr(2), weight => 5, max_conns => 9, max_fails => 3, fail_timeout => 7)
   . main::line(main::addr(3), down => 1)
   . main::line(main::addr(4), backup => 1)
   . "\n",
   '/detail body');

=== TEST 6: /upstream/NAME gives the server lines of one upstream
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 {
    server 127.0.0.1:$TEST_NGINX_PORT_2 weight=2;
    server 127.0.0.1:$TEST_NGINX_PORT_3 max_fails=0 backup;
}
--- config
location / { dyups_interface; }
--- perl
my $r = http_get('/upstream/host2');
is($r->{status}, 200, 'status');
is($r->{body},
   main::line(main::addr(2), weight => 2) . main::line(main::addr(3), max_fails => 0, backup => 1),
   'server lines of host2');
$r = http_get('/upstream/host1');
is($r->{status}, 200, 'host1 status');
is($r->{body}, main::line(main::addr(1)), 'server line of host1');

=== TEST 7: /upstream/NAME of an unknown upstream is 404
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- steps
>>> GET /upstream/nosuch
<<< 404 any

>>> GET /upstream/host10
<<< 404 any

>>> GET /upstream/host
<<< 404 any



=== TEST 8: upstreams created at run time follow the configured ones, in creation order
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
--- config
location / { dyups_interface; }
--- perl
for my $name (qw(zz aa mm)) {
    is(http('POST', "/upstream/$name", "server 127.0.0.1:" . port(3) . ";")->{body}, 'success', "create $name");
}
is(http_get('/list')->{body}, "host1\nhost2\nzz\naa\nmm\n", 'config first, then creation order');

# Replacing keeps each one's place, the configured one's included.
is(http('POST', '/upstream/zz', "server 127.0.0.1:" . port(4) . ";")->{status}, 200, 'replace zz');
is(http('POST', '/upstream/host1', "server 127.0.0.1:" . port(4) . ";")->{status}, 200, 'replace host1');
is(http_get('/list')->{body}, "host1\nhost2\nzz\naa\nmm\n", 'replacing does not reorder');

# Deleting and creating again is a new creation: last.
is(http('DELETE', '/upstream/aa')->{status}, 200, 'delete aa');
is(http_get('/list')->{body}, "host1\nhost2\nzz\nmm\n", 'aa gone');
is(http('POST', '/upstream/aa', "server 127.0.0.1:" . port(5) . ";")->{status}, 200, 're-create aa');
is(http_get('/list')->{body}, "host1\nhost2\nzz\nmm\naa\n", 'aa is now the newest');

my $d = http_get('/detail');
is($d->{status}, 200, '/detail status');
is($d->{body},
   "host1\n" . main::line(main::addr(4)) . "\n"
   . "host2\n" . main::line(main::addr(2)) . "\n"
   . "zz\n" . main::line(main::addr(4)) . "\n"
   . "mm\n" . main::line(main::addr(3)) . "\n"
   . "aa\n" . main::line(main::addr(5)) . "\n",
   '/detail in the same order, each with its servers');

=== TEST 9: /detail of a run-time upstream shows every server parameter
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- perl
my $sock = data_dir() . '/app.sock';
my $body = "server 127.0.0.1:" . port(2) . ";"
         . "server 127.0.0.1:" . port(3) . " weight=3 max_fails=2 fail_timeout=5 max_conns=10;"
         . "server 127.0.0.1:" . port(4) . " backup;"
         . "server unix:$sock down;";
my $r = http('POST', '/upstream/dyhost', $body);
is($r->{status}, 200, 'POST of the dyups example body');
is($r->{body}, 'success', 'success');

my $u = http_get('/upstream/dyhost');
is($u->{status}, 200, '/upstream/dyhost status');
my @lines = split /(?<=\n)/, $u->{body};
is(scalar(@lines), 4, 'four server lines') or diag($u->{body});
my @expected = (
    main::line(main::addr(2)),
    main::line(main::addr(3), weight => 3, max_fails => 2, fail_timeout => 5, max_conns => 10),
    main::line("unix:$sock", down => 1),
    main::line(main::addr(4), backup => 1),
);
is_deeply([sort @lines], [sort @expected], 'each server with its parameters');
like($u->{body}, qr/\n\z/, 'every line ends in a newline');
my $i_backup = (grep { $lines[$_] =~ /backup=1/ } 0 .. $#lines)[0] // -1;
is($i_backup, 3, 'the backup comes after the primaries');

is(http_get('/detail')->{body},
   "host1\n" . main::line(main::addr(1)) . "\n" . "dyhost\n" . $u->{body} . "\n",
   '/detail shows the same lines under the name, then an empty line');

=== TEST 10: GET /upstream/NAME finds a run-time upstream by name, case-insensitively
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- perl
is(http('POST', '/upstream/dyhost', "server 127.0.0.1:" . port(2) . ";")->{status}, 200, 'create');
my $want = main::line(main::addr(2));
is(http_get('/upstream/dyhost')->{body}, $want, 'dyhost');
my $r = http_get('/upstream/DYHOST');
is($r->{status}, 200, 'DYHOST status');
is($r->{body}, $want, 'DYHOST is dyhost');
is(http_get('/upstream/HOST1')->{body}, main::line(main::addr(1)), 'HOST1 is host1');

=== TEST 11: a hundred run-time upstreams are listed in creation order
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- perl
my @names = map { sprintf 'up%03d', (37 * $_) % 100 } 0 .. 99;
my $failed = 0;
for my $i (0 .. $#names) {
    my $r = http('POST', "/upstream/$names[$i]", 'server 127.0.0.1:' . (30000 + $i) . ';');
    $failed++ unless $r->{status} == 200;
}
is($failed, 0, 'all 100 created');
is(http_get('/list')->{body}, join('', map { "$_\n" } 'host1', @names), 'listed in creation order');
my $detail = http_get('/detail')->{body};
my $want = "host1\n" . main::line(main::addr(1)) . "\n"
         . join('', map { "$names[$_]\n" . main::line('127.0.0.1:' . (30000 + $_)) . "\n" } 0 .. $#names);
ok($detail eq $want, '/detail: each with its server, in the same order') or diag(substr($detail, 0, 500));
is(http_get("/upstream/$names[57]")->{body}, main::line('127.0.0.1:30057'), 'one of them by name');

=== TEST 12: /upstream/NAME in any case, through every state: configured, replaced, deleted, run-time
--- http_config
upstream Host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- perl
use JSON::PP ();
my $json_name = sub {
    my $r = http_get("$_[0]?format=json");
    return "status $r->{status}" if $r->{status} != 200;
    return JSON::PP->new->decode($r->{body})->{upstream};
};
is(http_get('/upstream/hOST1')->{body}, main::line(main::addr(1)), 'configured: found in any case');
is($json_name->('/upstream/HOST1'), 'Host1', 'configured: JSON names it as the configuration does');
is(http('POST', '/upstream/host1', 'server 127.0.0.1:' . port(2) . ';')->{status}, 200, 'replace host1');
is(http_get('/upstream/HOST1')->{body}, main::line(main::addr(2)), 'replaced: the new server');
is($json_name->('/upstream/host1'), 'Host1', 'replaced: still the configuration\'s spelling');
is(http('DELETE', '/upstream/HoSt1')->{status}, 200, 'delete host1');
my $r = http_get('/upstream/host1');
is("$r->{status} $r->{body}", '404 upstream "host1" not found', 'deleted: 404 with the name asked for');
is(http('POST', '/upstream/DyHost', 'server 127.0.0.1:' . port(3) . ';')->{status}, 200, 'create DyHost');
is(http_get('/upstream/dyhost')->{body}, main::line(main::addr(3)), 'run-time: found in any case');
is($json_name->('/upstream/DYHOST'), 'DyHost', 'run-time: JSON names it as it was created');
is(http_get('/status')->{body} =~ /upstreams=(\d+)/ ? $1 : 'none', 1, '/status counts the run-time upstream, not the deleted one');
is(http('DELETE', '/upstream/dyhost')->{status}, 200, 'delete dyhost');
is(http_get('/upstream/DyHost')->{status}, 404, 'run-time deleted: 404');
is(http_get('/status')->{body} =~ /upstreams=(\d+)/ ? $1 : 'none', 0, '/status: none left');

=== TEST 13: a configuration upstream whose balancer keeps its own peers (upstream fair, a Debian module): listed from its server lines, replaced, deleted and created again; no worker dies (peer.data is fair's struct, not a round-robin list: reading it as one crashed every /detail)
--- modules: fair
--- http_config
upstream fairup {
    fair;
    server 127.0.0.1:$TEST_NGINX_PORT_1 weight=3 max_fails=2 fail_timeout=5s;
    server 127.0.0.1:$TEST_NGINX_PORT_2 down;
}
upstream plain { server 127.0.0.1:$TEST_NGINX_PORT_3; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
use JSON::PP ();
my $fair_lines = main::line(main::addr(1), weight => 3, max_fails => 2, fail_timeout => 5)
               . main::line(main::addr(2), down => 1);
for my $round (1, 2) {
    # Twice: before and after a request through fair (which then fills its
    # own shared counters).
    my $r = http_get('/detail');
    is("$r->{status} $r->{body}", "200 fairup\n$fair_lines\nplain\n" . main::line(main::addr(3)) . "\n",
       "round $round: /detail lists fair's servers as configured");
    $r = http_get('/upstream/fairup');
    is("$r->{status} $r->{body}", "200 $fair_lines", "round $round: /upstream/fairup");
    $r = http_get('/upstream/fairup?format=json');
    is($r->{status}, 200, "round $round: JSON status");
    my $servers = eval { JSON::PP->new->decode($r->{body})->{peers} } || [];
    is(join(' ', map { "$_->{server}/$_->{weight}/" . ($_->{down} ? 'down' : 'up') } @$servers),
       main::addr(1) . '/3/up ' . main::addr(2) . '/1/down', "round $round: JSON servers");
    is(main::proxied_port('fairup'), port(1), "round $round: fair routes to the one up server");
}
my $r = http('POST', '/upstream/fairup', main::servers(4));
is("$r->{status} $r->{body}", '200 success', 'replace fairup');
is(http_get('/upstream/fairup')->{body}, main::line(main::addr(4)), 'replaced: the new server');
is(main::proxied_port('fairup'), port(4), 'replaced: routes to it');
is(http('DELETE', '/upstream/fairup')->{status}, 200, 'delete fairup');
is(main::proxied_port('fairup'), 'status 502', 'deleted: 502');
$r = http('POST', '/upstream/fairup', main::servers(3));
is("$r->{status} $r->{body}", '200 success', 'created again');
is(main::proxied_port('fairup'), port(3), 'created again: routes');
is(main::proxied_port('plain'), port(3), 'the other upstream is untouched');
