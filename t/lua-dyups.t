# Lua: require "ngx.dyups" (Debian's lua module loaded before ours, no
# lua_package_path anywhere): dyups.update(name, body) and
# dyups.delete(name) return `status, message` exactly as the REST API
# (dyups_interface) answers the same request, and proxy_pass http://$host
# follows them in every worker.
#
# Most blocks drive Lua through `location = /lua` (TEST_NGINX_LUA_EVAL below):
# a POST body of Lua code runs in content_by_lua with `dyups` (the required
# package) and `show(...)` in scope, and its return value is the answer.
#   show(...)   renders every value: strings %q-quoted, others tostring, ", "
#               between; `show(dyups.update(...))` is `200, "success"`.
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups;
use NginxTest::Lua;

$ENV{TEST_NGINX_LUA_EVAL} = lua_eval_location([dyups => 'ngx.dyups']);

# The REST API's answer rendered like show(): `STATUS, "BODY"` (the body
# %q-quoted as Lua would: only \ " and newlines need it here).
sub rest_show {
    my ($r) = @_;
    (my $b = $r->{body}) =~ s/(["\\])/\\$1/g;
    $b =~ s/\n/\\\n/g;
    return qq{$r->{status}, "$b"};
}

# $n proxied requests with Host $host: { port or "status N" => count }.
sub spread {
    my ($host, $n) = @_;
    my %seen;
    $seen{ proxied_port($host) }++ for 1 .. $n;
    return \%seen;
}

run_tests();
__DATA__

=== TEST 1: ngx.print(dyups.update("dyhost", "server 127.0.0.1:8088;")) prints 200success
--- modules: lua
--- config
location = /update {
    content_by_lua_block {
        local dyups = require "ngx.dyups"
        ngx.print(dyups.update("dyhost", "server 127.0.0.1:8088;"))
    }
}
location = /delete {
    content_by_lua_block {
        local dyups = require "ngx.dyups"
        ngx.print(dyups.delete("dyhost"))
    }
}
location / { dyups_interface; }
--- steps
>>> GET /update
<<< 200 chomp
200success
>>> GET /upstream/dyhost
<<< 200
server 127.0.0.1:8088 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0

>>> GET /list
<<< 200
dyhost

>>> GET /delete
<<< 200 chomp
200success
>>> GET /upstream/dyhost
<<< 404 any
>>> GET /delete
<<< 200 chomp
404upstream "dyhost" not found
--- perl
main::no_package_path();
--- no_error_log
[error]



=== TEST 2: the package and the types of what it returns
--- modules: lua
--- config
location = /t {
    content_by_lua_block {
        local dyups = require "ngx.dyups"
        ngx.say(type(dyups), " ", type(dyups.update), " ", type(dyups.delete), " ",
                tostring(require("ngx.dyups") == dyups))
        local status, msg = dyups.update("dyhost", "server 127.0.0.1:8088;")
        ngx.say(type(status), " ", status, " ", type(msg), " ", msg)
        status, msg = dyups.update("dyhost", "aaserver 127.0.0.1:8088;")
        ngx.say(type(status), " ", status, " ", type(msg), " ", msg)
        status, msg = dyups.delete("dyhost")
        ngx.say(type(status), " ", status, " ", type(msg), " ", msg)
        status, msg = dyups.delete("dyhost")
        ngx.say(type(status), " ", status, " ", type(msg), " ", msg)
        ngx.say(select("#", dyups.update("x", "server 127.0.0.1:8088;")), " ", select("#", dyups.delete("x")))
    }
}
--- request
GET /t
--- response_body
table function function true
number 200 string success
number 400 string add server failed: unknown directive "aaserver"
number 200 string success
number 404 string upstream "dyhost" not found
2 2
--- no_error_log
[error]



=== TEST 3: update and delete answer exactly what the REST API answers, and do the same
--- modules: lua
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $s = "server 127.0.0.1:$p2;";
# Each body goes to Lua as upstream luaN and to the REST API as restN (both
# new names, so both start from the same state).
my @updates = (
    $s,
    "least_conn; $s server 127.0.0.1:$p3 weight=3 max_fails=2 fail_timeout=5 max_conns=9;",
    "$s server 127.0.0.1:$p3 backup; server 127.0.0.1:$p1 down;",
    "hash \$arg_k consistent; $s",
    "aaserver 127.0.0.1:$p1;",
    '',
    "server 127.0.0.1:$p1",
    "server 127.0.0.1:$p1 weight=0;",
    "server localhost:80;",
    "server example.com;",
    "keepalive 16; $s",
    "ip_hash; $s server 127.0.0.1:$p3 backup;",
    "ip_hash; least_conn; $s",
    "hash \$nosuchvar; $s",
    "server 127.0.0.1:0;",
    "server 127.0.0.1:$p1 color=red;",
);
my $i = 0;
for my $body (@updates) {
    $i++;
    my $lua = main::lua("return show(dyups.update('lua$i', " . main::lstr($body) . "))");
    my $rest = main::rest_show(http('POST', "/upstream/rest$i", $body));
    is($lua, $rest, "update '$body': same answer as the REST API ($rest)");
    my ($lg, $rg) = (http_get("/upstream/lua$i"), http_get("/upstream/rest$i"));
    is("$lg->{status}\n$lg->{body}" =~ s/\blua$i\b/NAME/gr, "$rg->{status}\n$rg->{body}" =~ s/\brest$i\b/NAME/gr,
       "update '$body': same result");
}
is(main::lua("return show(dyups.update('lua1', 'server 127.0.0.1:$p3;'))"), '200, "success"', 'replace');
is(http_get('/upstream/lua1')->{body},
   "server 127.0.0.1:$p3 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n", 'replaced');
# names
for my $name ('bad name', 'a/b', '', 'x' x 256, 'ok.name-1_2') {
    my $lua = main::lua("return show(dyups.update(" . main::lstr($name) . ", '$s'))");
    (my $uri = $name) =~ s/([^A-Za-z0-9._-])/sprintf('%%%02X', ord $1)/ge;
    my $r = http('POST', "/upstream/$uri", $s);
    if ($r->{status} == 404 || $name eq '') {
        # the REST API cannot express it (no name in the path): a refusal anyway
        like($lua, qr/\A4\d\d, ".+"\z/s, "update on name '$name' refused");
    } else {
        is($lua, main::rest_show($r), "update on name '" . substr($name, 0, 20) . "': same as REST (" . main::rest_show($r) . ")");
    }
}
# delete: configured, run-time, unknown
for my $name ('host1', 'lua1', 'nope') {
    my $lua = main::lua("return show(dyups.delete('$name'))");
    my $want = $name eq 'nope' ? qq{404, "upstream \\"nope\\" not found"} : '200, "success"';
    is($lua, $want, "delete $name: $want");
    is(http_get("/upstream/$name")->{status}, 404, "delete $name: gone");
}
is(main::lua("return show(dyups.delete('rest1'))"), '200, "success"', 'Lua deletes an upstream the REST API created');
is(main::rest_show(http('DELETE', '/upstream/lua2')), '200, "success"', 'REST deletes an upstream Lua created');
is(main::rest_show(http('DELETE', '/upstream/lua2')), main::lua("return show(dyups.delete('lua2'))"),
   'deleting twice: the same 404 from both');
--- no_error_log
[error]



=== TEST 4: a refused update changes nothing
--- modules: lua
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
location / { dyups_interface; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2) = (port(1), port(2));
is(main::lua("return show(dyups.update('dyhost', 'server 127.0.0.1:$p2;'))"), '200, "success"', 'setup');
my $before = main::state();
for my $body ("aaserver 127.0.0.1:$p1;", "server 127.0.0.1:$p1; server 127.0.0.1:$p2 weight=0;", '',
              "server 127.0.0.1:$p1; keepalive 8;", "server example.com:$p1;") {
    for my $name ('dyhost', 'host1', 'newname') {
        like(main::lua("return show(dyups.update('$name', " . main::lstr($body) . "))"),
             qr/\A400, "add server failed: .+"\z/s, "'$body' -> $name: 400 add server failed");
        is(main::state(), $before, "'$body' -> $name: nothing changed");
    }
}
is(main::proxied_port('dyhost'), $p2, 'dyhost still routes to its server');
is(main::proxied_port('host1'), $p1, 'host1 still routes to its server');
is(http_get('/upstream/newname')->{status}, 404, 'no upstream was created');
--- no_error_log
[error]



=== TEST 5: arguments of the wrong type: a non-200 status and a message, no Lua error, nothing changed
--- modules: lua
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
$TEST_NGINX_LUA_EVAL
--- perl
my $before = main::state();
for my $args ('nil, "server 127.0.0.1:8088;"', '42, "server 127.0.0.1:8088;"', '{}, "server 127.0.0.1:8088;"',
              '"host1", nil', '"host1", 42', '"host1", {}', '"host1"', '', 'ngx.null, "server 127.0.0.1:8088;"') {
    like(main::lua("return show(dyups.update($args))"), qr/\A4\d\d, ".+"\z/s, "update($args): 4xx, message");
    is(main::state(), $before, "update($args): nothing changed");
}
for my $args ('nil', '42', '{}', '', 'true') {
    like(main::lua("return show(dyups.delete($args))"), qr/\A4\d\d, ".+"\z/s, "delete($args): 4xx, message");
    is(main::state(), $before, "delete($args): nothing changed");
}
like(main::lua(q{return show(dyups.update(string.rep("h", 100000), "server 127.0.0.1:8088;"))}), qr/\A400, ".+"\z/s,
     'a 100000-byte name: 400');
like(main::lua(q{return show(dyups.update("big", string.rep("server 127.0.0.1:8088;", 50000)))}), qr/\A\d{3}, ".+"\z/s,
     'a 1 MB body: an answer');
is(http_get('/upstream/host1')->{status}, 200, 'host1 is still there');
--- no_error_log
[error]



=== TEST 6: update, then proxy_pass http://$host routes by Host to it; delete, then 502
--- modules: lua
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
is(main::proxied_port('dyhost'), 'status 502', 'no dyhost yet: 502');
is(main::lua("return show(dyups.update('dyhost', 'server 127.0.0.1:$p2;'))"), '200, "success"', 'update');
is_deeply(main::spread('dyhost', 10), { $p2 => 10 }, 'every request with Host: dyhost reaches its server');
is(main::lua("return show(dyups.update('dyhost', 'server 127.0.0.1:$p2; server 127.0.0.1:$p3;'))"), '200, "success"',
   'replace with two');
my $seen = main::spread('dyhost', 20);
is_deeply([sort keys %$seen], [sort $p2, $p3], 'both get traffic, nothing else does') or diag(explain($seen));
is(main::lua("return show(dyups.update('host1', 'server 127.0.0.1:$p3;'))"), '200, "success"', 'replace configured host1');
is_deeply(main::spread('host1', 5), { $p3 => 5 }, 'host1 now routes to the new server');
is(main::lua("return show(dyups.delete('dyhost'))"), '200, "success"', 'delete');
is_deeply(main::spread('dyhost', 5), { 'status 502' => 5 }, 'deleted: 502');
is(main::lua("return show(dyups.delete('host1'))"), '200, "success"', 'delete configured host1');
is_deeply(main::spread('host1', 5), { 'status 502' => 5 }, 'host1 deleted: 502');
is(main::lua("return show(dyups.update('dyhost', 'server 127.0.0.1:$p1;'))"), '200, "success"', 'create again');
is_deeply(main::spread('dyhost', 5), { $p1 => 5 }, 'routes again');



=== TEST 7: four workers: an update from one worker routes in every worker; a delete gives 502 in every worker
--- modules: lua
--- workers: 4
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    add_header X-Worker $pid always;
    location / { proxy_pass http://$host; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    add_header X-Worker $pid always;
$TEST_NGINX_LUA_EVAL
}
--- config
location / { dyups_interface; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2, $p8) = map { port($_) } 1, 2, 8;
# Proxied requests with Host $host through the reuseport server until every
# worker answered (at most 400); returns ({ answer => count }, workers seen).
my $everywhere = sub {
    my ($host) = @_;
    my (%seen, %workers);
    for (1 .. 400) {
        my $r = http('GET', 'http://127.0.0.1:' . port(9) . '/', undef, { Host => $host });
        $workers{ $r->{headers}{'x-worker'} // 'none' } = 1;
        $seen{ $r->{status} == 200 ? $r->{body} =~ s/\n\z//r : "status $r->{status}" }++;
        last if !grep { !$workers{$_} } worker_pids();
    }
    return (\%seen, scalar(grep { $workers{$_} } worker_pids()));
};
my ($seen, $n);
# the Lua calls go through a reuseport server too, so they run in various workers
for my $round (1 .. 6) {
    my $port = $round % 2 ? $p1 : $p2;
    my $r = http('POST', "http://127.0.0.1:$p8/lua", "return show(dyups.update('dyhost', 'server 127.0.0.1:$port;'))");
    is($r->{body}, '200, "success"', "round $round: update to $port");
    ($seen, $n) = $everywhere->('dyhost');
    is_deeply([keys %$seen], [$port], "round $round: every request reaches $port") or diag(explain($seen));
    is($n, 4, "round $round: all 4 workers proxied");
}
my $r = http('POST', "http://127.0.0.1:$p8/lua", "return show(dyups.delete('dyhost'))");
is($r->{body}, '200, "success"', 'delete');
($seen, $n) = $everywhere->('dyhost');
is_deeply([keys %$seen], ['status 502'], 'deleted: 502 from every worker') or diag(explain($seen));
is($n, 4, 'all 4 workers answered');
