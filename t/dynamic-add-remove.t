# dynamic_upstream: adding and removing primary peers (IPv4, IPv6, unix
# sockets, default port), and which listing each answers.
use lib 't/lib';
use NginxTest;
use NginxTest::Traffic;

run_tests();
__DATA__

=== TEST 1: add appends a peer and answers the plain list
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=zone_for_backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_4
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;
server 127.0.0.1:$TEST_NGINX_PORT_4;

>>> GET /dynamic?upstream=zone_for_backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_4 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=zone_for_backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_5
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;
server 127.0.0.1:$TEST_NGINX_PORT_4;
server 127.0.0.1:$TEST_NGINX_PORT_5;



=== TEST 2: add with parameters answers the verbose list with those values
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_2&weight=3
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=3 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_3&max_fails=4
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=3 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=4 fail_timeout=10;

>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_4&fail_timeout=2m
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=3 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=4 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_4 weight=1 max_fails=1 fail_timeout=120;

>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_5&max_conns=12
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=3 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=4 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_4 weight=1 max_fails=1 fail_timeout=120;
server 127.0.0.1:$TEST_NGINX_PORT_5 weight=1 max_fails=1 fail_timeout=10 max_conns=12;

>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_6&down=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=3 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=4 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_4 weight=1 max_fails=1 fail_timeout=120;
server 127.0.0.1:$TEST_NGINX_PORT_5 weight=1 max_fails=1 fail_timeout=10 max_conns=12;
server 127.0.0.1:$TEST_NGINX_PORT_6 weight=1 max_fails=1 fail_timeout=10 down;

>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_7&weight=2&max_fails=3&fail_timeout=4&max_conns=5&down=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=3 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=4 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_4 weight=1 max_fails=1 fail_timeout=120;
server 127.0.0.1:$TEST_NGINX_PORT_5 weight=1 max_fails=1 fail_timeout=10 max_conns=12;
server 127.0.0.1:$TEST_NGINX_PORT_6 weight=1 max_fails=1 fail_timeout=10 down;
server 127.0.0.1:$TEST_NGINX_PORT_7 weight=2 max_fails=3 fail_timeout=4 max_conns=5 down;

>>> GET /dynamic?upstream=backends
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;
server 127.0.0.1:$TEST_NGINX_PORT_4;
server 127.0.0.1:$TEST_NGINX_PORT_5;
server 127.0.0.1:$TEST_NGINX_PORT_6 down;
server 127.0.0.1:$TEST_NGINX_PORT_7 down;



=== TEST 3: add with verbose answers the verbose list
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&add=&verbose=&server=127.0.0.1:$TEST_NGINX_PORT_2
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;



=== TEST 4: an address without a port gets port 80
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:80;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:80&weight=2
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:80 weight=2 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1:80
<<< 400
400 Bad Request: server 127.0.0.1:80 already exists in upstream "backends"

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:80 weight=2 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;



=== TEST 5: IPv6 peers
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&add=&server=[::1]:$TEST_NGINX_PORT_2
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server [::1]:$TEST_NGINX_PORT_2;

>>> GET /dynamic?upstream=backends&add=&server=%5B::1%5D
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server [::1]:$TEST_NGINX_PORT_2;
server [::1]:80;

>>> GET /dynamic?upstream=backends&add=&server=[2001:db8:0:0:0:0:0:1]:8080
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server [::1]:$TEST_NGINX_PORT_2;
server [::1]:80;
server [2001:db8::1]:8080;

>>> GET /dynamic?upstream=backends&add=&server=[0:0:0:0:0:0:0:1]:$TEST_NGINX_PORT_2
<<< 400
400 Bad Request: server [::1]:$TEST_NGINX_PORT_2 already exists in upstream "backends"

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server [::1]:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server [::1]:80 weight=1 max_fails=1 fail_timeout=10;
server [2001:db8::1]:8080 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&server=[::1]:$TEST_NGINX_PORT_2&down=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server [::1]:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10 down;
server [::1]:80 weight=1 max_fails=1 fail_timeout=10;
server [2001:db8::1]:8080 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&remove=&server=[::1]:$TEST_NGINX_PORT_2
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server [::1]:80;
server [2001:db8::1]:8080;

