package NginxTest;

=head1 NAME

NginxTest - data-driven integration tests for our nginx dynamic module

=head1 SYNOPSIS

    use lib 't/lib';
    use NginxTest;
    run_tests();
    __DATA__

    === TEST 1: list peers
    --- http_config
    upstream backends { zone zone_for_backends 64k; server 127.0.0.1:$TEST_NGINX_PORT_1; }
    --- config
    location /dynamic { dynamic_upstream; }
    --- request
    GET /dynamic?upstream=backends
    --- error_code: 200
    --- response_body
    server 127.0.0.1:$TEST_NGINX_PORT_1;

Run from the repository root: C<prove -r t/> or C<prove t/foo.t>.

=head1 DESCRIPTION

Each C<=== name> block of the test file's C<__DATA__> is one test case.
Blocks are split into sections with Debian's L<Test::Base> (used only as a
parser: its default C<norm>/C<trim> filters are never applied).  For every
block the harness:

=over 4

=item 1.

creates a fresh prefix directory (mode 0755) with C<conf/>, C<logs/>,
C<tmp/> and C<data/> (mode 0777, for files the workers write);

=item 2.

writes F<conf/nginx.conf> (see L</GENERATED CONFIGURATION>);

=item 3.

starts C<nginx -p PREFIX/ -c conf/nginx.conf -e logs/error.log> (daemon,
master + workers) and waits until the pid file exists, the server port
accepts connections and all workers are up;

=item 4.

runs the block's C<request>, then C<steps>, then C<perl> sections against
that one nginx;

=item 5.

stops nginx (SIGQUIT to the pid from the pid file, then SIGTERM and SIGKILL
of that same pid if it does not exit within 10 s);

=item 6.

scans F<logs/error.log>: any C<[alert]>, C<[crit]> or C<[emerg]> line, or
any line containing C<exited on signal>, FAILS the block unless the line is
matched by a C<--- allow_error_log> regex.  Then the C<--- error_log> and
C<--- no_error_log> checks run;

=item 7.

removes the prefix directory, unless the block failed or
C<TEST_NGINX_KEEP=1> (the kept path is printed with C<diag>).

=back

C<use NginxTest> exports C<run_tests>, the L</HELPERS> and all of
L<Test::More>, and turns on C<strict> and C<warnings> in the test script.
The plan is dynamic (C<done_testing>).  Unknown or duplicated section names,
and malformed sections, make C<run_tests> die before any nginx is started.

If the test script dies, exits or gets SIGINT/SIGTERM/SIGHUP/SIGPIPE while a block's
nginx runs, an END block / signal handler stops that nginx by its pid file.

=head2 Why a harness of its own

The block format is openresty's L<Test::Nginx> (C<=== TEST>, C<--- config>,
C<--- request>, C<--- error_code>, C<--- response_body>, ...), so its
blocks read as the tests of other nginx modules do, but Test::Nginx itself
is not used: Debian 12 does not package it (C<apt-cache policy
libtest-nginx-perl> lists no such package and C<apt-cache search Test::Nginx>
finds nothing, checked on 2026-12-02; it is on CPAN only), and the tests run
from Debian packages alone (C<scripts/setup.sh> installs them, no CPAN).
The harness builds on Debian's L<Test::Base> (C<libtest-base-perl>), which
Test::Nginx is built on too, and adds what this module's tests need:
several workers and reloads checked through F</proc>, a failed block for any
C<[alert]>/C<[crit]>/C<[emerg]> or signal exit, C<--- steps>, Debian's
dynamic modules by name, and ports locked across parallel runs.

=head1 SECTIONS

Section values are taken as written, except that blank lines at the very
end of a section are dropped (they only separate it from the next section
or block), and a non-empty multi-line text always ends in exactly one
newline.  C<$TEST_NGINX_*> variables (see L</VARIABLES>) are substituted in
every section except C<perl> and C<response_body eval>.

=head2 Configuration

=over 4

=item C<--- main_config>

Inserted verbatim at the top level (after C<events {}>), e.g. a C<stream {}>
block.

=item C<--- http_config>

Inserted verbatim inside C<http {}> (upstreams, extra C<server {}> blocks
listening on C<$TEST_NGINX_PORT_N> as backends, ...).

=item C<--- config>

Inserted verbatim inside the main C<server {}> (which listens on
C<127.0.0.1:$TEST_NGINX_SERVER_PORT>, C<server_name localhost>).

=item C<--- workers: N>

C<worker_processes N;> (default 2).

=item C<--- log_level: LEVEL>

Level of C<error_log logs/error.log LEVEL;> (default C<info>); one of debug
info notice warn error crit alert emerg.

=item C<--- needs_modules: lua>

Modules the block loads itself (by rewriting F<nginx.conf> before a reload,
with C<module_files>), not at start: the block is skipped like one with
C<--- modules> when this nginx cannot load them (C<TEST_NGINX_SKIP_MODULES>).

=item C<--- needs_debug>

The block needs an nginx built C<--with-debug> (Debian's are; nginx.org's
C<nginx> is not, its C<nginx-debug> is): skipped otherwise, with that
reason, as for C<TEST_NGINX_SKIP_MODULES>.

=item C<--- needs_nginx_before: 1.27.3 REASON>

