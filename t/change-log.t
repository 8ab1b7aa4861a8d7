# The change log: every accepted change writes one [warn] line, every
# refused change one [info] line with its reason, to the error log:
#   dynamic upstream change: client=ADDR user=USER api=API upstream=NAME: WHAT
#   dynamic upstream change refused: client=ADDR user=USER api=API upstream=NAME: STATUS REASON
# (client and user are `-` when unknown: no auth_basic user, or a change made
# through Lua or the C API). Each block compares the exact lines, in order.
use lib 't/lib';
use NginxTest;
use NginxTest::Lua;

# The change-log lines of the error log so far, as `[level] text`.
sub change_lines {
    return [ map { /\[(warn|info)\] \d+#\d+: (dynamic upstream change.*)$/ ? ("[$1] $2") : () }
             split /\n/, error_log_text() ];
}

# Writes an htpasswd file with `admin:secret` and returns the
# Authorization header that logs in as admin.
sub admin_login {
    require MIME::Base64;
    my $file = data_dir() . '/htpasswd';
    open(my $fh, '>', $file) or die "$file: $!";
    print $fh 'admin:' . crypt('secret', 'ab') . "\n";
    close $fh or die "$file: $!";
    chmod 0644, $file;
    return { Authorization => 'Basic ' . MIME::Base64::encode_base64('admin:secret', '') };
}

$ENV{TEST_NGINX_LUA_EVAL} = lua_eval_location([dynamic => 'ngx.dynamic', dyups => 'ngx.dyups']);

run_tests();
__DATA__

=== TEST 1: query API: update, down, up, add, remove, and refusals (no user)
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:30001; server 127.0.0.1:30002; }
--- config
location /dynamic { dynamic_upstream; }
location /ro { dynamic_upstream; dynamic_upstream_read_only on; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:30001&weight=10&max_fails=3
<<< 200 any
>>> GET /dynamic?upstream=backends&server=127.0.0.1:30001&down=
<<< 200 any
>>> GET /dynamic?upstream=backends&server=127.0.0.1:30001&up=
<<< 200 any
>>> GET /dynamic?upstream=backends&server=127.0.0.1:30001&up=&weight=10&max_fails=4
<<< 200 any
>>> GET /dynamic?upstream=backends&server=127.0.0.1:30001&up=&weight=10
<<< 200 any
>>> GET /dynamic?upstream=backends&server=127.0.0.1:30005&weight=2&add=
<<< 200 any
>>> GET /dynamic?upstream=backends&server=127.0.0.1:30006&add=&backup=
<<< 200 any
>>> GET /dynamic?upstream=backends&server=127.0.0.1:30005&remove=
<<< 200 any
>>> GET /dynamic?upstream=backends&server=127.0.0.1:30009&remove=
<<< 400 any
>>> GET /dynamic?upstream=nope&server=127.0.0.1:30009&remove=
<<< 404 any
>>> GET /dynamic?upstream=backends&server=127.0.0.1:30001&weight=0
<<< 400 any
>>> GET /ro?upstream=backends&server=127.0.0.1:30001&down=
<<< 403 any
>>> HEAD /dynamic?upstream=backends&server=127.0.0.1:30001&down=
<<< 405 any
>>> HEAD /dynamic?upstream=nope&server=127.0.0.1:30001&down=
<<< 404 any
>>> POST /dynamic?upstream=backends&server=127.0.0.1:30001&down=
<<< 405 any
>>> HEAD /dynamic?upstream=backends
<<< 200 any
>>> POST /dynamic?upstream=backends
<<< 405 any
>>> GET /dynamic?upstream=backends
<<< 200 any
--- perl
is_deeply(main::change_lines(), [
    '[warn] dynamic upstream change: client=127.0.0.1 user=- api=query upstream=backends: 127.0.0.1:30001 weight 1 -> 10, max_fails 1 -> 3',
    '[warn] dynamic upstream change: client=127.0.0.1 user=- api=query upstream=backends: 127.0.0.1:30001 down',
    '[warn] dynamic upstream change: client=127.0.0.1 user=- api=query upstream=backends: 127.0.0.1:30001 up',
    '[warn] dynamic upstream change: client=127.0.0.1 user=- api=query upstream=backends: 127.0.0.1:30001 max_fails 3 -> 4',
    '[warn] dynamic upstream change: client=127.0.0.1 user=- api=query upstream=backends: 127.0.0.1:30001 unchanged',
    '[warn] dynamic upstream change: client=127.0.0.1 user=- api=query upstream=backends: added 127.0.0.1:30005 weight=2',
    '[warn] dynamic upstream change: client=127.0.0.1 user=- api=query upstream=backends: added 127.0.0.1:30006 backup',
    '[warn] dynamic upstream change: client=127.0.0.1 user=- api=query upstream=backends: removed 127.0.0.1:30005',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=- api=query upstream=backends: 400 server 127.0.0.1:30009 is not in upstream "backends"',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=- api=query upstream=nope: 404 upstream "nope" not found',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=- api=query upstream=-: 400 weight must be an integer from 1 to 1000000',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=- api=query upstream=backends: 403 this location only lists upstreams (dynamic_upstream_read_only on)',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=- api=query upstream=backends: 405 HEAD only lists: use GET to change upstreams',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=- api=query upstream=nope: 404 upstream "nope" not found',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=- api=query upstream=backends: 405 only GET and HEAD are accepted',
], 'one line per change and per refusal (whatever the method); listings log nothing; only real changes are told');

=== TEST 2: query API behind auth_basic: the user is logged
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:30001; }
--- config
location /dynamic {
    auth_basic "upstream admin";
    auth_basic_user_file $TEST_NGINX_DATA_DIR/htpasswd;
    dynamic_upstream;
}
--- perl
my $admin = main::admin_login();
is(http('GET', '/dynamic?upstream=backends&server=127.0.0.1:30001&weight=4', undef, $admin)->{status}, 200, 'changed');
is(http('GET', '/dynamic?upstream=backends&server=127.0.0.1:30009&down=', undef, $admin)->{status}, 400, 'refused');
is_deeply(main::change_lines(), [
    '[warn] dynamic upstream change: client=127.0.0.1 user=admin api=query upstream=backends: 127.0.0.1:30001 weight 1 -> 4',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=admin api=query upstream=backends: 400 server 127.0.0.1:30009 is not in upstream "backends"',
], 'the authenticated user is in the lines');

