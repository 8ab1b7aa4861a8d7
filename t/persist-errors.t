# dynamic_state_file and dyups_upstream_conf when things go wrong:
#  * a corrupt or unreadable state file is an [emerg] naming the file and
#    the line: `nginx -t` fails, nginx refuses to start, and a reload is
#    refused while the running nginx keeps serving (and changing) its state;
#  * a state file that cannot be written: the API answers 500 naming the
#    file and the OS error, logs [error], the change stays in effect, and
#    the next change after the problem is fixed writes the whole state;
#  * hostile input (`;`, `{`, `}`, quotes, newlines, `#`, spaces in server
#    strings, upstream names, parameters, hash keys) is refused with 400 and
#    the file stays byte for byte the same.
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups;
use NginxTest::Files;
use NginxTest::Lua;
use NginxTest::QueryApi;

our $HEADER = "# Written by nginx-dynamic-upstream after every change through its APIs.\n";

$ENV{TEST_NGINX_LUA_EVAL} = lua_eval_location([d => 'ngx.dynamic', dyups => 'ngx.dyups']);

sub zone_file  { data_dir() . '/backends.state' }

# Rewrites the configuration's dynamic_state_file to PATH (for a reload).
sub move_state_file {
    my ($path) = @_;
    my $conf = slurp(conf_file());
    $conf =~ s{dynamic_state_file [^;]+;}{dynamic_state_file $path;} or die "no dynamic_state_file";
    spew(conf_file(), $conf);
}
sub dyups_file { data_dir() . '/dyups.conf' }

# Backend ports that N proxied requests reached: { port => count }.
sub traffic {
    my ($n, $host) = @_;
    my %ports;
    for (1 .. $n) {
        my $r = $host ? proxied($host) : http_get('/');
        $ports{ $r->{status} == 200 ? $r->{body} =~ s/\n\z//r : "status $r->{status}" }++;
    }
    return \%ports;
}

sub alive {
    my ($pid) = @_;
    my $s = slurp("/proc/$pid/stat") or return 0;
    return $s =~ /\)\s+([^ZX\s])\s/ ? 1 : 0;
}

# The block's data directory made read-only for the workers (root, the
# test, can still write), and back.
sub lock_data_dir   { chmod(0555, data_dir()) or die "chmod: $!" }
sub unlock_data_dir { chmod(0777, data_dir()) or die "chmod: $!" }

sub write_failure {
    my ($path) = @_;
    return qr/could not write state file "\Q$path\E": Permission denied \(os error 13\); the change is in effect and the next change writes the file again/;
}

run_tests();
__DATA__

=== TEST 1: must_die: a dynamic_state_file that is not a state file (nginx.conf itself): [emerg] naming the file and line 2 (its first statement)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file ${TEST_NGINX_PREFIX}conf/nginx.conf;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- must_die
--- error_log
qr/\[emerg\].*dynamic_state_file "[^"]*conf\/nginx\.conf": line 2: unknown directive "load_module"/



=== TEST 2: must_die: a dyups_upstream_conf that is not a dyups file (nginx.conf itself): [emerg] naming the file and line 2 (its first statement)
--- http_config
dyups_upstream_conf ${TEST_NGINX_PREFIX}conf/nginx.conf;
--- config
location / { dyups_interface; }
--- must_die
--- error_log
qr/\[emerg\].*dyups_upstream_conf "[^"]*conf\/nginx\.conf": line 2: expected "upstream NAME \{"/



=== TEST 3: a corrupt dynamic_state_file: nginx -t fails naming the file and the line, for each kind of damage; nginx refuses to start
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $path = main::zone_file();
main::change("server=127.0.0.1:$p2&weight=2");
my ($rc, $out) = nginx_t();
is($rc, 0, 'nginx -t passes with the file the module wrote') or diag($out);

my @cases = (
    ["server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2 weight=0;\n", 2, qr/weight must be an integer from 1 to 9223372036854775807/],
    ["# a comment\nserver 127.0.0.1:$p1;\n\nleast_conn;\n", 4, qr/server/],
    ["server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2", 2, qr/;/],
    ["server 127.0.0.1:$p1;\nserver localhost:$p2;\n", 2, qr/localhost/],
    ["\n\n\nserver 127.0.0.1:$p1 max_fails=x;\n", 4, qr/max_fails/],
    ["server 127.0.0.1:$p1 bogus=1;\n", 1, qr/bogus/],
    ["server 127.0.0.1:$p1;\nupstream x { server 127.0.0.1:$p2; }\n", 2, qr/./],
);
for my $c (@cases) {
    my ($text, $line, $what) = @$c;
    main::spew($path, $text);
    my ($rc, $out) = nginx_t();
    (my $shown = $text) =~ s/\n/\\n/g;
    isnt($rc, 0, "nginx -t fails: $shown");
    like($out, qr/\[emerg\].*dynamic_state_file "\Q$path\E": line $line: /, "  [emerg] names the file and line $line");
    like($out, $what, '  and says what is wrong');
}

# the contract's own example, then a start with it
main::spew($path, "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2 weight=0;\n");
ok(!eval { nginx_restart(); 1 }, 'nginx refuses to start with the corrupt file');
like(error_log_text(),
     qr/\[emerg\].*dynamic_state_file "\Q$path\E": line 2: weight must be an integer from 1 to 9223372036854775807/,
     'error.log: [emerg] with the file, the line and the problem');
--- allow_error_log
dynamic_state_file ".*": line \d+: 



=== TEST 4: an unreadable dynamic_state_file (a directory, not UTF-8): nginx -t fails naming the file; nginx refuses to start
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $path = main::zone_file();
main::spew($path, "server 127.0.0.1:" . port(1) . " weight=2;\n\xff\xfe\n");
my ($rc, $out) = nginx_t();
isnt($rc, 0, 'nginx -t fails: not UTF-8');
like($out, qr/\[emerg\].*dynamic_state_file "\Q$path\E"/, '  [emerg] names the file');
unlink $path;
mkdir $path or die "mkdir: $!";
($rc, $out) = nginx_t();
isnt($rc, 0, 'nginx -t fails: the path is a directory');
like($out, qr/\[emerg\].*dynamic_state_file "\Q$path\E"/, '  [emerg] names the file');
ok(!eval { nginx_restart(); 1 }, 'nginx refuses to start');
like(error_log_text(), qr/\[emerg\].*dynamic_state_file "\Q$path\E"/, 'error.log: [emerg] names the file');
--- allow_error_log
dynamic_state_file "



=== TEST 5: a corrupt dynamic_state_file at reload: the reload is refused, nginx keeps running its state and keeps accepting changes
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3) = (port(1), port(2), port(3));
my $path = main::zone_file();
main::change("server=127.0.0.1:$p1&down=");
my $lines = main::srv(1, down => 1) . main::srv(2);
is(main::slurp($path), $main::HEADER . $lines, 'the file before');

