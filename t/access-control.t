# Access control of the admin locations: the module's read-only switches,
# and nginx's own allow/deny, limit_except and auth_basic in front of them.
# A refused client changes nothing.
use lib 't/lib';
use NginxTest;
run_tests();
__DATA__

=== TEST 1: dynamic_upstream_read_only lists but refuses every change
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location /ro { dynamic_upstream_read_only on; dynamic_upstream; }
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /ro?upstream=backends
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
>>> GET /ro?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
>>> GET /ro?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&weight=5
<<< 403
403 Forbidden: this location only lists upstreams (dynamic_upstream_read_only on)
>>> GET /ro?upstream=backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_2
<<< 403
403 Forbidden: this location only lists upstreams (dynamic_upstream_read_only on)
>>> GET /ro?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&down=
<<< 403
403 Forbidden: this location only lists upstreams (dynamic_upstream_read_only on)
>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;

=== TEST 2: dyups_read_only lists but refuses POST and DELETE; inherited from the server level
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    dyups_read_only on;
    location / { dyups_interface; }
}
--- config
location / { dyups_interface; }
--- perl
my $ro = 'http://127.0.0.1:' . port(2);
is(http('GET', "$ro/list")->{body}, "host1\n", 'read-only location lists');
my $post = http('POST', "$ro/upstream/host1", "server 127.0.0.1:1;");
is($post->{status}, 403, 'POST refused');
is($post->{body}, 'this location only lists upstreams (dyups_read_only on)', 'with the reason');
is(http('DELETE', "$ro/upstream/host1")->{status}, 403, 'DELETE refused');
is(http('POST', "$ro/upstream/newone", "server 127.0.0.1:1;")->{status}, 403, 'creating refused');
is(http_get('/detail')->{body},
   "host1\nserver 127.0.0.1:" . port(1) . " weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n\n",
   'nothing changed');

