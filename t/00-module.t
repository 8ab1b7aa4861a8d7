# The module loads into Debian's nginx, and its directives parse in their
# contexts and are refused, with nginx's own [emerg] messages, elsewhere.
use lib 't/lib';
use NginxTest;
run_tests();
__DATA__

=== TEST 1: every directive in its context passes nginx -t
--- http_config
dyups_shm_zone_size 4m;
dyups_read_msg_timeout 2s;
dyups_trylock on;
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream backends {
    zone backends 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
}
dynamic_upstream_read_only off;
dyups_read_only off;
--- config
dyups_read_only on;
location /dynamic { dynamic_upstream_read_only on; dynamic_upstream; }
location / { dyups_interface; }
--- nginx_t

=== TEST 2: the module loads and serves its admin location
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location /dynamic { dynamic_upstream; }
--- request
GET /dynamic?upstream=backends
--- error_code: 200
--- response_body
server 127.0.0.1:$TEST_NGINX_PORT_1;

=== TEST 3: dynamic_upstream is refused outside a location
--- http_config
dynamic_upstream;
--- must_die
--- error_log
[emerg]
"dynamic_upstream" directive is not allowed here

=== TEST 4: dynamic_upstream takes no arguments
--- config
location /dynamic { dynamic_upstream on; }
--- must_die
--- error_log
invalid number of arguments in "dynamic_upstream" directive

=== TEST 5: dyups_interface is refused in a server block
--- config
dyups_interface;
--- must_die
--- error_log
"dyups_interface" directive is not allowed here

=== TEST 6: dyups_interface takes no arguments
--- config
location / { dyups_interface /x; }
--- must_die
--- error_log
invalid number of arguments in "dyups_interface" directive

=== TEST 7: dyups_shm_zone_size only in the http block
--- config
dyups_shm_zone_size 1m;
--- must_die
--- error_log
"dyups_shm_zone_size" directive is not allowed here

=== TEST 8: dyups_shm_zone_size needs a size
--- http_config
dyups_shm_zone_size lots;
--- must_die
--- error_log
"dyups_shm_zone_size" directive invalid value

=== TEST 9: dyups_shm_zone_size takes one argument
--- http_config
dyups_shm_zone_size;
--- must_die
--- error_log
invalid number of arguments in "dyups_shm_zone_size" directive

=== TEST 10: dyups_read_msg_timeout needs a time
--- http_config
dyups_read_msg_timeout soon;
--- must_die
--- error_log
"dyups_read_msg_timeout" directive invalid value

=== TEST 11: dyups_read_msg_timeout only in the http block
--- config
location / { dyups_read_msg_timeout 1s; }
--- must_die
--- error_log
"dyups_read_msg_timeout" directive is not allowed here

=== TEST 12: dyups_read_msg_timeout may not be given twice
--- http_config
dyups_read_msg_timeout 1s;
dyups_read_msg_timeout 2s;
--- must_die
--- error_log
"dyups_read_msg_timeout" directive is duplicate

=== TEST 13: dyups_trylock is on or off
--- http_config
dyups_trylock maybe;
--- must_die
--- error_log
invalid value "maybe" in "dyups_trylock" directive, it must be "on" or "off"

=== TEST 14: dyups_trylock only in the http block
--- config
dyups_trylock on;
--- must_die
--- error_log
"dyups_trylock" directive is not allowed here

=== TEST 15: dyups_upstream_conf takes one path
--- http_config
dyups_upstream_conf a b;
--- must_die
--- error_log
invalid number of arguments in "dyups_upstream_conf" directive

=== TEST 16: dyups_upstream_conf only in the http block
--- config
dyups_upstream_conf /tmp/x.conf;
--- must_die
--- error_log
"dyups_upstream_conf" directive is not allowed here

=== TEST 17: dynamic_state_file only in an upstream block
--- http_config
dynamic_state_file /tmp/x.state;
--- must_die
--- error_log
"dynamic_state_file" directive is not allowed here

=== TEST 18: dynamic_state_file takes one path
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:1; dynamic_state_file; }
--- must_die
--- error_log
invalid number of arguments in "dynamic_state_file" directive

=== TEST 19: dynamic_upstream_read_only is on or off
--- config
location /dynamic { dynamic_upstream_read_only yes; dynamic_upstream; }
--- must_die
--- error_log
invalid value "yes" in "dynamic_upstream_read_only" directive, it must be "on" or "off"

=== TEST 20: dyups_read_only is not allowed in an upstream block
--- http_config
upstream u { server 127.0.0.1:1; dyups_read_only on; }
--- must_die
--- error_log
"dyups_read_only" directive is not allowed here

=== TEST 21: dyups_interface serves the REST API
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- request
GET /list
--- error_code: 200
--- response_body
host1
