# Health-check directives in upstream {} blocks (nginx_upstream_check_module's
# syntax): a valid set starts; every hostile line is refused by `nginx -t`
# with one [emerg] naming the directive and the file's line, and nothing
# starts.
use lib 't/lib';
use NginxTest;

$ENV{TEST_NGINX_CHECKED} = <<'NGINX';
upstream backends {
    zone backends 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
NGINX

run_tests();
__DATA__

=== TEST 1: every directive, with every parameter, starts
--- http_config
check_shm_size 64k;
upstream backends {
    zone backends 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    check interval=3000 rise=2 fall=5 timeout=1000 default_down=false type=http port=$TEST_NGINX_PORT_1;
    check_http_send "HEAD /health HTTP/1.1\r\nHost: a;b\r\nConnection: close\r\n\r\n";
    check_http_expect_alive http_2xx http_3xx;
    check_keepalive_requests 1;
}
--- config
location / { proxy_pass http://backends; }
--- nginx_t



=== TEST 2: check without parameters
--- http_config
$TEST_NGINX_CHECKED
    check;
}
--- must_die
--- error_log
qr/\[emerg\] .*invalid number of arguments in "check" in \S+nginx\.conf:\d+/



=== TEST 3: an unknown parameter
--- http_config
$TEST_NGINX_CHECKED
    check interval=1000 colour=red;
}
--- must_die
--- error_log
invalid parameter "colour=red" in "check" (expected interval=, rise=, fall=, timeout=, default_down=, type=, port=)



=== TEST 4: out of range and malformed numbers
--- http_config
$TEST_NGINX_CHECKED
    check interval=0;
}
--- must_die
--- error_log
interval in "check" must be a number of milliseconds from 1 to 86400000 (got "0")



=== TEST 5: a number too large for any integer
--- http_config
$TEST_NGINX_CHECKED
    check timeout=99999999999999999999999;
}
--- must_die
--- error_log
timeout in "check" must be a number of milliseconds from 1 to 86400000 (got "99999999999999999999999")



=== TEST 6: a parameter given twice
--- http_config
$TEST_NGINX_CHECKED
    check rise=1 rise=2;
}
--- must_die
--- error_log
parameter "rise" is given twice in "check"



=== TEST 7: check given twice
--- http_config
$TEST_NGINX_CHECKED
    check interval=1000;
    check interval=2000;
}
--- must_die
--- error_log
"check" is given more than once



=== TEST 8: unsupported check types
--- http_config
$TEST_NGINX_CHECKED
    check type=mysql;
}
--- must_die
--- error_log
check type "mysql" is not supported (only tcp and http are)



=== TEST 9: default_down must be a boolean
--- http_config
$TEST_NGINX_CHECKED
    check default_down=yes;
}
--- must_die
--- error_log
default_down in "check" must be true or false (got "yes")



=== TEST 10: check_http_send without the end of the headers
--- http_config
$TEST_NGINX_CHECKED
    check type=http;
    check_http_send "GET / HTTP/1.0";
}
--- must_die
--- error_log
"check_http_send" must end its headers with an empty line (\r\n\r\n)



=== TEST 11: check_http_expect_alive with an unknown class
--- http_config
$TEST_NGINX_CHECKED
    check type=http;
    check_http_expect_alive http_2xx http_6xx;
}
--- must_die
--- error_log
invalid value "http_6xx" in "check_http_expect_alive" (http_2xx, http_3xx, http_4xx or http_5xx)



=== TEST 12: check_keepalive_requests above 1 is refused
--- http_config
$TEST_NGINX_CHECKED
    check interval=1000;
    check_keepalive_requests 100;
}
--- must_die
--- error_log
"check_keepalive_requests 100" is not supported: each check opens its own connection (only 1, the default)



=== TEST 13: check_http_send without check in the upstream
--- http_config
$TEST_NGINX_CHECKED
    check_http_send "GET / HTTP/1.0\r\n\r\n";
}
--- must_die
--- error_log
"check_http_send" has no effect without "check" in the same upstream in upstream "backends"



=== TEST 14: check in an upstream without a zone
--- http_config
upstream backends {
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    check interval=1000;
}
--- must_die
--- error_log
"check" needs a "zone": the workers share the peers' health there in upstream "backends"



=== TEST 15: check_shm_size below the minimum
--- http_config
check_shm_size 4k;
--- must_die
--- error_log
"check_shm_size" must be at least 32k, not 4096 bytes



=== TEST 16: check outside an upstream block
--- config
check interval=1000;
--- must_die
--- error_log
"check" directive is not allowed here



=== TEST 17: a checked server whose address the checks cannot probe (a relative unix path) is refused (review H2 finding 3)
--- http_config
upstream backends {
    zone backends 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server unix:relative.sock;
    check interval=1000;
}
--- config
location / { proxy_pass http://backends; }
--- must_die
--- error_log
qr/\[emerg\] .*"check" cannot probe this server: server address "unix:relative\.sock" must be an absolute unix socket path in upstream "backends" in \S+nginx\.conf:\d+/
