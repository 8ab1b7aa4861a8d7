# Lifecycle faults: reloads that fail late (a bad state file, a bad
# directive after the http block, a port in use), reloads that remove or
# add the Lua module or change dyups_shm_zone_size, each followed by
# `kill -9` of a worker. The master survives, the respawned worker serves
# every upstream, no process exits on a signal, and no change is lost.
#
# Every block has the REST API on port 8 and the proxy (proxy_pass
# http://$host) on port 9, both with `reuseport` (successive connections
# land on different workers) and X-Worker: $pid on every answer.
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups qw(addr admin);
use NginxTest::Files;
use IO::Socket::INET;
use IO::Select;

# Sends SIGHUP for a configuration that must fail, and waits for the
# [emerg] matching EMERG. The master and its workers stay as they were.
sub failed_reload {
    my ($emerg) = @_;
    my @workers = worker_pids();
    my $master = master_pid();
    kill 'HUP', $master or die "kill HUP: $!";
    poll_until(sub { error_log_text() =~ $emerg }, 15, 'the [emerg]') or die "no [emerg] matching $emerg\n";
    ok(kill(0, $master), 'the master survives the failed reload');
    is_deeply([worker_pids()], \@workers, 'its workers are the same');
}

# kill -9 of one worker; waits until the master respawned it. Returns the
# new worker's pid.
sub kill_worker {
    my @before = worker_pids();
    kill 'KILL', $before[0] or die "kill -9 $before[0]: $!";
    my $new;
    poll_until(sub {
        my @now = worker_pids();
        ($new) = grep { my $p = $_; !grep { $_ == $p } @before } @now;
        return $new && @now == @before;
    }, 10, 'respawn') or die "no worker respawned after kill -9 of $before[0]\n";
    return $new;
}

