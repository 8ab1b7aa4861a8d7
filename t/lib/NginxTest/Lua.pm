package NginxTest::Lua;

=head1 NAME

NginxTest::Lua - drive the module's Lua packages (ngx.dynamic, ngx.dyups) from test scripts

=head1 SYNOPSIS

    use lib 't/lib';
    use NginxTest;
    use NginxTest::Lua;

    $ENV{TEST_NGINX_LUA_EVAL} = lua_eval_location([dyups => 'ngx.dyups']);
    run_tests();
    __DATA__
    === TEST 1: ...
    --- modules: lua
    --- config
    $TEST_NGINX_LUA_EVAL
    --- perl
    is(main::lua('return show(dyups.delete("nope"))'), '404, "not found"', 'delete');

=head1 DESCRIPTION

Most Lua blocks run their Lua through C<location = /lua>, made by
C<lua_eval_location>: the body of a POST to it is a Lua chunk, run in
C<content_by_lua> with the required packages and C<show(...)> in scope; its
return value is the answer.  C<show(...)> renders every value: strings
C<%q>-quoted, others C<tostring>, C<", "> between, so that
C<show(dyups.update(...))> is C<200, "success"> and
C<show(dynamic.add_peer(...))> is C<true> or C<nil, "the reason">.  A
request without a body (or one too large to be kept in memory) answers 400.

=cut

use strict;
use warnings;

use NginxTest;

use Exporter 'import';
our @EXPORT = qw(lua_eval_location lua lstr no_package_path);

# lua_eval_location(LOCALS[, FUNCTIONS]): the text of `location = /lua` for
# a --- config section (see DESCRIPTION). LOCALS: [ name => package, ... ],
# each required into a local of that name; FUNCTIONS: [ name => source, ... ],
# more helpers in scope, each `local function name(...) ... end` (it may
# use the packages and show).
sub lua_eval_location {
    my ($locals, $functions) = @_;
    my @locals = @{ $locals // [] };
    my @functions = @{ $functions // [] };
    my ($requires, $helpers, @scope) = ('', '');
    while (my ($name, $package) = splice @locals, 0, 2) {
        $requires .= qq{        local $name = require "$package"\n};
        push @scope, $name;
    }
    push @scope, 'show';
    while (my ($name, $source) = splice @functions, 0, 2) {
        $helpers .= $source =~ s/^(?=.)/        /mgr;
        push @scope, $name;
    }
    my $env = join ', ', map { "$_ = $_" } @scope;
    return <<NGINX;
location = /lua {
    content_by_lua_block {
${requires}        local function show(...)
            local out = {}
            for i = 1, select("#", ...) do
                local v = select(i, ...)
                out[i] = type(v) == "string" and string.format("%q", v) or tostring(v)
            end
            return table.concat(out, ", ")
        end
${helpers}        ngx.req.read_body()
        local code = ngx.req.get_body_data()
        if not code then
            ngx.status = 400
            ngx.say("no Lua code in the request body")
            return
        end
        local chunk, err = loadstring(code, "=test")
        if not chunk then
            ngx.status = 400
            ngx.say(err)
            return
        end
        setfenv(chunk, setmetatable({ $env }, { __index = _G }))
        ngx.print(chunk())
    }
}
NGINX
}

# lua(CODE[, PORT]): runs CODE in /lua (on the main server, or on
# 127.0.0.1:PORT) and returns its answer; a non-200 answer comes back as
# "status N: body".
sub lua {
    my ($code, $port) = @_;
    my $url = defined $port ? "http://127.0.0.1:$port/lua" : '/lua';
    my $r = http('POST', $url, $code);
    return $r->{status} == 200 ? $r->{body} : "status $r->{status}: $r->{body}";
}

# lstr(TEXT): a Lua long-bracket string literal holding TEXT: with as many
# `=` as it takes for the closing bracket not to occur in TEXT, nor to be
# completed by TEXT's last characters.
sub lstr {
    my ($text) = @_;
    my $eq = '';
    $eq .= '=' while $text =~ /\]$eq\]/ || $text =~ /\]$eq\z/;
    return "[$eq\[$text]$eq]";
}

# no_package_path(): one test that the generated nginx.conf (which holds
# every section of the block) never sets lua_package_path: the packages
# must be found without it.
sub no_package_path {
    open my $fh, '<', conf_file() or die "cannot read " . conf_file() . ": $!";
    my $conf = do { local $/; <$fh> };
    unlike($conf, qr/^[^#]*\blua_package_c?path\b/m, 'nginx.conf sets no lua_package_path / lua_package_cpath');
}

1;
