# The run-time upstreams' registry lock names its holder: a worker killed
# (kill -9, the OOM killer) while it held the lock, halfway through a
# change, does not stop every later change. The next process that needs
# the lock finds the holder gone, takes the lock over and repairs the
# registry (every worker reloads it); changes, listings and traffic go on.
#
# The module's debug builds (which the tests load) stop a change of the
# upstream named by NDU_TEST_STALL_IN_CHANGE halfway, with the lock held,
# for 60 s after logging "stalling in a change of NAME": the test kills
# that worker there. Before the fix every later change and listing spun
# for ever on the dead worker's lock.
#
# The admin API is also on port 8 and the proxy (proxy_pass http://$host)
# on port 9, both with `reuseport` and X-Worker: $pid on every answer.
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups qw(addr line admin proxied keepalive);
use NginxTest::Files;

our $RELEASE = ($ENV{TEST_NGINX_MODULE} // '') =~ m{/release/};

# The pid of the worker that logged it stalls in a change of NAME.
sub stalled_pid {
    my ($name) = @_;
    my ($pid) = error_log_text() =~ /\[notice\] (\d+)#\d+: stalling in a change of \Q$name\E$/m;
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

run_tests();

__DATA__

=== TEST 1: a worker killed inside a change: the next change takes the lock over, every worker serves one state, the file and a restart keep it
--- workers: 2
--- main_config
env NDU_TEST_STALL_IN_CHANGE=stalled;
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
SKIP: {
skip 'the stall that this test kills a worker in exists in debug builds only', 14 if $main::RELEASE;
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
}

=== TEST 2: a worker killed inside a change while another worker waits for the lock: the waiter takes it over
--- workers: 2
--- main_config
env NDU_TEST_STALL_IN_CHANGE=stalled;
--- http_config
$TEST_NGINX_SERVERS
--- config
location / { dyups_interface; }
--- allow_error_log
exited on signal 9
shared memory zone "dynamic_upstream_dyups_v\d+" was locked by
--- perl
SKIP: {
skip 'the stall that this test kills a worker in exists in debug builds only', 8 if $main::RELEASE;
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
}
