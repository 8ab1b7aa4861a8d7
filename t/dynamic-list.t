# dynamic_upstream: listing an upstream's peers (plain and verbose), by zone
# name or upstream name, HEAD, and which requests answer which listing.
use lib 't/lib';
use NginxTest;
run_tests();
__DATA__

=== TEST 1: plain list by zone name, in peer-list order
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- request
GET /dynamic?upstream=zone_for_backends
--- error_code: 200
--- response_headers
Content-Type: text/plain
--- response_body
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;



=== TEST 2: plain list by the upstream block's own name
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- request
GET /dynamic?upstream=backends
--- error_code: 200
--- response_body
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;



=== TEST 3: verbose list shows weight, max_fails and fail_timeout in seconds
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- request
GET /dynamic?upstream=zone_for_backends&verbose=
--- error_code: 200
--- response_headers
Content-Type: text/plain
--- response_body
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;



=== TEST 4: configured parameters and flags appear in both listings
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 weight=5 max_fails=3 fail_timeout=2m;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_conns=7;
    server 127.0.0.1:$TEST_NGINX_PORT_3 down;
    server 127.0.0.1:$TEST_NGINX_PORT_4 backup;
    server 127.0.0.1:$TEST_NGINX_PORT_5 backup down max_conns=2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=zone_for_backends
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3 down;
server 127.0.0.1:$TEST_NGINX_PORT_4 backup;
server 127.0.0.1:$TEST_NGINX_PORT_5 backup down;

>>> GET /dynamic?upstream=zone_for_backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=5 max_fails=3 fail_timeout=120;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10 max_conns=7;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10 down;
server 127.0.0.1:$TEST_NGINX_PORT_4 weight=1 max_fails=1 fail_timeout=10 backup;
server 127.0.0.1:$TEST_NGINX_PORT_5 weight=1 max_fails=1 fail_timeout=10 max_conns=2 backup down;



=== TEST 5: verbose flag spelled verbose=, Verbose=1 and verbose=true (names in any case, as nginx's $arg_NAME reads them); a bare verbose (no parameter for $arg_verbose) is refused
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&verbose
<<< 400
400 Bad Request: parameter verbose has no "=": give verbose= (a flag) or verbose=VALUE

>>> GET /dynamic?UPSTREAM=backends&Verbose=1
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?verbose=true&upstream=backends
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;



=== TEST 6: server= alone (no change asked) only lists, plain
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_2
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;



=== TEST 7: HEAD answers 200 with the headers and no body
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $r = http('HEAD', '/dynamic?upstream=zone_for_backends');
is($r->{status}, 200, 'HEAD status');
is($r->{body}, '', 'HEAD has no body');
is($r->{headers}{'content-type'}, 'text/plain', 'HEAD content type');
is($r->{headers}{'content-length'}, length("server 127.0.0.1:" . port(1) . ";\n"),
   'HEAD content length is that of the GET body');
my $g = http_get('/dynamic?upstream=zone_for_backends');
is($g->{status}, 200, 'GET after HEAD');
is($g->{body}, "server 127.0.0.1:" . port(1) . ";\n", 'GET body');



=== TEST 8: every line of every listing ends in a newline
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 down;
    server 127.0.0.1:$TEST_NGINX_PORT_3 backup;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
for my $q ('', '&verbose=') {
    my $r = http_get("/dynamic?upstream=backends$q");
    is($r->{status}, 200, "status ($q)");
    like($r->{body}, qr/\n\z/, "body ends in a newline ($q)");
    my @lines = split /\n/, $r->{body}, -1;
    pop @lines;
    is(scalar(@lines), 3, "three lines ($q)");
    ok(!(grep { !/^server 127\.0\.0\.1:\d+( weight=\d+ max_fails=\d+ fail_timeout=\d+)?( backup)?( down)?;$/ } @lines),
       "every line is a server line ($q)") or diag($r->{body});
    unlike($r->{body}, qr/\r/, "no carriage returns ($q)");
}



=== TEST 9: format=text answers the text listing
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- request
GET /dynamic?upstream=backends&format=text
--- error_code: 200
--- response_headers
Content-Type: text/plain
--- response_body
server 127.0.0.1:$TEST_NGINX_PORT_1;



=== TEST 10: several zone upstreams are listed independently
--- http_config
upstream one {
    zone zone_one 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream two {
    zone zone_two 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=zone_one
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;

>>> GET /dynamic?upstream=two
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;

>>> GET /dynamic?upstream=zone_two&server=127.0.0.1:$TEST_NGINX_PORT_2&down=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10 down;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=one&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;



=== TEST 11: the zone name is preferred when it is another upstream's name
--- http_config
upstream first {
    zone second 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream second {
    zone other 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=second
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;

>>> GET /dynamic?upstream=other
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2;

>>> GET /dynamic?upstream=first
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