main::spew($path, "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2 weight=0;\n");
my $master = master_pid();
my @workers = worker_pids();
my $ok = eval { nginx_reload(); 1 };
ok(!$ok, 'the reload is refused');
like($@ // '', qr/dynamic_state_file "\Q$path\E": line 2: weight must be an integer from 1 to 9223372036854775807/,
     '  with the [emerg] naming the file and the line');
ok(main::alive($master), "the master ($master) is still running");
ok(poll_until(sub { main::alive($master) && "@{[worker_pids()]}" eq "@workers" }, 2, 'old workers'),
   'the old workers keep serving') or diag("workers before: @workers, now: @{[worker_pids()]}");
is(main::verbose(), $lines, 'the running state is unchanged');
is_deeply(main::traffic(10), { $p2 => 10 }, 'traffic as before');

# the running configuration is still the current one: changes are accepted
# and rewrite the file with the whole state
my $r = http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$p3");
is($r->{status}, 200, 'a change after the refused reload is accepted') or diag($r->{body});
$lines = main::srv(1, down => 1) . main::srv(2) . main::srv(3);
is(main::verbose(), $lines, '  and in effect');
is(main::slurp($path), $main::HEADER . $lines, '  and written, replacing the corrupt file');
ok(eval { nginx_reload(); 1 }, 'the next reload succeeds') or diag($@);
is(main::verbose(), $lines, '  with the whole state');
--- allow_error_log
dynamic_state_file ".*": line 2: weight must be an integer from 1 to 9223372036854775807



=== TEST 6: a corrupt dyups_upstream_conf: nginx -t fails naming the file and the line, for each kind of damage; nginx refuses to start
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $path = main::dyups_file();
is(http('POST', '/upstream/a', "server 127.0.0.1:$p1;")->{status}, 200, 'POST a');
my ($rc, $out) = nginx_t();
is($rc, 0, 'nginx -t passes with the file the module wrote') or diag($out);

my @cases = (
    ["upstream a {\n    server 127.0.0.1:$p1;\n}\nupstream b {\n    server 127.0.0.1:$p2;\n    aaserver x;\n}\n",
     6, qr/upstream "b": unknown directive "aaserver"/],
    ["# comment\nupstream a {\n    server 127.0.0.1:$p1 weight=0;\n}\n", 3, qr/upstream "a": .*weight/],
    ["upstream a {\n    server 127.0.0.1:$p1;\n", 1, qr/\}/],
    ["upstream a {\n    server 127.0.0.1:$p1;\n}\n\nupstream a/b {\n    server 127.0.0.1:$p2;\n}\n", 5, qr/a\/b/],
    ["upstream a {\n    server 127.0.0.1:$p1;\n}\nupstream A {\n    server 127.0.0.1:$p2;\n}\n", 4, qr/twice/],
    ["server 127.0.0.1:$p1;\n", 1, qr/upstream/],
);
for my $c (@cases) {
    my ($text, $line, $what) = @$c;
    main::spew($path, $text);
    my ($rc, $out) = nginx_t();
    (my $shown = $text) =~ s/\n/\\n/g;
    isnt($rc, 0, "nginx -t fails: $shown");
    like($out, qr/\[emerg\].*dyups_upstream_conf "\Q$path\E": line $line: /, "  [emerg] names the file and line $line");
    like($out, $what, '  and says what is wrong');
}

main::spew($path, $cases[0][0]);
ok(!eval { nginx_restart(); 1 }, 'nginx refuses to start with the corrupt file');
like(error_log_text(),
     qr/\[emerg\].*dyups_upstream_conf "\Q$path\E": line 6: upstream "b": unknown directive "aaserver"/,
     'error.log: [emerg] with the file, the line and the problem');
--- allow_error_log
dyups_upstream_conf ".*": line \d+: 



=== TEST 7: an unreadable dyups_upstream_conf (a directory): nginx -t fails naming the file; nginx refuses to start
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
--- config
location / { dyups_interface; }
--- perl
my $path = main::dyups_file();
mkdir $path or die "mkdir: $!";
my ($rc, $out) = nginx_t();
isnt($rc, 0, 'nginx -t fails: the path is a directory');
like($out, qr/\[emerg\].*dyups_upstream_conf "\Q$path\E"/, '  [emerg] names the file');
ok(!eval { nginx_restart(); 1 }, 'nginx refuses to start');
like(error_log_text(), qr/\[emerg\].*dyups_upstream_conf "\Q$path\E"/, 'error.log: [emerg] names the file');
--- allow_error_log
dyups_upstream_conf "



=== TEST 8: the state file cannot be written (query API and Lua): 500 naming the file and the OS error, [error], the change stays in effect; once fixed the next change writes the whole state
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2, $p3) = (port(1), port(2), port(3));
my $path = main::zone_file();
main::change("server=127.0.0.1:$p2&weight=2");
my $saved = main::slurp($path);
is($saved, $main::HEADER . main::srv(1) . main::srv(2, weight => 2), 'the file before');

main::lock_data_dir();
my $r = http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&down=");
is($r->{status}, 500, 'a change that cannot be written: 500');
like($r->{body}, qr/\A500 Internal Server Error: ${\ main::write_failure($path)}\n\z/, '  the body names the file and the OS error');
is(main::verbose(), main::srv(1, down => 1) . main::srv(2, weight => 2), '  the change is in effect');
is_deeply(main::traffic(10), { $p2 => 10 }, '  in the traffic too');
is(main::slurp($path), $saved, '  the file is the old one, intact');
like(error_log_text(), qr/\[error\].*${\ main::write_failure($path)}/, '  error.log: [error] with the same text');

$r = http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$p3");
is($r->{status}, 500, 'a second change: 500 too');
is(main::lua(qq{return show(d.update_peer("zone_for_backends", "127.0.0.1:$p3", { weight = 3 }))}) =~ s/\\\n/\n/gr,
   'nil, "' . "could not write state file \"$path\": Permission denied (os error 13); the change is in effect and the next change writes the file again" =~ s/"/\\"/gr . '"',
   'Lua update_peer: nil and the same message');
my $now = main::srv(1, down => 1) . main::srv(2, weight => 2) . main::srv(3, weight => 3);
is(main::verbose(), $now, 'both changes are in effect');
is(main::slurp($path), $saved, 'the file is still the old one');
opendir my $dh, data_dir() or die;
is_deeply([grep { /tmp/ } readdir $dh], [], 'no temporary file left behind');

main::unlock_data_dir();
main::change("server=127.0.0.1:$p1&up=");
$now = main::srv(1) . main::srv(2, weight => 2) . main::srv(3, weight => 3);
is(main::slurp($path), $main::HEADER . $now, 'fixed: the next change writes the whole state, with the earlier changes');
nginx_restart();
is(main::verbose(), $now, 'restored after a restart');
is_deeply(main::traffic(12), { $p1 => 2, $p2 => 4, $p3 => 6 }, 'traffic 1:2:3 after the restart');
--- error_log
[error]
could not write state file