The block is about an nginx older than that version (what it checks cannot
happen from it on, and the block's steps need the older code): skipped
otherwise, with the reason.

=item C<--- modules: echo lua stream fair>

Debian dynamic modules to load before ours, any subset, in the order given.
C<lua> loads F<ndk_http_module.so> then F<ngx_http_lua_module.so> (Debian's
lua module finds C<resty.core> in F</usr/share/lua/5.1> on its own; nothing
else is needed).  C<stream> needs the C<libnginx-mod-stream> package, C<fair>
(the C<fair> balancer of C<libnginx-mod-http-upstream-fair>, a balancer of
another module that keeps its own struct in C<peer.data>) its package.  Our
module (C<TEST_NGINX_MODULE>) is always loaded last.

=back

=head2 A single request

=over 4

=item C<--- request>

First line C<METHOD URI> (a trailing C<HTTP/1.x> is accepted and ignored).
Following lines, if any, are the request body, with the final newline
removed.  Sent as HTTP/1.1 with C<Host: localhost> and C<Connection: close>
(unless given in C<more_headers>), plus C<Content-Length> when there is a
body.

=item C<--- more_headers>

Extra request headers, C<Name: value> per line.

=item C<--- error_code: N>

Expected status (default 200 when there is a request).

=item C<--- response_body>

Exact expected body, byte for byte (newlines inside it are kept; the text's
final newline is part of it).  An empty section means an empty body.
Modifiers on the section line: C<--- response_body chomp> removes the final
newline; C<--- response_body eval> evaluates the text as Perl (the helpers
below are available) and uses the resulting string, for bodies that end in
blank lines or contain odd bytes.

=item C<--- response_body_like>

A Perl regex (trailing newlines of the section removed) that the body must
match; applied with the C</s> modifier only (C<.> matches newlines; C<^> and
C<$> anchor at the string's ends, add C<(?m)> for per-line anchors).

=item C<--- response_headers>

C<Name: value> lines: the header must be present with exactly that value
(a repeated header's values are joined with C<", ">).  C<!Name>: the header
must be absent.  Names are case-insensitive.

=item C<--- timeout: SECONDS>

Per-request timeout for C<request> and C<steps> (default C<TEST_NGINX_TIMEOUT>
or 10).

=back

=head2 Several requests: C<--- steps>

    --- steps
    >>> GET /dynamic?upstream=backends&down=&server=127.0.0.1:$TEST_NGINX_PORT_1
    <<< 200
    server 127.0.0.1:1 weight=1 max_fails=1 fail_timeout=10 down;

    >>> POST /upstream/foo
    Content-Type: application/json

    {"servers":[]}
    <<< 400 like
    ^add server failed:
    >>> DELETE /upstream/foo
    <<< 200 chomp
    success
    >>> GET /x
    <<< 502 any

Each step is C<<<< >>> METHOD URI >>>>, optional header lines, and, if there
is a body, an empty line followed by the body (up to the C<<<< <<< >>>> line,
final newline removed).  Then C<<<< <<< CODE [MODE] >>>> and the expected
body up to the next C<<<< >>> >>>> or the section's end.  Blank lines at the end of an
expected body are separators and are ignored.  MODEs:

=over 4

=item (none)

exact body including the final newline of the last line; no lines means an
empty body;

=item C<chomp>

exact body without that final newline;

=item C<like>

the text is a regex, matched with C</s> and C</m>;

=item C<any>

body not checked (no text allowed).

=back

Each step produces a status assertion and (unless C<any>) a body
assertion, named after the step number and its request line.

=head2 Perl code: C<--- perl>

Run after C<request> and C<steps> while nginx runs, compiled with
C<use strict; use warnings> in package C<NginxTest::Perl>, which has all of
L<Test::More> and the helpers below.  Subs of the test file are reachable
as C<main::name>.  If the code dies, the block fails with the message.

=head2 Config tests without a server

=over 4

=item C<--- must_die>

nginx must refuse the configuration: C<nginx -t> (with the same C<-p>, C<-c>,
C<-e>) must exit non-zero.  C<error_log>/C<no_error_log> are checked against
its combined output (stdout, stderr and F<logs/error.log>).  The automatic
[emerg] check does not apply.

=item C<--- nginx_t>

C<nginx -t> only: it must exit 0 and print C<test is successful>.  The
automatic check and C<error_log>/C<no_error_log> apply to its combined
output.

=back

=head2 Log checks

=over 4

=item C<--- error_log>

One pattern per line that must occur in F<logs/error.log> after the block
ran (after nginx stopped).  A pattern is a B<literal substring>, unless it is
written C<qr/REGEX/> or C<qr{REGEX}> (optionally followed by flags like
C<i>), in which case it is a Perl regex.  Blank lines are ignored; trailing
whitespace of a line is removed.

=item C<--- no_error_log>

Same syntax; none of the patterns may occur.

=item C<--- allow_error_log>

One Perl regex per line (bare, or in C<qr/.../> form).  Lines of
F<error.log> matched by one of them are exempt from the automatic
[alert]/[crit]/[emerg]/"exited on signal" check; nothing else is affected.

=back

=head2 Others

C<--- ONLY> runs only that block, C<--- SKIP> skips it, C<--- LAST> stops
after it (all provided by L<Test::Base>).

=head1 VARIABLES

Substituted as C<$NAME> or C<${NAME}>; an unknown C<$TEST_NGINX_...> name
is an error.

=over 4

=item C<$TEST_NGINX_SERVER_PORT>

Port of the main server (127.0.0.1).

=item C<$TEST_NGINX_PORT_1> .. C<$TEST_NGINX_PORT_9>

Nine more free ports for backends the block declares itself.

=item C<$TEST_NGINX_DATA_DIR>

Absolute path of the block's F<data/> directory (mode 0777).

=item C<$TEST_NGINX_PREFIX>

Absolute path of the prefix directory (with a trailing C</>).

=item any other C<$TEST_NGINX_*>

Taken from the environment, with the variables above substituted in its
value too.  That is how blocks share a fixture: a configuration that many
blocks of a file need, and that is not what they test, is set once before
C<run_tests> and named in each block:

    $ENV{TEST_NGINX_BACKENDS} = <<'NGINX';    # quoted: no Perl interpolation
    upstream backends { zone backends 64k; server 127.0.0.1:$TEST_NGINX_PORT_1; }
    server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200 "$server_port\n"; }
    NGINX
    run_tests();
    __DATA__
    === TEST 1: ...
    --- http_config
    $TEST_NGINX_BACKENDS

=back

Ports are on 127.0.0.1 only.  The start of the search is derived from a
hash of the test script's absolute path (so the checkout and the file name),
in 10000..29999 (below Linux's ephemeral range).  A port is used only if
this process holds an C<flock> on F</tmp/nginxtest-port-locks/PORT.lock>
(so parallel C<prove -j> jobs and other checkouts never take the same port)
and it can be bound (TCP and UDP) right now.  A file keeps its ports for
all its blocks and re-checks them before each block.

A test file that holds a literal port in that range in a port-like context
(C<:20001>, C<20000 + $i>, C<(20001 .. 20009)>, C<listen 20001>,
C<port =E<gt> 20001>, C<$port = 20001>) is refused before any block runs: it
could be another block's or checkout's port.  Use C<port(N)>, or ports from 30000 up for
peers that nothing needs to answer (or C<dead_ports> of
L<NginxTest::Traffic>).

=head1 HELPERS

Available in C<--- perl> code, and exported to the test script.
Queries return values; actions (C<nginx_reload>, C<nginx_restart>) die on
failure, which fails the block with the reason.

=over 4

=item C<http(METHOD, URI, BODY?, HEADERS?)>

Sends one request to the main server and returns
C<< { status, body, headers, header_list, error } >>.  C<headers> has
lower-cased names (a repeated header's values joined with C<", ">);
C<header_list> is C<[[Name, value], ...]> as received.  URI may also be a
full C<http://127.0.0.1:PORT/...> URL.  HEADERS is a hashref or an
arrayref of pairs.  On a connection error or timeout, C<status> is 599 and
C<error>/C<body> say why.

=item C<http_get(URI)>

C<http('GET', URI)>.

=item C<port(N)>, C<server_port()>

C<$TEST_NGINX_PORT_N> (1..9; C<port(0)> is the server port) and
C<$TEST_NGINX_SERVER_PORT>.

=item C<prefix()>, C<data_dir()>, C<conf_file()>

Absolute paths of the prefix (with trailing C</>), of F<data/> and of
F<conf/nginx.conf> (which the code may rewrite before C<nginx_reload>).

=item C<master_pid()>, C<worker_pids()>

The master's pid (from the pid file), and the sorted pids of its active
worker processes (children of the master, found in F</proc>, titled
C<nginx: worker process>; workers that are shutting down are not listed).

=item C<nginx_reload()>

SIGHUP to the master, then waits (up to 10 s) until every process that was
a child of the master before is gone and the configured number of new
workers is running.  Dies if the reload fails (e.g. C<[emerg]> in the new
configuration) or times out.

=item C<nginx_upgrade_start()>, C<nginx_upgrade_finish(OLD_PID)>

A binary upgrade as operators run it (Debian's C<service nginx upgrade>):
C<nginx_upgrade_start> sends USR2 to the master and waits (up to 10 s) until
the new master (the same binary executed again, which reads the
configuration file again: edit it first to make the two differ) has
written F<logs/nginx.pid> and runs its workers, while the old one
(F<logs/nginx.pid.oldbin>) and its workers keep serving; returns the old
and the new master's pids. C<nginx_upgrade_finish> sends QUIT to the old
master and waits until it has exited. Both die on a timeout.

=item C<nginx_restart()>

Stops nginx and starts it again with the same prefix and configuration;
waits as at block start.  Dies if it cannot start.

=item C<poll_until(CODE, TIMEOUT_SECONDS, DESCRIPTION)>

Calls CODE every 10 ms until it returns true (returns true) or the timeout
passes (returns false; DESCRIPTION is only used for the C<diag> shown then
if C<TEST_NGINX_VERBOSE> is set).  Use as C<ok(poll_until(...), '...')>.

=item C<error_log_text()>

Current contents of F<logs/error.log>, complete lines only: a line nginx is
writing while the file is read can be visible in part (the kernel copies a
write into the page cache page by page), and a half line must not match a
pattern that polls for it.

=item C<nginx_t()>

Runs C<nginx -t> on the current configuration and returns (exit code,
output).  It logs to F<logs/nginx-t.log>, not F<error.log>, so a deliberate
test of a bad configuration does not trip the automatic [emerg] check.

=item C<block()>, C<block_name()>

The current L<Test::Base::Block> and its name.

=item C<module_files(NAME)>

The files a C<load_module> of module NAME (as in C<--- modules>) needs with
this nginx: in C<TEST_NGINX_MODULES_DIR>, none if C<nginx -V> says it is
built in.  For a block that loads a module itself (with C<--- needs_modules>).

=item C<nginx_at_least(VERSION)>

Whether the nginx under test (C<nginx -v>) is VERSION (C<1.27.3>) or later:
for the few behaviours that differ between nginx versions (see
F<src/nginx/version.rs>).

=item C<nginx_version()>

The version of the nginx under test (C<nginx -v>), e.g. C<1.28.3>.

=back

=head1 ENVIRONMENT

=over 4

=item C<TEST_NGINX_BINARY>

nginx binary (default F</usr/sbin/nginx>).

=item C<TEST_NGINX_MODULE>

Absolute path of our module (default
F<target/debug/libngx_http_dynamic_upstream_module.so> of the checkout that
holds this F<NginxTest.pm>).

=item C<TEST_NGINX_MODULES_DIR>

Where the Debian modules are (default F</usr/lib/nginx/modules>).

=item C<TEST_NGINX_SKIP_MODULES>

Modules of C<--- modules> that this nginx cannot load, one C<NAME=reason>
line each (C<lua=no Lua module for nginx 1.28.3: ...>): every block that
needs one is skipped with that reason (C<ok N # skip NAME: needs the lua
module: REASON>), and a file whose blocks all need one is skipped whole
(C<skip_all>); either way each skipped block is also one
C<# skipped: NAME: needs the lua module: REASON> line on stderr, so it
shows in C<prove>'s output (and C<scripts/test.sh> counts them).  A module the binary has
built in (C<nginx -V> says C<--with-stream>, as nginx.org's packages do) is
not loaded at all.

=item C<TEST_NGINX_KEEP=1>

Keep every prefix directory (paths printed with C<diag>).

=item C<TEST_NGINX_TMPDIR>

Where prefix directories are created (default: C<TMPDIR> or F</tmp>).  It
must be traversable by the C<nobody> user the workers run as.

=item C<TEST_NGINX_TIMEOUT>

Default per-request timeout in seconds (10).

=back

=head1 GENERATED CONFIGURATION

    load_module .../<requested Debian modules>.so;
    load_module <TEST_NGINX_MODULE>;
    worker_processes N;
    pid logs/nginx.pid;
    lock_file logs/nginx.lock;
    error_log logs/error.log LEVEL;
    events { worker_connections 1024; }
    <main_config>
    http {
        access_log logs/access.log;
        client_body_temp_path tmp/client_body;   (and proxy, fastcgi, uwsgi, scgi)
        <http_config>
        server {
            listen 127.0.0.1:$TEST_NGINX_SERVER_PORT;
            server_name localhost;
            <config>
        }
    }

=cut

use strict;
use warnings;

use Test::More;
use Test::Base ();          # only its parser; its import() is never called
use HttpClient;             # http() (shared with the t/ helpers and scripts/)
use NginxTest::Steps;
use NginxTest::Files ();    # slurp and spew (see Files below)

use Cwd qw(abs_path);
use Fcntl qw(:flock O_RDWR O_CREAT);
use File::Basename qw(basename dirname);
use File::Path qw(remove_tree);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

use Exporter ();
our @HELPERS = qw(
    http http_get port server_port prefix data_dir conf_file
    master_pid worker_pids nginx_reload nginx_restart nginx_upgrade_start nginx_upgrade_finish poll_until
    error_log_text nginx_t block block_name module_files nginx_at_least nginx_version
);
our @EXPORT = (qw(run_tests), @HELPERS, @Test::More::EXPORT);

# Exporter's import, but also turn on strict/warnings in the test script.
sub import {
    strict->import;
    warnings->import;
    goto &Exporter::import;
}

# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------

# The checkout this file lives in: t/lib/NginxTest.pm -> ../../
our $ROOT = dirname(dirname(dirname(abs_path(__FILE__))));

our $BINARY      = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
our $MODULE      = $ENV{TEST_NGINX_MODULE}
                   || "$ROOT/target/debug/libngx_http_dynamic_upstream_module.so";
our $MODULES_DIR = $ENV{TEST_NGINX_MODULES_DIR} || '/usr/lib/nginx/modules';
our $TIMEOUT     = $ENV{TEST_NGINX_TIMEOUT} || 10;

# Debian modules a block may ask for, in load order.
our %DEBIAN_MODULES = (
    echo   => ['ngx_http_echo_module.so'],
    lua    => ['ndk_http_module.so', 'ngx_http_lua_module.so'],
    stream => ['ngx_stream_module.so'],
    fair   => ['ngx_http_upstream_fair_module.so'],
);
our %DEBIAN_PACKAGE = (
    echo => 'libnginx-mod-http-echo', lua => 'libnginx-mod-http-lua',
    stream => 'libnginx-mod-stream', fair => 'libnginx-mod-http-upstream-fair',
);

# Known sections and their kind:
#   text  - multi-line text,  value - one-line value,  flag - must be empty.
# 'mods' lists the modifiers allowed after the section name.
our %SECTIONS = (
    main_config        => { kind => 'text' },
    http_config        => { kind => 'text' },
    config             => { kind => 'text' },
    workers            => { kind => 'value' },
    log_level          => { kind => 'value' },
    modules            => { kind => 'value' },
    needs_modules      => { kind => 'value' },
    needs_debug        => { kind => 'flag' },
    needs_nginx_before => { kind => 'value' },
    timeout            => { kind => 'value' },
    request            => { kind => 'text' },
    more_headers       => { kind => 'text' },
    error_code         => { kind => 'value' },
    response_body      => { kind => 'text', mods => [qw(chomp eval)] },
    response_body_like => { kind => 'text' },
    response_headers   => { kind => 'text' },
    steps              => { kind => 'text' },
    perl               => { kind => 'text' },
    must_die           => { kind => 'flag' },
    nginx_t            => { kind => 'flag' },
    error_log          => { kind => 'text' },
    no_error_log       => { kind => 'text' },
    allow_error_log    => { kind => 'text' },
    ONLY               => { kind => 'flag' },
    SKIP               => { kind => 'flag' },
    LAST               => { kind => 'flag' },
);

our @LOG_LEVELS = qw(debug info notice warn error crit alert emerg);

# Lines of error.log that fail every block unless allowed.
our $BAD_LOG_LINE = qr/\[(?:alert|crit|emerg)\]|exited on signal/;

# --------------------------------------------------------------------------
# State of the block being run (undef between blocks)
# --------------------------------------------------------------------------

our $CUR;
our @PORTS;          # [0] = server port, [1..9] = $TEST_NGINX_PORT_N
my  %PORT_LOCK;      # port => filehandle holding its flock
my  $PORT_CURSOR;    # next candidate port

# ==========================================================================
# run_tests
# ==========================================================================

sub run_tests {
    my $spec = do {
        no warnings 'once';
        my $fh = \*main::DATA;
        defined fileno($fh) or die "NginxTest: the test script has no __DATA__ section\n";
        local $/;
        <$fh>;
    };

    # Parse with Test::Base, without any of its filters: we never call
    # run_filters, and we set the spec through the _spec_string field
    # because the public spec_string() needs Test::Base's import().
    my $tb = Test::Base->new;
    $tb->_spec_string($spec);
    my @blocks = @{ $tb->block_list };
    die "NginxTest: no '=== name' blocks found after __DATA__\n" unless @blocks;

    my @errors = ((map { _validate_block($_) } @blocks), _literal_port_errors($0));
    die "NginxTest: invalid test file $0:\n" . join('', map { "  $_\n" } @errors)
        if @errors;

    -x $BINARY or die "NginxTest: nginx binary '$BINARY' is not executable (set TEST_NGINX_BINARY)\n";
    -f $MODULE or die "NginxTest: module '$MODULE' not found: build it (cargo build) "
                    . "or set TEST_NGINX_MODULE=/abs/path.so\n";

    my @skips = map { _skip_reason($_) } @blocks;
    # One line per skipped block, whatever prove's verbosity.
    diag('skipped: ' . $blocks[$_]->name . ": $skips[$_]") for grep { defined $skips[$_] } 0 .. $#blocks;
    if (!grep { !defined } @skips) {
        my %seen;
        plan skip_all => join('; ', grep { !$seen{$_}++ } @skips);
    }

    _install_signal_handlers();
    for my $i (0 .. $#blocks) {
        if (defined $skips[$i]) {
            Test::More->builder->skip($blocks[$i]->name . ": $skips[$i]");
        } else {
            run_block($blocks[$i]);
        }
    }
    done_testing();
}

# TEST_NGINX_SKIP_MODULES: NAME=reason lines (see ENVIRONMENT).
sub _skipped_modules {
    my %skip;
    for my $line (split /\n/, $ENV{TEST_NGINX_SKIP_MODULES} // '') {
        next unless $line =~ /\S/;
        $line =~ /^\s*(\w+)=(.+)$/ && $DEBIAN_MODULES{$1}
            or die "NginxTest: TEST_NGINX_SKIP_MODULES: '$line' is not NAME=reason with NAME one of "
                 . join(' ', sort keys %DEBIAN_MODULES) . "\n";
        $skip{$1} = $2;
    }
    return %skip;
}

# Why a block cannot run with this nginx (a module it needs is skipped), or
# undef.
sub _skip_reason {
    my ($block) = @_;
    my %skip = _skipped_modules();
    for my $m (map { split ' ', $block->{$_} ? _raw($block, $_) : '' } qw(modules needs_modules)) {
        return "needs the $m module: $skip{$m}" if exists $skip{$m};
    }
    return "needs nginx built --with-debug: this one is not (nginx -V)"
        if exists $block->{needs_debug} && !_builtin_modules()->{debug};
    if (my $before = $block->{needs_nginx_before}) {
        my ($version, $reason) = split ' ', _raw($block, 'needs_nginx_before'), 2;
        return "needs nginx before $version (this one is " . nginx_version() . ")" . ($reason ? ": $reason" : '')
            if nginx_at_least($version);
    }
    return undef;
}

# What this nginx was built --with (`nginx -V`): the modules of
# %DEBIAN_MODULES it has built in (nginx.org's packages build stream in,
# Debian's as a dynamic module), for which nothing is loaded, and debug.
my $BUILTIN;
sub _builtin_modules {
    $BUILTIN //= do {
        my $v = `'$BINARY' -V 2>&1`;
        +{ map { ($_ => 1) } grep { $v =~ /--with-\Q$_\E(?=\s|$)/ } 'debug', keys %DEBIAN_MODULES };
    };
    return $BUILTIN;
}

my $VERSION_OF_BINARY;

sub nginx_version {
    $VERSION_OF_BINARY //= do {
        my $v = `'$BINARY' -v 2>&1`;
        $v =~ m{nginx/(\d+\.\d+\.\d+)} or die "cannot tell the version of $BINARY: $v";
        $1;
    };
    return $VERSION_OF_BINARY;
}

sub nginx_at_least {
    my ($want) = @_;
    my $number = sub { sprintf '%03d%03d%03d', split /\./, $_[0] };
    return $number->(nginx_version()) ge $number->($want);
}

# The files to load_module for a module of %DEBIAN_MODULES (none if built
# in); dies if one is missing.
sub module_files {
    my ($m) = @_;
    return () if _builtin_modules()->{$m};
    return map {
        my $path = "$MODULES_DIR/$_";
        -f $path or die "module '$m' needs $path: apt-get install -y $DEBIAN_PACKAGE{$m}\n";
        $path;
    } @{ $DEBIAN_MODULES{$m} };
}

# Literal ports in the harness's range in the test script may be another
# block's or checkout's ports: refused.  A five-digit literal counts as a
# port in a port-like context: after ':' (an address), next to '+' (port
# arithmetic), starting a range (`20001 .. 20009`: a range that starts low
# is a count), after `listen`, or given to something named *port*
# (`port => 20001`, `PeerPort => '20001'`, `$port = 20001`).  Other numbers
# (sizes, timeouts, counts) are left alone.
my @PORT_CONTEXTS = (
    qr/(?<=:)(\d{5})(?!\d)/,
    qr/\+\s*(\d{5})(?!\d)/,
    qr/(?<![\w.])(\d{5})(?=\s*\+)/,
    qr/(?<![\w.])(\d{5})(?=\s*\.\.)/,
    qr/\blisten\s+(\d{5})(?!\d)/,
    qr/port\w*['"]?\s*(?:=>|=(?![=~]))\s*['"]?(\d{5})(?!\d)/i,
);

sub _literal_port_errors {
    my ($script) = @_;
    open my $fh, '<', $script or return ("cannot read $script: $!");
    my @err;
    while (my $text = <$fh>) {
        my $line = $.;
        my %at;
        for my $re (@PORT_CONTEXTS) {
            $at{ $-[1] } = $1 while $text =~ /$re/g;
        }
        for my $port (map { $at{$_} } sort { $a <=> $b } keys %at) {
            push @err, "line $line: literal port $port is in the harness's range $NginxTest::PORT_MIN..$NginxTest::PORT_MAX "
                     . "(use port(N) or a port outside it, e.g. 30000 + N)"
                if $port >= $NginxTest::PORT_MIN && $port <= $NginxTest::PORT_MAX;
        }
    }
    return @err;
}

# Returns a list of error strings for one block (empty if fine).
sub _validate_block {
    my ($block) = @_;
    my $name  = $block->name;
    my @order = @{ $block->{_section_order}[0] || [] };
    my $map   = $block->{_section_map}[0] || {};
    my (@err, %seen);
    my $e = sub { push @err, "block '$name': $_[0]" };

    for my $s (@order) {
        if (!$SECTIONS{$s}) {
            $e->("unknown section '--- $s' (known: "
                 . join(' ', sort keys %SECTIONS) . ")");
            next;
        }
        $e->("section '--- $s' appears more than once") if $seen{$s}++ == 1;
        my %ok = map { $_ => 1 } @{ $SECTIONS{$s}{mods} || [] };
        for my $mod (split ' ', $map->{$s}{filters} // '') {
            $e->("section '--- $s': unknown modifier '$mod'"
                 . (%ok ? ' (allowed: ' . join(' ', sort keys %ok) . ')' : '')) unless $ok{$mod};
        }
        my $v = _raw($block, $s);
        if ($SECTIONS{$s}{kind} eq 'flag' && $v =~ /\S/) {
            $e->("section '--- $s' takes no value");
        }
        if ($SECTIONS{$s}{kind} eq 'value') {
            my $t = _trim($v);
            $e->("section '--- $s' must be a single line") if $t =~ /\n/;
        }
    }

    my $has = sub { exists $block->{ $_[0] } };
    my $val = sub { _trim(_raw($block, $_[0])) };

    if ($has->('workers') && $val->('workers') !~ /^[1-9]\d*$/) {
        $e->("workers must be a positive number, got '" . $val->('workers') . "'");
    }
    if ($has->('log_level') && !grep { $_ eq $val->('log_level') } @LOG_LEVELS) {
        $e->("log_level must be one of @LOG_LEVELS");
    }
    for my $s (qw(modules needs_modules)) {
        next unless $has->($s);
        for my $m (split ' ', $val->($s)) {
            $e->("unknown module '$m' in --- $s (known: "
                 . join(' ', sort keys %DEBIAN_MODULES) . ")") unless $DEBIAN_MODULES{$m};
        }
    }
    if ($has->('timeout') && $val->('timeout') !~ /^\d+(?:\.\d+)?$/) {
        $e->("timeout must be a number of seconds");
    }
    if ($has->('error_code') && $val->('error_code') !~ /^\d{3}$/) {
        $e->("error_code must be a 3-digit status");
    }
    for my $s (qw(more_headers error_code response_body response_body_like response_headers)) {
        $e->("--- $s needs a --- request") if $has->($s) && !$has->('request');
    }
    $e->("use either --- response_body or --- response_body_like, not both")
        if $has->('response_body') && $has->('response_body_like');
    if ($has->('request')) {
        my ($first) = split /\n/, _text($block, 'request');
        $e->("--- request must start with 'METHOD URI', got '" . ($first // '') . "'")
            unless defined $first && $first =~ m{^\S+\s+\S+(?:\s+HTTP/\d\.\d)?\s*$};
    }
    for my $s (qw(more_headers response_headers)) {
        next unless $has->($s);
        for my $l (grep { /\S/ } split /\n/, _text($block, $s)) {
            $e->("--- $s: malformed line '$l' (want 'Name: value'"
                 . ($s eq 'response_headers' ? " or '!Name'" : '') . ")")
                unless $l =~ /^\s*[\w-]+:/ || ($s eq 'response_headers' && $l =~ /^\s*![\w-]+\s*$/);
        }
    }
    if ($has->('steps')) {
        eval { NginxTest::Steps::parse(_text($block, 'steps')); 1 }
            or do { (my $m = $@) =~ s/\s+\z//; $e->($m) };
    }
    for my $s (qw(allow_error_log error_log no_error_log)) {
        next unless $has->($s);
        for my $l (_pattern_lines(_text($block, $s))) {
            eval { _pattern($l, $s eq 'allow_error_log'); 1 }
                or do { (my $m = $@) =~ s/ at \S+ line \d+.*//s; $e->("--- $s: bad pattern '$l': $m") };
        }
    }
    my @modes = grep { $has->($_) } qw(must_die nginx_t);
    $e->("use only one of --- must_die and --- nginx_t") if @modes > 1;
    if (@modes) {
        for my $s (qw(request steps perl allow_error_log)) {
            $e->("--- $s cannot be used with --- $modes[0] (no server is started)")
                if $has->($s);
        }
    }
    return @err;
}

# ==========================================================================
# One block
# ==========================================================================

sub run_block {
    my ($block) = @_;
    my $name    = $block->name;
    my $builder = Test::More->builder;
    my $first   = $builder->current_test;

    _claim_ports();
    my $prefix = _make_prefix($block);

    $CUR = {
        block   => $block,
        name    => $name,
        prefix  => $prefix,
        workers => $block->{workers} ? _trim(_raw($block, 'workers')) : 2,
        timeout => $block->{timeout} ? _trim(_raw($block, 'timeout')) : $TIMEOUT,
        started => 0,       # a daemon may be running: stop it
        ready   => 0,       # nginx started and became ready at least once
        owner   => $$,
    };
    $CUR->{vars} = {
        TEST_NGINX_SERVER_PORT => $PORTS[0],
        (map { ("TEST_NGINX_PORT_$_" => $PORTS[$_]) } 1 .. 9),
        TEST_NGINX_DATA_DIR    => "${prefix}data",
        TEST_NGINX_PREFIX      => $prefix,
    };

    my $mode = exists $block->{must_die} ? 'must_die'
             : exists $block->{nginx_t}  ? 'nginx_t'
             :                             'server';
    my $log_text;      # text the log checks run against

    my $ok = eval {
        _write_conf($block);

        if ($mode ne 'server') {
            my ($rc, $out) = _run_nginx_t('logs/error.log');
            if ($mode eq 'must_die') {
                ok($rc != 0, "$name - nginx -t rejects the configuration")
                    or diag("nginx -t exited $rc:\n$out");
            } else {
                ok($rc == 0 && $out =~ /test is successful/,
                   "$name - nginx -t accepts the configuration")
                    or diag("nginx -t exited $rc:\n$out");
            }
            $log_text = $out;
        } elsif (_start_nginx()) {
            _run_request($block) if exists $block->{request};
            _run_steps($block)   if exists $block->{steps};
            _run_perl($block)    if exists $block->{perl};
        }
        1;
    };
    if (!$ok) {
        my $err = $@;
        fail("$name - harness error");
        diag($err);
    }

    # Always stop nginx before looking at its log.
    my $stop_ok = eval { _stop_nginx(); 1 };
    diag("$name: stopping nginx: $@") unless $stop_ok;

    if ($mode eq 'server') {
        $log_text = _slurp("${prefix}logs/error.log") // '';
    }
    # (After a failed start the failure already shows error.log.)
    if ($CUR->{ready} || $mode ne 'server') {
        eval { _check_logs($block, $log_text, $mode); 1 }
            or do { fail("$name - log checks"); diag($@) };
    }

    # Did any assertion of this block fail?
    my @summary = $builder->summary;
    my $failed  = grep { !$_ } @summary[ $first .. $#summary ];

    if ($failed || ($ENV{TEST_NGINX_KEEP} // '') eq '1') {
        diag("$name: prefix kept: $prefix");
    } else {
        remove_tree($prefix);
    }
    $CUR = undef;
}

# --------------------------------------------------------------------------
# Prefix and configuration
# --------------------------------------------------------------------------

sub _make_prefix {
    my ($block) = @_;
    my $base = $ENV{TEST_NGINX_TMPDIR} || File::Spec->tmpdir;
    my $tag  = basename($0);
    $tag =~ s/\.[^.]+\z//;
    $tag =~ s/[^\w-]+/_/g;
    my $dir = tempdir("nginxtest-$tag-b" . $block->seq_num . "-XXXXXX",
                      DIR => $base, CLEANUP => 0);
    $dir = abs_path($dir);
    chmod 0755, $dir or die "chmod $dir: $!";
    for my $sub (qw(conf logs tmp data)) {
        mkdir "$dir/$sub" or die "mkdir $dir/$sub: $!";
        chmod($sub eq 'data' ? 0777 : 0755, "$dir/$sub") or die "chmod $dir/$sub: $!";
    }
    return "$dir/";
}

sub _write_conf {
    my ($block) = @_;
    my $get = sub { exists $block->{ $_[0] } ? _subst(_text($block, $_[0]), $_[0]) : '' };

    my @load;
    my %seen;
    for my $m (split ' ', $block->{modules} ? _raw($block, 'modules') : '') {
        push @load, module_files($m) unless $seen{$m}++;
    }
    push @load, $MODULE;

    my $level = $block->{log_level} ? _trim(_raw($block, 'log_level')) : 'info';
    my $temp  = join '', map { "    ${_}_temp_path tmp/$_;\n" }
                         qw(client_body proxy fastcgi uwsgi scgi);

    my $conf = "# Generated by NginxTest for $0, block '$CUR->{name}'\n"
        . join('', map { "load_module $_;\n" } @load)
        . "\n"
        . "worker_processes $CUR->{workers};\n"
        . "pid logs/nginx.pid;\n"
        . "lock_file logs/nginx.lock;\n"
        . "error_log logs/error.log $level;\n"
        . "\n"
        . "events {\n    worker_connections 1024;\n}\n"
        . "\n"
        . "# --- main_config\n" . $get->('main_config')
        . "\n"
        . "http {\n"
        . "    access_log logs/access.log;\n"
        . $temp
        . "\n"
        . "# --- http_config\n" . $get->('http_config')
        . "\n"
        . "    server {\n"
        . "        listen 127.0.0.1:$PORTS[0];\n"
        . "        server_name localhost;\n"
        . "\n"
        . "# --- config\n" . $get->('config')
        . "    }\n"
        . "}\n";

    _spew("$CUR->{prefix}conf/nginx.conf", $conf);
}

# Number of workers the current nginx.conf asks for (it may have been
# rewritten by perl code); 1 for "auto" (at least one must exist).
sub _expected_workers {
    my $conf = _slurp(conf_file()) // '';
    my ($n) = $conf =~ /^\s*worker_processes\s+(\d+|auto)\s*;/m;
    return 1 if !defined $n || $n eq 'auto';
    return $n;
}

# --------------------------------------------------------------------------
# Variables
# --------------------------------------------------------------------------

# A value from the environment gets the block's own variables substituted
# too (not other environment variables): a fixture shared by many blocks.
sub _subst {
    my ($text, $where, $in_env) = @_;
    return $text unless defined $text;
    my $vars = $CUR->{vars};
    $text =~ s{\$(?:\{(TEST_NGINX_\w+)\}|(TEST_NGINX_\w+))}{
        my $n = $1 // $2;
        defined $vars->{$n}             ? $vars->{$n}
      : defined $ENV{$n} && !$in_env    ? _subst($ENV{$n}, "$where (in \$$n)", 1)
      : die "unknown variable \$$n in --- $where (not set by the harness nor in the environment)\n";
    }ge;
    return $text;
}

# --------------------------------------------------------------------------
# Section text helpers
# --------------------------------------------------------------------------

# Raw section value as Test::Base split it.
sub _raw { my ($block, $s) = @_; my $v = $block->{$s} ? $block->{$s}[0] : ''; $v // '' }

# Section text: blank lines at the end dropped; non-empty text ends in "\n".
sub _text {
    my $v = _raw(@_);
    $v =~ s/(?:\n[ \t]*)+\z//;
    $v .= "\n" if length $v;
    return $v;
}

sub _trim { my $v = shift; $v =~ s/\A\s+//; $v =~ s/\s+\z//; $v }

sub _pattern_lines { grep { length } map { s/\s+\z//r } split /\n/, $_[0] }

# A log pattern: qr/.../flags or qr{...}flags -> regex; otherwise a literal
# substring, or (for allow_error_log, $bare_is_regex) a bare regex.
sub _pattern {
    my ($line, $bare_is_regex) = @_;
    if ($line =~ m{^qr/(.*)/([msixn]*)$} || $line =~ m{^qr\{(.*)\}([msixn]*)$}) {
        my ($re, $flags) = ($1, $2);
        return $flags ? qr/(?$flags)$re/ : qr/$re/;
    }
    return $bare_is_regex ? qr/$line/ : qr/\Q$line\E/;
}

# --------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------

sub _run_request {
    my ($block) = @_;
    my $name = $CUR->{name};
    my $text = _subst(_text($block, 'request'), 'request');
    my ($line, $body) = split /\n/, $text, 2;
    my ($method, $uri) = $line =~ m{^(\S+)\s+(\S+)};
    if (defined $body) {
        chomp $body;
        $body = undef if $body eq '';
    }

    my @headers;
    if (exists $block->{more_headers}) {
        for my $l (grep { /\S/ } split /\n/, _subst(_text($block, 'more_headers'), 'more_headers')) {
            my ($n, $v) = $l =~ /^\s*([\w-]+):\s*(.*?)\s*$/;
            push @headers, [$n, $v];
        }
    }

    my $res  = _http($method, $uri, $body, \@headers, $CUR->{timeout});
    my $code = exists $block->{error_code} ? _trim(_raw($block, 'error_code')) : 200;
    is($res->{status}, $code, "$name - status")
        or diag(_response_diag($res));

    if (exists $block->{response_body}) {
        my %mods = map { $_ => 1 } split ' ', $block->{_section_map}[0]{response_body}{filters} // '';
        my $exp;
        if ($mods{eval}) {
            $exp = _eval_perl(_text($block, 'response_body'), 'response_body eval');
            die "--- response_body eval: $@" if !defined $exp && $@;
        } else {
            $exp = _subst(_text($block, 'response_body'), 'response_body');
        }
        chomp $exp if $mods{chomp};
        _is_body($res->{body}, $exp, "$name - response body");
    }
    if (exists $block->{response_body_like}) {
        my $re = _subst(_raw($block, 'response_body_like'), 'response_body_like');
        $re =~ s/\n+\z//;
        like($res->{body}, qr/$re/s, "$name - response body like");
    }
    if (exists $block->{response_headers}) {
        for my $l (grep { /\S/ } split /\n/, _subst(_text($block, 'response_headers'), 'response_headers')) {
            if ($l =~ /^\s*!([\w-]+)\s*$/) {
                my $h = $1;
                ok(!exists $res->{headers}{ lc $h }, "$name - header $h absent")
                    or diag("got $h: $res->{headers}{lc $h}");
            } else {
                my ($h, $v) = $l =~ /^\s*([\w-]+):\s*(.*?)\s*$/;
                is($res->{headers}{ lc $h }, $v, "$name - header $h");
            }
        }
    }
}

sub _run_steps {
    my ($block) = @_;
    my $name  = $CUR->{name};
    my @steps = NginxTest::Steps::parse(_subst(_text($block, 'steps'), 'steps'));
    for my $st (@steps) {
        my $label = "$name - step $st->{number} ($st->{line})";
        my $res = _http($st->{method}, $st->{uri}, $st->{body}, $st->{headers}, $CUR->{timeout});
        is($res->{status}, $st->{code}, "$label: status")
            or diag(_response_diag($res));
        if ($st->{mode} eq 'like') {
            my $re = $st->{expect};
            like($res->{body}, qr/$re/sm, "$label: body like");
        } elsif ($st->{mode} ne 'any') {
            _is_body($res->{body}, $st->{expect}, "$label: body");
        }
    }
}

sub _run_perl {
    my ($block) = @_;
    my $code = _raw($block, 'perl');
    note("$CUR->{name} - running the perl section");
    my $ok = defined _eval_perl($code . "\n;1;", 'perl');
    if (!$ok) {
        my $err = $@ || 'died with an empty message';
        fail("$CUR->{name} - perl section");
        diag("perl section died: $err");
    }
}

# Evaluate Perl code from a section in package NginxTest::Perl.
sub _eval_perl {
    my ($code, $what) = @_;
    my $label = "$CUR->{name} --- $what";
    $label =~ s/["\n]/ /g;
    return eval "package NginxTest::Perl; use strict; use warnings;\n#line 1 \"$label\"\n$code";
}

sub _check_logs {
    my ($block, $text, $mode) = @_;
    my $name = $CUR->{name};
    my $where = $mode eq 'server' ? 'error.log' : 'nginx -t output';

    if ($mode ne 'must_die') {
        my @allow = exists $block->{allow_error_log}
            ? map { _pattern($_, 1) } _pattern_lines(_subst(_text($block, 'allow_error_log'), 'allow_error_log'))
            : ();
        my @bad;
        for my $l (split /\n/, $text) {
            next unless $l =~ $BAD_LOG_LINE;
            next if grep { $l =~ $_ } @allow;
            push @bad, $l;
        }
        ok(!@bad, "$name - $where has no [alert]/[crit]/[emerg] or 'exited on signal' lines")
            or diag("unexpected lines in $where:\n" . join('', map { "    $_\n" } @bad));
    }

    for my $s (qw(error_log no_error_log)) {
        next unless exists $block->{$s};
        for my $l (_pattern_lines(_subst(_text($block, $s), $s))) {
            my $re = _pattern($l, 0);
            if ($s eq 'error_log') {
                ok($text =~ $re, "$name - $where contains: $l")
                    or diag("$where was:\n" . _tail($text, 40));
            } else {
                my @hits = grep { $_ =~ $re } split /\n/, $text;
                ok(!@hits, "$name - $where does not contain: $l")
                    or diag("matching lines:\n" . join('', map { "    $_\n" } @hits));
            }
        }
    }
}

# Exact body comparison with a readable, byte-exact diff on failure.
sub _is_body {
    my ($got, $exp, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    if (defined $got && $got eq $exp) {
        return pass($label);
    }
    fail($label);
    my $pos = 0;
    if (defined $got) {
        $pos++ while $pos < length($got) && $pos < length($exp)
                     && substr($got, $pos, 1) eq substr($exp, $pos, 1);
    }
    diag("expected body:\n" . _show($exp) . "\ngot body:\n" . _show($got)
         . "\nfirst difference at byte $pos");
    return 0;
}

# Text shown line by line, "\n" and odd bytes made visible.
sub _show {
    my ($s) = @_;
    return '    (undef)' unless defined $s;
    return '    (empty)' if $s eq '';
    my @out;
    while (length $s) {
        $s =~ s/\A([^\n]*)(\n?)//;
        my ($l, $nl) = ($1, $2);
        $l =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;
        push @out, "    |$l" . ($nl ? '\n' : '   <- no final newline');
    }
    return join "\n", @out;
}

sub _response_diag {
    my ($res) = @_;
    my $b = $res->{body} // '';
    $b = substr($b, 0, 2000) . '...' if length $b > 2000;
    return ($res->{error} ? "request error: $res->{error}\n" : '') . "response body:\n" . _show($b);
}

sub _tail {
    my ($text, $n) = @_;
    my @l = split /\n/, $text // '';
    @l = @l[-$n .. -1] if @l > $n;
    return join '', map { "    $_\n" } @l;
}

# ==========================================================================
# Starting and stopping nginx
# ==========================================================================

sub _nginx_args { ('-p', $CUR->{prefix}, '-c', 'conf/nginx.conf', '-e', $_[0] // 'logs/error.log') }

# Runs a command with stdin from /dev/null and stdout+stderr to a file.
# Returns (exit code, output).  Signals are reported as 128+N.
sub _run_cmd {
    my ($outfile, @cmd) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDIN,  '<', '/dev/null';
        open STDOUT, '>', $outfile or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        { exec { $cmd[0] } @cmd }
        print STDERR "exec $cmd[0]: $!\n";
        POSIX::_exit(127);     # never run END blocks in this child
    }
    waitpid($pid, 0);
    my $st = $?;
    my $rc = $st & 127 ? 128 + ($st & 127) : $st >> 8;
    return ($rc, _slurp($outfile) // '');
}

# nginx -t on the current configuration, logging to $elog.
# Output = stdout + stderr + that log file.
sub _run_nginx_t {
    my ($elog) = @_;
    my $p = $CUR->{prefix};
    unlink "$p$elog" if $elog ne 'logs/error.log';
    my ($rc, $out) = _run_cmd("${p}logs/nginx-t.out", $BINARY, _nginx_args($elog), '-t');
    my $log = _slurp("$p$elog") // '';
    return ($rc, $out . $log);
}

sub _pid_file { "$CUR->{prefix}logs/nginx.pid" }

sub _read_pid {
    return undef unless $CUR;
    my $t = _slurp(_pid_file());
    return $t && $t =~ /^(\d+)/ ? $1 : undef;
}

# Start nginx; on failure report (fail + diag) and return false.
sub _start_nginx {
    my $name = $CUR->{name};
    my $err  = _start_nginx_or_error();
    if (defined $err) {
        fail("$name - nginx starts");
        diag($err);
        return 0;
    }
    return 1;
}

# Start nginx and wait until ready; returns undef or an error text.
sub _start_nginx_or_error {
    my $p = $CUR->{prefix};
    unlink _pid_file();
    my ($rc, $out) = _run_cmd("${p}logs/startup.out", $BINARY, _nginx_args());
    $CUR->{started} = 1;    # (a daemon may exist even if the launcher failed)
    if ($rc != 0) {
        return "nginx failed to start (exit $rc):\n$out\nerror.log:\n"
             . _tail(_slurp("${p}logs/error.log"), 30);
    }
    my $want = _expected_workers();
    my $ready = poll_until(sub {
        my $pid = _read_pid() or return 0;
        $CUR->{master_pid} = $pid;
        return 0 unless _alive($pid);
        return 0 unless _can_connect($PORTS[0]);
        return worker_pids() >= $want;
    }, 10);
    if ($ready) {
        $CUR->{ready} = 1;
        return undef;
    }
    my $pid = _read_pid();
    return "nginx did not become ready within 10 s (pid file "
         . ($pid ? "says $pid, " . (_alive($pid) ? 'alive' : 'dead') : 'missing')
         . "):\n$out\nerror.log:\n" . _tail(_slurp("${p}logs/error.log"), 30);
}

# Stop the current nginx: QUIT, then TERM, then KILL the master from the
# pid file (or the one seen at startup).  Then kill any nginx process still
# using this block's prefix (workers orphaned by a master the test killed).
sub _stop_nginx {
    return unless $CUR && $CUR->{started};
    $CUR->{started} = 0;
    my $pid = _read_pid() // $CUR->{master_pid};
    if ($pid && _alive($pid) && _is_nginx($pid)) {
        for my $sig (qw(QUIT TERM KILL)) {
            kill $sig, $pid;
            my $limit = $sig eq 'QUIT' ? 10 : 5;
            last if poll_until(sub { !_alive($pid) }, $limit);
            diag("$CUR->{name}: nginx master $pid did not exit within ${limit}s of SIG$sig");
        }
    }
    my @left = _prefix_pids($CUR->{prefix});
    if (@left) {
        diag("$CUR->{name}: killing leftover nginx processes of this block: @left");
        kill 'KILL', @left;
        poll_until(sub { !grep { _alive($_) } @left }, 5)
            or diag("$CUR->{name}: processes @left survived SIGKILL");
    }
}

# Live nginx processes (other than us) whose command line or open files
# point into $prefix: they can only belong to this block's nginx.
sub _prefix_pids {
    my ($prefix) = @_;
    (my $dir = $prefix) =~ s{/+\z}{};
    my @pids;
    opendir(my $dh, '/proc') or return ();
    for my $pid (grep { /^\d+$/ && $_ != $$ } readdir $dh) {
        my $hit = index(_cmdline($pid), "$dir/") >= 0;
        if (!$hit && opendir(my $fd, "/proc/$pid/fd")) {
            for my $f (readdir $fd) {
                my $t = readlink("/proc/$pid/fd/$f") // next;
                if (index($t, "$dir/") == 0) { $hit = 1; last }
            }
        }
        push @pids, $pid if $hit && _alive($pid) && _is_nginx($pid);
    }
    return @pids;
}

# Used by the END block and signal handlers.
sub _emergency_stop {
    return unless $CUR;
    eval { _stop_nginx() };
    print STDERR "# NginxTest: stopped nginx of block '$CUR->{name}'; prefix kept: $CUR->{prefix}\n";
    $CUR = undef;
}

sub _install_signal_handlers {
    for my $sig (qw(INT TERM HUP PIPE)) {
        $SIG{$sig} = sub {
            _emergency_stop();
            $SIG{$sig} = 'DEFAULT';
            kill $sig, $$;
        };
    }
}

END {
    local $?;
    _emergency_stop() if $CUR && $$ == ($CUR->{owner} // $$);
}

# --------------------------------------------------------------------------
# /proc helpers
# --------------------------------------------------------------------------

# (state, ppid) of a process, or () if it does not exist.
sub _stat {
    my ($pid) = @_;
    my $s = _slurp("/proc/$pid/stat") or return ();
    $s =~ /\)\s+(\S)\s+(\d+)/ or return ();
    return ($1, $2);
}

# Exists and is not a zombie (the daemonized master's zombie may linger
# if nothing reaps it).
sub _alive {
    my ($state) = _stat($_[0]);
    return defined $state && $state ne 'Z' && $state ne 'X';
}

sub _cmdline {
    my $c = _slurp("/proc/$_[0]/cmdline") // '';
    $c =~ s/\0+/ /g;
    $c =~ s/\s+\z//;
    return $c;
}

sub _is_nginx { _cmdline($_[0]) =~ /nginx/ }

# Live child pids of $ppid.
sub _children {
    my ($ppid) = @_;
    my @kids;
    opendir(my $dh, '/proc') or return ();
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my ($state, $pp) = _stat($pid);
        push @kids, $pid if defined $pp && $pp == $ppid && $state ne 'Z' && $state ne 'X';
    }
    return sort { $a <=> $b } @kids;
}

# ==========================================================================
# Ports
# ==========================================================================

our ($PORT_MIN, $PORT_MAX) = (10000, 29999);
my $LOCK_DIR = File::Spec->catdir(File::Spec->tmpdir, 'nginxtest-port-locks');

sub _fnv1a {
    my $h = 0x811c9dc5;
    for my $c (unpack 'C*', $_[0]) {
        $h ^= $c;
        $h = ($h * 0x01000193) % 4294967296;
    }
    return $h;
}

# Make sure @PORTS holds 10 ports that we hold locks on and that are free.
sub _claim_ports {
    if (!defined $PORT_CURSOR) {
        my $key   = abs_path($0) // File::Spec->rel2abs($0);
        my $slots = int(($PORT_MAX - $PORT_MIN + 1) / 10);
        $PORT_CURSOR = $PORT_MIN + (_fnv1a($key) % $slots) * 10;
        if (!-d $LOCK_DIR) {
            mkdir $LOCK_DIR;
            chmod 01777, $LOCK_DIR;
        }
    }
    for my $i (0 .. 9) {
        next if defined $PORTS[$i] && _port_free($PORTS[$i]);
        if (defined $PORTS[$i]) {
            close delete $PORT_LOCK{ $PORTS[$i] };
        }
        $PORTS[$i] = _next_port();
    }
}

sub _next_port {
    my $range = $PORT_MAX - $PORT_MIN + 1;
    for (1 .. $range) {
        my $p = $PORT_CURSOR++;
        $PORT_CURSOR = $PORT_MIN if $PORT_CURSOR > $PORT_MAX;
        next if $PORT_LOCK{$p};
        next unless _lock_port($p);
        return $p if _port_free($p);
        close delete $PORT_LOCK{$p};
    }
    die "NginxTest: no free port in $PORT_MIN..$PORT_MAX\n";
}

sub _lock_port {
    my ($p) = @_;
    my $file = "$LOCK_DIR/$p.lock";
    sysopen(my $fh, $file, O_RDWR | O_CREAT, 0666) or return 0;
    chmod 0666, $file;
    if (!flock($fh, LOCK_EX | LOCK_NB)) {
        close $fh;
        return 0;
    }
    $PORT_LOCK{$p} = $fh;
    return 1;
}

# Can bind TCP (with SO_REUSEADDR, as nginx does) and UDP on 127.0.0.1:$p.
sub _port_free {
    my ($p) = @_;
    my $tcp = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p,
                                    Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or return 0;
    close $tcp;
    my $udp = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p, Proto => 'udp')
        or return 0;
    close $udp;
    return 1;
}

sub _can_connect {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $_[0],
                                  Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# ==========================================================================
# HTTP client (t/lib/HttpClient.pm: HTTP/1.1, Connection: close)
# ==========================================================================

sub _http {
    my ($method, $uri, $body, $headers, $timeout) = @_;
    my $port = $PORTS[0];
    if ($uri =~ m{^http://(?:127\.0\.0\.1|localhost)(?::(\d+))?(/.*)?$}) {
        $port = $1 // 80;
        $uri  = $2 // '/';
    } elsif ($uri =~ m{^\w+://}) {
        die "http: only http://127.0.0.1 URLs are allowed, got '$uri'\n";
    }
    return HttpClient->new(timeout => $timeout // $TIMEOUT)->once($method, $port, $uri, undef, $body, $headers);
}

# ==========================================================================
# Helpers for perl sections (exported)
# ==========================================================================

sub _need_block { $CUR or die "$_[0]() is only available while a block runs\n" }

sub http {
    my ($method, $uri, $body, $headers) = @_;
    _need_block('http');
    return _http($method, $uri, $body, $headers, $CUR->{timeout});
}

sub http_get { http('GET', $_[0]) }

sub port {
    my ($n) = @_;
    die "port(N): N must be 0..9\n" unless defined $n && $n =~ /^\d$/;
    _need_block('port');
    return $PORTS[$n];
}

sub server_port { _need_block('server_port'); $PORTS[0] }
sub prefix      { _need_block('prefix'); $CUR->{prefix} }
sub data_dir    { _need_block('data_dir'); "$CUR->{prefix}data" }
sub conf_file   { _need_block('conf_file'); "$CUR->{prefix}conf/nginx.conf" }
sub block       { _need_block('block'); $CUR->{block} }
sub block_name  { _need_block('block_name'); $CUR->{name} }

sub master_pid { _need_block('master_pid'); _read_pid() }

sub worker_pids {
    _need_block('worker_pids');
    my $master = _read_pid() // $CUR->{master_pid} or return ();
    return grep {
        my $c = _cmdline($_);
        $c =~ /^nginx: worker process/ && $c !~ /shutting down/;
    } _children($master);
}

sub error_log_text {
    _need_block('error_log_text');
    my $text = _slurp("$CUR->{prefix}logs/error.log") // '';
    $text =~ s/[^\n]+\z//;    # a line still being written
    return $text;
}

sub poll_until {
    my ($code, $timeout, $desc) = @_;
    $timeout //= 10;
    my $deadline = time + $timeout;
    while (1) {
        return 1 if $code->();
        last if time >= $deadline;
        sleep 0.01;
    }
    diag("poll_until: timed out after ${timeout}s" . (defined $desc ? ": $desc" : ''))
        if $ENV{TEST_NGINX_VERBOSE};
    return 0;
}

sub nginx_reload {
    _need_block('nginx_reload');
    my $master = _read_pid() or die "nginx_reload: no pid file\n";
    _alive($master) or die "nginx_reload: master $master is not running\n";
    my %old  = map { $_ => 1 } _children($master);
    my $want = _expected_workers();
    my $log  = "$CUR->{prefix}logs/error.log";
    my $size = -s $log // 0;

    kill 'HUP', $master or die "nginx_reload: kill HUP $master: $!\n";
    my $new_log = sub {
        open my $fh, '<', $log or return '';
        seek $fh, $size, 0;
        local $/;
        return <$fh> // '';
    };
    my $failed;
    my $ok = poll_until(sub {
        die "nginx_reload: master $master exited\n" unless _alive($master);
        if ($new_log->() =~ /^(.*\[emerg\].*)$/m) { $failed = $1; return 1 }
        return 0 if grep { $old{$_} } _children($master);
        return worker_pids() >= $want;
    }, 10);
    die "nginx_reload: new configuration rejected: $failed\n" if $failed;
    die "nginx_reload: old workers still running or new ones missing after 10 s\n" unless $ok;
    return 1;
}

sub nginx_upgrade_start {
    _need_block('nginx_upgrade_start');
    my $old = _read_pid() or die "nginx_upgrade_start: no pid file\n";
    _alive($old) or die "nginx_upgrade_start: master $old is not running\n";
    my $want = _expected_workers();
    kill 'USR2', $old or die "nginx_upgrade_start: kill USR2 $old: $!\n";
    my $new;
    my $ok = poll_until(sub {
        my $oldbin = _slurp(_pid_file() . '.oldbin') // '';
        return 0 unless $oldbin =~ /^(\d+)/ && $1 == $old;
        $new = _read_pid() or return 0;
        return 0 if $new == $old || !_alive($new);
        return (grep { _cmdline($_) =~ /^nginx: worker process/ } _children($new)) >= $want;
    }, 10);
    die "nginx_upgrade_start: no new master with $want workers within 10 s; error.log:\n"
        . _tail(_slurp("$CUR->{prefix}logs/error.log"), 20) unless $ok;
    $CUR->{master_pid} = $new;
    return ($old, $new);
}

sub nginx_upgrade_finish {
    my ($old) = @_;
    _need_block('nginx_upgrade_finish');
    kill 'QUIT', $old or die "nginx_upgrade_finish: kill QUIT $old: $!\n";
    poll_until(sub { !_alive($old) }, 10) or die "nginx_upgrade_finish: old master $old still running after 10 s\n";
    return 1;
}

sub nginx_restart {
    _need_block('nginx_restart');
    _stop_nginx();
    my $err = _start_nginx_or_error();
    die "nginx_restart: $err\n" if defined $err;
    return 1;
}

sub nginx_t {
    _need_block('nginx_t');
    return _run_nginx_t('logs/nginx-t.log');
}

# ==========================================================================
# Files
# ==========================================================================

# (NginxTest::Files's, under private names: the test scripts import them
# from there themselves.)
sub _slurp { NginxTest::Files::slurp(@_) }
sub _spew  { NginxTest::Files::spew(@_) }

# The package perl sections run in: Test::More plus the helpers.
# (Aliased by hand: calling Test::More->import here would change
# Test::Builder's exported_to.)
package NginxTest::Perl;
{
    no strict 'refs';
    for my $name (@Test::More::EXPORT) {
        if ($name =~ /^\$(\w+)$/) { *{"NginxTest::Perl::$1"} = \${"Test::More::$1"} }
        else                      { *{"NginxTest::Perl::$name"} = \&{"Test::More::$name"} }
    }
    *{"NginxTest::Perl::$_"} = \&{"NginxTest::$_"} for @NginxTest::HELPERS;
}

1;
