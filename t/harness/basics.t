# Self-tests of t/lib/NginxTest.pm: ordinary blocks that must pass.
# (t/harness/self_check.t proves that failing blocks really fail.)
use FindBin;
use lib "$FindBin::Bin/../lib";
use NginxTest;

# A fixture shared by blocks (TEST 16): the harness's variables in it are
# substituted per block.
$ENV{TEST_NGINX_SHARED_BACKEND} = <<'NGINX';
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    location / { return 200 "port $server_port, data ${TEST_NGINX_DATA_DIR}\n"; }
}
NGINX
run_tests();
__DATA__

=== TEST 1: plain return, status, exact body, headers
--- config
location /hello {
    add_header X-Test "yes";
    return 200 "hello\nworld\n";
}
--- request
GET /hello
--- error_code: 200
--- response_body
hello
world
--- response_headers
X-Test: yes
Content-Type: text/plain
!X-Absent



=== TEST 2: non-200 status, empty body, chomp
--- config
location /empty { return 204; }
location /nonl  { return 200 "no newline"; }
--- request
GET /empty
--- error_code: 204
--- response_body



=== TEST 3: response_body chomp
--- config
location /nonl { return 200 "no newline"; }
--- request
GET /nonl
--- response_body chomp
no newline



=== TEST 4: response_body eval for trailing blank lines
--- config
location /blank { return 200 "a\n\n"; }
--- request
GET /blank
--- response_body eval
"a\n\n"



=== TEST 5: response_body_like, more_headers, request body (echo module)
--- modules: echo
--- config
location /echo {
    echo_read_request_body;
    echo "method=$request_method hdr=$http_x_foo body=$request_body";
}
--- request
POST /echo
line one
line two
--- more_headers
X-Foo: bar baz
--- response_body_like
^method=POST hdr=bar baz body=line one\nline two\n\z