=== TEST 9: dyups_upstream_conf cannot be written (REST and Lua): 500 naming the file, [error], the change stays in effect; once fixed the next change writes the whole state
--- modules: lua
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2, $p3) = (port(1), port(2), port(3));
my $path = main::dyups_file();
is(main::admin('POST', '/upstream/keep', "server 127.0.0.1:$p3;")->{status}, 200, 'POST keep');
my $saved = main::slurp($path);
is($saved, "${main::HEADER}upstream keep {\n    server 127.0.0.1:$p3 weight=1 max_fails=1 fail_timeout=10;\n}\n", 'the file before');

main::lock_data_dir();
my $r = main::admin('POST', '/upstream/dyhost', "least_conn; server 127.0.0.1:$p2;");
is($r->{status}, 500, 'POST that cannot be written: 500');
like($r->{body}, main::write_failure($path), '  the body names the file and the OS error');
is(main::admin('GET', '/upstream/dyhost')->{status}, 200, '  the upstream exists');
is_deeply(main::traffic(5, 'dyhost'), { $p2 => 5 }, '  and takes traffic');
like(error_log_text(), qr/\[error\].*${\ main::write_failure($path)}/, '  error.log: [error] with the same text');
$r = main::admin('DELETE', '/upstream/host1');
is($r->{status}, 500, 'DELETE of a configuration upstream that cannot be written: 500');
like($r->{body}, main::write_failure($path), '  the body names the file and the OS error');
is_deeply(main::traffic(3, 'host1'), { 'status 502' => 3 }, '  host1 is gone');
is(main::lua(q{return show(dyups.update("lua1", "server 127.0.0.1:} . $p1 . q{;"))}),
   '500, "' . "could not write state file \"$path\": Permission denied (os error 13); the change is in effect and the next change writes the file again" =~ s/"/\\"/gr . '"',
   'Lua dyups.update: 500 and the same message');
is_deeply(main::traffic(3, 'lua1'), { $p1 => 3 }, '  lua1 takes traffic');
is(main::slurp($path), $saved, 'the file is still the old one');

main::unlock_data_dir();
is(main::admin('POST', '/upstream/keep', "server 127.0.0.1:$p3 weight=2;")->{status}, 200, 'fixed: POST keep');
my $file = main::slurp($path) // '';
my @blocks = sort $file =~ /^(upstream [^\n]*\{\n.*?^\}\n)/msg;
is($file, $main::HEADER . join('', map { $_ } $file =~ /^(upstream [^\n]*\{\n.*?^\}\n)/msg), 'the file is the header and upstream blocks');
is_deeply(\@blocks, [sort
    "upstream dyhost {\n    least_conn;\n    server 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10;\n}\n",
    "upstream host1 {\n    deleted;\n}\n",
    "upstream keep {\n    server 127.0.0.1:$p3 weight=2 max_fails=1 fail_timeout=10;\n}\n",
    "upstream lua1 {\n    server 127.0.0.1:$p1 weight=1 max_fails=1 fail_timeout=10;\n}\n",
], 'the next change writes the whole state, with the earlier changes');
nginx_restart();
is_deeply(main::traffic(3, 'dyhost'), { $p2 => 3 }, 'after a restart: dyhost');
is_deeply(main::traffic(3, 'lua1'), { $p1 => 3 }, 'after a restart: lua1');
is_deeply(main::traffic(3, 'host1'), { 'status 502' => 3 }, 'after a restart: host1 still deleted');
--- error_log
[error]
could not write state file



=== TEST 10: hostile input to the query API and Lua ngx.dynamic is refused with 400 and the file stays byte for byte the same
--- modules: lua
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2) = (port(1), port(2));
my $path = main::zone_file();
main::change("server=127.0.0.1:$p2&weight=2");
my $lines = main::srv(1) . main::srv(2, weight => 2);
my $saved = main::slurp($path);
is($saved, $main::HEADER . $lines, 'the file before');

