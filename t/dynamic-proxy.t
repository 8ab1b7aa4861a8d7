# dynamic_upstream: proxied traffic follows the changes (round robin):
# down / up, add, remove, weights, a one-peer upstream that grows, unix
# sockets. Backends answer their own port.
use lib 't/lib';
use NginxTest;
use NginxTest::Traffic;
use NginxTest::QueryApi;

run_tests();
__DATA__

=== TEST 1: a down peer gets no traffic; after up it gets its share again
--- workers: 1
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
is_deeply(main::spread(30), { $p1 => 10, $p2 => 10, $p3 => 10 }, 'three peers share');
main::change("server=127.0.0.1:$p3&down=");
is_deeply(main::spread(30), { $p1 => 15, $p2 => 15 }, 'the down peer gets nothing');
main::change("server=127.0.0.1:$p1&down=");
is_deeply(main::spread(10), { $p2 => 10 }, 'two peers down: the last up peer gets everything');
main::change("server=127.0.0.1:$p3&up=");
is_deeply(main::spread(20), { $p2 => 10, $p3 => 10 }, 'a peer brought up gets its share again');
main::change("server=127.0.0.1:$p1&up=");
is_deeply(main::spread(30), { $p1 => 10, $p2 => 10, $p3 => 10 }, 'all up: even again');



