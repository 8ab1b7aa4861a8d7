# dynamic_state_file: a zone upstream's servers kept in a file of
# `server ...;` lines. After every accepted change through the query API
# (location /dynamic) or Lua's ngx.dynamic the file holds the upstream's
# whole state, byte for byte as the verbose listing writes it, after a
# header comment. The state survives nginx_reload(), nginx_restart() and a
# worker killed with SIGKILL, in the listings and in the proxied traffic,
# and it wins over the configuration's server lines (which are used only
# when there is no state file, or one without servers).
#
# Most blocks proxy through a second server on port 9 with `reuseport` (so
# successive connections land on different workers) that names the worker
# that answered in X-Worker.
use lib 't/lib';
use NginxTest;
use NginxTest::Files;
use NginxTest::Lua;
use NginxTest::QueryApi;
use NginxTest::Traffic;
use POSIX ();

our $HEADER = "# Written by nginx-dynamic-upstream after every change through its APIs.\n";

# A Lua location for the blocks that load the lua module: the POST body is
# Lua code run with `d` = require "ngx.dynamic" and `show(...)` in scope;
# its return value is the answer (see NginxTest::Lua).
$ENV{TEST_NGINX_LUA_EVAL} = lua_eval_location([d => 'ngx.dynamic']);

# The state file of upstream NAME (default backends), and its contents.
sub state_file { data_dir() . '/' . ($_[0] // 'backends') . '.state' }
sub state { slurp(state_file(@_)) // '(no file)' }

# The file and the verbose listing both hold exactly LINES.
sub state_is {
    my ($lines, $what) = @_;
    is(main::state(), $HEADER . $lines, "$what: the state file");
    is(main::verbose(), $lines, "$what: the verbose listing");
}

# No temporary files left next to the state files.
sub no_debris {
    opendir my $dh, data_dir() or die "opendir: $!";
    my @junk = grep { !/^\.\.?$/ && !/\.state(?:\.lock)?$/ } readdir $dh;
    is_deeply(\@junk, [], 'no temporary files left in the data directory');
}

# split_ok(N, { port number 1..9 => weight }, NAME): N proxied requests go
# only to those backends, in proportion to the weights (+-2 per backend:
# smooth weighted round robin is exact over a full cycle up to where the
# cycle started).
sub split_ok {
    my ($n, $weights, $name) = @_;
    my ($got) = spread_via($n);
    my $total = 0;
    $total += $_ for values %$weights;
    my %want = map { port($_) => $n * $weights->{$_} / $total } keys %$weights;
    my @bad = grep { !exists $want{$_} } keys %$got;
    push @bad, grep { abs(($got->{$_} // 0) - $want{$_}) > 2 } keys %want;
    ok(!@bad, "$name: $n proxied requests split " . join(':', map { $weights->{$_} } sort keys %$weights)
              . ' over ports ' . join(',', map { port($_) } sort keys %$weights))
        or diag(explain({ got => $got, want => \%want }));
}

# Every worker lists exactly LINES (verbose).
sub every_worker_lists {
    my ($lines, $what) = @_;
    my ($bad, $seen, $want) = every_worker('/dynamic?upstream=backends&verbose=',
        sub { $_[0]{status} == 200 && $_[0]{body} eq $lines });
    is($bad, 0, "$what: every listing is the saved state");
    is($seen, $want, "$what: all $want workers answered");
}

# Replaces the server lines of `upstream backends` in nginx.conf.
sub set_config_servers {
    my (@ports) = @_;
    my $conf = slurp(conf_file());
    my $servers = join '', map { "    server 127.0.0.1:" . port($_) . ";\n" } @ports;
    $conf =~ s/(upstream backends \{\n(?:[^\n]*\n)*?)(?:    server [^\n]*\n)+/$1$servers/
        or die "no server lines in upstream backends";
    spew(conf_file(), $conf);
}

run_tests();
__DATA__

=== TEST 1: query API: every accepted change rewrites the file with the whole state, as the verbose listing shows it
--- workers: 2
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
main::change('server=127.0.0.1:' . port(2) . '&weight=3');
main::state_is(main::srv(1) . main::srv(2, weight => 3), 'weight');
ok(-e main::state_file() . '.lock', 'the lock file backends.state.lock is next to the state file');
my $inode = (stat main::state_file())[1];

main::change('add=&server=127.0.0.1:' . port(3));
main::state_is(main::srv(1) . main::srv(2, weight => 3) . main::srv(3), 'add');
isnt((stat main::state_file())[1], $inode, 'the file was replaced (a new file renamed over it), not rewritten in place');

main::change('server=127.0.0.1:' . port(1) . '&down=');
main::state_is(main::srv(1, down => 1) . main::srv(2, weight => 3) . main::srv(3), 'down');

main::change('server=127.0.0.1:' . port(3) . '&max_fails=5&fail_timeout=2m&max_conns=100');
main::state_is(main::srv(1, down => 1) . main::srv(2, weight => 3)
             . main::srv(3, max_fails => 5, fail_timeout => 120, max_conns => 100), 'max_fails, fail_timeout, max_conns');

main::change('add=&backup=&server=127.0.0.1:' . port(4));
main::state_is(main::srv(1, down => 1) . main::srv(2, weight => 3)
             . main::srv(3, max_fails => 5, fail_timeout => 120, max_conns => 100)
             . main::srv(4, backup => 1), 'add backup');

main::change('server=127.0.0.1:' . port(1) . '&up=');
main::state_is(main::srv(1) . main::srv(2, weight => 3)
             . main::srv(3, max_fails => 5, fail_timeout => 120, max_conns => 100)
             . main::srv(4, backup => 1), 'up');

main::change('add=&server=127.0.0.1:' . port(5) . '&weight=4&max_fails=2&down=');
my $five = main::srv(1) . main::srv(2, weight => 3)
         . main::srv(3, max_fails => 5, fail_timeout => 120, max_conns => 100)
         . main::srv(5, weight => 4, max_fails => 2, down => 1)
         . main::srv(4, backup => 1);
main::state_is($five, 'add with parameters');

# through the zone's name: the same upstream, the same file
main::change('remove=&server=127.0.0.1:' . port(1), 'zone_for_backends');
my $after_remove = main::srv(2, weight => 3)
         . main::srv(3, max_fails => 5, fail_timeout => 120, max_conns => 100)
         . main::srv(5, weight => 4, max_fails => 2, down => 1)
         . main::srv(4, backup => 1);
main::state_is($after_remove, 'remove (upstream= the zone name)');

main::change('remove=&server=127.0.0.1:' . port(4));
my $final = main::srv(2, weight => 3)
          . main::srv(3, max_fails => 5, fail_timeout => 120, max_conns => 100)
          . main::srv(5, weight => 4, max_fails => 2, down => 1);
main::state_is($final, 'remove the backup');

# refused changes leave the file alone
my $before = main::state();
for my $q ('server=127.0.0.1:' . port(7) . '&weight=2',          # no such server (400)
           'server=127.0.0.1:' . port(2) . '&weight=0',          # bad weight (400)
           'add=&server=127.0.0.1:' . port(3),                   # already there (400)
           'server=127.0.0.1:' . port(2) . '&down=&up=') {       # down with up (400)
    my $r = http_get("/dynamic?upstream=backends&$q");
    like($r->{status}, qr/^40[04]$/, "refused: $q");
    is(main::state(), $before, "  refused: the file is unchanged");
}
main::state_is($final, 'after the refused changes');
main::no_debris();



=== TEST 2: every worker writes the same file: changes through 4 workers in turn; a reader never sees a torn file
--- workers: 4
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    add_header X-Worker $pid always;
    location /dynamic { dynamic_upstream; }
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
# a reader checks the file continuously while the changes are made
my $dir = data_dir();
my $reader = fork // die "fork: $!";
if (!$reader) {
    my ($reads, @bad) = (0);
    until (-e "$dir/stop-reader") {
        my $t = main::slurp(main::state_file());
        next unless defined $t;
        $reads++;
        push @bad, $t unless $t =~ /\A\Q$main::HEADER\E(?:server \S+ weight=\d+ max_fails=\d+ fail_timeout=\d+(?: down)?;\n)+\z/;
    }
    main::spew("$dir/reader-result", "$reads\n" . join('', map { "BAD:\n$_\n" } @bad[0 .. ($#bad < 2 ? $#bad : 2)]));
    POSIX::_exit(0);
}
my %by;
my $lines = main::srv(1);
for my $i (1 .. 40) {
    my $addr = "10.0.0.$i:8080";
    my $r = main::via("/dynamic?upstream=backends&add=&down=&server=$addr");
    is($r->{status}, 200, "add $addr") if $r->{status} != 200;
    $by{ $r->{headers}{'x-worker'} // 'none' }++;
    $lines .= main::srv($addr, down => 1);
    my $got = main::state();
    is($got, $main::HEADER . $lines, "after adding $addr through worker " . ($r->{headers}{'x-worker'} // '?'))
        if $got ne $main::HEADER . $lines;
}
main::spew("$dir/stop-reader", '');
waitpid($reader, 0);
my $result = main::slurp("$dir/reader-result") // '';
unlink "$dir/stop-reader", "$dir/reader-result";
my ($reads) = $result =~ /\A(\d+)/;
cmp_ok($reads // 0, '>', 40, 'a concurrent reader read the file many times');
unlike($result, qr/BAD/, 'and always found a complete file') or diag($result);
is(main::state(), $main::HEADER . $lines, 'the file holds all 41 servers');
cmp_ok(scalar(keys %by), '>=', 2, 'the changes went through several workers') or diag(explain(\%by));
main::every_worker_lists($lines, 'after 40 adds');
main::no_debris();



=== TEST 3: Lua ngx.dynamic: add_peer, update_peer, set_peer_down and remove_peer rewrite the file; refused calls do not
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
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
is(main::lua(qq{return show(d.add_peer("zone_for_backends", "127.0.0.1:$p3", { weight = 2, max_conns = 9 }))}),
   'true', 'add_peer');
main::state_is(main::srv(1) . main::srv(2) . main::srv(3, weight => 2, max_conns => 9), 'add_peer');

is(main::lua(qq{return show(d.update_peer("zone_for_backends", "127.0.0.1:$p1", { weight = 5, max_fails = 3, fail_timeout = 30 }))}),
   'true', 'update_peer');
main::state_is(main::srv(1, weight => 5, max_fails => 3, fail_timeout => 30) . main::srv(2)
             . main::srv(3, weight => 2, max_conns => 9), 'update_peer');

is(main::lua(qq{return show(d.set_peer_down("zone_for_backends", "127.0.0.1:$p2"))}), 'true', 'set_peer_down');
main::state_is(main::srv(1, weight => 5, max_fails => 3, fail_timeout => 30) . main::srv(2, down => 1)
             . main::srv(3, weight => 2, max_conns => 9), 'set_peer_down');

is(main::lua(qq{return show(d.add_peer("zone_for_backends", "127.0.0.1:$p4", { backup = true }))}), 'true',
   'add_peer backup');
is(main::lua(qq{return show(d.remove_peer("zone_for_backends", "127.0.0.1:$p1"))}), 'true', 'remove_peer');
is(main::lua(qq{return show(d.set_peer_down("zone_for_backends", "127.0.0.1:$p2", false))}), 'true',
   'set_peer_down false');
my $lines = main::srv(2) . main::srv(3, weight => 2, max_conns => 9) . main::srv(4, backup => 1);
main::state_is($lines, 'add backup, remove, up');

my $before = main::state();
for my $code (qq{return show(d.add_peer("zone_for_backends", "127.0.0.1:$p2"))},
              qq{return show(d.remove_peer("zone_for_backends", "127.0.0.1:$p1"))},
              qq{return show(d.update_peer("zone_for_backends", "127.0.0.1:$p2", { weight = 0 }))},
              qq{return show(d.add_peer("no_such_zone", "127.0.0.1:$p1"))}) {
    like(main::lua($code), qr/^nil, "/, "refused: $code");
    is(main::state(), $before, '  the file is unchanged');
}
main::state_is($lines, 'after the refused calls');
--- no_error_log
[error]



=== TEST 4: nginx_reload: the saved state rules in every new worker (listing, file, traffic); the new workers accept changes
--- workers: 3
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
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    add_header X-Worker $pid always;
    location /dynamic { dynamic_upstream; }
    location / { proxy_pass http://backends; }
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
main::change('remove=&server=127.0.0.1:' . port(1));
main::change('add=&server=127.0.0.1:' . port(3) . '&weight=3');
main::change('server=127.0.0.1:' . port(2) . '&max_conns=7');
main::change('add=&server=127.0.0.1:' . port(4) . '&down=');
my $lines = main::srv(2, max_conns => 7) . main::srv(3, weight => 3) . main::srv(4, down => 1);
main::state_is($lines, 'before the reload');
main::split_ok(40, { 2 => 1, 3 => 3 }, 'before the reload');
my $file = main::state();

for my $round (1 .. 3) {
    my %old = map { $_ => 1 } worker_pids();
    nginx_reload();
    is(scalar(grep { $old{$_} } worker_pids()), 0, "reload $round: all workers are new");
    is(main::state(), $file, "reload $round: the file is unchanged");
    main::every_worker_lists($lines, "reload $round");
    main::split_ok(40, { 2 => 1, 3 => 3 }, "reload $round");
}

# the new workers accept changes, and they are written
main::change('server=127.0.0.1:' . port(4) . '&up=');
main::change('server=127.0.0.1:' . port(3) . '&weight=1');
$lines = main::srv(2, max_conns => 7) . main::srv(3) . main::srv(4);
main::state_is($lines, 'changed after the reloads');
main::split_ok(60, { 2 => 1, 3 => 1, 4 => 1 }, 'changed after the reloads');
nginx_reload();
main::every_worker_lists($lines, 'one more reload');
main::split_ok(60, { 2 => 1, 3 => 1, 4 => 1 }, 'one more reload');



=== TEST 5: nginx_restart: a new master restores the saved state (listing, file, traffic) and accepts changes
--- workers: 2
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
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    add_header X-Worker $pid always;
    location /dynamic { dynamic_upstream; }
    location / { proxy_pass http://backends; }
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
main::change('server=127.0.0.1:' . port(1) . '&weight=2&max_fails=4&fail_timeout=20');
main::change('server=127.0.0.1:' . port(2) . '&down=');
main::change('add=&server=127.0.0.1:' . port(3));
main::change('add=&backup=&server=127.0.0.1:' . port(4) . '&max_conns=3');
my $lines = main::srv(1, weight => 2, max_fails => 4, fail_timeout => 20) . main::srv(2, down => 1)
          . main::srv(3) . main::srv(4, max_conns => 3, backup => 1);
main::state_is($lines, 'before the restart');
my $file = main::state();
my $master = master_pid();

nginx_restart();
isnt(master_pid(), $master, 'a new master');
is(main::state(), $file, 'the file is unchanged by the restart');
main::every_worker_lists($lines, 'after the restart');
main::split_ok(60, { 1 => 2, 3 => 1 }, 'after the restart');

# all primaries down: the restored backup list takes the traffic
main::change('server=127.0.0.1:' . port(1) . '&down=');
main::change('server=127.0.0.1:' . port(3) . '&down=');
main::split_ok(20, { 4 => 1 }, 'primaries down: the restored backup');
main::change('server=127.0.0.1:' . port(1) . '&up=');
main::change('server=127.0.0.1:' . port(3) . '&up=');
main::change('remove=&server=127.0.0.1:' . port(2));
$lines = main::srv(1, weight => 2, max_fails => 4, fail_timeout => 20) . main::srv(3)
       . main::srv(4, max_conns => 3, backup => 1);
main::state_is($lines, 'changed after the restart');

nginx_restart();
main::every_worker_lists($lines, 'after a second restart');
main::split_ok(60, { 1 => 2, 3 => 1 }, 'after a second restart');
is(main::state(), $main::HEADER . $lines, 'the file after the second restart');



=== TEST 6: kill -9 of a worker: the respawned worker serves the current state from its first request, and can change it
--- workers: 2
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
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    add_header X-Worker $pid always;
    location /dynamic { dynamic_upstream; }
    location / { proxy_pass http://backends; }
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
main::change('remove=&server=127.0.0.1:' . port(1));
main::change('add=&server=127.0.0.1:' . port(3) . '&weight=2');
my $lines = main::srv(2) . main::srv(3, weight => 2);
main::state_is($lines, 'before the kill');

my @before = worker_pids();
my $victim = $before[0];
ok(kill('KILL', $victim), "kill -9 worker $victim");
my $new;
ok(poll_until(sub {
    my @now = worker_pids();
    ($new) = grep { my $p = $_; !grep { $_ == $p } @before } @now;
    return $new && @now == 2;
}, 10, 'respawn'), 'the master respawned a worker');

# hit the new worker many times (through the reuseport server)
my ($listed, $proxied, $stale, $tries) = (0, 0, 0, 0);
my %ports;
while (($listed < 20 || $proxied < 30) && $tries++ < 2000) {
    my $l = main::via('/dynamic?upstream=backends&verbose=');
    if (($l->{headers}{'x-worker'} // 0) == $new) {
        $listed++;
        $stale++, diag("new worker listed: $l->{body}") if $l->{body} ne $lines;
    }
    my $t = main::via('/');
    if (($t->{headers}{'x-worker'} // 0) == $new) {
        $proxied++;
        $ports{ $t->{status} == 200 ? $t->{body} =~ s/\n\z//r : "status $t->{status}" }++;
    }
}
cmp_ok($listed, '>=', 20, 'the respawned worker answered 20 listings');
cmp_ok($proxied, '>=', 30, 'the respawned worker proxied 30 requests');
is($stale, 0, 'every listing of the respawned worker is the current state');
# (the round-robin state is shared: only the split over all requests is 1:2)
is_deeply([sort keys %ports], [sort(port(2), port(3))],
          'the respawned worker proxies to ports ' . port(2) . ' and ' . port(3) . ' only')
    or diag(explain(\%ports));
main::split_ok(60, { 2 => 1, 3 => 2 }, 'after the respawn');

# a change through the respawned worker is written
my $r;
for (1 .. 400) {
    $r = main::via('/dynamic?upstream=backends&server=127.0.0.1:' . port(2) . '&weight=4');
    last if ($r->{headers}{'x-worker'} // 0) == $new;
}
is($r->{headers}{'x-worker'}, $new, 'a change answered by the respawned worker');
is($r->{status}, 200, '  accepted');
$lines = main::srv(2, weight => 4) . main::srv(3, weight => 2);
main::state_is($lines, 'changed through the respawned worker');
main::every_worker_lists($lines, 'changed through the respawned worker');
--- allow_error_log
worker process \d+ exited on signal 9



=== TEST 7: precedence: the state file's servers rule over the configuration's; without the file the configuration's are used
--- workers: 2
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
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    listen 127.0.0.1:$TEST_NGINX_PORT_5;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    add_header X-Worker $pid always;
    location /dynamic { dynamic_upstream; }
    location / { proxy_pass http://backends; }
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
main::change('server=127.0.0.1:' . port(2) . '&weight=2');
my $saved = main::srv(1) . main::srv(2, weight => 2);
main::state_is($saved, 'a change');

# the configuration now names other servers: the file still rules, on reload and restart
main::set_config_servers(5);
nginx_reload();
main::every_worker_lists($saved, 'config changed, reload');
main::split_ok(30, { 1 => 1, 2 => 2 }, 'config changed, reload');
nginx_restart();
main::every_worker_lists($saved, 'config changed, restart');
main::split_ok(30, { 1 => 1, 2 => 2 }, 'config changed, restart');
is(main::state(), $main::HEADER . $saved, 'the file is as written');

# without the file: the configuration's servers
unlink(main::state_file()) or die "unlink: $!";
nginx_reload();
main::every_worker_lists(main::srv(5), 'file removed, reload');
main::split_ok(20, { 5 => 1 }, 'file removed, reload');

# the next change writes the file again, from the configuration's servers
main::change('add=&server=127.0.0.1:' . port(3));
main::state_is(main::srv(5) . main::srv(3), 'a change after the removal');

# a file with nothing but a comment: the configuration's servers
main::spew(main::state_file(), "# nothing here yet\n\n");
main::set_config_servers(4);
nginx_reload();
main::every_worker_lists(main::srv(4), 'a file without servers, reload');
main::split_ok(20, { 4 => 1 }, 'a file without servers, reload');

# a hand-written file (comments, blank lines, default parameters) is restored as written
main::spew(main::state_file(), "# written by hand\nserver 127.0.0.1:" . port(3) . " weight=2;\n\n"
         . "server   127.0.0.1:" . port(1) . "  down ; # later\nserver 127.0.0.1:" . port(2) . " backup;\n");
nginx_restart();
my $hand = main::srv(3, weight => 2) . main::srv(1, down => 1) . main::srv(2, backup => 1);
main::every_worker_lists($hand, 'a hand-written file, restart');
main::split_ok(20, { 3 => 1 }, 'a hand-written file, restart');
main::change('server=127.0.0.1:' . port(1) . '&up=');
main::state_is(main::srv(3, weight => 2) . main::srv(1) . main::srv(2, backup => 1),
               'the next change writes the file in the module\'s own form');



=== TEST 8: each upstream has its own file; upstreams without dynamic_state_file write nothing
--- workers: 2
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream other {
    zone zone_for_other 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/other.state;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream plain {
    zone zone_for_plain 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
main::change('server=127.0.0.1:' . port(1) . '&weight=2');
is(main::state('backends'), $main::HEADER . main::srv(1, weight => 2), 'backends: its file');
ok(!-e main::state_file('other'), 'other: no file yet');
main::change('add=&server=127.0.0.1:' . port(4), 'other');
is(main::state('other'), $main::HEADER . main::srv(2) . main::srv(4), 'other: its file');
is(main::state('backends'), $main::HEADER . main::srv(1, weight => 2), 'backends: its file is unchanged');
main::change('add=&server=127.0.0.1:' . port(4), 'plain');
is(main::verbose('plain'), main::srv(3) . main::srv(4), 'plain: changed');
opendir my $dh, data_dir() or die;
my @files = sort grep { !/^\./ && !/\.lock$/ } readdir $dh;
is_deeply(\@files, ['backends.state', 'other.state'], 'only the two state files exist');
nginx_restart();
is(main::verbose('backends'), main::srv(1, weight => 2), 'backends restored after a restart');
is(main::verbose('other'), main::srv(2) . main::srv(4), 'other restored after a restart');
is(main::verbose('plain'), main::srv(3), 'plain (no state file) is back to its configuration');
