# The dyups C API (ngx_dyups_update_upstream, ngx_dyups_delete_upstream,
# ngx_http_dyups_api_enable), called as another module would: here through
# LuaJIT's FFI, since nginx loads modules with global symbol visibility.
use lib 't/lib';
use NginxTest;
run_tests();
__DATA__

=== TEST 1: update and delete through the C API, seen by the REST API and by proxying
--- modules: lua
--- http_config
init_by_lua_block {
    local ffi = require "ffi"
    ffi.cdef[[
        typedef struct { size_t len; unsigned char *data; } ngx_str_t;
        typedef struct { unsigned char *pos; unsigned char *last; } ngx_buf_prefix_t;
        intptr_t ngx_http_dyups_api_enable;
        intptr_t ngx_dyups_update_upstream(ngx_str_t *name, ngx_buf_prefix_t *buf, ngx_str_t *rv);
        intptr_t ngx_dyups_delete_upstream(ngx_str_t *name, ngx_str_t *rv);
    ]]
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    location / { proxy_pass http://$host; }
}
--- config
location /list { dyups_interface; }
location /c/update {
    content_by_lua_block {
        local ffi = require "ffi"
        local name, body = ngx.var.arg_name, ngx.unescape_uri(ngx.var.arg_body)
        local n = ffi.new("ngx_str_t", #name, ffi.cast("unsigned char *", name))
        local b = ffi.new("ngx_buf_prefix_t")
        b.pos = ffi.cast("unsigned char *", body)
        b.last = b.pos + #body
        local rv = ffi.new("ngx_str_t")
        local status = ffi.C.ngx_dyups_update_upstream(n, b, rv)
        ngx.print(tonumber(status), " ", ffi.string(rv.data, rv.len))
    }
}
location /c/delete {
    content_by_lua_block {
        local ffi = require "ffi"
        local name = ngx.var.arg_name
        local n = ffi.new("ngx_str_t", #name, ffi.cast("unsigned char *", name))
        local rv = ffi.new("ngx_str_t")
        local status = ffi.C.ngx_dyups_delete_upstream(n, rv)
        ngx.print(tonumber(status), " ", ffi.string(rv.data, rv.len))
    }
}
location /c/enabled {
    content_by_lua_block {
        ngx.print(tonumber(require("ffi").C.ngx_http_dyups_api_enable))
    }
}
--- perl
sub escape { my ($s) = @_; $s =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge; $s }
my $p1 = port(1);
is(http_get('/c/enabled')->{body}, '1', 'ngx_http_dyups_api_enable is 1');
my $body = escape("server 127.0.0.1:$p1;");
is(http_get("/c/update?name=cdyn&body=$body")->{body}, '200 success', 'update answers 200 success');
is(http_get('/list')->{body}, "cdyn\n", 'the REST API lists it');
my $proxied = http('GET', 'http://127.0.0.1:' . port(3) . '/', undef, { Host => 'cdyn' });
is($proxied->{body}, "$p1\n", 'proxy_pass http://$host reaches it');
my $bad = escape("aaserver 1.2.3.4;");
is(http_get("/c/update?name=cdyn&body=$bad")->{body}, '400 add server failed: unknown directive "aaserver"', 'bad body: 400 and the reason');
is(http_get('/c/delete?name=cdyn')->{body}, '200 success', 'delete answers 200 success');
is(http_get('/c/delete?name=cdyn')->{body}, '404 upstream "cdyn" not found', 'deleting again: 404');
is(http('GET', 'http://127.0.0.1:' . port(3) . '/', undef, { Host => 'cdyn' })->{status}, 502, 'deleted: 502');
--- allow_error_log
no resolver defined to resolve cdyn
