# dynamic_upstream: changing one peer's weight, max_fails, fail_timeout,
# max_conns, and marking it down / up. Every change answers the verbose list.
use lib 't/lib';
use NginxTest;
run_tests();
__DATA__

=== TEST 1: weight, max_fails and fail_timeout together
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
>>> GET /dynamic?upstream=zone_for_backends&server=127.0.0.1:$TEST_NGINX_PORT_3&weight=10&max_fails=5&fail_timeout=5
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=10 max_fails=5 fail_timeout=5;

>>> GET /dynamic?upstream=zone_for_backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=10 max_fails=5 fail_timeout=5;

>>> GET /dynamic?upstream=zone_for_backends
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;



=== TEST 2: any subset of the parameters; the others are left as they are
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&weight=4
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=4 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&max_fails=7
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=4 max_fails=7 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&fail_timeout=30
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=4 max_fails=7 fail_timeout=30;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_2&max_fails=2&weight=3
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=4 max_fails=7 fail_timeout=30;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=3 max_fails=2 fail_timeout=10;



=== TEST 3: max_conns is shown only when not 0
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_2&max_conns=100
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10 max_conns=100;

>>> GET /dynamic?upstream=backends
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_2&max_conns=0
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;



=== TEST 4: fail_timeout takes nginx time units
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&fail_timeout=2m
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=120;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&fail_timeout=30s
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=30;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&fail_timeout=1h
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=3600;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&fail_timeout=1d
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=86400;



=== TEST 5: zero is accepted for max_fails, fail_timeout and max_conns
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&max_fails=0&fail_timeout=0&max_conns=0
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=0 fail_timeout=0;



=== TEST 6: the largest accepted values
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&weight=1000000&max_fails=1000000&fail_timeout=31536000&max_conns=1000000
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1000000 max_fails=1000000 fail_timeout=31536000 max_conns=1000000;



=== TEST 7: down and up
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
>>> GET /dynamic?upstream=zone_for_backends&server=127.0.0.1:$TEST_NGINX_PORT_3&down=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10 down;

>>> GET /dynamic?upstream=zone_for_backends
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3 down;

>>> GET /dynamic?upstream=zone_for_backends&server=127.0.0.1:$TEST_NGINX_PORT_3&down=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10 down;

>>> GET /dynamic?upstream=zone_for_backends&server=127.0.0.1:$TEST_NGINX_PORT_3&up=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=zone_for_backends&server=127.0.0.1:$TEST_NGINX_PORT_3&up=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=zone_for_backends
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;



=== TEST 8: up on a peer configured down
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 down;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_2&up=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;



=== TEST 9: down together with parameters, then max_conns on a down peer: flag order
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&down=&weight=2&max_conns=9
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=2 max_fails=1 fail_timeout=10 max_conns=9 down;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&max_fails=4
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=2 max_fails=4 fail_timeout=10 max_conns=9 down;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&up=&fail_timeout=1m
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=2 max_fails=4 fail_timeout=60 max_conns=9;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;



=== TEST 10: down / up flags given as 1 and true
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_2&down=1
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10 down;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_2&up=true
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;



=== TEST 11: percent-encoded server address
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1%3A$TEST_NGINX_PORT_2&down=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10 down;



=== TEST 12: the parameters of a peer configured with a port-less address
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.2:80;

>>> GET /dynamic?upstream=backends&server=127.0.0.2&weight=6
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.2:80 weight=6 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&server=127.0.0.2:80&down=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.2:80 weight=6 max_fails=1 fail_timeout=10 down;



=== TEST 13: fail_timeout takes the other nginx time units and combined values
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&fail_timeout=1w
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=604800;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&fail_timeout=1M
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=2592000;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&fail_timeout=1y
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=31536000;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&fail_timeout=1m30s
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=90;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&fail_timeout=1h%2030m
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=5400;




=== TEST 14: fail_timeout refuses milliseconds, as nginx does for fail_timeout
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&fail_timeout=500ms
<<< 400
400 Bad Request: fail_timeout must be a number of seconds from 0 to 31536000

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