=== TEST 3: REST API behind auth_basic: create, replace (also an upstream of the configuration), delete, refusals
--- http_config
upstream conf_up { server 127.0.0.1:30001; server 127.0.0.1:30002; server 127.0.0.1:30003; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    location / { dyups_interface; dyups_read_only on; }
}
--- config
location / {
    auth_basic "upstream admin";
    auth_basic_user_file $TEST_NGINX_DATA_DIR/htpasswd;
    dyups_interface;
}
--- perl
my $admin = main::admin_login();
my $post = sub { http('POST', $_[0], $_[1], $admin)->{status} };
is($post->('/upstream/dyn', 'server 127.0.0.1:30001;'), 200, 'created');
is($post->('/upstream/dyn', 'server 127.0.0.1:30001; server 127.0.0.1:30002;'), 200, 'replaced');
is($post->('/upstream/conf_up', "server 127.0.0.1:30001;\nserver 127.0.0.1:30002;\nserver 127.0.0.1:30003;\nserver 127.0.0.1:30004;"), 200, 'configuration upstream replaced');
is(http('DELETE', '/upstream/dyn', undef, $admin)->{status}, 200, 'deleted');
is(http('DELETE', '/upstream/dyn', undef, $admin)->{status}, 404, 'already deleted');
is($post->('/upstream/dyn', 'servr 1.2.3.4;'), 400, 'bad body');
is(http('DELETE', 'http://127.0.0.1:' . port(1) . '/upstream/conf_up')->{status}, 403, 'read-only location');
is(http('PUT', '/upstream/dyn', 'server 127.0.0.1:30001;', $admin)->{status}, 405, 'PUT');
is(http('PUT', '/list', undef, $admin)->{status}, 405, 'PUT on no upstream: not a change');
is_deeply(main::change_lines(), [
    '[warn] dynamic upstream change: client=127.0.0.1 user=admin api=rest upstream=dyn: created: 1 servers',
    '[warn] dynamic upstream change: client=127.0.0.1 user=admin api=rest upstream=dyn: replaced: 1 servers -> 2',
    '[warn] dynamic upstream change: client=127.0.0.1 user=admin api=rest upstream=conf_up: replaced: 3 servers -> 4',
    '[warn] dynamic upstream change: client=127.0.0.1 user=admin api=rest upstream=dyn: deleted',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=admin api=rest upstream=dyn: 404 upstream "dyn" not found',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=admin api=rest upstream=dyn: 400 add server failed: unknown directive "servr"',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=- api=rest upstream=conf_up: 403 this location only lists upstreams (dyups_read_only on)',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=admin api=rest upstream=dyn: 405 only GET, POST and DELETE are accepted',
], 'one line per change and per refusal');