=== TEST 2: every primary down: 502, then up again: 200
--- http_config
upstream backends {
    zone zone_for_backends 128k;
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
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
main::change("server=127.0.0.1:$p1&down=");
main::change("server=127.0.0.1:$p2&down=");
is_deeply(main::spread(6), { 'status 502' => 6 }, 'no live peer: 502');
main::change("server=127.0.0.1:$p2&up=");
is_deeply(main::spread(6), { $p2 => 6 }, 'one up again: it answers');



=== TEST 3: an added peer gets its share; a removed peer gets none
--- workers: 1
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
is_deeply(main::spread(30), { $p1 => 10, $p2 => 10, $p3 => 10 }, 'three peers');
main::change("add=&server=127.0.0.1:$p4");
is_deeply(main::spread(40), { $p1 => 10, $p2 => 10, $p3 => 10, $p4 => 10 }, 'a fourth peer added: spread over four');
main::change("remove=&server=127.0.0.1:$p2");
is_deeply(main::spread(30), { $p1 => 10, $p3 => 10, $p4 => 10 }, 'a configured peer removed: it gets nothing');
main::change("remove=&server=127.0.0.1:$p4");
is_deeply(main::spread(20), { $p1 => 10, $p3 => 10 }, 'the added peer removed: it gets nothing');
main::change("add=&server=127.0.0.1:$p2");
is_deeply(main::spread(30), { $p1 => 10, $p2 => 10, $p3 => 10 }, 'the removed peer re-added: its share again');



=== TEST 4: an added peer gets its share with 2 workers (ranges)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
main::change("add=&server=127.0.0.1:$p4");
my $s = main::spread(80);
is_deeply([sort keys %$s], [sort ($p1, $p2, $p3, $p4)], 'all four peers answer') or diag(explain($s));
for my $p ($p1, $p2, $p3, $p4) {
    cmp_ok($s->{$p} // 0, '>=', 14, "peer $p has about a quarter");
    cmp_ok($s->{$p} // 0, '<=', 26, "peer $p has about a quarter (at most)");
}
main::change("remove=&server=127.0.0.1:$p1");
$s = main::spread(30);
ok(!exists $s->{$p1}, 'the removed peer gets nothing') or diag(explain($s));
is_deeply([sort keys %$s], [sort ($p2, $p3, $p4)], 'the others answer');



=== TEST 5: weights shift the split
--- workers: 1
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
is_deeply(main::spread(40), { $p1 => 20, $p2 => 20 }, 'equal weights: 1:1');
main::change("server=127.0.0.1:$p1&weight=3");
is_deeply(main::spread(40), { $p1 => 30, $p2 => 10 }, 'weight=3 on one of two: 3:1');
is_deeply(main::spread(4), { $p1 => 3, $p2 => 1 }, 'exactly 3:1 in every 4 requests');
main::change("server=127.0.0.1:$p2&weight=3");
is_deeply(main::spread(40), { $p1 => 20, $p2 => 20 }, 'both weight=3: 1:1');
main::change("server=127.0.0.1:$p1&weight=1");
is_deeply(main::spread(40), { $p1 => 10, $p2 => 30 }, 'weights swapped: 1:3');
main::change("add=&server=127.0.0.1:$p3&weight=4");
is_deeply(main::spread(80), { $p1 => 10, $p2 => 30, $p3 => 40 }, 'added with weight=4: 1:3:4');
main::change("server=127.0.0.1:$p2&weight=1");
main::change("server=127.0.0.1:$p3&weight=1");
is_deeply(main::spread(30), { $p1 => 10, $p2 => 10, $p3 => 10 }, 'all back to weight=1: even');



=== TEST 6: weights shift the split with 2 workers (ranges)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
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
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
main::change("server=127.0.0.1:$p2&weight=3");
my $s = main::spread(80);
cmp_ok($s->{$p2} // 0, '>=', 50, 'the weight=3 peer gets about three quarters') or diag(explain($s));
cmp_ok($s->{$p1} // 0, '>=', 10, 'the weight=1 peer still gets some') or diag(explain($s));
is(($s->{$p1} // 0) + ($s->{$p2} // 0), 80, 'all answered');



=== TEST 7: a one-peer upstream that gains a second peer balances across both
--- workers: 1
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
is_deeply(main::spread(10), { $p1 => 10 }, 'one peer');
main::change("add=&server=127.0.0.1:$p2");
is_deeply(main::spread(20), { $p1 => 10, $p2 => 10 }, 'two peers: both get traffic');
main::change("server=127.0.0.1:$p1&down=");
is_deeply(main::spread(10), { $p2 => 10 }, 'the original one down: all to the added one');
main::change("server=127.0.0.1:$p1&up=");
main::change("remove=&server=127.0.0.1:$p2");
is_deeply(main::spread(10), { $p1 => 10 }, 'back to one peer');
main::change("add=&server=127.0.0.1:$p2&weight=2");
is_deeply(main::spread(30), { $p1 => 10, $p2 => 20 }, 'grown again, with weight=2 on the new one');



=== TEST 8: a one-peer upstream whose peer is replaced
--- workers: 1
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
main::change("add=&server=127.0.0.1:$p2");
main::change("remove=&server=127.0.0.1:$p1");
is_deeply(main::spread(10), { $p2 => 10 }, 'only the new peer');
is(http_get('/dynamic?upstream=backends')->{body}, "server 127.0.0.1:$p2;\n", 'listed alone');



=== TEST 9: a down peer stays without traffic while other peers are added and removed
--- workers: 1
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
main::change("server=127.0.0.1:$p1&down=");
main::change("add=&server=127.0.0.1:$p3");
main::change("add=&server=127.0.0.1:$p4&down=");
is_deeply(main::spread(20), { $p2 => 10, $p3 => 10 }, 'down peers (configured and added) get nothing');
main::change("remove=&server=127.0.0.1:$p2");
is_deeply(main::spread(10), { $p3 => 10 }, 'after a removal the down peers still get nothing');
main::change("server=127.0.0.1:$p4&up=");
is_deeply(main::spread(20), { $p3 => 10, $p4 => 10 }, 'the added-down peer brought up');



=== TEST 10: proxying to a unix socket peer added at run time
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    return 200 "$server_port\n";
}
server {
    listen unix:$TEST_NGINX_DATA_DIR/b.sock;
    return 200 "unix\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my $p1 = port(1);
my $sock = data_dir() . '/b.sock';
my $r = main::change("add=&server=unix:$sock");
is($r->{body}, "server 127.0.0.1:$p1;\nserver unix:$sock;\n", 'unix peer listed');
main::change("server=127.0.0.1:$p1&down=");
is_deeply(main::spread(6), { unix => 6 }, 'all traffic to the unix socket peer');
main::change("server=127.0.0.1:$p1&up=");
my $s = main::spread(20);
is_deeply([sort keys %$s], [sort ($p1, 'unix')], 'both peers answer') or diag(explain($s));
main::change("remove=&server=unix:$sock");
is_deeply(main::spread(6), { $p1 => 6 }, 'unix peer removed: no traffic to it');




=== TEST 11: after removing peers that had been failing, the remaining peers share evenly
--- workers: 1
--- http_config
upstream backends {
    zone zone_for_backends 128k;
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
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
# 40 peers that refuse connections (max_fails=0: never taken out); every
# request that picks one fails over to the next peer
my @dead = map { "127.0.0.1:$_" } main::dead_ports(40);
main::change("add=&max_fails=0&server=$_") for @dead;
my $s = main::spread(40);
is(($s->{$p1} // 0) + ($s->{$p2} // 0), 40, 'the live peers answer everything') or diag(explain($s));
main::change("remove=&server=$_") for @dead;
is(http_get('/dynamic?upstream=backends')->{body}, "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\n", 'two peers left');
$s = main::spread(20);
cmp_ok($s->{$p1} // 0, '>=', 8, 'first peer gets about half of the next 20') or diag(explain($s));
cmp_ok($s->{$p2} // 0, '>=', 8, 'second peer gets about half of the next 20') or diag(explain($s));



=== TEST 12: a one-peer upstream: down answers 502, up serves again
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my $p1 = port(1);
is_deeply(main::spread(4), { $p1 => 4 }, 'the one peer serves');
main::change("server=127.0.0.1:$p1&down=");
is_deeply(main::spread(4), { 'status 502' => 4 }, 'down: 502');
main::change("server=127.0.0.1:$p1&up=");
is_deeply(main::spread(4), { $p1 => 4 }, 'up: served again');
