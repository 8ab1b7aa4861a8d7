# dyups_interface errors: invalid bodies answer 400 "add server failed: ..."
# naming the problem and change nothing; bad names 400; other methods 405;
# unknown paths 404.
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups;

# A POST that must be refused with 400 and a body matching $re, to an
# existing run-time upstream, a configured one and a new name; each time
# nothing may change.
sub refused {
    my ($body, $re, $what) = @_;
    for my $name (qw(dyhost host1 newname)) {
        my $before = state();
        my $r = http('POST', "/upstream/$name", $body);
        is($r->{status}, 400, "$what -> $name: 400");
        like($r->{body}, qr/\Aadd server failed: /, "$what -> $name: body starts with 'add server failed: '");
        like($r->{body}, $re, "$what -> $name: names the problem") or diag("body: $r->{body}");
        is(state(), $before, "$what -> $name: /list and /detail unchanged");
    }
    is(http_get('/upstream/newname')->{status}, 404, "$what: no upstream was created");
    my $via = proxied('dyhost');
    is($via->{body}, port(2) . "\n", "$what: dyhost still routes to its server");
}

sub p { port($_[0]) }

run_tests();
__DATA__

=== TEST 1: unknown directives, bad balancer lines, keepalive
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
main::setup();
my $s = 'server 127.0.0.1:' . main::p(1) . ';';
main::refused("aaserver 127.0.0.1:" . main::p(1) . ";", qr/\Aadd server failed: unknown directive "aaserver"\z/, 'aaserver');
main::refused("$s weight 3;", qr/\Aadd server failed: unknown directive "weight"\z/, 'stray directive');
main::refused("ip_hash on; $s", qr/\Aadd server failed: invalid number of arguments in "ip_hash"\z/, 'ip_hash with an argument');
main::refused("least_conn x; $s", qr/\Aadd server failed: invalid number of arguments in "least_conn"\z/, 'least_conn with an argument');
main::refused("hash; $s", qr/\Aadd server failed: invalid number of arguments in "hash"\z/, 'hash without a key');
main::refused("hash \$arg_k consistent extra; $s", qr/"hash"/, 'hash with three arguments');
main::refused("hash \$arg_k inconsistent; $s", qr/inconsistent/, 'hash with a bad second argument');
main::refused("keepalive 16; $s", qr/\Aadd server failed: "keepalive" is not supported/, 'keepalive');
main::refused("$s keepalive 16;", qr/\Aadd server failed: "keepalive" is not supported/, 'keepalive after the servers');
main::refused("ip_hash; least_conn; $s", qr/\Aadd server failed: more than one balancer \(.+\)\z/, 'two balancers');
main::refused("$s random; hash \$arg_k;", qr/\Aadd server failed: more than one balancer \(.+\)\z/, 'two balancers after the servers');
main::refused("hash \$nosuchvar; $s", qr/\Aadd server failed: unknown variable "\$nosuchvar" in hash key\z/, 'unknown variable in the hash key');
main::refused("hash \$arg_k\$nosuchvar consistent; $s", qr/\Aadd server failed: unknown variable "\$nosuchvar" in hash key\z/, 'unknown variable after a known one');

=== TEST 2: no server, missing ';'
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
main::setup();
my $a = '127.0.0.1:' . main::p(1);
main::refused('', qr/\Aadd server failed: no server given\z/, 'empty body');
main::refused("  \n\t\r\n ", qr/\Aadd server failed: no server given\z/, 'only whitespace');
main::refused('ip_hash;', qr/\Aadd server failed: no server given\z/, 'only a balancer');
main::refused("server $a", qr/\Aadd server failed: missing ';' after "server \Q$a\E"\z/, 'one server without ;');
main::refused("server $a; server $a weight=2", qr/\Aadd server failed: missing ';' after "server \Q$a\E weight=2"\z/, 'last server without ;');
main::refused("server $a;\nleast_conn\n", qr/\Aadd server failed: missing ';' after "least_conn"\z/, 'balancer without ;');

