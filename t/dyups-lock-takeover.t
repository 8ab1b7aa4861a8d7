# The run-time upstreams' registry lock names its holder: a worker killed
# (kill -9, the OOM killer) while it held the lock, halfway through a
# change, does not stop every later change. The next process that needs
# the lock finds the holder gone, takes the lock over and repairs the
# registry (every worker reloads it); changes, listings and traffic go on.
#
# The module's debug builds (which the tests load) stop a change of an
# upstream at a point NDU_TEST_STALL names ("POINT:NAME", see
# stall_for_tests in src/dyups/test_stall.rs), with the lock held, for 60 s
# after logging "stalling at POINT in a change of NAME": the test kills
# that worker there. Before the lock named its holder every later change
# and listing spun for ever on the dead worker's lock; before the stores of
# a change were ordered for it, a kill between publishing a new list and
# retiring the old one left a record on a freed list (other upstreams'
# servers listed under it, then every list emptied).
#
# The admin API is also on port 8 and the proxy (proxy_pass http://$host)
# on port 9, both with `reuseport` and X-Worker: $pid on every answer.
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups qw(addr line admin proxied keepalive);
use NginxTest::Files;
use NginxTest::PlusApi;
use IO::Socket::INET;
use JSON::PP ();
use Time::HiRes ();

