# Lua: require "ngx.dynamic" (Debian's lua module loaded before ours, no
# lua_package_path anywhere): list_zones, describe_zone, add_peer,
# remove_peer, set_peer_down, update_peer.  Results are checked against the
# HTTP query API (location /dynamic), errors must be `nil, err` and change
# nothing, and every worker sees a change on its next request.
#
# Most blocks drive Lua through `location = /lua` (TEST_NGINX_LUA_EVAL below):
# a POST body of Lua code runs in content_by_lua with `dynamic` (the
# required package), `show(...)` and `peers(zone)` in scope, and its return
# value is the answer.
#   show(...)   renders every value: strings %q-quoted, others tostring, ", "
#               between; `show(dynamic.add_peer(...))` is `true` or
#               `nil, "the reason"`.
#   peers(zone) renders describe_zone(zone) like the verbose HTTP listing:
#               `server ADDR weight=W max_fails=F fail_timeout=T[ max_conns=C][ backup][ down];`
#               per peer; any key whose type or value breaks the contract
#               shows as ` BAD(key=value)`.
use lib 't/lib';
use NginxTest;
use NginxTest::Lua;
use NginxTest::QueryApi;

$ENV{TEST_NGINX_LUA_EVAL} = lua_eval_location([dynamic => 'ngx.dynamic'], [peers => <<'LUA']);
local function peers(zone)
    local list, err = dynamic.describe_zone(zone)
    if not list then
        return "describe_zone failed: " .. show(list, err) .. "\n"
    end
    local out = {}
    for _, p in ipairs(list) do
        local bad = {}
        local line = { "server " .. tostring(p.name) }
        for _, k in ipairs({ "weight", "max_fails", "fail_timeout" }) do
            line[#line + 1] = k .. "=" .. tostring(p[k])
        end
        if p.max_conns ~= 0 then
            line[#line + 1] = "max_conns=" .. tostring(p.max_conns)
        end
        if p.backup == true then
            line[#line + 1] = "backup"
        elseif p.backup ~= false then
            bad[#bad + 1] = "backup=" .. tostring(p.backup)
        end
        if p.down == true then
            line[#line + 1] = "down"
        elseif p.down ~= nil then
            bad[#bad + 1] = "down=" .. tostring(p.down)
        end
        for _, k in ipairs({ "weight", "max_fails", "fail_timeout", "max_conns", "fails",
                             "current_weight", "effective_weight", "accessed", "checked",
                             "conns" }) do
            if type(p[k]) ~= "number" then
                bad[#bad + 1] = k .. "=" .. tostring(p[k])
            end
        end
        if type(p.name) ~= "string" then
            bad[#bad + 1] = "name=" .. tostring(p.name)
        end
        local s = table.concat(line, " ")
        for _, b in ipairs(bad) do
            s = s .. " BAD(" .. b .. ")"
        end
        out[#out + 1] = s .. ";\n"
    end
    return table.concat(out)
end
LUA

# 100 zone upstreams whose zone names (60 bytes each) add up to more than 4 KiB.
$ENV{TEST_NGINX_MANY_ZONES} = join '', map {
    my $zone = sprintf 'zone_%03d_', $_;
    $zone .= 'x' x (60 - length $zone);
    "upstream many$_ { zone $zone 64k; server 127.0.0.1:1; }\n";
} 1 .. 100;

# A default verbose line for 127.0.0.1:port(N) (or an address), plus extras.
sub line {
    my ($n, $extra) = @_;
    my $addr = $n =~ /^\d$/ ? '127.0.0.1:' . port($n) : $n;
    return "server $addr weight=1 max_fails=1 fail_timeout=10" . ($extra // '') . ";\n";
}

# The standard three-peer upstream, as both listings show it.
sub three { join '', map { line($_) } 1 .. 3 }

# refused(CODE, WANT, UPSTREAMS...): CODE (returning show(...) of one call)
# must answer WANT (string: exact; qr//: match), and then each listed
# upstream must still be three() in the HTTP listing and in describe_zone.
sub refused {
    my ($code, $want, @upstreams) = @_;
    @upstreams = ('backends') unless @upstreams;
    my $got = lua($code);
    if (ref $want) {
        like($got, $want, "refused: $code");
    } else {
        is($got, $want, "refused: $code");
    }
    for my $u (@upstreams) {
        is(verbose($u), three(), "  nothing changed in $u (HTTP listing)");
        is(lua("return peers('$u')"), three(), "  nothing changed in $u (describe_zone)");
    }
}

run_tests();
__DATA__

=== TEST 1: require "ngx.dynamic" in content_by_lua without lua_package_path
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location = /t {
    content_by_lua_block {
        local dynamic = require "ngx.dynamic"
        ngx.say(type(dynamic))
        for _, f in ipairs({ "list_zones", "describe_zone", "add_peer", "remove_peer",
                             "set_peer_down", "update_peer" }) do
            ngx.say(f, " ", type(dynamic[f]))
        end
        ngx.say(require("ngx.dynamic") == dynamic)
    }
}
--- request
GET /t
--- response_body
table
list_zones function
describe_zone function
add_peer function
remove_peer function
set_peer_down function
update_peer function
true
--- perl
main::no_package_path();
--- no_error_log
[error]



=== TEST 2: list_zones: the zone names of the upstreams that have a zone
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream plain {
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream other {
    zone other_zone 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
upstream iph {
    ip_hash;
    zone iph 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location = /t {
    content_by_lua_block {
        local dynamic = require "ngx.dynamic"
        local zones, err = dynamic.list_zones()
        ngx.say(type(zones), " ", tostring(err))
        ngx.say(#zones)
        table.sort(zones)
        ngx.say(table.concat(zones, ","))
    }
}
--- request
GET /t
--- response_body
table nil
3
iph,other_zone,zone_for_backends
--- no_error_log
[error]



=== TEST 3: list_zones with no zone upstream: an empty array
--- modules: lua
--- http_config
upstream plain {
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location = /t {
    content_by_lua_block {
        local dynamic = require "ngx.dynamic"
        local zones, err = dynamic.list_zones()
        ngx.say(type(zones), " ", tostring(err), " ", type(zones) == "table" and #zones or "-")
    }
}
--- request
GET /t
--- response_body
table nil 0
--- no_error_log
[error]



=== TEST 4: list_zones: 100 zones whose names add up to more than 4 KiB
--- modules: lua
--- http_config
$TEST_NGINX_MANY_ZONES
--- config
location = /t {
    content_by_lua_block {
        local dynamic = require "ngx.dynamic"
        local zones, err = dynamic.list_zones()
        if not zones then
            ngx.say("nil ", err)
            return
        end
        table.sort(zones)
        ngx.say(#zones, " ", #table.concat(zones, "\n"))
        ngx.say(zones[1])
        ngx.say(zones[100])
        local list, derr = dynamic.describe_zone(zones[100])
        ngx.say(list and list[1].name or derr)
    }
}
--- request
GET /t
--- response_body eval
"100 6099\nzone_001_" . ('x' x 51) . "\nzone_100_" . ('x' x 51) . "\n127.0.0.1:1\n"
--- no_error_log
[error]



=== TEST 5: describe_zone: every field, for configured peers with parameters, by zone or upstream name
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 weight=3 max_fails=2 fail_timeout=5s max_conns=7;
    server 127.0.0.1:$TEST_NGINX_PORT_2 down;
    server 127.0.0.1:$TEST_NGINX_PORT_3 backup;
}
--- config
location = /t {
    content_by_lua_block {
        local dynamic = require "ngx.dynamic"
        local function dump(zone)
            local list, err = dynamic.describe_zone(zone)
            if not list then
                ngx.say("error: ", err)
                return
            end
            ngx.say(zone, ": ", #list, " peers")
            for i, p in ipairs(list) do
                local keys = {}
                for k in pairs(p) do
                    keys[#keys + 1] = k
                end
                table.sort(keys)
                local out = {}
                for _, k in ipairs(keys) do
                    out[#out + 1] = k .. "=" .. tostring(p[k]) .. "(" .. type(p[k]) .. ")"
                end
                ngx.say(i, " ", table.concat(out, " "))
            end
        end
        dump("zone_for_backends")
        dump("backends")
    }
}
--- request
GET /t
--- response_body
zone_for_backends: 3 peers
1 accessed=0(number) backup=false(boolean) checked=0(number) conns=0(number) current_weight=0(number) effective_weight=3(number) fail_timeout=5(number) fails=0(number) max_conns=7(number) max_fails=2(number) name=127.0.0.1:$TEST_NGINX_PORT_1(string) weight=3(number)
2 accessed=0(number) backup=false(boolean) checked=0(number) conns=0(number) current_weight=0(number) down=true(boolean) effective_weight=1(number) fail_timeout=10(number) fails=0(number) max_conns=0(number) max_fails=1(number) name=127.0.0.1:$TEST_NGINX_PORT_2(string) weight=1(number)
3 accessed=0(number) backup=true(boolean) checked=0(number) conns=0(number) current_weight=0(number) effective_weight=1(number) fail_timeout=10(number) fails=0(number) max_conns=0(number) max_fails=1(number) name=127.0.0.1:$TEST_NGINX_PORT_3(string) weight=1(number)
backends: 3 peers
1 accessed=0(number) backup=false(boolean) checked=0(number) conns=0(number) current_weight=0(number) effective_weight=3(number) fail_timeout=5(number) fails=0(number) max_conns=7(number) max_fails=2(number) name=127.0.0.1:$TEST_NGINX_PORT_1(string) weight=3(number)
2 accessed=0(number) backup=false(boolean) checked=0(number) conns=0(number) current_weight=0(number) down=true(boolean) effective_weight=1(number) fail_timeout=10(number) fails=0(number) max_conns=0(number) max_fails=1(number) name=127.0.0.1:$TEST_NGINX_PORT_2(string) weight=1(number)
3 accessed=0(number) backup=true(boolean) checked=0(number) conns=0(number) current_weight=0(number) effective_weight=1(number) fail_timeout=10(number) fails=0(number) max_conns=0(number) max_fails=1(number) name=127.0.0.1:$TEST_NGINX_PORT_3(string) weight=1(number)
--- no_error_log
[error]



=== TEST 6: describe_zone follows traffic: fails, accessed and checked after a failed peer
--- modules: lua
--- workers: 1
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=5;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=5;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    return 200 "$server_port\n";
}
--- config
location / { proxy_pass http://backends; }
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
# port 2 has no listener: the first request that picks it fails over to port 1
my ($p1, $p2) = (port(1), port(2));
my $code = <<"LUA";
for _, p in ipairs(dynamic.describe_zone("backends")) do
    if p.name == "127.0.0.1:$p2" then
        return string.format("fails=%d accessed>0=%s checked>0=%s", p.fails, tostring(p.accessed > 0),
                             tostring(p.checked > 0))
    end
end
return "no peer"
LUA
is(main::lua($code), 'fails=0 accessed>0=false checked>0=false', 'before traffic');
is(http_get('/')->{body}, "$p1\n", 'request 1 answered by the live peer');
is(http_get('/')->{body}, "$p1\n", 'request 2 answered by the live peer');
is(main::lua($code), 'fails=1 accessed>0=true checked>0=true', 'the dead peer failed once');
is(main::lua(qq{local l = dynamic.describe_zone("backends") return l[1].name .. " " .. l[1].fails}), "127.0.0.1:$p1 0",
   'the live peer has no failures');
--- error_log
connect() failed



=== TEST 7: describe_zone errors: unknown zone, upstream without zone, non-string zone
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
upstream plain {
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
is(main::lua('return show(dynamic.describe_zone("nope"))'), 'nil, "upstream \"nope\" not found"', 'unknown zone');
is(main::lua('return show(dynamic.describe_zone("Zone_For_Backends"))'), 'nil, "upstream \"Zone_For_Backends\" not found"',
   'names are case-sensitive');
like(main::lua('return show(dynamic.describe_zone(""))'), qr/\Anil, "[^"]/, 'empty name: nil, err');
like(main::lua('return show(dynamic.describe_zone("plain"))'), qr/\Anil, "upstream \\"plain\\" has no zone/, 'no zone: nil, err');
for my $arg ('nil', '42', '{}', 'true', 'function() end') {
    like(main::lua("return show(dynamic.describe_zone($arg))"), qr/\Anil, ".+"\z/, "describe_zone($arg): nil, err");
}
like(main::lua('return show(dynamic.describe_zone())'), qr/\Anil, ".+"\z/, 'describe_zone(): nil, err');
is(main::verbose('backends'), main::three(), 'nothing changed');
--- no_error_log
[error]



=== TEST 8: add_peer, positional arguments: defaults, then weight / max_fails / fail_timeout / down
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p4, $p5, $p6, $p7) = map { port($_) } 4 .. 7;
is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p4"))}), 'true', 'add with defaults');
is(main::lua(qq{return show(dynamic.add_peer("zone_for_backends", "127.0.0.1:$p5", 5))}), 'true', 'add with a weight (zone name)');
is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p6", 2, 3, 20))}), 'true', 'add with weight, max_fails, fail_timeout');
is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p7", 1, 0, 0, true))}), 'true', 'add down, max_fails=0, fail_timeout=0');
my $want = main::three() . main::line(4)
         . "server 127.0.0.1:$p5 weight=5 max_fails=1 fail_timeout=10;\n"
         . "server 127.0.0.1:$p6 weight=2 max_fails=3 fail_timeout=20;\n"
         . "server 127.0.0.1:$p7 weight=1 max_fails=0 fail_timeout=0 down;\n";
is(main::verbose('backends'), $want, 'the HTTP listing shows the four new peers');
is(main::lua('return peers("backends")'), $want, 'describe_zone shows them too');
is(main::lua('return peers("zone_for_backends")'), $want, 'describe_zone by zone name as well');
is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.2:$p4", nil, nil, nil, false))}), 'true',
   'explicit nils and down=false: defaults, up');
is(main::lua(qq{return peers("backends")}), $want . "server 127.0.0.2:$p4 weight=1 max_fails=1 fail_timeout=10;\n",
   'added up with defaults');
--- no_error_log
[error]



=== TEST 9: add_peer, options table: weight, max_fails, fail_timeout, max_conns, down, backup
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p4, $p5, $p6, $p7) = map { port($_) } 4 .. 7;
is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p4", {}))}), 'true', 'empty table');
is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p5",
    { weight = 4, max_fails = 6, fail_timeout = 30, max_conns = 100 }))}), 'true', 'all numbers');
is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p6", { backup = true, max_conns = 9 }))}), 'true',
   'a backup');
is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p7", { down = true, weight = 2 }))}), 'true',
   'down');
my $want = main::three() . main::line(4)
         . "server 127.0.0.1:$p5 weight=4 max_fails=6 fail_timeout=30 max_conns=100;\n"
         . "server 127.0.0.1:$p7 weight=2 max_fails=1 fail_timeout=10 down;\n"
         . "server 127.0.0.1:$p6 weight=1 max_fails=1 fail_timeout=10 max_conns=9 backup;\n";
is(main::verbose('backends'), $want, 'the HTTP listing: primaries, then the backup');
is(main::lua('return peers("backends")'), $want, 'describe_zone: the same');
is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.2:$p4", { backup = true, down = true }))}), 'true',
   'a down backup');
is(main::lua('return peers("backends")'), $want . "server 127.0.0.2:$p4 weight=1 max_fails=1 fail_timeout=10 backup down;\n",
   'describe_zone: two backups');
--- no_error_log
[error]



=== TEST 10: addresses as the HTTP API takes them: IPv6, unix sockets, the default port 80
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my $p4 = port(4);
my $sock = prefix() . 'data/peer.sock';
is(main::lua(qq{return show(dynamic.add_peer("backends", "[::1]:$p4"))}), 'true', 'IPv6');
is(main::lua(qq{return show(dynamic.add_peer("backends", "unix:$sock", 3))}), 'true', 'unix socket');
is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.3"))}), 'true', 'no port');
my $want = main::three() . main::line("[::1]:$p4") . "server unix:$sock weight=3 max_fails=1 fail_timeout=10;\n"
         . main::line('127.0.0.3:80');
is(main::verbose('backends'), $want, 'the HTTP listing');
is(main::lua('return peers("backends")'), $want, 'describe_zone: the same names');
is(main::lua(qq{return show(dynamic.set_peer_down("backends", "unix:$sock", true))}), 'true', 'a unix peer down');
is(main::lua(qq{return show(dynamic.update_peer("backends", "127.0.0.3:80", { weight = 2 }))}), 'true', 'port 80 named explicitly');
is(main::lua(qq{return show(dynamic.remove_peer("backends", "[::1]:$p4"))}), 'true', 'remove the IPv6 peer');
is(main::lua(qq{return show(dynamic.remove_peer("backends", "127.0.0.3"))}), 'true', 'remove by the address without port');
is(main::verbose('backends'), main::three() . "server unix:$sock weight=3 max_fails=1 fail_timeout=10 down;\n",
   'the HTTP listing after the changes');
like(main::lua(qq{return show(dynamic.add_peer("backends", "[::1]:$p4", 0))}), qr/\Anil, "weight must be/, 'IPv6: still validated');
--- no_error_log
[error]



=== TEST 11: remove_peer: added and configured peers, primaries and backups
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
    server 127.0.0.1:$TEST_NGINX_PORT_8 backup;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2, $p3, $p4, $p8) = map { port($_) } 1 .. 4, 8;
is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p4"))}), 'true', 'add');
is(main::lua(qq{return show(dynamic.remove_peer("backends", "127.0.0.1:$p4"))}), 'true', 'remove the added peer');
is(main::verbose('backends'), main::three() . main::line(8, ' backup'), 'gone');
is(main::lua(qq{return show(dynamic.remove_peer("zone_for_backends", "127.0.0.1:$p2"))}), 'true', 'remove a configured peer (zone name)');
is(main::verbose('backends'), main::line(1) . main::line(3) . main::line(8, ' backup'), 'gone');
is(main::lua(qq{return show(dynamic.remove_peer("backends", "127.0.0.1:$p8"))}), 'true', 'remove the backup');
is(main::verbose('backends'), main::line(1) . main::line(3), 'gone');
is(main::lua('return peers("backends")'), main::line(1) . main::line(3), 'describe_zone agrees');
is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p2", 7))}), 'true', 'a removed peer can be added again');
is(main::lua('return peers("backends")'), main::line(1) . main::line(3) . "server 127.0.0.1:$p2 weight=7 max_fails=1 fail_timeout=10;\n",
   'with its new parameters');
--- no_error_log
[error]



=== TEST 12: set_peer_down: true marks down, false marks up
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
is(main::lua(qq{return show(dynamic.set_peer_down("backends", "127.0.0.1:$p2", true))}), 'true', 'down');
my $down = main::line(1) . main::line(2, ' down') . main::line(3);
is(main::verbose('backends'), $down, 'the HTTP listing shows it down');
is(main::lua('return peers("backends")'), $down, 'describe_zone too (down = true)');
is(main::lua(qq{return show(dynamic.set_peer_down("backends", "127.0.0.1:$p2", true))}), 'true', 'down again: still fine');
is(main::verbose('backends'), $down, 'still down');
is(main::lua(qq{return show(dynamic.set_peer_down("zone_for_backends", "127.0.0.1:$p2", false))}), 'true', 'up (zone name)');
is(main::verbose('backends'), main::three(), 'the HTTP listing shows it up');
is(main::lua(qq{for _, p in ipairs(dynamic.describe_zone("backends")) do
                    if p.name == "127.0.0.1:$p2" then return show(p.down) end end}), 'nil', 'an up peer has no down key');
is(main::lua(qq{return show(dynamic.set_peer_down("backends", "127.0.0.1:$p2", false))}), 'true', 'up again: still fine');
is(main::verbose('backends'), main::three(), 'still up');
is(main::lua(qq{return show(dynamic.set_peer_down("backends", "127.0.0.1:$p1", true))}), 'true', 'one down');
is(main::lua(qq{return show(dynamic.set_peer_down("backends", "127.0.0.1:$p3", true))}), 'true', 'another down');
is(main::verbose('backends'), main::line(1, ' down') . main::line(2) . main::line(3, ' down'), 'two down');
--- no_error_log
[error]



=== TEST 13: update_peer: weight, max_fails, fail_timeout, max_conns, down, any subset
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
    server 127.0.0.1:$TEST_NGINX_PORT_4 backup;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
is(main::lua(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p1",
    { weight = 10, max_fails = 3, fail_timeout = 30, max_conns = 50 }))}), 'true', 'every number');
is(main::lua(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p2", { weight = 2 }))}), 'true', 'weight only');
is(main::lua(qq{return show(dynamic.update_peer("zone_for_backends", "127.0.0.1:$p3", { down = true, max_fails = 0 }))}),
   'true', 'down and max_fails (zone name)');
is(main::lua(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p4", { fail_timeout = 7, down = true }))}),
   'true', 'a backup');
my $want = "server 127.0.0.1:$p1 weight=10 max_fails=3 fail_timeout=30 max_conns=50;\n"
         . "server 127.0.0.1:$p2 weight=2 max_fails=1 fail_timeout=10;\n"
         . "server 127.0.0.1:$p3 weight=1 max_fails=0 fail_timeout=10 down;\n"
         . "server 127.0.0.1:$p4 weight=1 max_fails=1 fail_timeout=7 backup down;\n";
is(main::verbose('backends'), $want, 'the HTTP listing');
is(main::lua('return peers("backends")'), $want, 'describe_zone');
is(main::lua(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p3", { down = false }))}), 'true', 'down = false: up');
is(main::lua(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p1", { max_conns = 0 }))}), 'true', 'max_conns = 0');
$want = "server 127.0.0.1:$p1 weight=10 max_fails=3 fail_timeout=30;\n"
      . "server 127.0.0.1:$p2 weight=2 max_fails=1 fail_timeout=10;\n"
      . "server 127.0.0.1:$p3 weight=1 max_fails=0 fail_timeout=10;\n"
      . "server 127.0.0.1:$p4 weight=1 max_fails=1 fail_timeout=7 backup down;\n";
is(main::verbose('backends'), $want, 'the HTTP listing after up and max_conns=0');
is(main::lua(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p2", {}))}), 'true', 'empty options: nothing to change');
is(main::verbose('backends'), $want, 'nothing changed');
--- no_error_log
[error]



=== TEST 14: refused weight / max_fails / fail_timeout / max_conns: nil, the HTTP API's reason; nothing changes
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p3, $p4) = (port(3), port(4));
my %reason = (
    weight       => 'weight must be an integer from 1 to 1000000',
    max_fails    => 'max_fails must be an integer from 0 to 1000000',
    max_conns    => 'max_conns must be an integer from 0 to 1000000',
    fail_timeout => 'fail_timeout must be a number of seconds from 0 to 31536000',
);
my %bad = (
    weight       => ['0', '-1', '1.5', '1000001', '1e20', '1/0', '0/0'],
    max_fails    => ['-1', '1.5', '1000001', '1e20', '1/0'],
    max_conns    => ['-1', '0.5', '1000001', '1e20', '-1/0'],
    fail_timeout => ['-1', '1.5', '31536001', '1e20', '1/0'],
);
for my $param (sort keys %bad) {
    for my $v (@{ $bad{$param} }) {
        my $want = qq{nil, "$reason{$param}"};
        main::refused(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p4", { $param = $v }))}, $want);
        main::refused(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p3", { $param = $v }))}, $want);
    }
}
# positional arguments
main::refused(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p4", 0))}, qq{nil, "$reason{weight}"});
main::refused(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p4", 1, -1))}, qq{nil, "$reason{max_fails}"});
main::refused(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p4", 1, 1, 31536001))}, qq{nil, "$reason{fail_timeout}"});
# a valid option next to a bad one changes nothing either
main::refused(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p3", { weight = 5, max_fails = -1 }))},
              qq{nil, "$reason{max_fails}"});
main::refused(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p3", { down = true, weight = 0 }))},
              qq{nil, "$reason{weight}"});
main::refused(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p3", { max_conns = 5, fail_timeout = -3 }))},
              qq{nil, "$reason{fail_timeout}"});
# values that are not numbers
for my $v ('"abc"', '{}', 'true') {
    main::refused(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p4", { weight = $v }))}, qr/\Anil, ".*weight.*"\z/);
    main::refused(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p3", { max_conns = $v }))}, qr/\Anil, ".*max_conns.*"\z/);
}
main::refused(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p4", "abc"))}, qr/\Anil, ".*weight.*"\z/);
--- no_error_log
[error]



=== TEST 15: refused adds, removes and changes: existing peer, unknown peer, unknown zone, host names, bad addresses
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p2, $p3, $p9) = map { port($_) } 2, 3, 9;
# an existing peer
my $exists = qq{nil, "server 127.0.0.1:$p2 already exists in upstream \\"backends\\""};
main::refused(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p2"))}, $exists);
main::refused(qq{return show(dynamic.add_peer("zone_for_backends", "127.0.0.1:$p2", 9, 2, 3, true))}, $exists);
main::refused(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p2", { backup = true }))}, $exists);
# a peer that is not there
my $missing = qq{nil, "server 127.0.0.1:$p9 is not in upstream \\"backends\\""};
main::refused(qq{return show(dynamic.remove_peer("backends", "127.0.0.1:$p9"))}, $missing);
main::refused(qq{return show(dynamic.set_peer_down("backends", "127.0.0.1:$p9", true))}, $missing);
main::refused(qq{return show(dynamic.set_peer_down("backends", "127.0.0.1:$p9", false))}, $missing);
main::refused(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p9", { weight = 2 }))}, $missing);
main::refused(qq{return show(dynamic.update_peer("zone_for_backends", "127.0.0.1:$p9", { down = true }))}, $missing);
main::refused(qq{return show(dynamic.remove_peer("backends", "127.0.0.2:$p2"))},
              qq{nil, "server 127.0.0.2:$p2 is not in upstream \\"backends\\""});
# an unknown zone
my $nope = 'nil, "upstream \"nope\" not found"';
main::refused(qq{return show(dynamic.add_peer("nope", "127.0.0.1:$p9"))}, $nope);
main::refused(qq{return show(dynamic.remove_peer("nope", "127.0.0.1:$p2"))}, $nope);
main::refused(qq{return show(dynamic.set_peer_down("nope", "127.0.0.1:$p2", true))}, $nope);
main::refused(qq{return show(dynamic.update_peer("nope", "127.0.0.1:$p2", { weight = 2 }))}, $nope);
# host names
for my $host ('localhost:80', 'example.com', 'backend-1.example.org:8080') {
    main::refused(qq{return show(dynamic.add_peer("backends", "$host"))}, qr/\Anil, ".*host name/);
    main::refused(qq{return show(dynamic.add_peer("backends", "$host", { backup = true }))}, qr/\Anil, ".*host name/);
    main::refused(qq{return show(dynamic.remove_peer("backends", "$host"))}, qr/\Anil, ".*host name/);
    main::refused(qq{return show(dynamic.set_peer_down("backends", "$host", true))}, qr/\Anil, ".*host name/);
    main::refused(qq{return show(dynamic.update_peer("backends", "$host", { weight = 3 }))}, qr/\Anil, ".*host name/);
}
# malformed addresses and ports
for my $addr ('127.0.0.1:0', '127.0.0.1:65536', '127.0.0.1:', '1.2.3', '256.1.1.1:80', '[::1', 'unix:', '') {
    main::refused(qq{return show(dynamic.add_peer("backends", "$addr"))}, qr/\Anil, ".+"\z/);
    main::refused(qq{return show(dynamic.set_peer_down("backends", "$addr", true))}, qr/\Anil, ".+"\z/);
}
main::refused(qq{return show(dynamic.add_peer("backends", "127.0.0.1:0"))}, qr/\Anil, ".*port/);
--- no_error_log
[error]



=== TEST 16: refused: removing the last primary, backup on ip_hash, an upstream without zone
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
upstream single {
    zone single 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
}
upstream iph {
    ip_hash;
    zone iph 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
upstream plain {
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2, $p4) = map { port($_) } 1, 2, 4;
my $single = main::line(1) . main::line(2, ' backup');
is(main::lua(qq{return show(dynamic.remove_peer("single", "127.0.0.1:$p1"))}),
   qq{nil, "server 127.0.0.1:$p1 is the last primary server of upstream \\"single\\" and cannot be removed"},
   'the last primary: exact reason');
like(main::lua(qq{return show(dynamic.remove_peer("single", "127.0.0.1:$p1"))}), qr/last primary/, 'last primary');
is(main::verbose('single'), $single, 'single unchanged (HTTP)');
is(main::lua('return peers("single")'), $single, 'single unchanged (describe_zone)');
is(main::lua(qq{return show(dynamic.set_peer_down("single", "127.0.0.1:$p1", true))}), 'true', 'it can be marked down');
like(main::lua(qq{return show(dynamic.remove_peer("single", "127.0.0.1:$p1"))}), qr/\Anil, ".*last primary/, 'still the last primary when down');
is(main::verbose('single'), main::line(1, ' down') . main::line(2, ' backup'), 'single still has it');
# backup on ip_hash
main::refused(qq{return show(dynamic.add_peer("iph", "127.0.0.1:$p4", { backup = true }))},
              qr/\Anil, ".*does not allow backup/, 'iph');
main::refused(qq{return show(dynamic.add_peer("iph", "127.0.0.1:$p4", { backup = true }))},
              qq{nil, "upstream \\"iph\\" uses the ip_hash balancer, which does not allow backup servers"}, 'iph');
# an upstream without a zone
for my $code (qq{dynamic.add_peer("plain", "127.0.0.1:$p4")}, qq{dynamic.remove_peer("plain", "127.0.0.1:$p2")},
              qq{dynamic.set_peer_down("plain", "127.0.0.1:$p2", true)},
              qq{dynamic.update_peer("plain", "127.0.0.1:$p2", { weight = 4 })}) {
    main::refused("return show($code)", qr/\Anil, "upstream \\"plain\\" has no zone/);
}
is(http_get('/dynamic?upstream=backends')->{status}, 200, 'the API still works');
--- no_error_log
[error]



=== TEST 17: refused: arguments of the wrong type come back as nil, err (no Lua error, no crash)
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p2, $p4) = (port(2), port(4));
my $err = qr/\Anil, ".+"\z/;
for my $zone ('nil', '42', '{}', 'true', 'ngx.null') {
    main::refused(qq{return show(dynamic.add_peer($zone, "127.0.0.1:$p4"))}, $err);
    main::refused(qq{return show(dynamic.add_peer($zone, "127.0.0.1:$p4", { weight = 2 }))}, $err);
    main::refused(qq{return show(dynamic.remove_peer($zone, "127.0.0.1:$p2"))}, $err);
    main::refused(qq{return show(dynamic.set_peer_down($zone, "127.0.0.1:$p2", true))}, $err);
    main::refused(qq{return show(dynamic.update_peer($zone, "127.0.0.1:$p2", { weight = 2 }))}, $err);
    main::refused(qq{return show(dynamic.describe_zone($zone))}, $err);
}
for my $server ('nil', '42', '{}', 'false') {
    main::refused(qq{return show(dynamic.add_peer("backends", $server))}, $err);
    main::refused(qq{return show(dynamic.remove_peer("backends", $server))}, $err);
    main::refused(qq{return show(dynamic.set_peer_down("backends", $server, true))}, $err);
    main::refused(qq{return show(dynamic.update_peer("backends", $server, { weight = 2 }))}, $err);
}
main::refused(qq{return show(dynamic.add_peer())}, $err);
main::refused(qq{return show(dynamic.remove_peer("backends"))}, $err);
main::refused(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p2", "weight=2"))}, $err);
# very long strings
main::refused(q{return show(dynamic.add_peer("backends", string.rep("1", 100000)))}, $err);
main::refused(q{return show(dynamic.add_peer(string.rep("z", 100000), "127.0.0.1:1"))}, $err);
main::refused(q{return show(dynamic.describe_zone(string.rep("z", 100000)))}, $err);
main::refused(q{return show(dynamic.add_peer("backends", "unix:/" .. string.rep("s", 5000)))}, $err);
main::refused(qq{return show(dynamic.add_peer("backends\\0", "127.0.0.1:$p4"))}, $err);
main::refused(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p4\\0junk"))}, $err);
--- no_error_log
[error]



=== TEST 18: more than 64 peers: describe_zone lists them all
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 256k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my $code = <<'LUA';
for i = 1, 100 do
    local ok, err = dynamic.add_peer("backends", "127.0.0.2:" .. (1000 + i), { weight = i })
    if not ok then return "add " .. i .. ": " .. tostring(err) end
end
local list = dynamic.describe_zone("backends")
local names = {}
for i = 4, #list do
    if list[i].name ~= "127.0.0.2:" .. (1000 + i - 3) or list[i].weight ~= i - 3 then
        return "peer " .. i .. " is " .. list[i].name
    end
end
return #list
LUA
is(main::lua($code), '103', '103 peers');
my @lines = split /\n/, main::verbose('backends');
is(scalar @lines, 103, 'the HTTP listing has 103 too');
is($lines[-1], 'server 127.0.0.2:1100 weight=100 max_fails=1 fail_timeout=10;', 'the last one');
is(main::lua('return #dynamic.describe_zone("backends") .. " " .. #dynamic.list_zones()'), '103 1', 'again');
--- no_error_log
[error]



=== TEST 19: four workers: add_peer is seen by describe_zone in every worker, and traffic follows set_peer_down
--- modules: lua
--- workers: 4
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    add_header X-Worker $pid always;
    location / { proxy_pass http://backends; }
    location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
my $via = port(9);

# Runs CODE through the reuseport server until every worker answered
# (at most 400 requests); every answer must be WANT.
my $everywhere = sub {
    my ($code, $want, $what) = @_;
    my %workers = map { $_ => 0 } worker_pids();
    my $bad = 0;
    for (1 .. 400) {
        my $r = http('POST', "http://127.0.0.1:$via/lua", $code);
        $workers{ $r->{headers}{'x-worker'} // 'none' }++;
        $bad++, diag("worker " . ($r->{headers}{'x-worker'} // '?') . " answered $r->{status}: $r->{body}")
            if $r->{status} != 200 || $r->{body} ne $want;
        last if $bad > 3 || !grep { !$workers{$_} } worker_pids();
    }
    is($bad, 0, "$what: every answer as expected");
    is(scalar(grep { $workers{$_} } worker_pids()), 4, "$what: all 4 workers answered") or diag(explain(\%workers));
};
# Proxied requests through the reuseport server: { port => count }.
my $spread = sub {
    my ($n) = @_;
    my %seen;
    for (1 .. $n) {
        my $r = http_get("http://127.0.0.1:$via/");
        $seen{ $r->{status} == 200 ? $r->{body} =~ s/\n\z//r : "status $r->{status}" }++;
    }
    return \%seen;
};

is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p4", 2))}, $via), 'true', 'add_peer in one worker');
my $want = main::three() . "server 127.0.0.1:$p4 weight=2 max_fails=1 fail_timeout=10;\n";
$everywhere->('return peers("backends")', $want, 'add_peer');
my $s = $spread->(50);
is_deeply($s, { $p1 => 10, $p2 => 10, $p3 => 10, $p4 => 20 }, 'the added peer gets its share (weight 2) from all workers')
    or diag(explain($s));

is(main::lua(qq{return show(dynamic.set_peer_down("backends", "127.0.0.1:$p2", true))}, $via), 'true', 'set_peer_down');
$want = main::line(1) . main::line(2, ' down') . main::line(3) . "server 127.0.0.1:$p4 weight=2 max_fails=1 fail_timeout=10;\n";
$everywhere->('return peers("backends")', $want, 'set_peer_down');
$s = $spread->(60);
ok(!exists $s->{$p2}, 'no proxied request reaches the down peer') or diag(explain($s));
is_deeply($s, { $p1 => 15, $p3 => 15, $p4 => 30 }, 'the others share it all') or diag(explain($s));

is(main::lua(qq{return show(dynamic.update_peer("backends", "127.0.0.1:$p4", { weight = 1 }))}, $via), 'true', 'update_peer');
is(main::lua(qq{return show(dynamic.remove_peer("backends", "127.0.0.1:$p1"))}, $via), 'true', 'remove_peer');
$want = main::line(2, ' down') . main::line(3) . main::line(4);
$everywhere->('return peers("backends")', $want, 'update_peer and remove_peer');
$s = $spread->(40);
is_deeply($s, { $p3 => 20, $p4 => 20 }, 'traffic: only the two up peers left') or diag(explain($s));

is(main::lua(qq{return show(dynamic.set_peer_down("backends", "127.0.0.1:$p2", false))}, $via), 'true', 'set_peer_down false');
$everywhere->('return peers("backends")', main::line(2) . main::line(3) . main::line(4), 'up again');
$s = $spread->(30);
is_deeply($s, { $p2 => 10, $p3 => 10, $p4 => 10 }, 'traffic: the peer is back') or diag(explain($s));
is(main::verbose('backends'), main::line(2) . main::line(3) . main::line(4), 'the HTTP API agrees');
--- no_error_log
[error]



=== TEST 20: the Lua calls and the HTTP API edit the same peers
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p2, $p4) = (port(2), port(4));
is(http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$p4&weight=3")->{status}, 200, 'HTTP add');
is(main::lua('return peers("backends")'), main::three() . "server 127.0.0.1:$p4 weight=3 max_fails=1 fail_timeout=10;\n",
   'describe_zone sees the HTTP add');
like(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p4"))}), qr/already exists/, 'Lua cannot add it again');
is(main::lua(qq{return show(dynamic.remove_peer("backends", "127.0.0.1:$p4"))}), 'true', 'Lua removes it');
is(http_get("/dynamic?upstream=backends&remove=&server=127.0.0.1:$p4")->{status}, 400, 'HTTP: it is gone');
is(main::lua(qq{return show(dynamic.set_peer_down("backends", "127.0.0.1:$p2", true))}), 'true', 'Lua down');
is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p2&up=")->{status}, 200, 'HTTP up');
is(main::lua('return peers("backends")'), main::three(), 'describe_zone sees it up');
--- no_error_log
[error]

=== TEST 21: option tables are checked as the query-string API checks its arguments: an unknown key, backup on an update, a flag that is not a boolean are refused and change nothing (hunt 31: a typo was ignored, backup on an update ignored, and down = 0 or set_peer_down(..., "false") marked the peer down)
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p2, $p4) = (port(2), port(4));
my $s2 = "127.0.0.1:$p2";
my @refused = (
    [qq{dynamic.update_peer("backends", "$s2", { wieght = 5 })}, 'nil, "unknown parameter wieght"'],
    [qq{dynamic.update_peer("backends", "$s2", { weight = 2, [1] = 3 })}, 'nil, "unknown parameter 1"'],
    [qq{dynamic.update_peer("backends", "$s2", { backup = true })},
     'nil, "backup is only accepted with add (a peer cannot move between lists)"'],
    [qq{dynamic.update_peer("backends", "$s2", { down = 0 })}, 'nil, "down must be a boolean"'],
    [qq{dynamic.set_peer_down("backends", "$s2", "false")}, 'nil, "down must be a boolean"'],
    [qq{dynamic.add_peer("backends", "127.0.0.1:$p4", { down = 0 })}, 'nil, "down must be a boolean"'],
    [qq{dynamic.add_peer("backends", "127.0.0.1:$p4", { backup = "no" })}, 'nil, "backup must be a boolean"'],
    [qq{dynamic.add_peer("backends", "127.0.0.1:$p4", 1, 1, 10, "yes")}, 'nil, "down must be a boolean"'],
);
for my $case (@refused) {
    my ($call, $want) = @$case;
    is(main::lua("return show($call)"), $want, $call);
}
is(main::lua('return peers("backends")'), main::three(), 'nothing changed');
is(http_get("/dynamic?upstream=backends&server=$s2&wieght=5")->{body},
   "400 Bad Request: unknown parameter wieght\n", 'the query-string API\'s answer to the same typo');
is(main::lua(qq{return show(dynamic.update_peer("backends", "$s2", { down = false, weight = 2 }))}), 'true', 'booleans are taken');
is(main::lua(qq{return show(dynamic.add_peer("backends", "127.0.0.1:$p4", { backup = true, down = false }))}), 'true',
   'backup on an add is taken');
is(main::lua('return peers("backends")'),
   "server 127.0.0.1:" . port(1) . " weight=1 max_fails=1 fail_timeout=10;\nserver $s2 weight=2 max_fails=1 fail_timeout=10;\n"
   . "server 127.0.0.1:" . port(3) . " weight=1 max_fails=1 fail_timeout=10;\nserver 127.0.0.1:$p4 weight=1 max_fails=1 fail_timeout=10 backup;\n",
   'the accepted changes');

=== TEST 22: list_zones lists the zones describe_zone takes: once each (the first upstream that has it), not one whose upstream the REST API took over (hunt 31, review 29: list_zones listed zones describe_zone refused, a shared zone twice)
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream other {
    zone zone_for_other 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream first {
    zone shared 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
upstream second {
    zone shared 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_4;
}
--- config
location /upstream/ { dyups_interface; }
$TEST_NGINX_LUA_EVAL
--- perl
is(main::lua('return table.concat(dynamic.list_zones(), " ")'), 'zone_for_backends zone_for_other shared', 'each zone once');
is(http('POST', '/upstream/backends', 'server 127.0.0.1:' . port(3) . ';')->{status}, 200, 'the REST API takes backends over');
is(http('POST', '/upstream/first', 'server 127.0.0.1:' . port(3) . ';')->{status}, 200, '  and first');
is(main::lua('return table.concat(dynamic.list_zones(), " ")'), 'zone_for_other', 'their zones are no longer listed');
like(main::lua('return show(dynamic.describe_zone("zone_for_backends"))'), qr/^nil, "upstream \\"zone_for_backends\\" is managed through the REST API/,
     '  which describe_zone refuses');
like(main::lua('return show(dynamic.describe_zone("shared"))'), qr/^nil, "upstream \\"shared\\" is managed through the REST API/,
     '  the shared one too (its first upstream was taken over)');
is(main::lua('return show(dynamic.update_peer("zone_for_other", "127.0.0.1:' . port(2) . '", '
             . '{ [setmetatable({}, { __tostring = function() return 1 end })] = 1 }))'),
   'nil, "unknown parameter (table)"', 'an option key that is not a string or a number: named by its type (its __tostring raised)');
