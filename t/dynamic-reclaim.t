# Removed peers are freed once no request can use them, and not before.
use lib 't/lib';
use NginxTest;
run_tests();
__DATA__

=== TEST 1: 2000 add/remove cycles fit in a zone that holds a few dozen peers
--- http_config
upstream backends {
    zone small 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $failed = 0;
for my $i (1 .. 2000) {
    my $port = 30000 + $i;
    my $add = http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$port");
    my $remove = http_get("/dynamic?upstream=backends&remove=&server=127.0.0.1:$port");
    if ($add->{status} != 200 || $remove->{status} != 200) {
        diag("cycle $i: add $add->{status} $add->{body}remove $remove->{status} $remove->{body}");
        $failed++;
        last;
    }
}
is($failed, 0, 'every cycle succeeded: removed peers were reclaimed');
is(http_get('/dynamic?upstream=backends')->{body}, "server 127.0.0.1:" . port(1) . ";\n", 'list is back to the original');

=== TEST 2: a request in flight on a removed peer completes, and the peer's name is still logged
--- modules: echo
--- workers: 1
--- http_config
log_format upstream '$upstream_addr $status';
upstream backends {
    zone backends 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    location / { echo_sleep 0.5; echo "slow $server_port"; }
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; access_log logs/upstream.log upstream; }
--- perl
use IO::Socket::INET;
my $p1 = port(1);
# Mark peer 2 down so the slow request surely goes to peer 1.
http_get("/dynamic?upstream=backends&server=127.0.0.1:" . port(2) . "&down=");
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port()) or die $!;
print $sock "GET /slow HTTP/1.0\r\nHost: localhost\r\n\r\n";
ok(poll_until(sub {
    my $json = http_get('/dynamic?upstream=backends&format=json')->{body};
    $json =~ /"name":"127\.0\.0\.1:$p1"[^}]*"conns":1/;
}, 5, 'the slow request holds peer 1'), 'request in flight on peer 1');
http_get("/dynamic?upstream=backends&server=127.0.0.1:" . port(2) . "&up=");
is(http_get("/dynamic?upstream=backends&remove=&server=127.0.0.1:$p1")->{status}, 200, 'peer 1 removed');
# More changes run the reaper while the request is still in flight.
for (1 .. 5) {
    http_get("/dynamic?upstream=backends&server=127.0.0.1:" . port(2) . "&weight=2");
}
local $/;
my $reply = <$sock>;
like($reply, qr/^HTTP\/1\.1 200 .*slow $p1/s, 'the request on the removed peer completed');
ok(poll_until(sub { -s prefix() . 'logs/upstream.log' }, 5, 'access log written'), 'logged');
open(my $fh, '<', prefix() . 'logs/upstream.log') or die $!;
my $log = <$fh>;
like($log, qr/^127\.0\.0\.1:$p1 200$/m, '$upstream_addr of the removed peer is logged intact');
