# Lua: ngx.dynamic and ngx.dyups in every phase the Lua module offers
# (no lua_package_path anywhere).
#
# * init_by_lua (the master, while the configuration is read): both packages
#   can be required; every call answers `nil, err` (dyups: a non-200 status
#   and a message) and changes nothing.  A package required there is usable
#   from the workers afterwards.
# * init_worker_by_lua with ngx.timer.at(0, ...): the calls work.
# * rewrite_by_lua, access_by_lua, content_by_lua, set_by_lua,
#   header_filter_by_lua, body_filter_by_lua, log_by_lua and ngx.timer.at
#   callbacks: every operation works and the next request (whichever worker
#   takes it) sees its effect.
use lib 't/lib';
use NginxTest;
# (line() is this file's own: the verbose listing's format.)
use NginxTest::Dyups qw(proxied_port);
use NginxTest::Lua;
use NginxTest::QueryApi;

# The phases test (TEST 4) shares one Lua helper, RUN(op, server, name, weight),
# defined in init_by_lua (the helper itself calls nothing at that time).  It
# performs one operation and renders its result as "OP: V1 V2" (tostring of
# the first two values): "add: true nil", "update: 200 success".
#   add / remove / down / up / weight   dynamic.* on upstream "backends"
#   describe                            "describe: <number of peers> nil"
#   zones                               "zones: <names joined by ,> nil"
#   update / delete                     dyups.update(name, "server SERVER;") / dyups.delete(name)
$ENV{TEST_NGINX_LUA_RUN} = <<'NGINX';
init_by_lua_block {
    function ARGS()
        return ngx.var.arg_op, ngx.var.arg_server, ngx.var.arg_name, tonumber(ngx.var.arg_weight)
    end
    function RUN(op, server, name, weight)
        local dynamic = require "ngx.dynamic"
        local dyups = require "ngx.dyups"
        local r
        if op == "add" then
            r = { dynamic.add_peer("backends", server) }
        elseif op == "remove" then
            r = { dynamic.remove_peer("backends", server) }
        elseif op == "down" then
            r = { dynamic.set_peer_down("backends", server, true) }
        elseif op == "up" then
            r = { dynamic.set_peer_down("backends", server, false) }
        elseif op == "weight" then
            r = { dynamic.update_peer("backends", server, { weight = weight }) }
        elseif op == "describe" then
            local list, err = dynamic.describe_zone("backends")
            r = { list and #list or list, err }
        elseif op == "zones" then
            local zones, err = dynamic.list_zones()
            r = { zones and table.concat(zones, ",") or zones, err }
        elseif op == "update" then
            r = { dyups.update(name, "server " .. server .. ";") }
        elseif op == "delete" then
            r = { dyups.delete(name) }
        else
            r = { "unknown op" }
        end
        return tostring(op) .. ": " .. tostring(r[1]) .. " " .. tostring(r[2])
    end
}
NGINX

# init_by_lua code for TESTs 1 and 2: requires both packages and calls every
# function; INIT gets one line per step, "nil, err" when a call answered nil
# and a non-empty message (dyups: "non-200, message"), anything else shows as
# UNEXPECTED or "Lua error".  (Fixed addresses: nothing connects to them.)
$ENV{TEST_NGINX_INIT_CALLS} = <<'NGINX';
init_by_lua_block {
    INIT = {}
    local function record(what, ok, a, b, c)
        local text
        if not ok then
            text = "Lua error: " .. tostring(a)
        elseif a == nil and type(b) == "string" and #b > 0 and c == nil then
            text = "nil, err"
        else
            text = "UNEXPECTED " .. tostring(a) .. ", " .. tostring(b) .. ", " .. tostring(c)
        end
        INIT[#INIT + 1] = what .. ": " .. text
    end
    local function record_dyups(what, ok, status, msg, extra)
        local text
        if not ok then
            text = "Lua error: " .. tostring(status)
        elseif type(status) == "number" and status ~= 200 and type(msg) == "string" and #msg > 0
               and msg ~= "success" and extra == nil then
            text = "non-200, message"
        else
            text = "UNEXPECTED " .. tostring(status) .. ", " .. tostring(msg) .. ", " .. tostring(extra)
        end
        INIT[#INIT + 1] = what .. ": " .. text
    end

    local ok1, dynamic = pcall(require, "ngx.dynamic")
    local ok2, dyups = pcall(require, "ngx.dyups")
    INIT[#INIT + 1] = "require ngx.dynamic: " .. tostring(ok1) .. " " .. type(dynamic)
    INIT[#INIT + 1] = "require ngx.dyups: " .. tostring(ok2) .. " " .. type(dyups)
    if ok1 and type(dynamic) == "table" then
        record("list_zones", pcall(dynamic.list_zones))
        record("describe_zone", pcall(dynamic.describe_zone, "backends"))
        record("add_peer", pcall(dynamic.add_peer, "backends", "127.0.0.3:1"))
        record("add_peer table", pcall(dynamic.add_peer, "backends", "127.0.0.4:1", { backup = true }))
        record("remove_peer", pcall(dynamic.remove_peer, "backends", "127.0.0.2:1"))
        record("set_peer_down", pcall(dynamic.set_peer_down, "backends", "127.0.0.1:1", true))
        record("update_peer", pcall(dynamic.update_peer, "backends", "127.0.0.1:1", { weight = 5, max_fails = 3 }))
        record("add_peer bad weight", pcall(dynamic.add_peer, "backends", "127.0.0.3:1", 0))
        record("describe_zone nope", pcall(dynamic.describe_zone, "nope"))
    end
    if ok2 and type(dyups) == "table" then
        record_dyups("dyups.update new", pcall(dyups.update, "initdyhost", "server 127.0.0.1:1;"))
        record_dyups("dyups.update host1", pcall(dyups.update, "host1", "server 127.0.0.3:1;"))
        record_dyups("dyups.delete host1", pcall(dyups.delete, "host1"))
        record_dyups("dyups.delete nope", pcall(dyups.delete, "nope"))
    end
}
NGINX

# For TESTs 1 and 2: what init_by_lua recorded, and that it changed nothing.
sub init_results_and_nothing_changed {
    my ($when) = @_;
    is(http_get('/init')->{body}, <<'WANT', "$when: init_by_lua's results");
require ngx.dynamic: true table
require ngx.dyups: true table
list_zones: nil, err
describe_zone: nil, err
add_peer: nil, err
add_peer table: nil, err
remove_peer: nil, err
set_peer_down: nil, err
update_peer: nil, err
add_peer bad weight: nil, err
describe_zone nope: nil, err
dyups.update new: non-200, message
dyups.update host1: non-200, message
dyups.delete host1: non-200, message
dyups.delete nope: non-200, message
WANT
    is(verbose(), "server 127.0.0.1:1 weight=1 max_fails=1 fail_timeout=10;\n"
                . "server 127.0.0.2:1 weight=1 max_fails=1 fail_timeout=10;\n", "$when: backends unchanged");
    is(http_get('/list')->{body}, "backends\nhost1\n", "$when: no upstream created or deleted");
    is(http_get('/upstream/host1')->{body},
       "server 127.0.0.1:1 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n", "$when: host1 unchanged");
}

sub line {
    my ($n, $extra) = @_;
    return "server 127.0.0.1:" . port($n) . " weight=1 max_fails=1 fail_timeout=10" . ($extra // '') . ";\n";
}

run_tests();
__DATA__

=== TEST 1: init_by_lua: both packages load; every call answers nil, err (dyups: non-200, message) and changes nothing
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:1;
    server 127.0.0.2:1;
}
upstream host1 { server 127.0.0.1:1; }
$TEST_NGINX_INIT_CALLS
--- config
location /dynamic { dynamic_upstream; }
location / { dyups_interface; }
location = /init {
    content_by_lua_block {
        ngx.say(table.concat(INIT, "\n"))
    }
}
--- perl
main::no_package_path();
main::init_results_and_nothing_changed('at start');
nginx_reload();
main::init_results_and_nothing_changed('after a reload');
--- no_error_log
[error]



=== TEST 2: init_by_lua with a lua_shared_dict (it then runs later, while the zones are set up): the same
--- modules: lua
--- http_config
lua_shared_dict cache 1m;
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:1;
    server 127.0.0.2:1;
}
upstream host1 { server 127.0.0.1:1; }
$TEST_NGINX_INIT_CALLS
--- config
location /dynamic { dynamic_upstream; }
location / { dyups_interface; }
location = /init {
    content_by_lua_block {
        ngx.say(table.concat(INIT, "\n"))
    }
}
--- perl
main::init_results_and_nothing_changed('at start');
nginx_reload();
main::init_results_and_nothing_changed('after a reload');
--- no_error_log
[error]



=== TEST 3: packages required in init_by_lua work in the workers afterwards
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
init_by_lua_block {
    DYNAMIC = require "ngx.dynamic"
    DYUPS = require "ngx.dyups"
}
--- config
location /dynamic { dynamic_upstream; }
location / { dyups_interface; }
location = /t {
    content_by_lua_block {
        ngx.say(require("ngx.dynamic") == DYNAMIC, " ", require("ngx.dyups") == DYUPS)
        local zones, err = DYNAMIC.list_zones()
        ngx.say("list_zones: ", zones and table.concat(zones, ",") or "nil", " ", tostring(err))
        ngx.say("add_peer: ", tostring(DYNAMIC.add_peer("backends", "127.0.0.1:$TEST_NGINX_PORT_3")))
        ngx.say("set_peer_down: ", tostring(DYNAMIC.set_peer_down("backends", "127.0.0.1:$TEST_NGINX_PORT_1", true)))
        ngx.say("describe_zone: ", #DYNAMIC.describe_zone("backends"))
        ngx.say("dyups.update: ", DYUPS.update("dyhost", "server 127.0.0.1:$TEST_NGINX_PORT_1;"))
    }
}
--- steps
>>> GET /t
<<< 200
true true
list_zones: zone_for_backends nil
add_peer: true
set_peer_down: true
describe_zone: 3
dyups.update: 200success

>>> GET /dynamic?upstream=backends
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 down;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;

>>> GET /list
<<< 200
backends
dyhost
--- no_error_log
[error]



=== TEST 4: init_worker_by_lua with ngx.timer.at(0): add_peer, describe_zone, dyups.update work
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
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
init_worker_by_lua_block {
    local ok, err = ngx.timer.at(0, function(premature)
        if premature then
            return
        end
        local dynamic = require "ngx.dynamic"
        local dyups = require "ngx.dyups"
        local zones, zerr = dynamic.list_zones()
        ngx.log(ngx.NOTICE, "timer list_zones: ", zones and table.concat(zones, ",") or "nil", " ", tostring(zerr))
        if ngx.worker.id() ~= 0 then
            return
        end
        local added, aerr = dynamic.add_peer("backends", "127.0.0.1:$TEST_NGINX_PORT_3", { weight = 2 })
        ngx.log(ngx.NOTICE, "timer add_peer: ", tostring(added), " ", tostring(aerr))
        local down, derr = dynamic.set_peer_down("backends", "127.0.0.1:$TEST_NGINX_PORT_1", true)
        ngx.log(ngx.NOTICE, "timer set_peer_down: ", tostring(down), " ", tostring(derr))
        local list, lerr = dynamic.describe_zone("backends")
        ngx.log(ngx.NOTICE, "timer describe_zone: ", list and #list or "nil", " ", tostring(lerr))
        local status, msg = dyups.update("timerhost", "server 127.0.0.1:$TEST_NGINX_PORT_2;")
        ngx.log(ngx.NOTICE, "timer dyups.update: ", tostring(status), " ", tostring(msg))
    end)
    if not ok then
        ngx.log(ngx.ERR, "cannot create the timer: ", err)
    end
}
--- config
location /dynamic { dynamic_upstream; }
location / { dyups_interface; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $want = "server 127.0.0.1:$p1 weight=1 max_fails=1 fail_timeout=10 down;\n"
         . "server 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10;\n"
         . "server 127.0.0.1:$p3 weight=2 max_fails=1 fail_timeout=10;\n";
ok(poll_until(sub { main::verbose() eq $want }, 10, 'the timer changes backends'),
   'the timer added a peer and marked one down') or diag(main::verbose());
ok(poll_until(sub { main::proxied_port('timerhost') eq $p2 }, 10, 'timerhost routes'), 'the timer created timerhost: it routes')
    or diag(main::proxied_port('timerhost'));
is(http_get('/list')->{body}, "backends\ntimerhost\n", 'the REST API lists timerhost');
ok(poll_until(sub { () = error_log_text() =~ /timer list_zones: zone_for_backends nil/g; }, 10),
   'list_zones ran in the timers');
--- error_log
timer add_peer: true nil
timer set_peer_down: true nil
timer describe_zone: 3 nil
timer dyups.update: 200 success
--- no_error_log
[error]



=== TEST 5: every operation from rewrite, access, content, set_by_lua, header_filter, body_filter, log and a timer
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
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
$TEST_NGINX_LUA_RUN
--- config
location /dynamic { dynamic_upstream; }
location = /rewrite {
    rewrite_by_lua_block {
        ngx.say("rewrite ", RUN(ARGS()))
        return ngx.exit(ngx.HTTP_OK)
    }
}
location = /access {
    access_by_lua_block {
        ngx.say("access ", RUN(ARGS()))
        return ngx.exit(ngx.HTTP_OK)
    }
}
location = /content {
    content_by_lua_block {
        ngx.say("content ", RUN(ARGS()))
    }
}
location = /set {
    set_by_lua_block $result { return RUN(ARGS()) }
    return 200 "set $result\n";
}
location = /header_filter {
    return 200 "header_filter\n";
    header_filter_by_lua_block {
        ngx.header["X-Result"] = RUN(ARGS())
    }
}
location = /body_filter {
    return 200 "body_filter\n";
    body_filter_by_lua_block {
        if ngx.arg[2] then
            ngx.log(ngx.NOTICE, "body_filter ", ngx.var.arg_tag, " ", RUN(ARGS()))
        end
    }
}
location = /log {
    return 200 "log\n";
    log_by_lua_block {
        ngx.log(ngx.NOTICE, "log ", ngx.var.arg_tag, " ", RUN(ARGS()))
    }
}
location = /timer {
    content_by_lua_block {
        local tag = ngx.var.arg_tag
        local op, server, name, weight = ARGS()
        local ok, err = ngx.timer.at(0, function(premature)
            ngx.log(ngx.NOTICE, "timer ", tag, " ", premature and "premature" or RUN(op, server, name, weight))
        end)
        ngx.say("timer scheduled ", ok and "ok" or "failed", " ", tostring(err))
    }
}
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $tag = 0;
# call(PHASE, QUERY): runs one operation in PHASE; returns RUN's result
# ("OP: V1 V2"), waiting for the log line of the asynchronous phases.
my $call = sub {
    my ($phase, $q) = @_;
    $tag++;
    my $r = http_get("/$phase?tag=$tag&$q");
    return "status $r->{status}: $r->{body}" if $r->{status} != 200;
    if ($phase eq 'header_filter') {
        return $r->{headers}{'x-result'} // 'no X-Result header';
    }
    if ($phase =~ /^(?:body_filter|log|timer)$/) {
        return "timer not scheduled: $r->{body}" if $phase eq 'timer' && $r->{body} ne "timer scheduled ok nil\n";
        my $found;
        poll_until(sub {
            ($found) = error_log_text()
                =~ /: \Q$phase $tag \E(.*?)(?: while [a-z ]+)?(?:, context: [^,]*)?(?:, client: .*)?$/m;
            defined $found;
        }, 10, "$phase $tag in error.log");
        return $found // "no log line for $phase $tag";
    }
    my $body = $r->{body};
    $body =~ s/\A\Q$phase \E// or return "unexpected body: $body";
    $body =~ s/\n\z//;
    return $body;
};
my $three = main::line(1) . main::line(2);
for my $phase (qw(rewrite access content set header_filter body_filter log timer)) {
    is(main::verbose(), $three, "$phase: start from the configured peers");
    is($call->($phase, "op=add&server=127.0.0.1:$p3"), 'add: true nil', "$phase: add_peer");
    is(main::verbose(), $three . main::line(3), "$phase: the next request sees the added peer");
    is($call->($phase, "op=weight&server=127.0.0.1:$p3&weight=4"), 'weight: true nil', "$phase: update_peer");
    is(main::verbose(), $three . "server 127.0.0.1:$p3 weight=4 max_fails=1 fail_timeout=10;\n", "$phase: the next request sees the weight");
    is($call->($phase, "op=down&server=127.0.0.1:$p1"), 'down: true nil', "$phase: set_peer_down true");
    is(main::verbose(), main::line(1, ' down') . main::line(2) . "server 127.0.0.1:$p3 weight=4 max_fails=1 fail_timeout=10;\n",
       "$phase: the next request sees it down");
    is($call->($phase, "op=up&server=127.0.0.1:$p1"), 'up: true nil', "$phase: set_peer_down false");
    is($call->($phase, "op=describe"), 'describe: 3 nil', "$phase: describe_zone");
    is($call->($phase, "op=zones"), 'zones: zone_for_backends nil', "$phase: list_zones");
    is($call->($phase, "op=remove&server=127.0.0.1:$p3"), 'remove: true nil', "$phase: remove_peer");
    is(main::verbose(), $three, "$phase: the next request sees it removed");
    like($call->($phase, "op=remove&server=127.0.0.1:$p3"), qr/\Aremove: nil server 127\.0\.0\.1:$p3 is not in upstream "backends"\z/,
         "$phase: a refused call answers nil, err");
    like($call->($phase, "op=add&server=localhost:80"), qr/\Aadd: nil .*host name/, "$phase: a host name is refused");
    is(main::verbose(), $three, "$phase: the refused calls changed nothing");
    is($call->($phase, "op=update&name=host$phase&server=127.0.0.1:$p2"), 'update: 200 success', "$phase: dyups.update");
    is(main::proxied_port("host$phase"), $p2, "$phase: the next request routes by Host to the new upstream");
    is($call->($phase, "op=update&name=host$phase&server=127.0.0.1:$p1"), 'update: 200 success', "$phase: dyups.update again");
    is(main::proxied_port("host$phase"), $p1, "$phase: the next request routes to the replaced server");
    is($call->($phase, "op=delete&name=host$phase"), 'delete: 200 success', "$phase: dyups.delete");
    is(main::proxied_port("host$phase"), 'status 502', "$phase: the next request gets 502");
    is($call->($phase, "op=delete&name=host$phase"), qq{delete: 404 upstream "host$phase" not found}, "$phase: deleting again: 404");
}



=== TEST 6: init_worker_by_lua without a timer: the calls are safe (a result or nil, err), never a crash
--- modules: lua
--- workers: 2
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
init_worker_by_lua_block {
    local dynamic = require "ngx.dynamic"
    local dyups = require "ngx.dyups"
    local zones, err = dynamic.list_zones()
    ngx.log(ngx.NOTICE, "init_worker list_zones: ", zones and table.concat(zones, ",") or "nil", " ", tostring(err))
    local list, lerr = dynamic.describe_zone("backends")
    ngx.log(ngx.NOTICE, "init_worker describe_zone: ", list and #list or "nil", " ", tostring(lerr))
    if ngx.worker.id() == 0 then
        local ok, aerr = dynamic.add_peer("backends", "127.0.0.1:$TEST_NGINX_PORT_3")
        ngx.log(ngx.NOTICE, "init_worker add_peer: ", tostring(ok), " ", tostring(aerr))
        local status, msg = dyups.update("iwhost", "server 127.0.0.1:$TEST_NGINX_PORT_1;")
        ngx.log(ngx.NOTICE, "init_worker dyups.update: ", tostring(status), " ", tostring(msg))
    end
}
--- config
location /dynamic { dynamic_upstream; }
location / { dyups_interface; }
--- perl
my $log = error_log_text();
my @zones = $log =~ /init_worker list_zones: (.*?)(?:, context: .*)?$/mg;
is(scalar @zones, 2, 'both workers ran list_zones');
like($_, qr/\A(?:zone_for_backends nil|nil \S.*)\z/, "list_zones: a result or nil, err ($_)") for @zones;
my @describe = $log =~ /init_worker describe_zone: (.*?)(?:, context: .*)?$/mg;
is(scalar @describe, 2, 'both workers ran describe_zone');
# 2 peers, or 3 once worker 0 added its peer
like($_, qr/\A(?:[23] nil|nil \S.*)\z/, "describe_zone: a result or nil, err ($_)") for @describe;
my ($add) = $log =~ /init_worker add_peer: (.*?)(?:, context: .*)?$/m;
like($add // '', qr/\A(?:true nil|nil \S.*)\z/, "add_peer: true or nil, err ($add)");
my $listing = http_get('/dynamic?upstream=backends')->{body};
if (($add // '') eq 'true nil') {
    like($listing, qr/127\.0\.0\.1:${\ port(3)};/, 'add_peer said true: the peer is there');
} else {
    unlike($listing, qr/127\.0\.0\.1:${\ port(3)};/, 'add_peer refused: the peer is not there');
}
my ($update) = $log =~ /init_worker dyups\.update: (.*?)(?:, context: .*)?$/m;
like($update // '', qr/\A\d{3} \S/, "dyups.update: a status and a message ($update)");
if (($update // '') eq '200 success') {
    is(http_get('/upstream/iwhost')->{status}, 200, 'dyups.update said 200: iwhost exists');
} else {
    is(http_get('/upstream/iwhost')->{status}, 404, 'dyups.update refused: no iwhost');
}
--- no_error_log
[error]



=== TEST 7: lua_code_cache off (a new Lua VM per request): the packages load and work every time
--- modules: lua
--- http_config
lua_code_cache off;
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
location / { dyups_interface; }
location = /t {
    content_by_lua_block {
        local dynamic = require "ngx.dynamic"
        local dyups = require "ngx.dyups"
        local list = dynamic.describe_zone("backends")
        ngx.say(#list, " ", tostring(dynamic.set_peer_down("backends", "127.0.0.1:$TEST_NGINX_PORT_1", #list % 2 == 0)),
                " ", dyups.update("dyhost" .. #list, "server 127.0.0.1:$TEST_NGINX_PORT_1;"))
        ngx.say(tostring(dynamic.add_peer("backends", "127.0.0.1:" .. (30000 + #list))))
    }
}
--- perl
for my $n (2 .. 6) {
    my $r = http_get('/t');
    is($r->{body}, "$n true 200success\ntrue\n", "request " . ($n - 1) . ": a fresh VM requires and calls");
}
my @lines = split /\n/, http_get('/dynamic?upstream=backends')->{body};
is(scalar @lines, 7, 'five peers were added');
is(http_get('/list')->{body}, join('', "backends\n", map { "dyhost$_\n" } 2 .. 6), 'five upstreams were created');
--- allow_error_log
lua_code_cache is off

=== TEST 8: master_process off: init_by_lua at a reload (nginx then points ngx_cycle at the new cycle, not set up yet) is refused as at start, "not available here" (it used to reach the new cycle's upstreams with the old cycle's zones: a 507 naming bookkeeping)
--- modules: lua
--- http_config
--- config
--- perl
use POSIX ();
my ($p3, $p4) = (port(3), port(4));
my $dir = prefix() . 'single';
mkdir $_ for $dir, "$dir/logs", "$dir/conf";
NginxTest::Files::spew("$dir/conf/nginx.conf", <<"CONF");
load_module $NginxTest::MODULES_DIR/ndk_http_module.so;
load_module $NginxTest::MODULES_DIR/ngx_http_lua_module.so;
load_module $NginxTest::MODULE;
master_process off;
daemon off;
pid logs/nginx.pid;
error_log logs/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path logs; proxy_temp_path logs; fastcgi_temp_path logs; uwsgi_temp_path logs; scgi_temp_path logs;
    init_by_lua_block {
        local dynamic = require "ngx.dynamic"
        local ok, a, b = pcall(dynamic.add_peer, "backends", "127.0.0.9:1")
        ngx.log(ngx.WARN, "INIT: add_peer: ", tostring(ok), " ", tostring(a), " ", tostring(b))
    }
    upstream backends { zone backends 128k; server 127.0.0.1:$p4; }
    server { listen 127.0.0.1:$p3; location /dynamic { dynamic_upstream; } }
}
CONF
my $pid = fork // die "fork: $!";
if (!$pid) {
    open STDERR, '>', "$dir/logs/stderr.log";
    exec $NginxTest::BINARY, '-p', "$dir/", '-c', 'conf/nginx.conf', '-e', 'logs/error.log' or POSIX::_exit(1);
}
my $inits = sub { open my $fh, '<', "$dir/logs/error.log" or return wantarray ? () : 0; grep { /INIT: / } <$fh> };
ok(poll_until(sub { $inits->() == 1 }, 5, 'init_by_lua at start'), 'init_by_lua ran at start');
ok(poll_until(sub { (http_get("http://127.0.0.1:$p3/dynamic?upstream=backends")->{body} // '') eq "server 127.0.0.1:$p4;\n" },
              5, 'serving'), 'serving');
kill 'HUP', $pid;
ok(poll_until(sub { $inits->() == 2 }, 5, 'init_by_lua at the reload'), 'init_by_lua ran at the reload');
kill 'QUIT', $pid;
waitpid($pid, 0);
my @inits = $inits->();
like($inits[$_], qr/INIT: add_peer: true nil not available here: call it from a worker \(not init_by_lua\)$/,
     ('at start', 'at the reload')[$_]) for 0, 1;
my @bad = grep { /\[(crit|emerg)\]|exited on signal|\[alert\](?!.*worker_connections are not enough)/ }
          do { open my $fh, '<', "$dir/logs/error.log"; <$fh> };
is_deeply(\@bad, [], 'its error log has no alert but nginx\'s own');