=== TEST 4: Lua (ngx.dynamic and ngx.dyups): api=lua, no client
--- modules: lua
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:30001; }
--- config
$TEST_NGINX_LUA_EVAL
--- perl
is(main::lua('return show(dynamic.update_peer("backends", "127.0.0.1:30001", { weight = 7 }))'), 'true', 'update');
is(main::lua('return show(dynamic.set_peer_down("backends", "127.0.0.1:30001", true))'), 'true', 'down');
is(main::lua('return show(dynamic.add_peer("backends", "127.0.0.1:30002"))'), 'true', 'add');
is(main::lua('return show(dynamic.remove_peer("backends", "127.0.0.1:30002"))'), 'true', 'remove');
is(main::lua('return show(dyups.update("luadyn", "server 127.0.0.1:30001;"))'), '200, "success"', 'dyups update');
is(main::lua('return show(dyups.delete("luadyn"))'), '200, "success"', 'dyups delete');
is(main::lua('return show(dyups.delete("luadyn"))'), '404, "upstream \"luadyn\" not found"', 'dyups delete again');
is(main::lua('return show(dynamic.remove_peer("backends", "127.0.0.1:0"))'), 'nil, "server address \\"127.0.0.1:0\\" has a port outside 1-65535"', 'bad address');
is_deeply(main::change_lines(), [
    '[warn] dynamic upstream change: client=- user=- api=lua upstream=backends: 127.0.0.1:30001 weight 1 -> 7',
    '[warn] dynamic upstream change: client=- user=- api=lua upstream=backends: 127.0.0.1:30001 down',
    '[warn] dynamic upstream change: client=- user=- api=lua upstream=backends: added 127.0.0.1:30002',
    '[warn] dynamic upstream change: client=- user=- api=lua upstream=backends: removed 127.0.0.1:30002',
    '[warn] dynamic upstream change: client=- user=- api=lua upstream=luadyn: created: 1 servers',
    '[warn] dynamic upstream change: client=- user=- api=lua upstream=luadyn: deleted',
    '[info] dynamic upstream change refused: client=- user=- api=lua upstream=luadyn: 404 upstream "luadyn" not found',
    '[info] dynamic upstream change refused: client=- user=- api=lua upstream=backends: 400 server address "127.0.0.1:0" has a port outside 1-65535',
], 'api=lua');