# hostile server strings, through add
my @servers = (
    '127.0.0.1:7001;server%20127.0.0.1:7002', '127.0.0.1:7001%3Bserver%20127.0.0.1:7002',
    '127.0.0.1:7001%0Aserver%20127.0.0.1:7002', '127.0.0.1:7001%0A', '127.0.0.1:7001%0D%0A',
    '127.0.0.1:7001%23', '%22127.0.0.1:7001%22', "'127.0.0.1:7001'", '127.0.0.1:7001%7D', '%7B127.0.0.1:7001',
    '127.0.0.1:7001%20backup', '127.0.0.1:7001%09down', '127.0.0.1%20:7001',
    'unix:/tmp/a;b', 'unix:/tmp/a%3Bserver%20127.0.0.1:1', 'unix:/tmp/a%20b', 'unix:/tmp/a%0Aserver%20127.0.0.1:1',
    'unix:/tmp/a%7D', 'unix:/tmp/a%7B', 'unix:/tmp/a%23b', 'unix:/tmp/%22a%22', "unix:/tmp/a'b", 'unix:/tmp/a%00b',
    '[::1%0A]:80', '[::1];:80',
);
for my $s (@servers) {
    my $r = http_get("/dynamic?upstream=backends&add=&server=$s");
    is($r->{status}, 400, "add server=$s: 400") or diag($r->{body});
    is(main::slurp($path), $saved, '  the file is unchanged') if main::slurp($path) ne $saved;
}
# hostile parameters, on an existing server
my @params = (
    'weight=2;', 'weight=2%3B', 'weight=2%0A', 'weight=2%20backup', 'weight=%222%22', 'weight=2%23',
    'max_fails=1%7D', 'max_fails=1%7B', 'fail_timeout=10s;', 'fail_timeout=10%23', 'fail_timeout=10%0Aserver',
    'max_conns=1%20down', 'down=1;', 'down=%0A', 'up=true%23', 'weight=2&foo%3Bbar=1', 'weight=2&%0A=1',
);
for my $p (@params) {
    my $r = http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&$p");
    is($r->{status}, 400, "server=127.0.0.1:$p1&$p: 400") or diag($r->{body});
}
# and through add
for my $p (@params[0 .. 5]) {
    my $r = http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:7003&$p");
    is($r->{status}, 400, "add server=127.0.0.1:7003&$p: 400") or diag($r->{body});
}
# hostile upstream names
for my $u ('backends;', 'backends%3B', 'backends%0A', 'backends%20', 'backends%23', '%22backends%22', 'backends%7D') {
    my $r = http_get("/dynamic?upstream=$u&server=127.0.0.1:$p1&weight=3");
    is($r->{status}, 400, "upstream=$u: 400") or diag($r->{body});
}
# Lua
for my $s ("127.0.0.1:7001;server 127.0.0.1:7002", "127.0.0.1:7001\nserver 127.0.0.1:7002", "127.0.0.1:7001 backup",
           "127.0.0.1:7001#", "\"127.0.0.1:7001\"", "127.0.0.1:7001}", "unix:/tmp/a;b", "unix:/tmp/a}", "unix:/tmp/a b",
           "unix:/tmp/a\nserver 127.0.0.1:1", "unix:/tmp/a#b", "unix:/tmp/a\"b") {
    my $code = 'return show(d.add_peer("zone_for_backends", ' . main::lstr($s) . '))';
    like(main::lua($code), qr/^nil, "/, "Lua add_peer " . ($s =~ s/\n/\\n/gr) . ": refused");
}
like(main::lua(qq{return show(d.update_peer("zone_for_backends", "127.0.0.1:$p1", { weight = "2;" }))}),
     qr/^nil, "/, 'Lua update_peer weight "2;": refused');
like(main::lua(qq{return show(d.update_peer("zone_for_backends", "127.0.0.1:$p1;", { weight = 2 }))}),
     qr/^nil, "/, 'Lua update_peer server "...;": refused');

is(main::slurp($path), $saved, 'after all of that the file is byte for byte the same');
is(main::verbose(), $lines, 'and so is the upstream');
nginx_restart();
is(main::verbose(), $lines, 'a restart restores it');
--- no_error_log
could not write



=== TEST 11: hostile input to the REST API and Lua ngx.dyups is refused with 400 and the file stays byte for byte the same
--- modules: lua
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2) = (port(1), port(2));
my $path = main::dyups_file();
is(main::admin('POST', '/upstream/keep', "server 127.0.0.1:$p2;")->{status}, 200, 'POST keep');
my $saved = main::slurp($path);
my $keep = "upstream keep {\n    server 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10;\n}\n";
is($saved, $main::HEADER . $keep, 'the file before');

# After each case: the file must be unchanged. If it changed (a hostile
# input was accepted), that fails, and the upstream is deleted again so the
# next cases start from the same file.
my $same = sub {
    my ($what) = @_;
    my $now = main::slurp($path);
    return if $now eq $saved;
    is($now, $saved, "  $what: the file is unchanged");
    main::admin('DELETE', '/upstream/evil');
    $now = main::slurp($path);
    is($now, $saved, "  (deleting evil again restores the file)") if $now ne $saved;
    $saved = $now;
};
# hostile names
for my $n ('a;b', 'a%3Bb', 'a%0Ab', 'a%0A', 'a%7Bb', 'a%7Db', 'a%23b', 'a%20b', '%22a%22', "a'b", 'a%09b',
           'keep%0Aupstream%20evil%20%7B') {
    for my $m ('POST', 'DELETE') {
        my $r = main::admin($m, "/upstream/$n", $m eq 'POST' ? "server 127.0.0.1:$p1;" : undef);
        is($r->{status}, 400, "$m /upstream/$n: 400") or diag($r->{body});
        $same->("$m $n");
    }
}
# hostile bodies (text)
my @bodies = (
    qq|server "unix:/tmp/a;b";|,
    qq|server "127.0.0.1:$p1;server 127.0.0.1:7001";|,
    qq|server "127.0.0.1:$p1\nserver 127.0.0.1:7001";|,
    qq|server 127.0.0.1:$p1 weight=2};|,
    qq|server 127.0.0.1:$p1; } upstream evil { server 127.0.0.1:7001;|,
    qq|server 127.0.0.1:$p1; \{|,
    qq|server 'unix:/tmp/x}';|,
    qq|server unix:/tmp/a{b;|,
    qq|server unix:/tmp/a}b;|,
    qq|server "unix:/tmp/a b";|,
    qq|server "unix:/tmp/a#b";|,
    qq|server 127.0.0.1:$p1 "weight=2;";|,
    qq|server 127.0.0.1:$p1 weight="2}";|,
    qq|hash \$uri}; server 127.0.0.1:$p1;|,
    qq|hash "\$uri}"; server 127.0.0.1:$p1;|,
    qq|hash \$uri{; server 127.0.0.1:$p1;|,
    qq|hash "\$uri consistent"; server 127.0.0.1:$p1;|,
    qq|hash "\$uri\nupstream evil {"; server 127.0.0.1:$p1;|,
    qq|hash "\$uri#"; server 127.0.0.1:$p1;|,
    qq|hash "\$uri;"; server 127.0.0.1:$p1;|,
);
for my $b (@bodies) {
    my $r = main::admin('POST', '/upstream/evil', $b);
    is($r->{status}, 400, 'POST /upstream/evil ' . ($b =~ s/\n/\\n/gr) . ': 400') or diag($r->{body});
    $same->($b);
}
# hostile bodies (JSON)
my @json = (
    qq{{"servers":[{"server":"unix:/tmp/a;b"}]}},
    qq{{"servers":[{"server":"unix:/tmp/a}\\nupstream evil {"}]}},
    qq{{"servers":[{"server":"127.0.0.1:$p1\\nserver 127.0.0.1:7001"}]}},
    qq{{"servers":[{"server":"127.0.0.1:$p1 backup"}]}},
    qq{{"servers":[{"server":"127.0.0.1:$p1#"}]}},
    qq{{"servers":[{"server":"\\"127.0.0.1:$p1\\""}]}},
    qq{{"servers":[{"server":"127.0.0.1:$p1","weight":"2;"}]}},
    qq{{"servers":[{"server":"127.0.0.1:$p1","fail_timeout":"10s; server 127.0.0.1:7001"}]}},
    qq{{"servers":[{"server":"127.0.0.1:$p1"}],"balancer":"hash","hash_key":"\$uri}\\nupstream evil {"}},
    qq{{"servers":[{"server":"127.0.0.1:$p1"}],"balancer":"hash","hash_key":"\$uri consistent"}},
    qq{{"servers":[{"server":"127.0.0.1:$p1"}],"balancer":"hash","hash_key":"\$uri x"}},
    qq{{"servers":[{"server":"127.0.0.1:$p1"}],"balancer":"hash","hash_key":"\$uri;"}},
    qq{{"servers":[{"server":"127.0.0.1:$p1"}],"balancer":"hash","hash_key":"\$uri#"}},
    qq{{"servers":[{"server":"127.0.0.1:$p1"}],"balancer":"hash","hash_key":"\\"\$uri\\""}},
    qq{{"servers":[{"server":"127.0.0.1:$p1"}],"balancer":"least_conn; server 127.0.0.1:7001"}},
);
for my $j (@json) {
    my $r = http('POST', 'http://127.0.0.1:' . port(8) . '/upstream/evil', $j, { 'Content-Type' => 'application/json' });
    is($r->{status}, 400, "POST /upstream/evil (JSON) $j: 400") or diag($r->{body});
    $same->($j);
}
# Lua
for my $c ([ 'a;b', "server 127.0.0.1:$p1;" ], [ "a\nb", "server 127.0.0.1:$p1;" ], [ 'a}', "server 127.0.0.1:$p1;" ],
           [ 'a b', "server 127.0.0.1:$p1;" ], [ 'evil', qq|server "unix:/tmp/a}";| ],
           [ 'evil', qq|hash "\$uri}"; server 127.0.0.1:$p1;| ]) {
    my ($name, $body) = @$c;
    like(main::lua('return show(dyups.update(' . main::lstr($name) . ', ' . main::lstr($body) . '))'),
         qr/^400, "/, 'Lua dyups.update ' . ($name =~ s/\n/\\n/gr) . ", $body: 400");
    $same->("Lua $name");
}
like(main::lua('return show(dyups.delete("a;b"))'), qr/^400, "/, 'Lua dyups.delete "a;b": 400');

is(main::slurp($path), $main::HEADER . $keep, 'after all of that the file is byte for byte the same');
is(main::admin('GET', '/upstream/evil')->{status}, 404, 'no upstream "evil"');

# a comment in a body is not copied into the file
is(main::admin('POST', '/upstream/commented', "server 127.0.0.1:$p1; # } upstream evil { server 127.0.0.1:7001;\n")->{status},
   200, 'a body with a # comment is accepted');
my @blocks = sort((main::slurp($path) // '') =~ /^(upstream [^\n]*\{\n.*?^\}\n)/msg);
is(main::slurp($path), $main::HEADER . join('', (main::slurp($path) // '') =~ /^(upstream [^\n]*\{\n.*?^\}\n)/msg),
   '  the file is the header and upstream blocks');
is_deeply(\@blocks, [
    "upstream commented {\n    server 127.0.0.1:$p1 weight=1 max_fails=1 fail_timeout=10;\n}\n", $keep,
], '  and the comment is not in it');
nginx_restart();
is(main::admin('GET', '/upstream/evil')->{status}, 404, 'after a restart: still no upstream "evil"');
is(main::admin('GET', '/upstream/commented')->{status}, 200, 'after a restart: commented');
is(main::admin('GET', '/upstream/keep')->{status}, 200, 'after a restart: keep');

=== TEST 12: must_die: one dynamic_state_file for two upstreams: [emerg] naming the file and both upstreams (each change of one used to overwrite the other's servers, and each restore gave both the other's)
--- http_config
upstream one {
    zone one 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/shared.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream two {
    zone two 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/shared.state;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- must_die
--- error_log
qr/\[emerg\].*dynamic_state_file "[^"]*\/shared\.state" is the state file of both upstream "one" and upstream "two": each upstream needs a file of its own/

=== TEST 13: must_die: a dynamic_state_file that is also the dyups_upstream_conf file: [emerg] naming it
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/shared.state;
upstream one {
    zone one 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/shared.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
location /upstream { dyups_interface; }
--- must_die
--- error_log
qr/\[emerg\].*dynamic_state_file "[^"]*\/shared\.state" of upstream "one" is also the dyups_upstream_conf file: each needs a file of its own/

=== TEST 14: a state file's lock held by a process that does not let go (a worker stuck in a change): changes answer 503 after 5 s naming the holder; a reload and nginx -t are refused naming it; nginx stays responsive to signals; once it lets go, all works (the master used to wait in flock() for ever at the reload, deaf to TERM and QUIT)
--- workers: 1
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream backends {
    zone backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
use Fcntl qw(:flock);
use Time::HiRes qw(time);
my ($p1, $p2) = (port(1), port(2));
my ($zone, $dyups) = (main::zone_file(), main::dyups_file());
main::change("add=&server=127.0.0.1:$p2");
is(main::admin('POST', '/upstream/dyhost', "server 127.0.0.1:$p2;")->{status}, 200, 'POST dyhost');
my $listing = main::verbose();

# A process that takes both locks and keeps them until it is killed.
pipe(my $ready_r, my $ready_w) or die "pipe: $!";
my $holder = fork() // die "fork: $!";
if ($holder == 0) {
    close $ready_r;
    my @fh;
    for my $path ($zone, $dyups) {
        open(my $fh, '>>', "$path.lock") or die "open $path.lock: $!";
        flock($fh, LOCK_EX) or die "flock: $!";
        push @fh, $fh;
    }
    print $ready_w "locked\n";
    close $ready_w;
    sleep 1 while 1;
    exit 0;
}
close $ready_w;
is(scalar <$ready_r>, "locked\n", "the holder ($holder) has both locks");
my $held = sub { my ($path) = @_; qr/\Q"$path"\E stayed locked for 5 s by process $holder \(a change stuck there\?\); nothing was changed; try again, and if it persists end that process \(kill -9\), then reload nginx/ };

my $t0 = time;
my $r = http_get("/dynamic?upstream=backends&down=&server=127.0.0.1:$p2");
my $took = time - $t0;
is($r->{status}, 503, 'a query-API change: 503');
like($r->{body}, $held->($zone), '  naming the file and the holder');
ok($took >= 4.5 && $took < 9, "  after the 5 s wait ($took s)");
is(main::verbose(), $listing, '  nothing was changed');
$t0 = time;
$r = http_get("/dynamic?upstream=backends&down=&server=127.0.0.1:$p2");
$took = time - $t0;
ok($r->{status} == 503 && $took < 1, "the next change answers 503 at once while the holder keeps it ($took s)");
$r = main::admin('POST', '/upstream/dyhost', "server 127.0.0.1:$p1;");
is($r->{status}, 503, 'a REST change: 503');
like($r->{body}, $held->($dyups), '  naming the file and the holder');
is_deeply(main::traffic(4, 'dyhost'), { $p2 => 4 }, '  nothing was changed');
like(error_log_text(), qr/\[error\].*${\ $held->($zone)}/, 'error.log: [error] with the same text');

my $refused = sub { my ($d, $path) = @_; qr/\Q$d "$path": its lock "$path.lock" stayed held for 5 s by process $holder (a change stuck there?): end that process (kill -9), then reload nginx\E/ };
my ($code, $out) = nginx_t();
isnt($code, 0, 'nginx -t fails');
like($out, $refused->('dynamic_state_file', $zone), '  naming the file and the holder');
my $master = master_pid();
my @workers = worker_pids();
$t0 = time;
ok(!eval { nginx_reload(); 1 }, 'the reload is refused');
like($@ // '', $refused->('dynamic_state_file', $zone), '  with the [emerg] naming the file and the holder');
ok(main::alive($master), '  the master still runs');
is("@{[worker_pids()]}", "@workers", '  and its workers');
is_deeply(main::traffic(4), { $p1 => 2, $p2 => 2 }, '  which serve the state as before');
$t0 = time;
my $rc = system($NginxTest::BINARY, '-p', prefix(), '-c', 'conf/nginx.conf', '-e', 'logs/error.log', '-s', 'reopen');
$took = time - $t0;
ok($rc == 0 && $took < 2, "nginx -s reopen signals the master at once (rc $rc, $took s): the signaller checks no lock");

kill 'KILL', $holder;
waitpid($holder, 0);
$r = http_get("/dynamic?upstream=backends&down=&server=127.0.0.1:$p2");
is($r->{status}, 200, 'the holder is gone: a change is accepted') or diag($r->{body});
is(main::admin('POST', '/upstream/dyhost', "server 127.0.0.1:$p1;")->{status}, 200, '  and a REST change');
ok(eval { nginx_reload(); 1 }, '  and a reload') or diag($@);
is(main::verbose(), main::srv(1) . main::srv(2, down => 1), '  which restored the file');
is_deeply(main::traffic(4, 'dyhost'), { $p1 => 4 }, '  and kept the run-time upstream');
--- allow_error_log
stayed locked for 5 s by process
stayed held for 5 s by process

=== TEST 15: a file size limit (RLIMIT_FSIZE: systemd's LimitFSIZE=, ulimit -f): a state file write past it answers 500 naming the OS error and the change stays in effect, no worker dies of SIGXFSZ, no temporary file is left; temporary files of processes that are gone are removed at the next reload
--- log_level: error
--- http_config
upstream backends {
    zone backends 1m;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; access_log off; }
--- perl
# setrlimit(RLIMIT_FSIZE) of this process (x86_64 syscall numbers), which
# the nginx it starts inherits.
my ($getrlimit, $setrlimit, $fsize) = (97, 160, 1);
my $limits = pack('Q2', 0, 0);
syscall($getrlimit, $fsize, $limits) == 0 or die "getrlimit: $!";
my (undef, $hard) = unpack('Q2', $limits);
my $set_fsize = sub { syscall($setrlimit, $fsize, pack('Q2', $_[0], $hard)) == 0 or die "setrlimit: $!" };
my $path = main::zone_file();
my $temporaries = sub { opendir(my $d, data_dir()) or die; join ' ', sort grep { /\.tmp\z/ } readdir $d };

$set_fsize->(8192);
nginx_restart();
$set_fsize->($hard);
my (%status, $refused);
for my $i (1 .. 200) {
    my $r = http_get('/dynamic?upstream=backends&add=&server=127.0.0.1:' . (30000 + $i));
    $status{ $r->{status} }++;
    $refused //= $r->{body} if $r->{status} != 200;
}
ok($status{200} > 50 && $status{500} > 50 && keys %status == 2, 'writes below the limit: 200; past it: 500')
    or diag(explain(\%status));
like($refused // '', qr/could not write state file "\Q$path\E": File too large \(os error 27\); the change is in effect and the next change writes the file again/,
     '  naming the file and the OS error');
my @listed = main::verbose() =~ /^server /mg;
is(scalar @listed, 201, 'every change is in effect');
my @in_file = main::slurp($path) =~ /^server /mg;
ok(-s $path <= 8192 && @in_file < 201, 'the file stays within the limit: the last change it could hold');
is($temporaries->(), '', 'no temporary file is left');

# A temporary file of a process that is gone, and one of a live process.
my $gone = fork() // die "fork: $!";
exit 0 if $gone == 0;
waitpid($gone, 0);
for my $pid ($gone, $$) {
    open(my $fh, '>', data_dir() . "/.backends.state.$pid.tmp") or die "$!";
}
# A gone process's temporary of a file that is no state file stays.
open(my $other, '>', data_dir() . "/.other.state.$gone.tmp") or die "$!";
close $other;
nginx_restart();
is($temporaries->(), ".backends.state.$$.tmp .other.state.$gone.tmp",
   'after a restart without the limit: the gone process\'s temporary file is removed, the live one\'s kept, another file\'s kept');
unlink(data_dir() . "/.backends.state.$$.tmp", data_dir() . "/.other.state.$gone.tmp");
@listed = main::verbose() =~ /^server /mg;
is(scalar @listed, scalar @in_file, '  the restart restored what the file held');
is(http_get('/dynamic?upstream=backends&add=&server=127.0.0.1:30999')->{status}, 200, 'a change is written again');
my @saved = main::slurp($path) =~ /^server /mg;
is(scalar @saved, @in_file + 1, '  with the whole state');
--- allow_error_log
could not write state file

=== TEST 16: one state file named two ways (`sub/../`, a linked directory): nginx -t fails naming both spellings and both owners; so for dynamic_state_file and dyups_upstream_conf (path strings were compared: each change of one upstream overwrote the other's servers, and the dyups file lost its upstreams and stopped the next start, hunt 33)
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream one {
    zone one 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/x.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream two {
    zone two 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/sub/../x.state;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream three {
    zone three 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/linked/dyups.conf;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
location /upstream { dyups_interface; }
--- perl
# Without `sub` and `linked` the spellings name no file (nginx starts: a
# write there would fail); with them, each names another's file.
my $dir = data_dir();
mkdir "$dir/sub" or die "mkdir: $!";
my ($rc, $out) = nginx_t();
isnt($rc, 0, 'nginx -t fails: x.state named twice');
like($out, qr{\[emerg\].*dynamic_state_file "\Q$dir\E/sub/\.\./x\.state" is the state file of both upstream "one" \(named "\Q$dir\E/x\.state" there\) and upstream "two": each upstream needs a file of its own},
     '  [emerg] names both spellings and both upstreams') or diag($out);
rmdir "$dir/sub" or die "rmdir: $!";
symlink($dir, "$dir/linked") or die "symlink: $!";
($rc, $out) = nginx_t();
isnt($rc, 0, 'nginx -t fails: the dyups file named again through a linked directory');
like($out, qr{\[emerg\].*dynamic_state_file "\Q$dir\E/linked/dyups\.conf" of upstream "three" is also the dyups_upstream_conf file \(named "\Q$dir\E/dyups\.conf" there\): each needs a file of its own},
     '  [emerg] names both spellings') or diag($out);
unlink "$dir/linked";
($rc, $out) = nginx_t();
is($rc, 0, 'without them nginx -t passes') or diag($out);
--- allow_error_log
is the state file of both
is also the dyups_upstream_conf file

=== TEST 17: a symbolic link (or a FIFO) where a state file or its lock belongs, planted by the worker user in the directory it writes: nginx -t and a start refuse it naming the path, and never write, truncate or quote the file it points to (the root master truncated and rewrote any file as the lock, and quoted the first line of any file, /etc/shadow's hash, into error.log, hunt 33); at run time the write replaces a link planted as its temporary file instead of writing through it
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $path = main::zone_file();
my $dir = data_dir();
my $secret = "$dir/../secret";
my $guarded = "root:SECRETHASH:7:0:7:7:::\n";
main::spew($secret, $guarded);
chmod 0600, $secret;
my $refused = sub {
    my ($what, $shown, $why) = @_;
    my ($rc, $out) = nginx_t();
    isnt($rc, 0, "nginx -t fails: $what");
    like($out, qr/\[emerg\].*dynamic_state_file "\Q$path\E": .*"\Q$shown\E" is $why/, "  [emerg] says what the path is") or diag($out);
    unlike($out, qr/SECRETHASH/, '  and quotes nothing of the file it points to');
    is(main::slurp($secret), $guarded, '  which is unchanged');
};
unlink "$path.lock";    # the running master's
symlink($secret, "$path.lock") or die "symlink: $!";
$refused->('the lock is a symbolic link', "$path.lock", qr/a symbolic link \(name the file it points to instead\): a state file and its lock must be regular files/);
ok(!eval { nginx_restart(); 1 }, '  nginx refuses to start');
is(main::slurp($secret), $guarded, '  the file it points to is unchanged');
unlink "$path.lock";
symlink($secret, $path) or die "symlink: $!";
$refused->('the state file is a symbolic link', $path, qr/a symbolic link/);
unlink $path;
system('mkfifo', $path) == 0 or die "mkfifo";
$refused->('the state file is a FIFO (it was read: the master hung)', $path, qr/not a regular file/);
unlink $path;
nginx_restart();
# A worker's temporary file planted as a link: the write does not follow it.
my @workers = worker_pids();
symlink($secret, "$dir/.backends.state.$_.tmp") or die "symlink: $!" for @workers;
is(http_get('/dynamic?upstream=zone_for_backends&server=127.0.0.1:' . port(1) . '&weight=2')->{status}, 200, 'a change: 200');
is(main::slurp($path), "$main::HEADER" . 'server 127.0.0.1:' . port(1) . " weight=2 max_fails=1 fail_timeout=10;\n", '  written');
is(main::slurp($secret), $guarded, '  the file a temporary name pointed to is unchanged');
ok(! -l $path, '  the state file is a regular file');
--- allow_error_log
dynamic_state_file "

=== TEST 18: one upstream's state file named as another's lock file (PATH.lock), or the dyups file as one: nginx -t fails naming both (the claim written at start overwrote the state file, and nginx then neither reloaded nor started, review 32)
--- http_config
upstream one {
    zone one 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/a.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream two {
    zone two 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/a.state.lock;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- must_die
--- error_log
qr/\[emerg\].*dynamic_state_file "[^"]*\/a\.state\.lock" of upstream "two" is the lock file of upstream "one"'s state file \(its name and "\.lock"\): each needs a file of its own/

=== TEST 19: one upstream's state file named as a temporary file of another's (.NAME.PID.tmp, which a start removes once its writer is gone): nginx -t fails naming both (its changes were lost at the next start, review 33)
--- http_config
upstream one {
    zone one 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/a.conf;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream two {
    zone two 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/.a.conf.999999.tmp;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- must_die
--- error_log
qr/\[emerg\].*dynamic_state_file "[^"]*\/\.a\.conf\.999999\.tmp" of upstream "two" is named as a temporary file of state file "a\.conf" \("\.NAME\.PID\.tmp", removed at start\): each needs a name of its own/

=== TEST 20: the dyups_upstream_conf file named as a temporary file of a state file: nginx -t fails naming both (the start deleted it, and every run-time upstream with it, review 34)
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/.a.conf.999999.tmp;
upstream one {
    zone one 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/a.conf;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
location /upstream { dyups_interface; }
--- must_die
--- error_log
qr/\[emerg\].*dyups_upstream_conf "[^"]*\/\.a\.conf\.999999\.tmp" is named as a temporary file of state file "a\.conf" \("\.NAME\.PID\.tmp", removed at start\): each needs a name of its own/

=== TEST 21: a state file in a subdirectory of the directory the worker user writes, and the worker user replaces that subdirectory with a symbolic link: nginx -t, a reload and the workers' writes refuse the path naming the link, and never write, truncate or quote a file of the directory it points to (the root master rewrote DIR/NAME.lock and quoted the first line of DIR/NAME of any directory, review 32); a link in a directory no other user can change is followed
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $data = data_dir();    # 0777: the directory the worker user writes
my $zones = "$data/zones";
my $victim = "$data/../victim";    # a directory the worker user cannot read
mkdir $_ or die "mkdir $_: $!" for $zones, $victim;
chmod 0777, $zones;
chmod 0700, $victim;
my $guarded = "root-only content\n";
my $quoted = "server root:SECRETHASH:7:0:7:7:::;\n";
main::spew("$victim/backends.state.lock", $guarded);
main::spew("$victim/backends.state", $quoted);
chmod 0600, "$victim/backends.state.lock", "$victim/backends.state";
main::move_state_file("$zones/backends.state");
nginx_reload();
my $change = sub { http_get('/dynamic?upstream=zone_for_backends&server=127.0.0.1:' . port(1) . "&weight=$_[0]") };
is($change->(2)->{status}, 200, 'a change with the state file in data/zones: 200');
my $saved = "$main::HEADER" . 'server 127.0.0.1:' . port(1) . " weight=2 max_fails=1 fail_timeout=10;\n";
is(main::slurp("$zones/backends.state"), $saved, '  written there');
# What the worker user can do: data/zones becomes a link to the victim.
rename($zones, "$zones.old") or die "rename: $!";
symlink($victim, $zones) or die "symlink: $!";
my $refusal = qr/"\Q$zones\E" is a symbolic link in a directory other users can change \("\Q$data\E"\): name the directory it points to instead/;
my $unchanged = sub {
    is(main::slurp("$victim/backends.state.lock"), $guarded, "  $_[0]: the victim's lock file is unchanged");
    is(main::slurp("$victim/backends.state"), $quoted, '  and its state file too');
    is(join(' ', sort map { s{.*/}{}r } glob("$victim/* $victim/.*[!.]")), 'backends.state backends.state.lock', '  and nothing was created there');
};
my ($rc, $out) = nginx_t();
isnt($rc, 0, 'nginx -t fails');
like($out, qr/\[emerg\].*dynamic_state_file "\Q$zones\E\/backends\.state": cannot lock: $refusal/, '  [emerg] names the link') or diag($out);
unlike($out, qr/SECRETHASH/, '  and quotes nothing of the file behind it');
$unchanged->('nginx -t');
main::spew("$victim/backends.state", "server 127.0.0.1:" . port(2) . ";\n");    # one that would restore
$quoted = main::slurp("$victim/backends.state");
ok(!eval { nginx_reload(); 1 }, 'a reload is refused');
like($@, $refusal, '  naming the link');
$unchanged->('the reload');
my $r = $change->(3);
is($r->{status}, 500, 'a change the running workers cannot save: 500');
like($r->{body}, $refusal, '  naming the link');
$unchanged->('the change');
# A link only root (or nginx's master user) can change is the administrator's: followed.
my $real = "$data/../real";
rename("$zones.old", $real) or die "rename: $!";
unlink $zones or die "unlink: $!";
my $safe = "$data/../safe";
mkdir $safe or die "mkdir: $!";
symlink($real, "$safe/zones") or die "symlink: $!";
main::move_state_file("$safe/zones/backends.state");
nginx_reload();
like(http_get('/dynamic?upstream=zone_for_backends&verbose=')->{body}, qr/ weight=2 /, 'a link in a directory only root can change: followed, the file restored (the refused change left weight 2)');
is($change->(4)->{status}, 200, '  a change: 200');
like(main::slurp("$real/backends.state"), qr/weight=4/, '  written through it');
--- allow_error_log
dynamic_state_file "
could not write state file

=== TEST 22: a dynamic_state_file whose name is too long for the module's temporary file (.NAME.PID.tmp, 255 bytes at most): nginx -t fails saying the longest name (it passed, then every change answered 500 "File name too long", or worked until the pids grew a digit, review 35)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- must_die
--- error_log
qr/\[emerg\].*dynamic_state_file "[^"]*\/a{243}": its file name is 243 bytes long: at most 242 \(its temporary file \.NAME\.PID\.tmp must fit in 255\)/

=== TEST 23: a dyups_upstream_conf (or a dynamic_state_file) that names a directory (ending in "/", "/." or "/.."): nginx -t fails saying so (it passed where the directory did not exist, and then nothing could be written, review 35)
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/missing/.;
--- config
location /upstream { dyups_interface; }
--- must_die
--- error_log
qr/\[emerg\].*dyups_upstream_conf "[^"]*\/data\/missing\/\.": names a directory: name the file in it/

=== TEST 24: a state file path that climbs ("..") out of a directory other users can change: nginx -t fails naming it (the worker user could move that directory elsewhere, and the root master then followed ".." into a directory only root can write, review 36); out of one only root can change, ".." is followed
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $data = data_dir();    # 0777
mkdir "$data/sub" or die "mkdir: $!";
chmod 0777, "$data/sub";    # the worker user's to move (a root-owned 0755 one it could not move elsewhere)
main::move_state_file("$data/sub/../backends.state");
my ($rc, $out) = nginx_t();
isnt($rc, 0, 'nginx -t fails');
like($out, qr/\[emerg\].*dynamic_state_file "\Q$data\E\/sub\/\.\.\/backends\.state": cannot lock: "\Q$data\E\/sub" is in a directory other users can change, and "\.\." climbs out of it: name the directory without "\.\."/, '  naming the path') or diag($out);
chmod 0755, $data;
($rc, $out) = nginx_t();
is($rc, 0, 'the same path in a directory only root (or the master user) can change: nginx -t passes') or diag($out);

=== TEST 25: a symbolic link root (or nginx's master user) made in a sticky directory (/tmp) is followed: no other user can replace it there (refused at first, review 36); the workers, running as the worker user, refuse a link in a directory of the worker user's as the master does (they followed it: a change answered 503 "taken over by another nginx", or wrote through the link, review 36)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $data = data_dir();
my $link = "/tmp/ndu-test-$$-" . port(1);
symlink($data, $link) or die "symlink: $!";
main::move_state_file("$link/backends.state");
my $ok = eval { nginx_reload(); 1 };
my $err = $@;
ok($ok, 'a state file through a link of ours in /tmp: the reload succeeds') or diag($err);
my $change = sub { http_get('/dynamic?upstream=zone_for_backends&server=127.0.0.1:' . port(1) . "&weight=$_[0]") };
is($change->(2)->{status}, 200, '  a change: 200');
like(main::slurp("$data/backends.state"), qr/ weight=2 /, '  written through it');
unlink $link;
main::move_state_file("$data/zones/backends.state");
my $worker = getpwnam('nobody');
SKIP: {
    skip 'the workers run as the master user unless nginx runs as root', 3 unless $> == 0 && defined $worker;
    mkdir "$data/zones" or die "mkdir: $!";
    chown $worker, -1, $data, "$data/zones";
    chmod 0755, $data, "$data/zones";
    nginx_reload();
    is($change->(3)->{status}, 200, 'a state file in data/zones, both the worker user\'s: a change: 200');
    # The worker user plants a link to a directory of its own.
    my $elsewhere = "$data/../elsewhere";
    mkdir $elsewhere or die "mkdir: $!";
    chown $worker, -1, $elsewhere;
    rename("$data/zones", "$data/zones.old") or die "rename: $!";
    symlink($elsewhere, "$data/zones") or die "symlink: $!";
    my $r = $change->(4);
    is($r->{status}, 500, 'a link the worker user planted in its own directory: the workers refuse it too (500)');
    like($r->{body}, qr/"\Q$data\E\/zones" is a symbolic link in a directory other users can change/, '  naming the link');
}
--- allow_error_log
dynamic_state_file "
could not lock state file

=== TEST 26: a relative -p prefix with working_directory, run from a directory in one the worker user cannot search, as a daemon with standard input closed: the workers write the state file the master read (every change answered 503 "taken over by another nginx": the workers chdir to working_directory and resolved the relative path there, review 39; then 500 "Permission denied" when the path was made absolute, review 44)
--- config
location / { return 200; }
--- perl
my $private = prefix() . 'private';    # root's (the test's), 0700
my $base = "$private/w";
mkdir $_ or die "mkdir $_: $!" for $private, $base, (map { "$base/$_" } qw(rel rel/conf rel/logs rel/data)), prefix() . 'wd';
chmod 0700, $private;
chmod 0777, "$base/rel/data", prefix() . 'wd';    # the worker user's
my ($backend, $listen) = (port(1), port(2));
main::spew("$base/rel/data/a.state", "server 127.0.0.1:$backend weight=3;\n");
main::spew("$base/rel/conf/nginx.conf", <<"CONF");
load_module $NginxTest::MODULE;
worker_processes 1;
working_directory ${\ prefix()}wd;
pid logs/nginx.pid;
error_log logs/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path logs; proxy_temp_path logs; fastcgi_temp_path logs; uwsgi_temp_path logs; scgi_temp_path logs;
    upstream a { zone za 64k; dynamic_state_file data/a.state; server 127.0.0.1:$backend; }
    server { listen 127.0.0.1:$listen; location /dynamic { dynamic_upstream; } }
}
CONF
my $launcher = fork // die "fork: $!";
if (!$launcher) {
    chdir $base or POSIX::_exit(1);
    close STDIN;
    open STDERR, '>', "$base/rel/logs/stderr.log";
    exec $NginxTest::BINARY, '-p', 'rel/', '-c', 'conf/nginx.conf', '-e', 'logs/error.log' or POSIX::_exit(1);
}
waitpid($launcher, 0);
my $pid_file = "$base/rel/logs/nginx.pid";
poll_until(sub { -s $pid_file }, 10);
my $pid = main::slurp($pid_file) =~ s/\s+//gr;
my $api = "http://127.0.0.1:$listen/dynamic?upstream=za";
# Stopped whatever happens (the harness stops only its own nginx).
my $checked = eval {
    ok(poll_until(sub { http_get($api)->{status} == 200 }, 10), 'the nginx started with -p rel/ answers');
    is(http_get("$api&verbose=")->{body}, "server 127.0.0.1:$backend weight=3 max_fails=1 fail_timeout=10;\n",
        'rel/data/a.state restored');
    my $r = http_get("$api&server=127.0.0.1:$backend&weight=7");
    is($r->{status}, 200, 'a change: 200') or diag($r->{body});
    is(main::slurp("$base/rel/data/a.state"),
        "$main::HEADER" . "server 127.0.0.1:$backend weight=7 max_fails=1 fail_timeout=10;\n",
        '  written to rel/data/a.state, the file the master read');
    ok(!-e prefix() . 'wd/rel', '  nothing under working_directory');
    1;
};
my $error = $@;
kill 'QUIT', $pid if $pid;
poll_until(sub { !kill 0, $pid }, 10) if $pid;
die $error unless $checked;
my $log = main::slurp("$base/rel/logs/error.log");
unlike($log, qr/\[(alert|crit|emerg)\]|exited on signal/, 'its error log: no alert, crit, emerg or signal exit') or diag($log);