=== TEST 3: a client that allow/deny refuses changes nothing
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location /dynamic { allow 127.0.0.2; deny all; dynamic_upstream; }
location /admin { dyups_interface; allow 127.0.0.2; deny all; }
location /list { dynamic_upstream_read_only on; dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_1&weight=9
<<< 403 like
403 Forbidden
>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_1
<<< 403 like
403 Forbidden
>>> GET /list?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;

=== TEST 4: limit_except GET makes the REST API read-only
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { limit_except GET { deny all; } dyups_interface; }
--- steps
>>> POST /upstream/host1
Content-Type: text/plain

server 127.0.0.1:1;
<<< 403 like
403 Forbidden
>>> DELETE /upstream/host1
<<< 403 like
403 Forbidden
>>> GET /upstream/host1
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0

=== TEST 5: auth_basic in front of the API: no credentials, no change
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location /dynamic {
    auth_basic "upstream admin";
    auth_basic_user_file $TEST_NGINX_DATA_DIR/htpasswd;
    dynamic_upstream;
}
--- perl
use MIME::Base64 ();
open(my $fh, '>', data_dir() . '/htpasswd') or die $!;
print $fh 'admin:' . crypt('secret', 'ab') . "\n";
close $fh;
chmod 0644, data_dir() . '/htpasswd';
my $change = '/dynamic?upstream=backends&server=127.0.0.1:' . port(1) . '&weight=4';
is(http_get($change)->{status}, 401, 'no credentials: 401');
my $bad = 'Basic ' . MIME::Base64::encode_base64('admin:wrong', '');
is(http('GET', $change, undef, { Authorization => $bad })->{status}, 401, 'wrong password: 401');
my $good = 'Basic ' . MIME::Base64::encode_base64('admin:secret', '');
my $list = http('GET', '/dynamic?upstream=backends&verbose=', undef, { Authorization => $good });
is($list->{body}, 'server 127.0.0.1:' . port(1) . " weight=1 max_fails=1 fail_timeout=10;\n", 'nothing changed by the refused requests');
is(http('GET', $change, undef, { Authorization => $good })->{body},
   'server 127.0.0.1:' . port(1) . " weight=4 max_fails=1 fail_timeout=10;\n", 'with credentials the change is made');
--- allow_error_log
user "admin": password mismatch
no user/password was provided for basic authentication

=== TEST 6: limit_except GET { auth_basic } around the REST API, the NGINX Plus API and the status page (README's example): reads for everyone, changes with the password are made, without it refused; an `if` block inside a location answers as the location does (hunt 29: every authorised write got nginx's static 404/405 page, the limit_except block had no content handler; an `if` block's requests lost write=on and the status page's format)
--- http_config
upstream backends {
    zone backends 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    check interval=60000 rise=1 fall=1 timeout=1000 type=tcp;
}
--- config
location / {
    limit_except GET {
        auth_basic "upstream admin";
        auth_basic_user_file $TEST_NGINX_DATA_DIR/htpasswd;
    }
    dyups_interface;
}
location /api {
    limit_except GET {
        auth_basic "upstream admin";
        auth_basic_user_file $TEST_NGINX_DATA_DIR/htpasswd;
    }
    if ($arg_via_if) { set $unused 1; }
    dynamic_upstream_api write=on;
}
location /status {
    if ($arg_via_if) { set $unused 1; }
    check_status json;
}
--- perl
use MIME::Base64 ();
open(my $fh, '>', data_dir() . '/htpasswd') or die $!;
print $fh 'admin:' . crypt('secret', 'ab') . "\n";
close $fh;
chmod 0644, data_dir() . '/htpasswd';
my $good = { Authorization => 'Basic ' . MIME::Base64::encode_base64('admin:secret', '') };
my ($p1, $p2, $p3) = (port(1), port(2), port(3));
my $r = http('POST', '/upstream/dyhost', "server 127.0.0.1:$p2;");
is($r->{status}, 401, 'REST POST without the password: 401');
$r = http('POST', '/upstream/dyhost', "server 127.0.0.1:$p2;", $good);
is("$r->{status} $r->{body}", '200 success', 'REST POST with the password: made');
is(http_get('/upstream/dyhost')->{body}, "server 127.0.0.1:$p2 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n",
   'REST GET without the password lists it');
is(http('DELETE', '/upstream/dyhost')->{status}, 401, 'REST DELETE without the password: 401');
$r = http('DELETE', '/upstream/dyhost', undef, $good);
is("$r->{status} $r->{body}", '200 success', 'REST DELETE with the password: made');
my $servers = '/api/9/http/upstreams/backends/servers';
is(http('POST', $servers, qq({"server":"127.0.0.1:$p3"}))->{status}, 401, 'Plus API POST without the password: 401');
$r = http('POST', $servers, qq({"server":"127.0.0.1:$p3"}), { %$good, 'Content-Type' => 'application/json' });
is($r->{status}, 201, 'Plus API POST with the password: 201') or diag($r->{body});
like($r->{body}, qr/"id":1,"server":"127\.0\.0\.1:$p3"/, 'the new server');
$r = http('PATCH', "$servers/1", '{"weight":3}', { %$good, 'Content-Type' => 'application/json' });
is($r->{status}, 200, 'Plus API PATCH with the password: 200') or diag($r->{body});
$r = http('PATCH', "$servers/1?via_if=1", '{"weight":4}', { %$good, 'Content-Type' => 'application/json' });
is($r->{status}, 200, 'Plus API PATCH through the if block: write=on holds') or diag($r->{body});
$r = http('DELETE', "$servers/1", undef, $good);
is($r->{status}, 200, 'Plus API DELETE with the password: 200') or diag($r->{body});
$r = http_get("$servers?via_if=1");
like($r->{body}, qr/^\[\{"id":0,"server":"127\.0\.0\.1:$p1"[^\]]*\}\]$/, 'GET through the if block lists one server')
    or diag($r->{body});
like(http_get('/status')->{body}, qr/^\{"servers":/, 'status page: JSON');
like(http_get('/status?via_if=1')->{body}, qr/^\{"servers":/, 'status page through the if block: JSON too');
--- allow_error_log
no user/password was provided for basic authentication