=== TEST 5: C API: api=c, no client
--- modules: lua
--- http_config
init_by_lua_block {
    require("ffi").cdef[[
        typedef struct { size_t len; unsigned char *data; } ngx_str_t;
        typedef struct { unsigned char *pos; unsigned char *last; } ngx_buf_prefix_t;
        intptr_t ngx_dyups_update_upstream(ngx_str_t *name, ngx_buf_prefix_t *buf, ngx_str_t *rv);
        intptr_t ngx_dyups_delete_upstream(ngx_str_t *name, ngx_str_t *rv);
    ]]
}
--- config
location /c {
    content_by_lua_block {
        local ffi = require "ffi"
        local name, body = "cdyn", "server 127.0.0.1:30001;"
        local n = ffi.new("ngx_str_t", #name, ffi.cast("unsigned char *", name))
        local b = ffi.new("ngx_buf_prefix_t")
        b.pos = ffi.cast("unsigned char *", body)
        b.last = b.pos + #body
        local rv = ffi.new("ngx_str_t")
        local updated = tonumber(ffi.C.ngx_dyups_update_upstream(n, b, rv))
        local deleted = tonumber(ffi.C.ngx_dyups_delete_upstream(n, rv))
        ngx.print(updated, " ", deleted)
    }
}
--- request
GET /c
--- response_body chomp
200 200
--- perl
is_deeply(main::change_lines(), [
    '[warn] dynamic upstream change: client=- user=- api=c upstream=cdyn: created: 1 servers',
    '[warn] dynamic upstream change: client=- user=- api=c upstream=cdyn: deleted',
], 'api=c');

=== TEST 6: control characters in the client's name or user never reach the log raw: they are escaped
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:30001; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    location / { dyups_interface; dyups_read_only on; }
}
--- config
location /dynamic {
    # $remote_user decodes the Authorization header: no password checked.
    set $who $remote_user;
    dynamic_upstream;
}
--- perl
require MIME::Base64;
my $user = { Authorization => 'Basic ' . MIME::Base64::encode_base64("a\x1b[2J\x07\x00\x7f\xc2\x85\xe2\x80\xaeb:x", '') };
is(http('GET', '/dynamic?upstream=x%1b&server=127.0.0.1:30001&down=', undef, $user)->{status}, 400, 'query API');
is(http('DELETE', 'http://127.0.0.1:' . port(1) . '/upstream/x%1b[2J%07%7f%c2%85')->{status}, 403, 'REST API, read-only');
is_deeply(main::change_lines(), [
    '[info] dynamic upstream change refused: client=127.0.0.1 user="a\x1b[2J\x07\x00\x7f\u{85}\u{202e}b" api=query upstream=-: 400 query string has control characters',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=- api=rest upstream="x\x1b[2J\x07\x7f\u{85}": 403 this location only lists upstreams (dyups_read_only on)',
], 'escaped as \xNN (ASCII) or \u{N} (other non-printing characters)');
my $log = NginxTest::Files::slurp(data_dir() . '/../logs/error.log');
my @raw = grep { /dynamic upstream change/ && /[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80\xae/ } split /\n/, $log;
is(scalar @raw, 0, 'no raw control byte in any change line') or diag(join "\n", @raw);

=== TEST 7: lines from a request go to the log of its location: an error_log at warn there shows them when the main one is at error
--- log_level: error
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:30001; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    location / {
        error_log $TEST_NGINX_DATA_DIR/admin.log info;
        dyups_interface;
    }
}
--- config
location /dynamic {
    error_log $TEST_NGINX_DATA_DIR/admin.log warn;
    dynamic_upstream;
}
--- perl
is(http('GET', '/dynamic?upstream=backends&server=127.0.0.1:30001&weight=4')->{status}, 200, 'query API change');
is(http('GET', '/dynamic?upstream=backends&server=127.0.0.1:30009&down=')->{status}, 400, 'query API refusal (info: not shown at warn)');
my $rest = 'http://127.0.0.1:' . port(1) . '/upstream/dyn';
is(http('POST', $rest, 'server 127.0.0.1:30001;')->{status}, 200, 'REST change');
is(http('POST', $rest, 'servr 1.2.3.4;')->{status}, 400, 'REST refusal');
my $admin = NginxTest::Files::slurp(data_dir() . '/admin.log') // '';
is_deeply([ map { /\[(warn|info)\] \d+#\d+: (dynamic upstream change.*)$/ ? ("[$1] $2") : () } split /\n/, $admin ], [
    '[warn] dynamic upstream change: client=127.0.0.1 user=- api=query upstream=backends: 127.0.0.1:30001 weight 1 -> 4',
    '[warn] dynamic upstream change: client=127.0.0.1 user=- api=rest upstream=dyn: created: 1 servers',
    '[info] dynamic upstream change refused: client=127.0.0.1 user=- api=rest upstream=dyn: 400 add server failed: unknown directive "servr"',
], "the admin locations' error_log has the lines, at their levels");
is_deeply(main::change_lines(), [], 'the main error_log (at error) has none');

=== TEST 8: a state file that cannot be written: the change is logged (it is live), the failure as an [error], no "change refused" (the NGINX Plus API's PersistFailed too)
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream backends {
    zone backends 64k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:30001;
}
--- config
location /dynamic { dynamic_upstream; }
location /api { dynamic_upstream_api write=on; }
location / { dyups_interface; }
--- perl
chmod(0555, data_dir()) or die "chmod: $!";
is(http('GET', '/dynamic?upstream=backends&server=127.0.0.1:30001&weight=5')->{status}, 500, 'query API: not saved');
is(http('POST', '/upstream/dyn', 'server 127.0.0.1:30001;')->{status}, 500, 'REST API: not saved');
is(http('PATCH', '/api/9/http/upstreams/backends/servers/0', '{"weight":6}')->{status}, 500, 'NGINX Plus API: not saved');
chmod(0777, data_dir()) or die "chmod: $!";
is_deeply(main::change_lines(), [
    '[warn] dynamic upstream change: client=127.0.0.1 user=- api=query upstream=backends: 127.0.0.1:30001 weight 1 -> 5',
    '[warn] dynamic upstream change: client=127.0.0.1 user=- api=rest upstream=dyn: created: 1 servers',
    '[warn] dynamic upstream change: client=127.0.0.1 user=- api=plus upstream=backends: 127.0.0.1:30001 weight 5 -> 6',
], 'the changes, and no refusal');
my @errors = grep { /\[error\]/ } split /\n/, error_log_text();
is(scalar @errors, 3, 'one [error] per state file and failed write');
like($errors[0] // '', qr/could not write state file "[^"]*backends\.state": Permission denied/, 'the zone state file');
like($errors[1] // '', qr/could not write state file "[^"]*dyups\.conf": Permission denied/, 'the dyups file');
--- allow_error_log
qr/\[error\].*could not write state file/

=== TEST 9: Lua logs where its own ngx.log lines go: the error_log of the location whose request (or timer) runs it
--- modules: lua
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:30001; }
--- config
location = /lua-change {
    error_log $TEST_NGINX_DATA_DIR/admin.log warn;
    content_by_lua_block {
        local dynamic, dyups = require "ngx.dynamic", require "ngx.dyups"
        assert(dynamic.update_peer("backends", "127.0.0.1:30001", { weight = 3 }))
        assert(dyups.update("luadyn", "server 127.0.0.1:30001;") == 200)
        assert(dyups.delete("luadyn") == 200)
        assert(ngx.timer.at(0, function()
            dynamic.update_peer("backends", "127.0.0.1:30001", { weight = 5 })
        end))
        ngx.print("ok")
    }
}
--- request
GET /lua-change
--- response_body chomp
ok
--- perl
my $admin_lines = sub {
    my $text = NginxTest::Files::slurp(data_dir() . '/admin.log') // '';
    return [ map { /\[(warn|info)\] \d+#\d+: (dynamic upstream change.*)$/ ? ("[$1] $2") : () } split /\n/, $text ];
};
poll_until(sub { @{ $admin_lines->() } >= 4 }, 10, 'the timer has run');
is_deeply($admin_lines->(), [
    '[warn] dynamic upstream change: client=- user=- api=lua upstream=backends: 127.0.0.1:30001 weight 1 -> 3',
    '[warn] dynamic upstream change: client=- user=- api=lua upstream=luadyn: created: 1 servers',
    '[warn] dynamic upstream change: client=- user=- api=lua upstream=luadyn: deleted',
    '[warn] dynamic upstream change: client=- user=- api=lua upstream=backends: 127.0.0.1:30001 weight 3 -> 5',
], "in the location's error_log");
is_deeply(main::change_lines(), [], 'none in the main one');

=== TEST 10: NGINX Plus API: every refused change is logged once, with the status and the reason the client got (a 409 EntryExists was logged as 400, and refusals of the body, of an immutable field, of a write-off location, of a bad server ID or of a body over 1 MiB were not logged: hunt 43, review 54), through zone and run-time upstreams alike
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:30001; }
--- config
location /api { dynamic_upstream_api write=on; client_max_body_size 4m; }
location /ro { dynamic_upstream_api; }
location / { dyups_interface; }
--- perl
use JSON::PP ();
is(http('POST', '/upstream/dy', 'server 127.0.0.1:30001;')->{status}, 200, 'a run-time upstream');
my $servers = '/api/9/http/upstreams/backends/servers';
my @expected;
for my $case (
    ['POST', $servers, '{"server":"127.0.0.1:30002"}', 201],
    ['POST', $servers, '{"server":"127.0.0.1:30002"}', 409],
    ['POST', $servers, '{"server":"127.0.0.1:30003","weight":0}', 400],
    ['POST', $servers, '{"server":"127.0.0.1:30003","bogus":1}', 400],
    ['POST', $servers, 'not json', 415],
    ['PATCH', "$servers/0", '{"backup":true}', 400],
    ['PATCH', "$servers/99", '{"weight":2}', 404],
    ['DELETE', "$servers/1", undef, 200],
    ['PATCH', '/ro/9/http/upstreams/backends/servers/0', '{"weight":2}', 405],
    ['POST', '/api/9/http/upstreams/nosuch/servers', '{"server":"127.0.0.1:30002"}', 404],
    ['POST', '/api/9/http/upstreams/dy/servers', '{"server":"127.0.0.1:30001"}', 409],
    ['PUT', '/api/9/http/upstreams/dy/servers', '[{"server":"127.0.0.1:30001","backup":true}]', 400],
    # (review 54: a bad ID and a body over 1 MiB were not logged)
    ['PATCH', "$servers/abc", '{"weight":2}', 400],
    ['DELETE', "$servers/abc", undef, 400],
    ['POST', $servers, '{"server":"127.0.0.1:30003","x":"' . ('y' x 1100000) . '"}', 413],
) {
    my ($method, $path, $body, $status) = @$case;
    my $r = http($method, $path, $body);
    is($r->{status}, $status, "$method $path $status") or diag($r->{body});
    next if $status < 300;
    my ($upstream) = $path =~ m{/upstreams/([^/]+)/};
    my $text = eval { JSON::PP->new->decode($r->{body})->{error}{text} } // "(no JSON: $r->{body})";
    push @expected, "[info] dynamic upstream change refused: client=127.0.0.1 user=- api=plus upstream=$upstream: $status $text";
}
is_deeply([grep { /^\[info\]/ } @{ main::change_lines() }], \@expected, 'one line per refusal, as answered');
is(scalar(grep { /^\[warn\].*api=plus/ } @{ main::change_lines() }), 2, 'and one per change');