# Requests PATH on PORT (8 or 9) with Host HOST until the worker PID
# answered (at most 400 requests, and none timed out); returns its answer
# as "STATUS BODY".
sub from_worker {
    my ($pid, $port, $path, $host) = @_;
    for (1 .. 400) {
        my $r = http('GET', 'http://127.0.0.1:' . port($port) . $path, undef, { Host => $host // 'localhost' });
        return "$r->{status} $r->{body}" if ($r->{headers}{'x-worker'} // 0) == $pid || $r->{status} == 599;
    }
    return "worker $pid never answered";
}

# After a fault: kill -9 a worker; the respawned one lists and proxies
# to dyhost (on port 2), and takes a change.
sub respawned_worker_serves {
    my ($what) = @_;
    my $pid = main::kill_worker();
    is(main::from_worker($pid, 8, '/upstream/dyhost'),
       '200 server ' . addr(2) . " weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n",
       "$what: the respawned worker lists dyhost");
    is(main::from_worker($pid, 9, '/', 'dyhost'), '200 ' . port(2) . "\n", "$what: and proxies to it");
    is(main::from_worker($pid, 8, '/list'), "200 dyhost\n", "$what: GET /list");
}

# The configuration of TESTs 1-5 and 8: the dyups file, backends that answer
# their port, the REST API on port 8 and the proxy by Host on port 9 (both
# reuseport, naming the worker in X-Worker).
$ENV{TEST_NGINX_DYUPS} = <<'NGINX';
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    add_header X-Worker $pid always;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    add_header X-Worker $pid always;
    location / { proxy_pass http://$host; }
}
NGINX

run_tests();
__DATA__

=== TEST 1: a reload refused for a corrupt dyups_upstream_conf, then kill -9 of a worker: the respawned worker serves
--- workers: 2
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9$
\[emerg\] .*dyups_upstream_conf ".*": line 1
--- perl
my $file = data_dir() . '/dyups.conf';
is(http('POST', '/upstream/dyhost', 'server ' . main::addr(2) . ';')->{body}, 'success', 'dyhost created');
my $saved = main::slurp($file);
main::spew($file, "upstream {{ junk\n");
main::failed_reload(qr/\[emerg\] .*dyups_upstream_conf ".*": line 1/);
main::respawned_worker_serves('after the refused reload');
main::spew($file, $saved);
nginx_reload();
main::respawned_worker_serves('after a good reload');



=== TEST 2: a reload refused for a bad directive after the http block, with a new dyups_shm_zone_size, then kill -9: the respawned worker serves
--- workers: 2
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9$
\[emerg\] .*unknown directive "no_such_directive"
--- perl
is(http('POST', '/upstream/dyhost', 'server ' . main::addr(2) . ';')->{body}, 'success', 'dyhost created');
my $conf = main::slurp(conf_file());
main::spew(conf_file(), $conf =~ s/^(dyups_upstream_conf .*)$/$1\ndyups_shm_zone_size 4m;/mr . "no_such_directive;\n");
main::failed_reload(qr/\[emerg\] .*unknown directive "no_such_directive"/);
main::respawned_worker_serves('after the refused reload');
main::spew(conf_file(), $conf);
nginx_reload();
main::respawned_worker_serves('after a good reload');



=== TEST 3: a reload refused because a new listen port is in use, then kill -9: the respawned worker serves
--- workers: 2
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9$
\[emerg\] .*bind\(\) to 127\.0\.0\.1:\d+ failed \(98: Address already in use\)
\[emerg\] .*still could not bind\(\)
--- perl
is(http('POST', '/upstream/dyhost', 'server ' . main::addr(2) . ';')->{body}, 'success', 'dyhost created');
my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => port(7), Listen => 1, ReuseAddr => 1)
    or die "listen on port 7: $!";
my $conf = main::slurp(conf_file());
main::spew(conf_file(), $conf =~ s/^(dyups_upstream_conf .*)$/$1\nserver { listen 127.0.0.1:${\ port(7)}; }/mr);
main::failed_reload(qr/\[emerg\] .*still could not bind\(\)/);
main::respawned_worker_serves('after the refused reload');
# The same with a new dyups_shm_zone_size: nginx maps and initialises the
# new zone, then fails at bind() and unmaps it.
main::spew(conf_file(), $conf =~ s/^(dyups_upstream_conf .*)$/$1\ndyups_shm_zone_size 4m;\nserver { listen 127.0.0.1:${\ port(7)}; }/mr);
main::failed_reload(qr/(?s:still could not bind.*){2}/);
main::respawned_worker_serves('after the refused reload with a new zone size');
close $busy;
main::spew(conf_file(), $conf);
nginx_reload();
main::respawned_worker_serves('after a good reload');



=== TEST 4: a reload without the Lua module (its load_module lines removed), then with it again: the master survives both, workers serve
--- workers: 2
--- modules: lua
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
location = /lua { content_by_lua_block { ngx.print(require("ngx.dyups").update("dyhost", ngx.unescape_uri(ngx.var.arg_body))) } }
--- allow_error_log
exited on signal 9$
--- perl
my $master = master_pid();
my $lua = sub { http_get('/lua?body=' . "server%20$_[0];") };
is(do { my $r = $lua->(main::addr(1)); "$r->{status} $r->{body}" }, '200 200success', 'Lua: dyhost created');
my $conf = main::slurp(conf_file());
main::spew(conf_file(), $conf =~ s{^load_module \S*(ndk_http|ngx_http_lua)_module\.so;\n}{}mgr =~ s/^.*_by_lua.*\n//mgr);
nginx_reload();
is(master_pid(), $master, 'without Lua: the same master');
ok(kill(0, $master), '  is running');
is(http_get('/lua')->{status}, 404, '  /lua is gone');
is(http('POST', '/upstream/dyhost', 'server ' . main::addr(2) . ';')->{body}, 'success', '  the REST API works');
main::respawned_worker_serves('without Lua');
main::spew(conf_file(), $conf);
nginx_reload();
is(master_pid(), $master, 'with Lua again: the same master');
is(do { my $r = $lua->(main::addr(2)); "$r->{status} $r->{body}" }, '200 200success', '  Lua works');
main::respawned_worker_serves('with Lua again');



=== TEST 5: a reload that adds the Lua module: require "ngx.dyups" works in the new workers
--- workers: 2
--- needs_modules: lua
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9$
--- perl
my $master = master_pid();
my $conf = main::slurp(conf_file());
my ($ours) = $conf =~ /^(load_module .*;\n)/m;
my $lua_modules = join '', map { "load_module $_;\n" } module_files('lua');
$conf =~ s/^\Q$ours\E/$lua_modules$ours/m;
$conf =~ s/.*\K^(\s*location \/ \{ dyups_interface; \})$/$1\nlocation = \/lua { content_by_lua_block { ngx.print(require("ngx.dyups").update("dyhost", ngx.unescape_uri(ngx.var.arg_body))) } }/ms;
main::spew(conf_file(), $conf);
nginx_reload();
is(master_pid(), $master, 'the same master');
my $r = http_get('/lua?body=server%20' . main::addr(2) . ';');
is("$r->{status} $r->{body}", '200 200success', 'Lua: dyhost created');
main::respawned_worker_serves('with Lua added');



=== TEST 6: a reload that changes dyups_shm_zone_size (a new registry): zone-upstream and dyups changes in a worker it replaced are refused (503 guard), nothing is lost
--- workers: 2
--- modules: lua
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
location / { dyups_interface; }
location = /late {
    content_by_lua_block {
        local d = require "ngx.dynamic"
        local f = assert(io.open("$TEST_NGINX_DATA_DIR/started", "w"))
        f:write(ngx.worker.pid())
        f:close()
        local waited = 0
        while not ngx.worker.exiting() and waited < 15 do
            ngx.sleep(0.01)
            waited = waited + 0.01
        end
        ngx.say("exiting: ", tostring(ngx.worker.exiting()))
        local ok, err = d.update_peer("zone_for_backends", ngx.var.arg_server, { weight = 9 })
        ngx.say("update_peer: ", tostring(ok), ", ", tostring(err))
        local status, msg = require("ngx.dyups").update("late", "server " .. ngx.var.arg_server .. ";")
        ngx.say("dyups.update: ", status, ", ", msg)
    }
}
--- perl
my $state = data_dir() . '/backends.state';
my $verbose = sub { http_get('/dynamic?upstream=backends&verbose=')->{body} };
is(http_get('/dynamic?upstream=backends&server=' . main::addr(1) . '&down=')->{status}, 200, 'a change');
my $lines = $verbose->();
my $file = main::slurp($state);
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port(), Timeout => 30) or die "connect: $!";
$s->autoflush(1);
print $s 'GET /late?server=' . main::addr(2) . " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
ok(poll_until(sub { -s data_dir() . '/started' }, 5, 'Lua started'), 'the Lua handler runs in an old worker');
my $conf = main::slurp(conf_file());
main::spew(conf_file(), $conf =~ s/^(dyups_upstream_conf .*)$/$1\ndyups_shm_zone_size 4m;/mr);
nginx_reload();
my $raw = do { local $/; <$s> } // '';
like($raw, qr/^exiting: true$/m, 'the Lua handler saw its worker exiting');
like($raw, qr/^update_peer: nil, .*reloading/m, 'ngx.dynamic.update_peer in the replaced worker: nil, "... reloading ..."');
like($raw, qr/^dyups\.update: 503, .*reloading/m, 'ngx.dyups.update in the replaced worker: 503, "... reloading ..."');
is($verbose->(), $lines, 'the zone upstream is unchanged');
is(http_get('/upstream/late')->{status}, 404, 'no upstream "late" in the new registry');
is(main::slurp(data_dir() . '/dyups.conf'), undef, 'nor in the file');
is(main::slurp($state), $file, 'its file is unchanged');
nginx_restart();
is($verbose->(), $lines, 'and so after a restart');
# The registry that replaced the old one is the running one: it takes
# changes, and a change of size again carries them over (through the file).
is(http('POST', '/upstream/after', 'server ' . main::addr(2) . ';')->{body}, 'success', 'a POST after the new size');
main::spew(conf_file(), $conf);
nginx_reload();
is(http_get('/upstream/after')->{body}, 'server ' . main::addr(2) . " weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n",
   'back to the first size: the upstream is in the next registry');
is(http('POST', '/upstream/again', 'server ' . main::addr(1) . ';')->{body}, 'success', 'which takes changes too');



=== TEST 7: nginx -s stop (SIGTERM) while proxied requests to a run-time upstream are in flight: every process exits cleanly; a restart serves the upstream
--- workers: 2
--- modules: lua
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    location / {
        content_by_lua_block {
            local f = assert(io.open("$TEST_NGINX_DATA_DIR/started-" .. ngx.var.arg_n, "w"))
            f:close()
            ngx.sleep(tonumber(ngx.var.arg_sleep) or 0)
            ngx.say("slow")
        }
    }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
is(http('POST', '/upstream/dyhost', 'server ' . main::addr(1) . ';')->{body}, 'success', 'dyhost created');
my @held = map {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(9), Timeout => 10) or die "connect: $!";
    $s->autoflush(1);
    print $s "GET /?sleep=5&n=$_ HTTP/1.1\r\nHost: dyhost\r\nConnection: close\r\n\r\n";
    $s;
} 1 .. 8;
ok(poll_until(sub { 8 == grep { -e data_dir() . "/started-$_" } 1 .. 8 }, 10, 'requests in flight'),
   '8 proxied requests in flight');
my $master = master_pid();
my @workers = worker_pids();
ok(kill('TERM', $master), 'SIGTERM to the master (nginx -s stop)');
ok(poll_until(sub { !grep { kill 0, $_ } $master, @workers }, 10, 'all exit'), 'the master and its workers exit');
for my $s (@held) {
    my $sel = IO::Select->new($s);
    ok($sel->can_read(5), 'a held connection is closed, not left hanging');
}
unlike(error_log_text(), qr/exited on signal|\[(alert|crit|emerg)\]/, 'no signal exit, no alert');
nginx_restart();
my $r = http('GET', 'http://127.0.0.1:' . port(9) . '/?n=9', undef, { Host => 'dyhost' });
is("$r->{status} $r->{body}", "200 slow\n", 'after a restart dyhost is served again');



=== TEST 8: a reload to a configuration without an http block, kill -9, then back: the master survives, the workers serve
--- workers: 2
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9$
--- perl
is(http('POST', '/upstream/dyhost', 'server ' . main::addr(2) . ';')->{body}, 'success', 'dyhost created');
my $conf = main::slurp(conf_file());
my ($no_http) = $conf =~ /\A(.*?)^http \{/ms or die "no http block in the configuration\n";
my $master = master_pid();
main::spew(conf_file(), $no_http);
nginx_reload();
main::kill_worker();
main::spew(conf_file(), $conf);
nginx_reload();
is(master_pid(), $master, 'the same master throughout');
main::respawned_worker_serves('after a configuration without http and back');
is(http('POST', '/upstream/dyhost', 'server ' . main::addr(1) . ';')->{body}, 'success', 'a change after it');

=== TEST 9: a reload without this module (its load_module line and the http block removed), then with it again: the master unloads the module (and closes its descriptor of the master's directory, hunt 40), and serves with it again (a thread-local with a destructor, touched in the master's init_module, kept the module loaded for the master's life: a reinstalled file was never loaded, and its statics pointed into the freed cycle at the next reload, review 23)
--- workers: 2
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9$
--- perl
use Cwd ();
is(http('POST', '/upstream/dyhost', 'server ' . main::addr(2) . ';')->{body}, 'success', 'dyhost created');
my $conf = main::slurp(conf_file());
my $module = Cwd::abs_path($NginxTest::MODULE) // $NginxTest::MODULE;
my ($no_http) = $conf =~ /\A(.*?)^http \{/ms or die "no http block in the configuration\n";
$no_http =~ s{^load_module \Q$NginxTest::MODULE\E;\n}{}m or die "no load_module of the module\n";
my $master = master_pid();
# Descriptors of the master's directory (the module keeps one, for relative
# state file paths), in the master.
my $cwd_fds = sub {
    my $cwd = readlink("/proc/$master/cwd");
    return scalar grep { (readlink($_) // '') eq $cwd } glob("/proc/$master/fd/*");
};
my $fds = $cwd_fds->();
main::spew(conf_file(), $no_http);
nginx_reload();
my $maps = main::slurp("/proc/$master/maps") // '';
SKIP: {
    skip('ASan or valgrind keep the objects nginx closes', 1) if $maps =~ /libasan|vgpreload|valgrind/;
    unlike($maps, qr/\Q$module\E/, 'the master no longer maps the module');
}
main::spew(conf_file(), $conf);
nginx_reload();
is(master_pid(), $master, 'the same master throughout');
SKIP: {
    skip('ASan or valgrind keep the objects nginx closes', 1) if $maps =~ /libasan|vgpreload|valgrind/;
    is($cwd_fds->(), $fds, "the master keeps $fds descriptor(s) of its directory (one more per unload and load: hunt 40)");
}
main::respawned_worker_serves('after a reload without the module and back (dyhost restored from the file)');
is(http('POST', '/upstream/dyhost', 'server ' . main::addr(1) . ';')->{body}, 'success', 'a change after it');

=== TEST 10: load_module moved between two builds of the module (two files) and back, reload after reload, with health checks, run-time upstreams and the Plus API: every cycle serves changes and checks. (The build loaded first stays loaded while the other serves, nginx loading modules RTLD_GLOBAL; coming back, it took a new cycle at the address of the one it served last for that cycle, and used zones of a freed cycle, hunt 39, seen with gdb; what that wrote does not show here, so this block checks only that every switch serves)
--- workers: 2
--- http_config
check_shm_size 64k;
upstream zu {
    zone zu 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    check interval=200 rise=1 fall=1 timeout=500 type=tcp;
}
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
location /status { check_status csv; }
location /api { dynamic_upstream_api write=on; }
--- perl
use File::Copy ();
my $other = data_dir() . '/other-build.so';
File::Copy::copy($NginxTest::MODULE, $other) or die "copy: $!";
my $conf = main::slurp(conf_file());
my $moved = $conf =~ s{^load_module \Q$NginxTest::MODULE\E;$}{load_module $other;}mr;
isnt($moved, $conf, 'a configuration that loads the other file');
my $check = 'check interval=200 rise=1 fall=1 timeout=500 type=tcp;';
for my $round (1 .. 4) {
    for my $step (['the other file', $moved], ['the first file', $conf]) {
        my ($what, $text) = @$step;
        main::spew(conf_file(), $text);
        nginx_reload();
        my $r = http('POST', "/upstream/d$round", 'server ' . main::addr(2) . "; $check");
        is("$r->{status} $r->{body}", '200 success', "round $round, $what: a checked run-time upstream is created");
        ok(poll_until(sub { (http_get('/status')->{body} // '') =~ /^\d+,d$round,127\.0\.0\.1:\d+,up,/m }, 5, 'up'),
           "  its server is checked up");
        ok(poll_until(sub { (http_get('/status')->{body} // '') =~ /^\d+,zu,127\.0\.0\.1:\d+,up,/m }, 5, 'up'),
           '  zu\'s server is checked up');
        $r = http('PATCH', '/api/9/http/upstreams/zu/servers/0', '{"weight":' . (1 + $round) . '}');
        is($r->{status}, 200, '  a Plus API PATCH of zu answers 200') or diag($r->{body});
    }
}