=== TEST 6: backends on $TEST_NGINX_PORT_N behind proxy_pass
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    return 200 "backend on $server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    return 200 "backend on $server_port\n";
}
upstream two { server 127.0.0.1:$TEST_NGINX_PORT_9; }
--- config
location /one { proxy_pass http://127.0.0.1:$TEST_NGINX_PORT_1; }
location /two { proxy_pass http://two; }
--- steps
>>> GET /one
<<< 200
backend on $TEST_NGINX_PORT_1

>>> GET /two
<<< 200
backend on ${TEST_NGINX_PORT_9}



=== TEST 7: steps in every mode, with headers and bodies
--- modules: echo
--- config
location /echo {
    echo_read_request_body;
    echo_status 201;
    echo -n "[$http_content_type] $request_body";
}
location /teapot { return 418 "short and stout\n"; }
location /nothing { return 200; }
--- steps
>>> GET /teapot
<<< 418
short and stout

>>> POST /echo
Content-Type: application/json

{"servers":[]}
<<< 201 chomp
[application/json] {"servers":[]}

>>> PUT /echo
X-Ignored: 1

first
second
<<< 201 like
^\[\] first\nsecond\z
>>> DELETE /echo

a
b
c
<<< 201 like
^b$
>>> GET /nothing
<<< 200
>>> GET /missing
<<< 404 any



=== TEST 8: perl helpers: http, ports, paths, worker_pids, reload, poll_until
--- workers: 2
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "two\n";
}
--- config
location /pid { return 200 "$pid\n"; }
location /log { access_log $TEST_NGINX_DATA_DIR/hits.log; return 200 "logged\n"; }
--- perl
my $r = http('GET', '/pid');
is($r->{status}, 200, 'GET /pid');
like($r->{body}, qr/^\d+\n\z/, 'pid body');
is($r->{headers}{'content-type'}, 'text/plain', 'lower-cased header names');

my $b = http_get('http://127.0.0.1:' . port(2) . '/');
is($b->{body}, "two\n", 'full URL to a backend port');
is(port(0), server_port(), 'port(0) is the server port');
isnt(port(1), port(2), 'distinct ports');

like(prefix(), qr{/$}, 'prefix ends in /');
ok(-d data_dir(), 'data_dir exists');
is((stat data_dir())[2] & 07777, 0777, 'data_dir is 0777');
ok(-f conf_file(), 'conf_file exists');
like(error_log_text(), qr/start worker process/, 'error_log_text');
{
    # A line nginx has only partly written is not returned until it is whole.
    open(my $fh, '>>', prefix() . 'logs/error.log') or die $!;
    $fh->autoflush(1);
    print $fh '2026/01/01 00:00:00 [notice] 1#1: half a li';
    unlike(error_log_text(), qr/half a li/, 'error_log_text: a partial last line is left out');
    print $fh "ne\n";
    like(error_log_text(), qr/half a line\n\z/, 'error_log_text: returned once it is complete');
    close $fh;
}

my @old = worker_pids();
is(scalar @old, 2, 'two workers');
ok(master_pid() > 0, 'master pid');
ok(!grep({ $_ == master_pid() } @old), 'master is not a worker');

nginx_reload();
my @new = worker_pids();
is(scalar @new, 2, 'two workers after reload');
my %old = map { $_ => 1 } @old;
ok(!grep({ $old{$_} } @new), 'all workers replaced by reload');

# A worker writes to data_dir (mode 0777, workers run as nobody).
is(http_get('/log')->{status}, 200, 'GET /log');
ok(poll_until(sub { -s data_dir() . '/hits.log' }, 5, 'access log written'),
   'worker wrote into data_dir');

ok(!poll_until(sub { 0 }, 0.05, 'never'), 'poll_until times out with false');

my ($rc, $out) = nginx_t();
is($rc, 0, 'nginx_t exit code');
like($out, qr/test is successful/, 'nginx_t output');

is(http_get('/missing')->{status}, 404, '404 via helper');
--- no_error_log
[warn]



=== TEST 9: nginx_restart gives a new master; reload with a changed config
--- workers: 1
--- config
location /v { return 200 "v1\n"; }
--- perl
my $m1 = master_pid();
nginx_restart();
my $m2 = master_pid();
isnt($m1, $m2, 'new master after restart');
is(scalar(worker_pids()), 1, 'one worker');
is(http_get('/v')->{body}, "v1\n", 'serving after restart');

# Rewrite the configuration and reload.
my $f = conf_file();
open my $in, '<', $f or die $!;
my $conf = do { local $/; <$in> };
close $in;
$conf =~ s/"v1\\n"/"v2\\n"/ or die 'no v1 in conf';
$conf =~ s/worker_processes 1;/worker_processes 2;/ or die 'no worker_processes';
open my $out, '>', $f or die $!;
print $out $conf;
close $out;
nginx_reload();
is(http_get('/v')->{body}, "v2\n", 'new config after reload');
is(scalar(worker_pids()), 2, 'two workers after reload');



=== TEST 10: error_log and no_error_log, literal and qr//
--- log_level: notice
--- config
location /warn { return 404; }
--- request
GET /warn
--- error_code: 404
--- error_log
using the "epoll" event method
qr/start worker processes?/
qr/START WORKER/i
--- no_error_log
[warn]
qr/\[debug\]/



=== TEST 11: a deliberately killed worker is allowed by allow_error_log
--- workers: 1
--- config
location /ok { return 200 "ok\n"; }
--- perl
my ($w) = worker_pids();
ok($w, 'have a worker');
kill 'KILL', $w;
ok(poll_until(sub { my @n = worker_pids(); @n == 1 && $n[0] != $w }, 5, 'respawn'),
   'master respawned the worker');
is(http_get('/ok')->{body}, "ok\n", 'still serving');
--- allow_error_log
worker process \d+ exited on signal 9
--- error_log
qr/exited on signal 9/



=== TEST 12: must_die: nginx -t rejects the config
--- config
location /x { no_such_directive on; }
--- must_die
--- error_log
unknown directive "no_such_directive"



=== TEST 13: nginx_t: config test only
--- http_config
map $uri $x { default 1; }
--- nginx_t
--- error_log
test is successful



=== TEST 14: stream module and main_config
--- modules: stream
--- main_config
stream {
    server {
        listen 127.0.0.1:$TEST_NGINX_PORT_3;
        return "stream ok\n";
    }
}
--- perl
use IO::Socket::INET;
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(3), Timeout => 5)
    or die "connect: $@";
my $line = <$s>;
is($line, "stream ok\n", 'stream server answered');



=== TEST 15: lua module loads (resty.core found) and logs
--- modules: lua
--- log_level: debug
--- config
location /lua {
    content_by_lua_block {
        ngx.log(ngx.WARN, "lua says hi")
        ngx.say("lua ", ngx.worker.count(), " ", package.loaded["resty.core"] and "core" or "nocore")
    }
}
--- request
GET /lua
--- response_body
lua 2 core
--- error_log
lua says hi



=== TEST 16: a fixture from the environment gets the block's variables
--- http_config
$TEST_NGINX_SHARED_BACKEND
--- config
location / { proxy_pass http://127.0.0.1:$TEST_NGINX_PORT_1; }
--- request
GET /
--- response_body
port $TEST_NGINX_PORT_1, data $TEST_NGINX_DATA_DIR
