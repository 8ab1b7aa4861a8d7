# dyups_shm_zone_size has a minimum of 64k: a smaller zone is refused with
# an [emerg] naming the directive and the minimum (a tiny one crashed the
# master at start); 64k itself starts and holds run-time upstreams.
use lib 't/lib';
use NginxTest;
run_tests();
__DATA__

=== TEST 1: dyups_shm_zone_size 1k is refused
--- http_config
dyups_shm_zone_size 1k;
--- config
location / { dyups_interface; }
--- must_die
--- error_log
"dyups_shm_zone_size" must be at least 64k, not 1024 bytes



=== TEST 2: dyups_shm_zone_size 65535 (one byte below the minimum) is refused
--- http_config
dyups_shm_zone_size 65535;
--- config
location / { dyups_interface; }
--- must_die
--- error_log
"dyups_shm_zone_size" must be at least 64k, not 65535 bytes



=== TEST 3: dyups_shm_zone_size 64k starts, and holds run-time upstreams
--- http_config
dyups_shm_zone_size 64k;
--- config
location / { dyups_interface; }
--- steps
>>> POST /upstream/dyhost

server 127.0.0.1:$TEST_NGINX_PORT_1; server 127.0.0.1:$TEST_NGINX_PORT_2;
<<< 200 chomp
success
>>> GET /upstream/dyhost
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0
