# The `tried` bitmap of each request through a zone upstream (nginx marks
# in it, by list position, the peers a request has tried). Before nginx
# 1.27.3 the module sizes it for the most peers a list of the zone can hold:
# from the request's pool for small zones, lent from a per-worker spare for
# large ones (zone 8m here: more than 4,096 peers) and zeroed as it comes
# back. A request whose list grows past 64 peers while it is in flight
# neither reads nor writes past its bitmap (the memcheck runs) nor skips
# the one peer it can still reach; a reused bitmap has no bit left from the
# request before. From 1.27.3 on nginx gives a request whose list changed no
# further peer from it (502), and the module leaves the bitmap to nginx.
use lib 't/lib';
use NginxTest;
use NginxTest::Traffic;

# A down peer of fixed length for number $i: on 127.1.x.y, where nothing
# listens (a down peer is never connected to), no literal port.
sub down_peer {
    my ($i) = @_;
    return sprintf('127.1.%d.%d:%d', 100 + int($i / 100), 100 + $i % 100, port(2));
}

# A request is held on the first peer (port 1, the balancer's first pick);
# meanwhile the second peer goes down and 300 down peers and then a live one
# (port 3, 303rd: a position in the bitmap's fifth word) are added. The held
# peer answers 502, so the request tries again.
sub grow_past_request_in_flight {
    my ($p1, $p2, $p3) = (port(1), port(2), port(3));
    my ($client, $upstream) = hold_proxied_request(silent_backend($p1));
    is(http_get("/dynamic?upstream=backends&down=&server=127.0.0.1:$p2")->{status}, 200, 'second peer down');
    my $bad = 0;
    for my $i (0 .. 299) {
        my $r = http_get("/dynamic?upstream=backends&add=&down=&server=" . down_peer($i));
        $bad++, diag("add $i: $r->{status} $r->{body}") if $r->{status} != 200;
        last if $bad;
    }
    is($bad, 0, '300 down peers added while the request is in flight');
    is(http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$p3")->{status}, 200, 'live peer added 303rd');
    print $upstream "HTTP/1.0 502 Bad Gateway\r\nContent-Length: 4\r\n\r\nbad\n";
    close $upstream;
    my $reply = do { local $/; <$client> };
    if (nginx_at_least('1.27.3')) {
        like($reply, qr/^HTTP\/1\.1 502 /, 'the request whose list changed gets no further peer (nginx): 502');
    } else {
        like($reply, qr/^HTTP\/1\.1 200 .*\r\n\r\n$p3\n\z/s, 'the request reached the 303rd peer, the only one left to try');
    }
    is(http_get('/')->{body}, "$p3\n", 'a new request reaches it too');
}

run_tests();
__DATA__

=== TEST 1: round robin, zone 8m (lent bitmap): a list grown from 2 to 303 peers under a request in flight
--- workers: 1
--- http_config
upstream backends {
    zone big 8m;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; proxy_next_upstream error http_502; proxy_read_timeout 1h; }
--- perl
main::grow_past_request_in_flight();

=== TEST 2: least_conn with keepalive, zone 8m: the same
--- workers: 1
--- http_config
upstream backends {
    zone big 8m;
    least_conn;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    keepalive 4;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / {
    proxy_pass http://backends;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_next_upstream error http_502;
    proxy_read_timeout 1h;
}
--- perl
main::grow_past_request_in_flight();

=== TEST 3: round robin, zone 1m (bitmap from the request's pool): the same
--- workers: 1
--- http_config
upstream backends {
    zone small 1m;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; proxy_next_upstream error http_502; proxy_read_timeout 1h; }
--- perl
main::grow_past_request_in_flight();

=== TEST 4: a lent bitmap comes back zeroed: 200 refusing peers before the live one, every request reaches it
--- workers: 2
--- http_config
upstream backends {
    zone big 8m;
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
# Each request tries refusing peers (max_fails=0: never marked failed) until
# it reaches the live one, marking every position up to there (and the live
# one's) in its bitmap. A bitmap given back with those bits would make the
# next request of that worker skip them, the live one too: 502.
my @dead = main::dead_ports(200);
my $bad = 0;
for my $port (@dead) {
    my $r = http_get("/dynamic?upstream=backends&add=&max_fails=0&server=127.0.0.1:$port");
    $bad++, diag("add $port: $r->{status} $r->{body}") if $r->{status} != 200;
    last if $bad;
}
is($bad, 0, '200 refusing peers added after the live one');
is(http_get("/dynamic?upstream=backends&remove=&server=127.0.0.1:$p1")->{status}, 200, 'live peer removed');
is(http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$p1")->{status}, 200, 'and added back last (201st)');
my $seen = main::spread(12);
is_deeply($seen, { $p1 => 12 }, 'every request reached the live peer past 200 refusing ones') or diag(explain($seen));

=== TEST 5: a lent bitmap is zeroed as far as the list was long, not as it is when given back (shrunk in flight)
--- workers: 1
--- http_config
upstream backends {
    zone big 8m;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; proxy_read_timeout 1h; }
--- perl
my ($p2, $p3) = (port(2), port(3));
# Port 1 and 199 more refuse (never marked failed); the silent backend is
# 201st. The held request marks positions 0 .. 200 of its lent bitmap.
my @dead = main::dead_ports(199);
my $add = sub { http_get("/dynamic?upstream=backends&add=&max_fails=0&server=127.0.0.1:$_[0]")->{status} };
is(scalar(grep { $add->($_) != 200 } @dead), 0, '199 refusing peers added');
is($add->($p2), 200, 'silent backend added 201st');
my ($client, $upstream) = main::hold_proxied_request(main::silent_backend($p2));
my $remove = sub { http_get("/dynamic?upstream=backends&remove=&server=127.0.0.1:$_[0]")->{status} };
is(scalar(grep { $remove->($_) != 200 } @dead[49 .. 198]), 0, '150 peers removed while it is in flight: 51 left');
print $upstream "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nheld\n";
close $upstream;
like(do { local $/; <$client> }, qr/\r\n\r\nheld\n\z/, 'the held request ends: its bitmap goes back');
is($remove->($p2), 200, 'silent backend removed');
is(scalar(grep { $add->($_) != 200 } @dead[49 .. 198]), 0, 'the 150 added back');
is($add->($p3), 200, 'a live peer 201st, where the held request had marked');
my $seen = main::spread(4);
is_deeply($seen, { $p3 => 4 }, 'every request (the first on the reused bitmap) reaches it') or diag(explain($seen));

=== TEST 6: the backup list counts: bits a request set there are zeroed too
--- workers: 1
--- http_config
upstream backends {
    zone big 8m;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my $p2 = port(2);
my @dead = main::dead_ports(349);
my $add = sub { http_get("/dynamic?upstream=backends&add=&max_fails=0&server=127.0.0.1:$_[0]$_[1]")->{status} };
is(scalar(grep { $add->($_, '&backup=') != 200 } @dead[0 .. 199]), 0, '200 refusing backup peers');
# Each request fails on port 1, then on every backup peer, marking their
# positions 0 .. 199 (in the backup list) in its bitmap.
is(http_get('/')->{status}, 502, 'a request through 201 refusing peers fails') for 1 .. 2;
is(scalar(grep { $add->($_, '') != 200 } @dead[200 .. 348]), 0, '149 refusing primary peers');
is($add->($p2, ''), 200, 'a live primary peer 151st, at a position the backup pass had marked');
my $seen = main::spread(4);
is_deeply($seen, { $p2 => 4 }, 'every request (the first on a reused bitmap) reaches it') or diag(explain($seen));