plan skip_all => 'the stall that this file kills workers in exists in debug builds only'
    if ($ENV{TEST_NGINX_MODULE} // '') =~ m{/release/};

# The pid of the worker that logged it stalls in a change of NAME.
sub stalled_pid {
    my ($name) = @_;
    my ($pid) = error_log_text() =~ /\[notice\] (\d+)#\d+: stalling at \w+ in a change of \Q$name\E$/m;
    return $pid;
}

# Every worker (each answer's X-Worker) answers GET /upstream/NAME with
# WANT and proxies Host NAME to port PORT: one test.
sub every_worker_serves {
    my ($name, $want, $port, $what) = @_;
    my %workers = map { $_ => 1 } worker_pids();
    my (%admin, %proxy, @bad);
    for (1 .. 600) {
        last unless grep { !$admin{$_} || !$proxy{$_} } keys %workers;
        my $r = admin('GET', "/upstream/$name");
        $admin{ $r->{headers}{'x-worker'} // 'none' } = 1;
        push @bad, "GET: $r->{status} $r->{body}" unless $r->{status} == 200 && $r->{body} eq $want;
        my $p = proxied($name);
        $proxy{ $p->{headers}{'x-worker'} // 'none' } = 1;
        push @bad, "proxied: $p->{status} $p->{body}" unless $p->{status} == 200 && $p->{body} eq port($port) . "\n";
    }
    my @missed = grep { !$admin{$_} || !$proxy{$_} } keys %workers;
    is_deeply([@missed, @bad], [], "$what: every worker lists $name and proxies it to port $port");
}

# METHOD /upstream/NAME (BODY) to the admin port, on a connection of its
# own; waits until a worker stalls inside it and kills that worker with -9
# (two tests).
sub kill_inside {
    my ($method, $name, $body) = @_;
    my $c = keepalive(port(8));
    $c->send($method, "/upstream/$name", 'localhost', $body);
    my $pid;
    ok(poll_until(sub { $pid = stalled_pid($name) }, 10, 'stall'), "$method /upstream/$name: a worker stalls inside it");
    ok(kill('KILL', $pid), "kill -9 of worker $pid, inside the registry's lock");
}

# METHOD /upstream/NAME (BODY) answers 200 "success" (polled: the first
# one after a kill may wait for the takeover): one test.
sub accepted {
    my ($method, $name, $body) = @_;
    my $r;
    poll_until(sub { $r = admin($method, "/upstream/$name", $body); $r->{status} == 200 }, 20, "$method $name");
    is("$r->{status} $r->{body}", '200 success', "$method /upstream/$name");
}

# For the reloads with a stalled registry lock (TESTs 14, 15): fills the
# health zone (cfg's record, run-time "dy" all but two, and the last one
# claimed by a replace of "d" that stalls holding the registry's lock), gives
# cfg three servers (two more than the zone has room for) and sends HUP;
# with KILL_AFTER, kills the stalled worker that many seconds after the HUP.
# Returns { holds, stalled (its pid), rows (records of an upstream), log (the
# error log since the HUP), old (the old workers) } once the master is done
# with the new configuration (the new workers wait for the lock too: their
# first sync of the registry).
sub stalled_reload {
    my ($kill_after) = @_;
    my $check = ' check interval=60000 rise=1 fall=1 timeout=300 type=tcp;';
    my $servers = sub { join '', map { sprintf 'server 127.0.2.1:%d;', 30001 + $_ } 0 .. $_[0] - 1 };
    my $r = admin('POST', '/upstream/dy', $servers->(200) . $check);
    my ($holds) = $r->{body} =~ /holds (\d+) checked peers/;
    ok($holds, "the health zone holds $holds checked peers") or diag("$r->{status} $r->{body}");
    accepted('POST', 'dy', $servers->($holds - 2) . $check);
    keepalive(port(8))->send('POST', '/upstream/d', 'localhost', 'server 127.0.3.1:30001;' . $check);
    my $stalled;
    ok(poll_until(sub { $stalled = stalled_pid('d') }, 10, 'stall'), 'a worker stalls in a replace of d, holding the registry lock');
    my $conf = NginxTest::Files::slurp(conf_file());
    $conf =~ s/    server 127\.0\.1\.1:30001;\n/join '', map { "    server 127.0.1.1:$_;\n" } 30001 .. 30003/e or die 'no server line';
    NginxTest::Files::spew(conf_file(), $conf);
    my %old = map { $_ => 1 } worker_pids();
    my $size = -s prefix() . 'logs/error.log';
    my $log = sub { substr(error_log_text(), $size) };
    kill 'HUP', master_pid() or die "HUP: $!";
    if ($kill_after) {
        Time::HiRes::sleep($kill_after);
        ok(kill('KILL', $stalled), "kill -9 of the stalled worker $stalled, $kill_after s after the HUP");
    }
    ok(poll_until(sub { $log->() =~ /start worker processes/ }, 15, 'reload'), 'the master is done with the new configuration');
    return { holds => $holds, stalled => $stalled, rows => \&records, log => $log, old => \%old };
}

# The old workers of stalled_reload's T are gone, two new ones run: one test.
sub reloaded {
    my ($t) = @_;
    ok(poll_until(sub { !(grep { $t->{old}{$_} } worker_pids()) && worker_pids() == 2 }, 10, 'workers'),
       '  the old workers are gone, the new ones run');
}

# Four upstreams of 8 servers each (never proxied to): lists the size of
# the retired ones, so that their memory is reused.
sub churn {
    for my $i (1 .. 4) {
        accepted('POST', "c$i", join('', map { "server 127.0.0.$_:" . port(1) . ";" } 2 .. 9));
    }
}

# Every worker answers GET /upstream/NAME with STATUS and BODY: one test.
sub every_worker_lists {
    my ($name, $status, $body, $what) = @_;
    my %workers = map { $_ => 1 } worker_pids();
    my (%seen, @bad);
    for (1 .. 600) {
        last unless grep { !$seen{$_} } keys %workers;
        my $r = admin('GET', "/upstream/$name");
        $seen{ $r->{headers}{'x-worker'} // 'none' } = 1;
        push @bad, "$r->{status} $r->{body}" unless $r->{status} == $status && $r->{body} eq $body;
    }
    is_deeply([(grep { !$seen{$_} } keys %workers), @bad], [], "$what: every worker answers GET /upstream/$name with $status");
}

# For TESTs 16 to 18: the number of records the health zone holds (read
# from the 507 of a run-time POST too big for it), then a Plus API PUT of
# zu's servers (its configuration server and HOLDS - 1 new ones) that
# stalls once their records are claimed (pending, not yet checked), and a
# kill -9 of that worker there (four tests). Returns HOLDS.
sub killed_put {
    my $holds = zone_holds();
    my (undef, $stalled) = stalled_put(put_body($holds));
    ok(kill('KILL', $stalled), "kill -9 of worker $stalled there");
    ok(poll_until(sub { my @w = worker_pids(); @w == 1 && $w[0] != $stalled }, 10, 'respawn'), '  the master started another worker');
    return $holds;
}

# How many checked peers the health zone holds: the 507 of a POST of a
# run-time upstream with 200 checked servers says.
sub zone_holds {
    my $r = admin('POST', '/upstream/probe', join('', map { sprintf 'server 127.0.2.1:%d;', 30001 + $_ } 0 .. 199) . ' check type=tcp;');
    my ($holds) = $r->{body} =~ /holds (\d+) checked peers/;
    ok($holds, "the health zone holds $holds checked peers") or diag("$r->{status} $r->{body}");
    return $holds;
}

# For TESTs 22 and 23 (NDU_TEST_STALL_ONCE names the file): POST
# /upstream/dyx (FIRST, which does not stall), then, on a connection of its
# own, POST /upstream/dyx (THEN), which stalls holding the registry lock, and
# a reload meanwhile that gives the health zone a new size (32k to 48k),
# which goes on without the lock (four tests). Returns the connection and
# the stalled worker's pid.
sub stalled_post_resized {
    my ($first, $then) = @_;
    spew(data_dir() . '/stalled-once', '');
    accepted('POST', 'dyx', $first);
    unlink data_dir() . '/stalled-once';
    my $c = keepalive(port(8));
    $c->send('POST', '/upstream/dyx', 'localhost', $then);
    my $stalled;
    ok(poll_until(sub { $stalled = stalled_pid('dyx') }, 10, 'stall'), 'a worker stalls in the second POST, holding the registry lock');
    my $conf = slurp(conf_file());
    $conf =~ s/check_shm_size 32k;/check_shm_size 48k;/ or die 'no check_shm_size';
    spew(conf_file(), $conf);
    my $size = reload_meanwhile();
    like(substr(error_log_text(), $size), qr/the upstream registry stayed locked for 2 s/, '  without the registry\'s lock, a new health zone');
    return ($c, $stalled);
}

# POST /upstream/NAME with N checked servers that the health zone has room
# for answers 200 (polled for 5 s: the records a worker frees at its next
# tick make room): one test.
sub room_for {
    my ($name, $n, $what) = @_;
    my $body = join('', map { sprintf 'server 127.0.3.1:%d;', 30001 + $_ } 0 .. $n - 1) . ' check interval=60000 type=tcp;';
    my $r;
    poll_until(sub { $r = admin('POST', "/upstream/$name", $body); $r->{status} == 200 }, 5, 'room');
    is("$r->{status} $r->{body}", '200 success', "$what: a POST of $n checked servers has room");
}

# Sends a Plus API PUT of zu's servers (BODY) on a connection of its own and
# waits until its worker stalls at zone_claimed, the new servers' records
# claimed: one test. Returns the connection and the worker's pid.
sub stalled_put {
    my ($body) = @_;
    my $c = keepalive(server_port());
    $c->send('PUT', '/api/9/http/upstreams/zu/servers', 'localhost', $body);
    my $stalled;
    ok(poll_until(sub { $stalled = stalled_pid('zu') }, 10, 'stall'), 'a worker stalls in the PUT of zu, its records claimed');
    return ($c, $stalled);
}

# Reloads (HUP) while a worker stalls, and waits until the master is done
# with the configuration: one test. Returns the error log's size before.
sub reload_meanwhile {
    my $size = -s prefix() . 'logs/error.log';
    kill 'HUP', master_pid() or die "HUP: $!";
    ok(poll_until(sub { substr(error_log_text(), $size) =~ /start worker processes/ }, 15, 'reload'), 'a reload meanwhile');
    return $size;
}

# The stalled worker of CONNECTION (PID) answers its change in the
# configuration it had, and exits: two tests.
sub overtaken_answers {
    my ($c, $pid) = @_;
    my $answer = $c->read;
    ok($answer->{status}, "the stalled worker answers ($answer->{status}) in the configuration it had");
    ok(poll_until(sub { !kill(0, $pid) }, 10, 'exit'), '  and exits');
}

# The body of a PUT of zu's servers: its configuration server and N - 1 others.
sub put_body {
    my ($n) = @_;
    my @servers = ({ server => '127.0.1.1:30001' }, map { { server => sprintf('127.0.3.1:%d', 30001 + $_) } } 1 .. $n - 1);
    return JSON::PP->new->encode(\@servers);
}

# How many records the health zone has for UPSTREAM's servers.
sub records {
    my ($upstream) = @_;
    my $status = JSON::PP->new->decode(http_get('/status')->{body});
    return scalar grep { $_->{upstream} eq $upstream } @{ $status->{servers}{server} };
}

# Backends on ports 1 to 3 that answer their port, the admin API on port 8
# and the proxy on port 9.
$ENV{TEST_NGINX_SERVERS} = <<'EOF';
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
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
EOF

# TESTs 16-19, 21: a zone of 32k and one checked zone upstream, "zu".
$ENV{TEST_NGINX_CHECKED_ZU} = <<'EOF';
check_shm_size 32k;
upstream zu {
    zone zu 512k;
    server 127.0.1.1:30001;
    check interval=60000 rise=1 fall=1 timeout=300 type=tcp;
}
EOF

# TESTs 14, 15: a zone of 32k and one checked configuration server, "cfg",
# which stalled_reload gives three.
$ENV{TEST_NGINX_CHECKED_CFG} = <<'EOF';
check_shm_size 32k;
upstream cfg {
    zone cfg 64k;
    server 127.0.1.1:30001;
    check interval=60000 rise=1 fall=1 timeout=300 type=tcp;
}
EOF

run_tests();

__DATA__

=== TEST 1: a worker killed inside a change: the next change takes the lock over, every worker serves one state, the file and a restart keep it
--- workers: 2
--- main_config
env NDU_TEST_STALL=replace_version:stalled;
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
is(main::admin('POST', '/upstream/before', 'server ' . main::addr(1) . ';')->{body}, 'success', 'POST before');

my $c = main::keepalive(port(8));
$c->send('POST', '/upstream/stalled', 'localhost', 'server ' . main::addr(2) . ';');
my $pid;
ok(poll_until(sub { $pid = main::stalled_pid('stalled') }, 10, 'stall'), 'a worker stalls inside the change of "stalled"');
ok(!$c->answered, 'the stalled POST is not answered');
ok(kill('KILL', $pid), "kill -9 of worker $pid, which holds the registry's lock");

# Before the fix this POST (and every later one) spun for ever.
my $r;
ok(poll_until(sub { $r = main::admin('POST', '/upstream/after', 'server ' . main::addr(3) . ';'); $r->{status} == 200 }, 20, 'POST'),
   'a POST after the kill is accepted');
is("$r->{status} $r->{body}", '200 success', '  with "success"');
like(error_log_text(), qr/\[warn\] \d+#\d+: dynamic upstream: process $pid ended while it held the upstream registry's lock; taking the lock over and repairing the registry/,
     'the takeover and repair are logged');
ok(poll_until(sub { my @w = worker_pids(); @w == 2 && !grep { $_ == $pid } @w }, 10, 'respawn'), 'the master respawned the worker');

# The half-made change reached every worker alike (its list was in).
main::every_worker_serves('stalled', main::line(main::addr(2)), 2, 'after the takeover');
main::every_worker_serves('after', main::line(main::addr(3)), 3, 'after the takeover');
main::every_worker_serves('before', main::line(main::addr(1)), 1, 'after the takeover');

my $d = main::admin('DELETE', '/upstream/stalled');
is("$d->{status} $d->{body}", '200 success', 'the half-made upstream can be deleted');
my $file = main::slurp(data_dir() . '/dyups.conf') // '';
is(join(' ', $file =~ /^upstream (\S+) \{/mg), 'before after', 'the file holds the accepted state');

nginx_restart();
main::every_worker_serves('after', main::line(main::addr(3)), 3, 'after a restart');
is(main::admin('GET', '/upstream/stalled')->{status}, 404, 'after a restart: the deleted one stays deleted');

=== TEST 2: a worker killed inside a change while another worker waits for the lock: the waiter takes it over
--- workers: 2
--- main_config
env NDU_TEST_STALL=replace_version:stalled;
--- http_config
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
# A keep-alive connection to each worker (reuseport spreads new ones).
my %conn;
for (1 .. 100) {
    my $k = main::keepalive(port(8));
    my $r = $k->request('GET', '/list', 'localhost');
    $conn{ $r->{headers}{'x-worker'} } //= $k;
    last if keys %conn == 2;
}
my ($holder, $waiter) = sort keys %conn;
is(scalar(keys %conn), 2, 'a keep-alive connection to each worker');
$conn{$holder}->send('POST', '/upstream/stalled', 'localhost', 'server ' . main::addr(2) . ';');
my $pid;
ok(poll_until(sub { $pid = main::stalled_pid('stalled') }, 10, 'stall'), 'a worker stalls inside the change of "stalled"');
is($pid, $holder, '  the one that was sent the POST');
$conn{$waiter}->send('POST', '/upstream/waiter', 'localhost', 'server ' . main::addr(1) . ';');
ok(!poll_until(sub { $conn{$waiter}->answered }, 0.5, 'answer'), 'a POST to the other worker waits for the lock');
ok(kill('KILL', $pid), "kill -9 of worker $pid, which holds the registry's lock");
my $r = eval { $conn{$waiter}->read };
is($r && "$r->{status} $r->{body}", '200 success', 'the waiting POST is accepted once the holder is gone');
main::every_worker_serves('waiter', main::line(main::addr(1)), 1, 'after the takeover');
main::every_worker_serves('stalled', main::line(main::addr(2)), 2, 'after the takeover');

=== TEST 3: killed between publishing a replaced upstream's new list and retiring the old one: the record never points at a freed list
--- workers: 2
--- main_config
env NDU_TEST_STALL=replace_retire:a;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
main::accepted('POST', 'a', 'server ' . main::addr(1) . ';');
main::kill_inside('POST', 'a', 'server ' . main::addr(2) . ';');
main::accepted('POST', 'b', 'server ' . main::addr(3) . ';');
main::churn();
my $c = join '', map { main::line("127.0.0.$_:" . port(1)) } 2 .. 9;
main::every_worker_serves('a', main::line(main::addr(2)), 2, 'after the takeover and more changes');
main::every_worker_lists('c1', 200, $c, 'after the takeover and more changes');
main::every_worker_lists('c4', 200, $c, 'after the takeover and more changes');
main::accepted('POST', 'a', 'server ' . main::addr(3) . ';');
main::accepted('POST', 'd', 'server ' . main::addr(1) . ';');
main::every_worker_serves('a', main::line(main::addr(3)), 3, 'after another change of a');
main::every_worker_serves('b', main::line(main::addr(3)), 3, 'after another change of a');
main::every_worker_lists('c2', 200, $c, 'after another change of a');
my $file = main::slurp(data_dir() . '/dyups.conf') // '';
is(join(' ', $file =~ /^upstream (\S+) \{/mg), 'a b c1 c2 c3 c4 d', 'the file holds every upstream');
like($file, qr/^upstream a \{\n    server \Q${\ main::addr(3)}\E /m, '  a with its last server');

=== TEST 4: killed between unpublishing a deleted upstream's list and retiring it: the upstream is gone everywhere, the others keep theirs
--- workers: 2
--- main_config
env NDU_TEST_STALL=delete_retire:gone;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
main::accepted('POST', 'gone', 'server ' . main::addr(1) . ';');
main::accepted('POST', 'keep', 'server ' . main::addr(2) . ';');
main::kill_inside('DELETE', 'gone');
main::accepted('POST', 'b', 'server ' . main::addr(3) . ';');
main::churn();
my $c = join '', map { main::line("127.0.0.$_:" . port(1)) } 2 .. 9;
main::every_worker_lists('gone', 404, 'upstream "gone" not found', 'after the takeover and more changes');
main::every_worker_serves('keep', main::line(main::addr(2)), 2, 'after the takeover and more changes');
main::every_worker_lists('c1', 200, $c, 'after the takeover and more changes');
main::accepted('POST', 'gone', 'server ' . main::addr(3) . ';');
main::every_worker_serves('gone', main::line(main::addr(3)), 3, 'created again');
main::accepted('DELETE', 'gone');
main::every_worker_lists('gone', 404, 'upstream "gone" not found', 'deleted again');

=== TEST 5: killed inside the first change of an upstream of the configuration: the replacement is served (not a deletion)
--- workers: 2
--- main_config
env NDU_TEST_STALL=replace_version:cu;
--- http_config
upstream cu { server 127.0.0.1:$TEST_NGINX_PORT_1; }
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
main::every_worker_serves('cu', main::line(main::addr(1)), 1, 'from the configuration');
main::kill_inside('POST', 'cu', 'server ' . main::addr(2) . ';');
main::accepted('POST', 'b', 'server ' . main::addr(3) . ';');
main::every_worker_serves('cu', main::line(main::addr(2)), 2, 'after the takeover');
main::every_worker_serves('b', main::line(main::addr(3)), 3, 'after the takeover');

=== TEST 6: killed inside a change with checks: its servers are checked (they start down and rise), not left unchecked
--- workers: 2
--- main_config
env NDU_TEST_STALL=replace_version:h;
--- http_config
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
main::kill_inside('POST', 'h', 'server ' . main::addr(1) . '; check interval=200 rise=1 fall=1 timeout=400 default_down=true type=tcp;');
main::accepted('POST', 'b', 'server ' . main::addr(3) . ';');
ok(poll_until(sub { main::proxied('h')->{status} == 200 }, 5, 'rise'), 'the checked server rises and is proxied to');
main::every_worker_serves('h', main::line(main::addr(1)), 1, 'after it rose');

=== TEST 7: killed between writing a replace's balancer and putting it in force: the old balancer and key stay whole (the file parses, a restart works)
--- workers: 2
--- main_config
env NDU_TEST_STALL=replace_balancer:K;
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
# Stalls match the name as written, records any case: "K" changes "k".
main::accepted('POST', 'k', 'hash $remote_addr; server ' . main::addr(1) . ';');
main::kill_inside('POST', 'K', 'hash ${arg_abcdefghij}; server ' . main::addr(2) . ';');
main::accepted('POST', 'b', 'server ' . main::addr(3) . ';');
main::every_worker_serves('k', main::line(main::addr(1)), 1, 'after the takeover: the old list and balancer');
my $file = main::slurp(data_dir() . '/dyups.conf') // '';
like($file, qr/^upstream k \{\n    hash \$remote_addr;\n/m, 'the file keeps the old key whole');
nginx_restart();
main::every_worker_serves('k', main::line(main::addr(1)), 1, 'after a restart');

=== TEST 8: killed after a replace's new health slots are checked, before its list is published: the old list keeps its checks
--- workers: 2
--- main_config
env NDU_TEST_STALL=replace_activated:U;
--- http_config
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
# Checks probe port 4, where nothing listens until the test opens it.
my $check = ' check interval=200 rise=1 fall=1 timeout=400 type=tcp port=' . port(4) . ';';
main::accepted('POST', 'u', 'server ' . main::addr(2) . ';' . $check);
main::accepted('POST', 'v', 'server ' . main::addr(2) . ';' . $check);
ok(poll_until(sub { main::proxied('u')->{status} == 502 && main::proxied('v')->{status} == 502 }, 5, 'down'),
   'u and v are down (port 4 closed)');
main::kill_inside('POST', 'U', 'server ' . main::addr(3) . ';' . $check);
main::accepted('POST', 'b', 'server ' . main::addr(3) . ';');
my $listener = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1', LocalPort => port(4), ReuseAddr => 1)
    or die "listen on port 4: $!";
ok(poll_until(sub { main::proxied('v')->{status} == 200 }, 5, 'v rises'), 'v rises once port 4 listens');
ok(poll_until(sub { main::proxied('u')->{status} == 200 }, 5, 'u rises'), 'u, whose old list is still served, rises too');
main::every_worker_serves('u', main::line(main::addr(2)), 2, 'after it rose');

=== TEST 9: killed with a replace's health slots claimed, not yet checked: the repair frees them (the health zone does not fill up)
--- workers: 2
--- main_config
env NDU_TEST_STALL=replace_prepared:leak;
--- http_config
check_shm_size 32k;
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
my $check = ' check interval=1000 rise=1 fall=1 timeout=400 type=tcp;';
my $servers = sub { join '', map { "server 127.0.0.$_:" . port(1) . ';' } 2 .. $_[0] + 1 };
my $r = main::admin('POST', '/upstream/probe', $servers->(249) . $check);
my ($room) = $r->{body} =~ /holds (\d+) checked peers/;
ok($room, "the health zone has room for $room checked peers") or diag("$r->{status} $r->{body}");
main::kill_inside('POST', 'leak', $servers->($room) . $check);
main::accepted('POST', 'b', 'server ' . main::addr(3) . ';');
is(main::admin('GET', '/upstream/leak')->{status}, 404, 'the killed change made no upstream');
main::accepted('POST', 'full', $servers->($room) . $check);

=== TEST 10: killed after a new upstream is linked in creation order, before it is indexed: the repair indexes it; later upstreams follow it; the file and a restart keep all
--- workers: 2
--- main_config
env NDU_TEST_STALL=append_chained:mid;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
main::accepted('POST', 'first', 'server ' . main::addr(1) . ';');
main::kill_inside('POST', 'mid', 'server ' . main::addr(2) . ';');
main::accepted('POST', 'last', 'server ' . main::addr(3) . ';');
# Before the repair rebuilt the index, "mid" was listed but not found; before
# it rebuilt the last record, "last" was linked after "first" and "mid" lost.
main::every_worker_serves('mid', main::line(main::addr(2)), 2, 'after the takeover');
main::every_worker_serves('last', main::line(main::addr(3)), 3, 'after the takeover');
main::accepted('POST', 'MID', 'server ' . main::addr(1) . ';');
is(main::admin('GET', '/list')->{body}, "first\nmid\nlast\n", 'listed once each, in creation order (MID replaced mid)');
main::accepted('DELETE', 'last');
main::accepted('POST', 'again', 'server ' . main::addr(3) . ';');
is(main::admin('GET', '/list')->{body}, "first\nmid\nagain\n", 'the last one deleted and another added: in order');
my $file = main::slurp(data_dir() . '/dyups.conf') // '';
is(join(' ', $file =~ /^upstream (\S+) \{/mg), 'first mid again', 'the file holds them in order');
nginx_restart();
is(main::admin('GET', '/list')->{body}, "first\nmid\nagain\n", 'a restart keeps them');
main::every_worker_serves('mid', main::line(main::addr(1)), 1, 'after a restart');

=== TEST 11: killed after a deleted upstream leaves the creation order, before it leaves the index: it is gone everywhere; made again, it is listed once and kept
--- workers: 2
--- main_config
env NDU_TEST_STALL=delete_unchained:mid;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
main::accepted('POST', 'first', 'server ' . main::addr(1) . ';');
main::accepted('POST', 'mid', 'server ' . main::addr(2) . ';');
main::accepted('POST', 'last', 'server ' . main::addr(3) . ';');
main::kill_inside('DELETE', 'mid');
main::accepted('POST', 'after', 'server ' . main::addr(1) . ';');
# Before the repair rebuilt the index, the unlinked record was still found:
# "mid" was answered, and a POST of it changed a record no listing showed.
main::every_worker_lists('mid', 404, 'upstream "mid" not found', 'after the takeover');
main::accepted('POST', 'mid', 'server ' . main::addr(2) . ';');
is(main::admin('GET', '/list')->{body}, "first\nlast\nafter\nmid\n", 'made again: listed once, last');
main::accepted('DELETE', 'after');
main::accepted('DELETE', 'first');
is(main::admin('GET', '/list')->{body}, "last\nmid\n", 'its neighbours deleted: the rest in order');
my $file = main::slurp(data_dir() . '/dyups.conf') // '';
is(join(' ', $file =~ /^upstream (\S+) \{/mg), 'last mid', 'the file holds them');
nginx_restart();
main::every_worker_serves('mid', main::line(main::addr(2)), 2, 'after a restart');

=== TEST 12: the first REST replace of a configuration upstream hands its zone over before it takes the registry: a change of the zone through another API meanwhile is refused (409), never made on a list the replace then leaves (it answered 201, and its server's ID was given again to a server of the replace: review 26); a replace that dies before it is done leaves the zone refusing such changes, and done again continues the zone's numbering
--- workers: 2
--- main_config
env NDU_TEST_STALL=replace_activated:mixed;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled;
--- http_config
$TEST_NGINX_SERVERS
upstream mixed {
    zone mixed 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /api { dynamic_upstream_api write=on; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
my $c = main::keepalive(port(8));
$c->send('POST', '/upstream/mixed', 'localhost', 'server ' . main::addr(3) . ';');
my $pid;
ok(poll_until(sub { $pid = main::stalled_pid('mixed') }, 10, 'stall'), 'a worker stalls inside the REST replace of "mixed"');
# Sent to the other worker (the stalled one accepts nothing); it answers
# once the stalled one is gone.
my $plus = main::keepalive(server_port());
$plus->send('POST', '/api/9/http/upstreams/mixed/servers', 'localhost', '{"server":"127.0.0.1:' . port(3) . '"}');
ok(kill('KILL', $pid), "kill -9 of worker $pid, inside the replace");
my $r = $plus->read;
is($r->{status}, 409, 'the Plus API\'s change of the zone meanwhile: 409') or diag("$r->{status} $r->{body}");
like($r->{body}, qr/being replaced through the REST API/, '  saying why');
is_deeply(main::server_list('mixed'), ['0 127.0.0.1:' . port(1) . ' w1', '1 127.0.0.1:' . port(2) . ' w1'],
          'the zone\'s servers as they were');
is(http_get('/api/9/http/upstreams/mixed/servers/1')->{status}, 200, 'the zone is listed');
is(http('DELETE', '/api/9/http/upstreams/mixed/servers/1')->{status}, 409, '  and refuses changes (a replace died inside)');
main::accepted('POST', 'mixed', 'server ' . main::addr(3) . ';');
is_deeply(main::server_list('mixed'), ['2 127.0.0.1:' . port(3) . ' w1'], 'done again: its server takes the ID after the zone\'s');

=== TEST 13: killed in the grace period's flip (the retired lists waiting, the phase not flipped): the next change does not free a list a request of the current phase is still reading (hunt 28: the waiting phase was stored after the lists, and a kill between left the previous flip's phase: the next change freed the list under the request, whose memory went to another upstream's list; the request to "u" was proxied to "y"'s server)
--- workers: 2
--- main_config
env NDU_TEST_STALL=grace_flip:registry;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
--- http_config
dyups_read_msg_timeout 3600s;
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
use NginxTest::Gdb;
my $once = data_dir() . '/stalled-once';
# The stall is disarmed while its file exists.
open(my $fh, '>', $once) or die "$once: $!";
close $fh;
main::accepted('POST', 'u', 'server ' . main::addr(1) . ';') for 1 .. 4;
# A keep-alive proxy connection to each worker, and an admin one to B.
my %proxy;
for (1 .. 200) {
    my $c = main::keepalive(port(9));
    my $w = $c->request('GET', '/', 'u')->{headers}{'x-worker'};
    $proxy{$w} //= $c;
    last if keys %proxy == 2;
}
my ($a, $b) = sort keys %proxy;
my $admin;
for (1 .. 200) {
    my $c = main::keepalive(port(8));
    if ($c->request('GET', '/list', 'localhost')->{headers}{'x-worker'} eq $b) { $admin = $c; last }
}
ok($admin, "an admin connection to worker $b");
is($proxy{$a}->request('GET', '/', 'u')->{body}, port(1) . "\n", "worker $a serves u");
my $go = data_dir() . '/go';
my $answer;
my $out = gdb_batch($a, sub {
    # A stops inside its grace period's section, u's list read.
    $proxy{$a}->send('GET', '/', 'u');
    ok(poll_until(sub { (join '', map { main::slurp($_) // '' } glob(data_dir() . "/gdb-$a-*.out")) =~ /^HELD/m }, 10, 'held'),
       "worker $a stops in u's list");
    unlink $once;
    $admin->send('POST', '/upstream/u', 'localhost', 'server ' . main::addr(2) . ';');
    my $pid;
    ok(poll_until(sub { $pid = main::stalled_pid('registry') }, 10, 'stall'), 'worker B stalls in the flip of the reap after retiring u\'s list');
    is($pid, $b, '  it is B');
    ok(kill('KILL', $pid), "kill -9 of worker $pid");
    # The next change (the respawned worker; A accepts nothing meanwhile)
    # takes the lock over and reaps; y's list may take freed memory.
    my $r;
    poll_until(sub { $r = http('POST', '/upstream/y', 'server ' . main::addr(3) . ';'); $r->{status} == 200 }, 20, 'POST y');
    is("$r->{status} $r->{body}", '200 success', 'POST /upstream/y after the takeover');
    open(my $g, '>', $go) or die "$go: $!";
    close $g;
}, 'break ngx_http_dynamic_upstream_module::dyups::grace::hold_list', 'continue', 'printf "HELD\n"',
   "shell while [ ! -e $go ]; do sleep 0.05; done", 'detach', 'quit');
$answer = $proxy{$a}->read;
like($answer->{body}, qr/^(?:${\ port(1)}|${\ port(2)})\n\z/, 'the held request is proxied to a server of u, never of y')
    or diag("$answer->{status} $answer->{body}\n$out");
main::every_worker_serves('u', main::line(main::addr(2)), 2, 'after the takeover');
main::every_worker_serves('y', main::line(main::addr(3)), 3, 'after the takeover');

=== TEST 14: a reload while a stuck worker holds the registry's lock waits for it once (2 s), not once for each step that needs it (a second each, review 45); the configuration servers it could not give a run-time record name the lock in the [error], and a reload once the lock is free checks them
--- workers: 2
--- main_config
env NDU_TEST_STALL=replace_prepared:d;
--- http_config
$TEST_NGINX_CHECKED_CFG
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
location /status { check_status json; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
peers are not checked
--- perl
my $t = main::stalled_reload();
is(scalar(() = $t->{log}->() =~ /\[warn\].*the upstream registry stayed locked for 2 s/g), 1, '  it waited for the lock once')
    or diag($t->{log}->());
like($t->{log}->(), qr/\[error\].*the health zone holds $t->{holds} checked peers: 2 peers are not checked; raise "check_shm_size", or reload once the upstream registry is no longer locked \(upstream "cfg": 127\.0\.1\.1:3000[23], 127\.0\.1\.1:3000[23]\)$/m,
     '  the [error] names the two configuration servers left unchecked and the lock');
ok(kill('KILL', $t->{stalled}), "kill -9 of the stalled worker $t->{stalled}");
main::reloaded($t);
is($t->{rows}->('cfg'), 1, 'the two configuration servers have no record');
main::accepted('POST', 'b', 'server ' . main::addr(3) . ';');
nginx_reload();
is($t->{rows}->('cfg'), 3, 'a reload once the lock is free gives every configuration server a record');
is($t->{rows}->('dy'), $t->{holds} - 3, '  the run-time upstream gave up two of its records');

=== TEST 15: a reload whose registry lock holder goes away within the wait's budget (1.3 s after the HUP; the wait was 1 s per step, then one for all: review 47) runs every step under the lock: the configuration servers take run-time records
--- workers: 2
--- main_config
env NDU_TEST_STALL=replace_prepared:d;
--- http_config
$TEST_NGINX_CHECKED_CFG
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
location /status { check_status json; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
peers are not checked
--- perl
my $t = main::stalled_reload(1.3);
ok(kill('KILL', $t->{stalled}), "kill -9 of the stalled worker $t->{stalled}, 1.3 s after the HUP");
main::reloaded($t);
unlike($t->{log}->(), qr/stayed locked/, 'the reload got the lock: no [warn]');
like($t->{log}->(), qr/\[error\].*: 1 peers are not checked; raise "check_shm_size" \(upstream "dy": 127\.0\.2\.1:\d+\)$/m,
     '  the [error] names the run-time server left without a record, no configuration server');
is($t->{rows}->('cfg'), 3, 'every configuration server has a record');
is($t->{rows}->('dy'), $t->{holds} - 3, '  the run-time upstream gave up two of its records (d\'s, claimed by the killed change, is free)');


=== TEST 16: a worker killed in a Plus API PUT of a checked zone upstream's servers, after their health records were claimed (pending) and before they were checked, leaks none of them: the next change that needs their room frees the dead claimer's records and gets it (they stayed claimed for good: hunt 40 F3)
--- workers: 1
--- main_config
env NDU_TEST_STALL=zone_claimed:zu;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
--- http_config
$TEST_NGINX_CHECKED_ZU
$TEST_NGINX_SERVERS
--- config
location /api { dynamic_upstream_api write=on; }
location /status { check_status json; }
--- allow_error_log
exited on signal 9
--- perl
my $holds = main::killed_put();
is(main::records('zu'), 1, 'zu has its configuration server\'s record');
my $r;
main::poll_until(sub { $r = http('PUT', '/api/9/http/upstreams/zu/servers', main::put_body($holds)); $r->{status} != 502 }, 10, 'PUT');
is($r->{status}, 200, "the same PUT of $holds servers (what the zone holds) once the worker is gone") or diag($r->{body});
is(main::records('zu'), $holds, '  every server of zu has a record');

=== TEST 17: the records a worker killed in a PUT claimed are freed for a run-time upstream's POST that needs their room (hunt 40 F3)
--- workers: 1
--- main_config
env NDU_TEST_STALL=zone_claimed:zu;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
--- http_config
$TEST_NGINX_CHECKED_ZU
$TEST_NGINX_SERVERS
--- config
location /api { dynamic_upstream_api write=on; }
location /status { check_status json; }
--- allow_error_log
exited on signal 9
--- perl
my $holds = main::killed_put();
my $check = ' check interval=60000 rise=1 fall=1 timeout=300 type=tcp;';
main::accepted('POST', 'd', join('', map { sprintf 'server 127.0.2.1:%d;', 30001 + $_ } 1 .. $holds - 1) . $check);
is(main::records('d'), $holds - 1, "  d's $holds - 1 servers have records (the zone holds $holds: zu's one, and d's)");

=== TEST 18: a reload after a worker was killed in a PUT, its records claimed (pending), gives every configuration server of a configuration that fits the zone a record: the master frees the dead claimer's records (they stayed claimed across reloads, and servers went unchecked: hunt 40 F3)
--- workers: 1
--- main_config
env NDU_TEST_STALL=zone_claimed:zu;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
--- http_config
$TEST_NGINX_CHECKED_ZU
$TEST_NGINX_SERVERS
--- config
location /api { dynamic_upstream_api write=on; }
location /status { check_status json; }
--- allow_error_log
exited on signal 9
--- perl
my $holds = main::killed_put();
my $conf = NginxTest::Files::slurp(conf_file());
$conf =~ s/    server 127\.0\.1\.1:30001;\n/join '', map { "    server 127.0.1.1:$_;\n" } 30001 .. 30000 + $holds/e or die 'no server line';
NginxTest::Files::spew(conf_file(), $conf);
my $size = -s prefix() . 'logs/error.log';
nginx_reload();
is(main::records('zu'), $holds, "a reload with $holds configuration servers in zu (what the zone holds): every one has a record");
unlike(substr(error_log_text(), $size), qr/not checked/, '  no [error] of servers left unchecked');

=== TEST 19: a Plus API PUT of a checked zone upstream that a reload overtakes (its records claimed before the reload, the peers linked after it, in lists no new worker serves) makes none of its records live: they are freed, the new configuration gets their room (they kept it until the next reload: review 48)
--- workers: 1
--- main_config
env NDU_TEST_STALL=zone_claimed:zu;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
env NDU_TEST_STALL_SECONDS=3;
--- http_config
$TEST_NGINX_CHECKED_ZU
$TEST_NGINX_SERVERS
--- config
location /api { dynamic_upstream_api write=on; }
location /status { check_status json; }
--- perl
my $holds = main::zone_holds();
my ($c, $stalled) = main::stalled_put(main::put_body($holds - 10));
main::reload_meanwhile();
main::overtaken_answers($c, $stalled);
is(main::records('zu'), 1, 'zu has its configuration server\'s record only');
my $r = http('PUT', '/api/9/http/upstreams/zu/servers', main::put_body($holds));
is($r->{status}, 200, "a PUT of $holds servers (what the zone holds) in the new configuration") or diag($r->{body});
is(main::records('zu'), $holds, '  every server of zu has a record');

=== TEST 20: a Plus API PUT that removes a checked configuration server, overtaken by a reload that keeps that server: the old worker leaves the server's record, which the new configuration kept (it freed it: the server was left unchecked until the next reload, review 49)
--- workers: 1
--- main_config
env NDU_TEST_STALL=zone_claimed:zu;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
env NDU_TEST_STALL_SECONDS=3;
--- http_config
check_shm_size 32k;
upstream zu {
    zone zu 512k;
    server 127.0.1.1:30001;
    server 127.0.1.1:30002;
    check interval=60000 rise=1 fall=1 timeout=300 type=tcp;
}
$TEST_NGINX_SERVERS
--- config
location /api { dynamic_upstream_api write=on; }
location /status { check_status json; }
--- perl
my $names = sub {
    my $status = JSON::PP->new->decode(http_get('/status')->{body});
    return join ',', sort map { $_->{name} } grep { $_->{upstream} eq 'zu' } @{ $status->{servers}{server} };
};
is($names->(), '127.0.1.1:30001,127.0.1.1:30002', 'both configuration servers have a record');
# Keeps 30001, removes 30002, adds 30003; the reload keeps the configuration.
my ($c, $stalled) = main::stalled_put(JSON::PP->new->encode([{ server => '127.0.1.1:30001' }, { server => '127.0.1.1:30003' }]));
main::reload_meanwhile();
main::overtaken_answers($c, $stalled);
is($names->(), '127.0.1.1:30001,127.0.1.1:30002', 'both servers of the new configuration keep their records');

=== TEST 21: a reload while a worker's checked PUT holds pending records: the new configuration's servers take their room (the master left them unchecked, dead ones taking requests, and told to raise check_shm_size though the configuration fit: hunt 41)
--- workers: 1
--- main_config
env NDU_TEST_STALL=zone_claimed:zu;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
env NDU_TEST_STALL_SECONDS=3;
--- http_config
$TEST_NGINX_CHECKED_ZU
$TEST_NGINX_SERVERS
--- config
location /api { dynamic_upstream_api write=on; }
location /status { check_status json; }
--- perl
my $holds = main::zone_holds();
# zu's server and HOLDS - 2 new ones: two records left free.
my ($c, $stalled) = main::stalled_put(main::put_body($holds - 1));
# Six configuration servers: five more than zu has, three more than the zone has free.
my $conf = main::slurp(conf_file());
$conf =~ s/    server 127\.0\.1\.1:30001;\n/join '', map { "    server 127.0.1.1:$_;\n" } 30001 .. 30006/e or die 'no server line';
main::spew(conf_file(), $conf);
my $size = main::reload_meanwhile();
unlike(substr(error_log_text(), $size), qr/not checked/, '  no server is left unchecked');
ok(poll_until(sub { main::records('zu') == 6 }, 5, 'records'), '  the six configuration servers have records');
main::overtaken_answers($c, $stalled);
is(main::records('zu'), 6, 'the six configuration servers keep their records');

=== TEST 22: a checked POST of a run-time upstream whose worker holds the registry's lock past a reload that moves the health records to a new zone (another check_shm_size) is refused with 503 and changes nothing (it answered 200, and its new servers had no record in the new zone: dead ones took requests, hunt 41)
--- workers: 1
--- main_config
env NDU_TEST_STALL=replace_prepared:dyx;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
env NDU_TEST_STALL_SECONDS=4;
--- http_config
check_shm_size 32k;
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
location /status { check_status json; }
--- perl
my $check = ' check interval=60000 rise=1 fall=1 timeout=300 type=tcp;';
my ($c, $stalled) = main::stalled_post_resized('server 127.0.2.1:30001;' . $check,
                                               'server 127.0.2.1:30001; server 127.0.2.1:30002;' . $check);
my $answer = $c->read;
is("$answer->{status} $answer->{body}",
   "503 nginx is reloading and this worker's configuration is being replaced: retry the request",
   'the stalled POST is refused');
ok(poll_until(sub { !kill(0, $stalled) }, 10, 'exit'), '  its worker exits');
is(main::admin('GET', '/upstream/dyx')->{body}, main::line('127.0.2.1:30001'), 'dyx keeps its one server');
is(main::records('dyx'), 1, '  which has its record in the new zone');

=== TEST 23: a checked POST that removes servers, whose worker holds the registry's lock past a reload's wait after its records went live, in a reload that moves the records to a new zone (another check_shm_size): the new workers free the removed servers' records (they stayed, probed and taking room, until the upstream's next change: review 50 F1) and keep those of the servers that stay, however their addresses are spelled, backups included
--- workers: 1
--- main_config
env NDU_TEST_STALL=replace_activated:dyx;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
env NDU_TEST_STALL_SECONDS=4;
--- http_config
check_shm_size 32k;
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
location /status { check_status json; }
--- perl
my $check = ' check interval=60000 rise=1 fall=1 timeout=300 type=tcp;';
my $socket = data_dir() . '/none.sock';
# The second POST keeps three servers, spelled otherwise, the socket now a
# backup; it stalls after its records went live.
my ($c, $stalled) = main::stalled_post_resized(
    'server ' . main::addr(1) . '; server [::1]:' . port(2) . "; server unix:$socket;"
        . ' server 127.0.2.1:30001; server 127.0.2.1:30002; server 127.0.2.1:30003 backup;' . $check,
    'server ' . main::addr(1) . '; server [0:0:0:0:0:0:0:1]:' . port(2) . "; server unix:$socket backup;" . $check);
my $answer = $c->read;
is("$answer->{status} $answer->{body}", '200 success', 'the stalled POST completes');
ok(poll_until(sub { !kill(0, $stalled) }, 10, 'exit'), '  its worker exits');
is(main::records('dyx'), 3, 'the three servers that stay have their records in the new zone');
my $holds = main::zone_holds();
main::room_for('dyz', $holds - 3, 'only those three records are in use');
is(main::records('dyx'), 3, '  and they keep them');

=== TEST 24: killed after a replace's new servers' records went live, before its list is published: once the next change took the lock over, the workers free those records (they stayed, probed and taking room, until the upstream's next change) and keep the old list's
--- workers: 2
--- main_config
env NDU_TEST_STALL=replace_activated:U;
--- http_config
check_shm_size 32k;
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
location /status { check_status json; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
my $check = ' check interval=200 rise=1 fall=1 timeout=300 type=tcp;';
main::accepted('POST', 'u', 'server ' . main::addr(1) . ';' . $check);
my $holds = main::zone_holds();
main::kill_inside('POST', 'U', 'server ' . main::addr(1) . ';'
    . join('', map { sprintf 'server 127.0.2.1:%d;', 30001 + $_ } 1 .. $holds - 1) . $check);
main::accepted('POST', 'b', 'server ' . main::addr(3) . ';');
main::room_for('dyz', $holds - 1, 'the killed change\'s records are freed');
is(main::records('u'), 1, 'u keeps its server\'s record');
ok(poll_until(sub { main::proxied('u')->{status} == 200 }, 5, 'up'), '  which is checked and up');
