# A worker killed while it holds a run-time upstream's peer-list lock (the
# OOM killer, kill -9: nginx's round robin takes the list's write lock on
# every request, and nginx never releases an rwlock whose holder died).
# Requests to that upstream hang, as nginx's own would on a zone upstream;
# but nothing else may: the respawned worker starts, the other upstreams,
# the API, the state file and reloads work, and a replace of the upstream
# (a new list) cures it. The registry, and so its lists, outlive reloads,
# so a reload alone does not. Before: the respawned worker spun for ever in
# init_process (every run-time list's health bits read under its lock), and
# after a reload every worker: nginx answered nothing; every dyups change
# spun writing the state file (every list read under its lock).
#
# gdb stops the only worker inside nginx's round robin, at the unlock of
# the list's write lock that a request to the upstream took, and kills it.
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups qw(addr line admin proxied proxied_port);
use NginxTest::Files;
use NginxTest::Gdb;
use IO::Socket::INET;

run_tests();
__DATA__

=== TEST 1: a worker killed holding a run-time upstream's list lock: the respawned worker serves, other upstreams and changes work, a reload works, a replace cures the upstream
--- workers: 1
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
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
location / { dyups_interface; }
--- perl
for my $u (['stuck', 1], ['other', 2]) {
    is(main::admin('POST', "/upstream/$u->[0]", 'server ' . main::addr($u->[1]) . ';')->{status}, 200, "POST $u->[0]");
}
is(main::proxied_port('stuck'), port(1), 'stuck routes');
my ($worker) = worker_pids();
my $s;
my $gdb_out = main::gdb_batch($worker, sub {
    # The request stops in the worker: sent, not waited for.
    $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(9), Timeout => 5) or die "connect: $!";
    print $s "GET / HTTP/1.1\r\nHost: stuck\r\nConnection: close\r\n\r\n";
}, 'break ngx_http_upstream_get_round_robin_peer', 'continue', 'break ngx_rwlock_unlock', 'continue', 'bt 3', 'kill', 'quit');
like($gdb_out, qr/^#0 .*ngx_rwlock_unlock.*\n#1 .*ngx_http_upstream_get_round_robin_peer/m,
     'killed inside nginx\'s round robin, holding the list\'s write lock')
    or diag($gdb_out);
close $s;
my @now;
ok(poll_until(sub { @now = worker_pids(); @now == 1 && $now[0] != $worker }, 10, 'respawn'), 'the master respawned the worker');
my $r = main::admin('GET', '/list');
is("$r->{status} $r->{body}", "200 stuck\nother\n", 'the respawned worker answers');
is(main::proxied_port('other'), port(2), 'the other upstream routes');
$r = main::admin('POST', '/upstream/other', 'server ' . main::addr(3) . ';');
is("$r->{status} $r->{body}", '200 success', 'a change of the other upstream');
is(main::proxied_port('other'), port(3), '  in force');
like(main::slurp(data_dir() . '/dyups.conf'), qr/upstream stuck \{\n    server \Q${\ main::addr(1)}\E [^\n]*\n\}\nupstream other \{\n    server \Q${\ main::addr(3)}\E /,
     '  and written, with the stuck upstream');
is(main::admin('GET', '/detail')->{status}, 200, 'GET /detail');
ok(eval { nginx_reload(); 1 }, 'a reload') or diag($@);
is(main::admin('GET', '/upstream/other')->{body}, main::line(main::addr(3)), '  whose worker answers');
$r = main::admin('POST', '/upstream/stuck', 'server ' . main::addr(2) . ';');
is("$r->{status} $r->{body}", '200 success', 'a replace of the stuck upstream');
is(main::proxied_port('stuck'), port(2), '  routes again');
--- allow_error_log
worker process \d+ exited on signal 9

=== TEST 2: health verdicts whose list stays locked (by a process that does not apply them) are applied once the lock is free, and meanwhile cost the worker little: it answers at once (a verdict given up on was lost for good, review 18; each pending verdict then waited 20 ms at every tick, review 19)
--- workers: 1
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; proxy_next_upstream off; }
}
--- config
location / { dyups_interface; }
--- perl
use IO::Select;
use Time::HiRes qw(time);
# Seven backends in a child process, each answering 200; they go away
# while the list's write lock is held, so seven verdicts wait for it.
my @ports = map { port($_) } 1 .. 7;
my @listen = map { IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $_, Listen => 64, ReuseAddr => 1) or die "listen $_: $!" } @ports;
my $backends = fork() // die "fork: $!";
if ($backends == 0) {
    my $select = IO::Select->new(@listen);
    while (1) {
        for my $l ($select->can_read(1)) {
            my $c = $l->accept or next;
            sysread($c, my $buf, 4096);
            print $c "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
            close $c;
        }
    }
}
close $_ for @listen;
my $body = join('', map { "server 127.0.0.1:$_;" } @ports)
         . ' check interval=100 rise=1 fall=1 timeout=1000 default_down=false type=tcp;';
is(main::admin('POST', '/upstream/dy', $body)->{status}, 200, 'POST dy, seven checked servers');
is(main::proxied('dy')->{status}, 200, 'dy routes');
# The list's lock word, from nginx's round robin.
my ($worker) = worker_pids();
my $word = main::list_lock_word($worker, sub { is(main::proxied('dy')->{status}, 200, 'a request through dy (gdb reads the lock word)') });
# Leave it write-held, as a process that died holding it would; no request
# to dy is sent while it is.
main::set_shared_word($word, 0xffffffffffffffff);
kill 'KILL', $backends;
waitpid($backends, 0);
ok(poll_until(sub { (() = error_log_text() =~ /of upstream "dy" is down/g) == 7 }, 10, 'down'),
   'the probes find the seven servers gone');
ok(poll_until(sub { error_log_text() =~ /health check: upstream "dy" waits for its peer list, locked for more than 20 ms/ }, 5, 'warn'),
   '  and wait for the list, saying so');
my ($slowest, $r) = (0);
for (1 .. 10) {
    my $t0 = time;
    $r = main::admin('GET', '/list');
    my $took = time - $t0;
    $slowest = $took if $took > $slowest;
}
is("$r->{status} $r->{body}", "200 dy\n", 'the worker answers meanwhile');
cmp_ok($slowest, '<', 0.1, '  at once (the slowest of 10 answers, s)');
main::set_shared_word($word, 0);
# Requests through dy: with the verdicts applied nginx finds no live server
# ("no live upstreams"); without them it connects to the gone ones.
ok(poll_until(sub { main::proxied('dy'); error_log_text() =~ /no live upstreams while connecting to upstream, [^\n]*host: "dy"/ }, 5, 'applied'),
   'once the lock is free the verdicts are applied: nginx finds no live server in dy');
--- allow_error_log
waits for its peer list
no live upstreams