>>> GET /dynamic?upstream=backends&remove=&server=[2001:db8::1]:8080
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server [::1]:80;



=== TEST 6: a configured IPv6 peer is listed in brackets and can be changed and removed
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server [::1]:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server [::1]:$TEST_NGINX_PORT_2;

>>> GET /dynamic?upstream=backends&server=[::1]:$TEST_NGINX_PORT_2&weight=3
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server [::1]:$TEST_NGINX_PORT_2 weight=3 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&remove=&server=[::1]:$TEST_NGINX_PORT_2
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;



=== TEST 7: unix socket peers
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&add=&server=unix:/tmp/x.sock
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server unix:/tmp/x.sock;

>>> GET /dynamic?upstream=backends&server=unix:/tmp/x.sock&weight=4
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server unix:/tmp/x.sock weight=4 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&add=&server=unix:/tmp/x.sock
<<< 400
400 Bad Request: server unix:/tmp/x.sock already exists in upstream "backends"

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server unix:/tmp/x.sock weight=4 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&remove=&server=unix:/tmp/x.sock
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;



=== TEST 8: a configured unix socket peer is listed and can be changed
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server unix:/tmp/configured.sock;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends
<<< 200
server unix:/tmp/configured.sock;
server 127.0.0.1:$TEST_NGINX_PORT_1;

>>> GET /dynamic?upstream=backends&server=unix:/tmp/configured.sock&down=
<<< 200
server unix:/tmp/configured.sock weight=1 max_fails=1 fail_timeout=10 down;
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&remove=&server=unix:/tmp/configured.sock
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;



=== TEST 9: remove answers the plain list
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=zone_for_backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_3
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;

>>> GET /dynamic?upstream=zone_for_backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=zone_for_backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_1
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2;



=== TEST 10: remove with verbose answers the verbose list
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 weight=2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&remove=&verbose=&server=127.0.0.1:$TEST_NGINX_PORT_1
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=2 max_fails=1 fail_timeout=10;



=== TEST 11: remove the first and middle peers, re-add one: it goes last
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
    server 127.0.0.1:$TEST_NGINX_PORT_4;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_1
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;
server 127.0.0.1:$TEST_NGINX_PORT_4;

>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_3
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_4;

>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_1&weight=5
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_4 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=5 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_1
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_4;

>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_1
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_4;
server 127.0.0.1:$TEST_NGINX_PORT_1;

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_4 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;



=== TEST 12: a one-peer upstream can be grown, then shrunk back to one
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_2
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;

>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_1
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2;

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;



=== TEST 13: many add / remove cycles of the same peers keep the list intact
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
my $bad = 0;
for my $round (1 .. 200) {
    my $peer = "10.1.0." . (1 + $round % 5) . ":" . (2000 + $round % 7);
    my $a = http_get("/dynamic?upstream=backends&add=&server=$peer");
    $bad++, diag("add $peer: $a->{status} $a->{body}") if $a->{status} != 200 || $a->{body} !~ /^server \Q$peer\E;\n\z/m;
    my $r = http_get("/dynamic?upstream=backends&remove=&server=$peer");
    $bad++, diag("remove $peer: $r->{status} $r->{body}")
        if $r->{status} != 200 || $r->{body} ne "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\n";
    last if $bad > 3;
}
is($bad, 0, '200 add/remove cycles all answered as expected');
my $v = http_get('/dynamic?upstream=backends&verbose=');
is($v->{body}, "server 127.0.0.1:$p1 weight=1 max_fails=1 fail_timeout=10;\n"
             . "server 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10;\n", 'original list left');