=== TEST 3: bad server parameters
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
main::setup();
my $a = 'server 127.0.0.1:' . main::p(1);
my $weight = qr/\Aadd server failed: weight must be an integer from 1 to 1000000\z/;
main::refused("$a weight=0;", $weight, 'weight=0');
main::refused("$a weight=1000001;", $weight, 'weight=1000001');
main::refused("$a weight=-1;", $weight, 'weight=-1');
main::refused("$a weight=abc;", $weight, 'weight=abc');
main::refused("$a weight=;", $weight, 'weight=');
main::refused("$a color=red;", qr/\Aadd server failed: invalid server parameter "color=red"\z/, 'color=red');
main::refused("$a backupp;", qr/\Aadd server failed: invalid server parameter "backupp"\z/, 'backupp');
main::refused("$a max_fails=-1;", qr/max_fails/, 'max_fails=-1');
main::refused("$a max_fails=x;", qr/max_fails/, 'max_fails=x');
main::refused("$a fail_timeout=abc;", qr/fail_timeout/, 'fail_timeout=abc');
main::refused("$a fail_timeout=-5;", qr/fail_timeout/, 'fail_timeout=-5');
main::refused("$a max_conns=-1;", qr/max_conns/, 'max_conns=-1');
main::refused("$a max_conns=many;", qr/max_conns/, 'max_conns=many');

