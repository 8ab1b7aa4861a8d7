# Without Debian's lua module (no `--- modules: lua`), our module loads and
# works as before: the query-string API and the REST API answer, and
# nothing about Lua is logged.
use lib 't/lib';
use NginxTest;
run_tests();
__DATA__

=== TEST 1: no Lua module: dynamic_upstream and dyups_interface work
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
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location /dynamic { dynamic_upstream; }
location / { dyups_interface; }
--- steps
>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_3
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&down=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10 down;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> POST /upstream/dyhost

server 127.0.0.1:$TEST_NGINX_PORT_2;
<<< 200 chomp
success
>>> GET /list
<<< 200
backends
dyhost

>>> DELETE /upstream/dyhost
<<< 200 chomp
success
>>> DELETE /upstream/dyhost
<<< 404 chomp
upstream "dyhost" not found
--- perl
my $p2 = port(2);
my $r = http('POST', '/upstream/dyhost', "server 127.0.0.1:$p2;");
is($r->{body}, 'success', 'created again');
is(http('GET', 'http://127.0.0.1:' . port(9) . '/', undef, { Host => 'dyhost' })->{body}, "$p2\n",
   'proxy_pass http://$host reaches it');
open my $fh, '<', conf_file() or die $!;
my $conf = do { local $/; <$fh> };
unlike($conf, qr/lua_module/, 'the Lua module is not loaded');
--- no_error_log
lua
[error]
qr/\[warn\](?! \d+#\d+: dynamic upstream change: )/