=== TEST 14: 70 added peers (more than 64), proxying still works, removing them restores the list
--- http_config
upstream backends {
    zone z 1m;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; proxy_next_upstream off; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $original = "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\n";
my @added = map { "127.0.0.1:" . (40000 + $_) } 1 .. 70;
my $bad = 0;
for my $i (0 .. $#added) {
    # added down: nothing listens on them, traffic must stay on the two backends
    my $r = http_get("/dynamic?upstream=z&add=&down=&server=$added[$i]");
    $bad++, diag("add $added[$i]: $r->{status} $r->{body}") if $r->{status} != 200;
    last if $bad;
}
is($bad, 0, '70 peers added');
my $list = http_get('/dynamic?upstream=z');
is($list->{status}, 200, 'list of 72');
my @lines = split /\n/, $list->{body};
is(scalar(@lines), 72, '72 lines listed');
is($lines[0], "server 127.0.0.1:$p1;", 'first configured peer first');
is($lines[71], "server 127.0.0.1:40070 down;", 'last added peer last');

my %seen;
for (1 .. 40) {
    my $r = http_get('/');
    $seen{ $r->{status} == 200 ? $r->{body} : "status $r->{status}" }++;
}
is_deeply(\%seen, { "$p1\n" => 20, "$p2\n" => 20 }, 'proxying over 72 peers (70 down) reaches the two up ones')
    or diag(explain(\%seen));

# move a live backend past the 64th position and check it gets traffic
my $r = http_get("/dynamic?upstream=z&server=127.0.0.1:$p1&down=");
is($r->{status}, 200, 'first backend down');
%seen = ();
for (1 .. 20) {
    my $x = http_get('/');
    $seen{ $x->{status} == 200 ? $x->{body} : "status $x->{status}" }++;
}
is_deeply(\%seen, { "$p2\n" => 20 }, 'only the second backend, listed 2nd of 72') or diag(explain(\%seen));
$r = http_get("/dynamic?upstream=z&remove=&server=127.0.0.1:$p1");
is($r->{status}, 200, 'remove first backend');
$r = http_get("/dynamic?upstream=z&add=&server=127.0.0.1:$p1");
is($r->{status}, 200, 're-add first backend as the 72nd peer');
like($r->{body}, qr/\Aserver 127\.0\.0\.1:$p2;\n.*server 127\.0\.0\.1:$p1;\n\z/s, 'it is listed last');
%seen = ();
for (1 .. 40) {
    my $x = http_get('/');
    $seen{ $x->{status} == 200 ? $x->{body} : "status $x->{status}" }++;
}
is_deeply(\%seen, { "$p1\n" => 20, "$p2\n" => 20 }, 'the 72nd peer gets its share') or diag(explain(\%seen));
my $before = http_get('/dynamic?upstream=z&verbose=')->{body};
$r = http_get("/dynamic?upstream=z&add=&server=127.0.0.1:40070");
is($r->{status}, 400, 'adding an existing peer listed past the 64th is refused');
is($r->{body}, qq{400 Bad Request: server 127.0.0.1:40070 already exists in upstream "backends"\n}, 'reason');
is(http_get('/dynamic?upstream=z&verbose=')->{body}, $before, 'nothing changed');
$r = http_get("/dynamic?upstream=z&remove=&server=127.0.0.1:$p1");
is($r->{status}, 200, 'remove the 72nd peer');

$bad = 0;
for my $peer (@added) {
    my $x = http_get("/dynamic?upstream=z&remove=&server=$peer");
    $bad++, diag("remove $peer: $x->{status} $x->{body}") if $x->{status} != 200;
    last if $bad;
}
is($bad, 0, '70 peers removed');
$r = http_get("/dynamic?upstream=z&add=&server=127.0.0.1:$p1");
is($r->{body}, "server 127.0.0.1:$p2;\nserver 127.0.0.1:$p1;\n", 'back to the two backends');
$r = http_get("/dynamic?upstream=z&remove=&server=127.0.0.1:$p2");
$r = http_get("/dynamic?upstream=z&add=&server=127.0.0.1:$p2");
is($r->{body}, $original, 'the original list, in its order');
%seen = ();
for (1 .. 20) {
    my $x = http_get('/');
    $seen{ $x->{status} == 200 ? $x->{body} : "status $x->{status}" }++;
}
is_deeply(\%seen, { "$p1\n" => 10, "$p2\n" => 10 }, 'traffic back on both') or diag(explain(\%seen));



=== TEST 15: 70 added up peers with proxy_next_upstream: requests still succeed, no crash
--- http_config
upstream backends {
    zone z 1m;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; proxy_connect_timeout 1s; }
--- perl
my $p1 = port(1);
my @dead = main::dead_ports(70);
# 70 peers that refuse connections (nothing listens on them): every request
# walks the list, trying peers past the 64th, before reaching the live one.
for my $i (1 .. 70) {
    my $r = http_get("/dynamic?upstream=z&add=&server=127.0.0.1:$dead[$i - 1]" . "&max_fails=0");
    is($r->{status}, 200, "add peer $i") if $r->{status} != 200;
}
my $list = http_get('/dynamic?upstream=z');
is(scalar(split /\n/, $list->{body}), 71, '71 peers listed');
my ($ok, $other) = (0, 0);
for (1 .. 30) {
    my $r = http_get('/');
    if ($r->{status} == 200) { $ok++; is($r->{body}, "$p1\n", 'answer from the live backend') if $r->{body} ne "$p1\n" }
    else { $other++ }
}
is($ok, 30, 'all 30 requests reached the live backend past 70 refusing peers');
for my $i (1 .. 70) {
    my $r = http_get("/dynamic?upstream=z&remove=&server=127.0.0.1:$dead[$i - 1]");
    is($r->{status}, 200, "remove peer $i") if $r->{status} != 200;
}
is(http_get('/dynamic?upstream=z')->{body}, "server 127.0.0.1:$p1;\n", 'original list');
for (1 .. 5) {
    my $r = http_get('/');
    is("$r->{status} $r->{body}", "200 $p1\n", 'proxying after removal');
}



=== TEST 16: more than 64 peers behind keepalive: proxying works, no crash
--- http_config
upstream backends {
    zone z 1m;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    keepalive 8;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / {
    proxy_pass http://backends;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
}
--- perl
my ($p1, $p2) = (port(1), port(2));
my @dead = main::dead_ports(70);
# 70 peers that refuse connections, then a second live one listed 72nd
for my $i (1 .. 70) {
    my $r = http_get("/dynamic?upstream=z&add=&max_fails=0&server=127.0.0.1:$dead[$i - 1]");
    is($r->{status}, 200, "add peer $i") if $r->{status} != 200;
}
is(http_get("/dynamic?upstream=z&add=&server=127.0.0.1:$p2")->{status}, 200, 'live peer added 72nd');
my %seen;
for (1 .. 40) {
    my $r = http_get('/');
    $seen{ $r->{status} == 200 ? $r->{body} =~ s/\n//r : "status $r->{status}" }++;
}
is(($seen{$p1} // 0) + ($seen{$p2} // 0), 40, 'every request reached a live peer through keepalive')
    or diag(explain(\%seen));
ok($seen{$p2}, 'the 72nd peer got traffic') or diag(explain(\%seen));
for my $i (1 .. 70) {
    my $r = http_get("/dynamic?upstream=z&remove=&server=127.0.0.1:$dead[$i - 1]");
    is($r->{status}, 200, "remove peer $i") if $r->{status} != 200;
}
is(http_get('/dynamic?upstream=z')->{body}, "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\n", 'two live peers left');
%seen = ();
for (1 .. 40) {
    my $r = http_get('/');
    $seen{ $r->{status} == 200 ? $r->{body} =~ s/\n//r : "status $r->{status}" }++;
}
is_deeply([sort keys %seen], [sort ($p1, $p2)], 'both live peers answer through keepalive, nothing else')
    or diag(explain(\%seen));