=== TEST 4: bad addresses
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
main::setup();
main::refused('server 127.0.0.1:0;', qr/127\.0\.0\.1:0\b/, 'port 0');
main::refused('server 127.0.0.1:65536;', qr/127\.0\.0\.1:65536/, 'port 65536');
main::refused('server 127.0.0.1:http;', qr/127\.0\.0\.1:http/, 'port http');
main::refused('server 127.0.0.1:;', qr/127\.0\.0\.1:/, 'empty port');
main::refused('server 300.1.1.1:80;', qr/300\.1\.1\.1/, 'octet 300');
main::refused('server 1.2.3:80;', qr/1\.2\.3:80/, 'three octets');
main::refused('server unix:;', qr/unix:/, 'unix: without a path');
main::refused('server [::1:80;', qr/\[::1:80/, 'unclosed IPv6 bracket');
main::refused('server;', qr/"server"/, 'server without an address');
main::refused('server localhost:80;',
    qr/\Aadd server failed: server "localhost:80" is a host name; only IP addresses and unix sockets are accepted \(names are not resolved at run time\)\z/,
    'host name');
main::refused('server 127.0.0.1:' . main::p(1) . '; server example.com;', qr/"example\.com" is a host name/, 'host name as the second server');

=== TEST 5: backup with ip_hash, and only backups
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
main::setup();
my ($a1, $a2) = map { '127.0.0.1:' . main::p($_) } 1 .. 2;
main::refused("ip_hash; server $a1; server $a2 backup;",
    qr/\Aadd server failed: backup server \Q$a2\E is not allowed with the ip_hash balancer\z/, 'backup with ip_hash');
main::refused("server $a1; server $a2 backup; ip_hash;",
    qr/\Aadd server failed: backup server \Q$a2\E is not allowed with the ip_hash balancer\z/, 'backup with ip_hash given last');
main::refused("server $a1 backup;",
    qr/\Aadd server failed: every server is a backup; at least one primary is needed\z/, 'one backup only');
main::refused("server $a1 backup; server $a2 backup down;",
    qr/\Aadd server failed: every server is a backup; at least one primary is needed\z/, 'two backups only');

=== TEST 6: a refused body after good statements changes nothing either
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
main::setup();
my $good = join '', map { 'server 127.0.0.1:' . main::p(1) . " weight=$_;" } 1 .. 20;
main::refused("$good server 127.0.0.1:" . main::p(1) . " weight=0;", qr/weight/, 'bad last server');
main::refused("$good aaserver x;", qr/"aaserver"/, 'bad last directive');

=== TEST 7: invalid upstream names answer 400 for POST, DELETE and GET
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
main::setup();
my $body = 'server 127.0.0.1:' . main::p(1) . ';';
my @bad = ('a;b', 'x' x 256, 'a%20b', 'a:b', 'caf%C3%A9', 'a@b', 'a,b');
for my $name (@bad) {
    my $before = main::state();
    my $shown = length($name) > 20 ? substr($name, 0, 10) . '...(' . length($name) . ')' : $name;
    is(http('POST', "/upstream/$name", $body)->{status}, 400, "POST /upstream/$shown: 400");
    is(http('DELETE', "/upstream/$name")->{status}, 400, "DELETE /upstream/$shown: 400");
    is(http('GET', "/upstream/$name")->{status}, 400, "GET /upstream/$shown: 400");
    is(main::state(), $before, "$shown: nothing changed");
}
# The longest and the oddest valid names.
for my $name ('x' x 255, 'a.b-c_d', '0', 'A-1.b_2') {
    my $shown = length($name) > 20 ? 'x...(255)' : $name;
    my $r = http('POST', "/upstream/$name", $body);
    is($r->{status}, 200, "valid name $shown: POST 200") or diag($r->{body});
    is(http('GET', "/upstream/$name")->{status}, 200, "valid name $shown: GET 200");
    like(http_get('/list')->{body}, qr/^\Q$name\E$/m, "valid name $shown: listed");
    is(http('DELETE', "/upstream/$name")->{status}, 200, "valid name $shown: DELETE 200");
}

=== TEST 8: methods other than GET, POST and DELETE answer 405
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
main::setup();
my $before = main::state();
my $body = 'server 127.0.0.1:' . main::p(1) . ';';
for my $m (qw(PUT PATCH OPTIONS)) {
    for my $uri ('/upstream/dyhost', '/upstream/newname', '/list', '/detail') {
        is(http($m, $uri, $body)->{status}, 405, "$m $uri: 405");
    }
}
is(http('POST', '/list', $body)->{status}, 405, 'POST /list: 405');
is(http('POST', '/detail', $body)->{status}, 405, 'POST /detail: 405');
is(http('DELETE', '/list')->{status}, 405, 'DELETE /list: 405');
is(http('DELETE', '/detail')->{status}, 405, 'DELETE /detail: 405');
is(main::state(), $before, 'nothing changed');

=== TEST 9: unknown paths answer 404
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
main::setup();
my $before = main::state();
for my $uri ('/', '/foo', '/lists', '/details', '/upstream', '/upstreams/dyhost') {
    is(http_get($uri)->{status}, 404, "GET $uri: 404");
}
# As Tengine's dyups: the first segment in any case, what follows /list/
# and /detail/ ignored (hunt 34).
for my $case (['/LIST', '/list'], ['/list/x', '/list'], ['/Detail', '/detail'], ['/detail/dyhost', '/detail']) {
    my ($uri, $same) = @$case;
    is(http_get($uri)->{body}, http_get($same)->{body}, "GET $uri: as GET $same");
}
for my $uri ('/upstreams/dyhost', '/foo', '/upstream') {
    is(http('POST', $uri, 'server 127.0.0.1:' . main::p(1) . ';')->{status}, 404, "POST $uri: 404");
    is(http('DELETE', $uri)->{status}, 404, "DELETE $uri: 404");
}
is(main::state(), $before, 'nothing changed');

=== TEST 10: a consistent hash whose points table would pass 64 MiB per worker is refused, in text and JSON bodies
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
main::setup();
my ($a1, $a2) = map { '127.0.0.1:' . main::p($_) } 1 .. 2;
# 160 points of 16 bytes per unit of weight, in 64 MiB.
my $max = int(64 * 1024 * 1024 / (160 * 16));
my $over = $max + 1;
my $too_big = qr/\Aadd server failed: consistent hash needs 160 points of 16 bytes per unit of weight in every worker: total weight $over would take 65 MiB, more than the 64 MiB allowed \(total weight at most $max\)\z/;
main::refused("hash \$arg_k consistent; server $a1 weight=$max; server $a2 down;", $too_big, "total weight $over");
main::refused('hash $arg_k consistent;' . join('', map { "server 127.0.0.1:$_ weight=1000000;" } 1 .. 100),
    qr/total weight 100000000 would take 244141 MiB, more than the 64 MiB allowed/, '100 servers of weight 1000000');
my $r = http('POST', '/upstream/newname',
    qq({"servers":[{"server":"$a1","weight":$over}],"balancer":"consistent_hash","hash_key":"\$arg_k"}),
    { 'Content-Type' => 'application/json' });
is($r->{status}, 400, 'JSON body: 400');
like($r->{body}, $too_big, 'JSON body: names the bound') or diag($r->{body});
is(http_get('/upstream/newname')->{status}, 404, 'JSON body: nothing created');
