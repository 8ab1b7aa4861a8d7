# dyups_interface: POSTs and DELETEs of an upstream of the configuration,
# racing each other from many connections and several workers, leave one
# state that every worker shows, that traffic follows and that a restart
# keeps (a deleted upstream of the configuration stays deleted).
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups qw(admin proxied addr line keepalive);
use POSIX ();
use NginxTest::Files;

# Every answer of the admin API (port 8) and of the proxy (port 9) on
# $n new connections each (reuseport: they land on every worker), as
# { "STATUS BODY" => count } (proxied errors: { STATUS => count }).
sub views {
    my ($n) = @_;
    my (%admin, %proxy);
    for (1 .. $n) {
        my $a = admin('GET', '/upstream/host1');
        $admin{"$a->{status} $a->{body}"}++;
        my $p = proxied('host1');
        $proxy{ $p->{status} == 200 ? "200 $p->{body}" : $p->{status} }++;
    }
    return (\%admin, \%proxy);
}

# $children processes each send $pairs POST + DELETE pairs of host1 to the
# admin port, one connection per request; returns the answers that were
# neither 200 "success" nor a DELETE's 404.
sub storm {
    my ($children, $pairs, @ports) = @_;
    my @kids;
    for my $c (1 .. $children) {
        pipe(my $r, my $w) or die "pipe: $!";
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            close $r;
            my @bad;
            for my $i (1 .. $pairs) {
                my $port = $ports[($c + $i) % @ports];
                my $p = admin('POST', '/upstream/host1', "server 127.0.0.1:$port;");
                push @bad, "POST $p->{status} $p->{body}" unless $p->{status} == 200 && $p->{body} eq 'success';
                my $d = admin('DELETE', '/upstream/host1');
                push @bad, "DELETE $d->{status} $d->{body}"
                    unless ($d->{status} == 200 && $d->{body} eq 'success') || $d->{status} == 404;
            }
            print $w join("\n", @bad);
            close $w;
            POSIX::_exit(0);    # not the harness's END block: nginx keeps running
        }
        close $w;
        push @kids, [$pid, $r];
    }
    my @bad;
    for my $k (@kids) {
        my $fh = $k->[1];
        local $/;
        my $out = <$fh> // '';
        push @bad, grep { length } split /\n/, $out;
        waitpid($k->[0], 0);
    }
    return @bad;
}

run_tests();
__DATA__

=== TEST 1: DELETE and POST of a configuration upstream keep its place among the configuration's upstreams
--- workers: 1
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
--- config
location / { dyups_interface; }
--- steps
>>> DELETE /upstream/host1
<<< 200 chomp
success
>>> GET /list
<<< 200
host2
>>> POST /upstream/host1

server 127.0.0.1:$TEST_NGINX_PORT_3;
<<< 200 chomp
success
>>> GET /list
<<< 200
host1
host2

=== TEST 2: a DELETE racing a POST tombstones a configuration upstream: one held past another worker's POST, then concurrent pairs; one state everywhere, kept by restarts
--- workers: 4
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
dyups_read_msg_timeout 60s;
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
limit_req_zone $server_port zone=slow:1m rate=1r/s;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    return 200 "$server_port\n";
}
server {
    # limit_req (as README advises for the admin API) delays the second
    # request of a burst between the phase where the worker syncs and the
    # handler.
    listen 127.0.0.1:$TEST_NGINX_PORT_7;
    add_header X-Pid $pid always;
    limit_req zone=slow burst=10;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    add_header X-Pid $pid always;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- timeout: 60
--- config
location / { dyups_interface; }
--- perl
is(http('DELETE', '/upstream/host1')->{status}, 200, 'host1 deleted');
my $slow = main::keepalive(port(7));
my $first = $slow->request('GET', '/list', 'localhost');
is($first->{body}, "host2\n", 'the slow worker sees host1 deleted');
# Another worker: new connections to the reuseport port until one lands elsewhere.
my $other;
for (1 .. 50) {
    my $c = main::keepalive(port(8));
    if ($c->request('GET', '/list', 'localhost')->{pid} != $first->{pid}) { $other = $c; last }
}
ok($other, 'a connection to another worker') or return;
$slow->send('DELETE', '/upstream/host1', 'localhost');    # delayed by limit_req
$other->send('POST', '/upstream/host1', 'localhost', 'server 127.0.0.1:' . port(3) . ';');
my $post = $other->read;
is("$post->{status} $post->{body}", '200 success', 'POST host1 in another worker');
ok(!$slow->answered, 'the DELETE is still held');
my $delete = $slow->read;
is("$delete->{status} $delete->{body}", '200 success', 'then the DELETE');
for my $c ($slow, $other) {
    my $r = $c->request('GET', '/upstream/host1', 'localhost');
    is("$r->{status} $r->{body}", '404 upstream "host1" not found', "worker $r->{pid}: host1 is deleted");
    is($c->request('GET', '/list', 'localhost')->{body}, "host2\n", "worker $r->{pid}: only host2 listed");
}
is(main::proxied('host1')->{status}, 502, 'Host: host1 gets 502');
like(main::slurp(data_dir() . '/dyups.conf') // '', qr/upstream host1 \{\s*deleted;\s*\}/, 'the file keeps the deletion');
nginx_restart();
is(http_get('/upstream/host1')->{status}, 404, 'after a restart host1 is still deleted');
is(main::proxied('host1')->{status}, 502, 'and gets 502');

# Then many concurrent pairs from several connections.
my @ports = map { port($_) } 3, 4;
for my $round (1 .. 5) {
    my @bad = main::storm(6, 40, @ports);
    is_deeply(\@bad, [], "round $round: every POST answered 200, every DELETE 200 or 404") or last;
    my ($admin, $proxy) = main::views(40);
    my @states = keys %$admin;
    is(scalar(@states), 1, "round $round: every worker shows the same host1") or do { diag(explain($admin)); last };
    my ($state) = @states;
    my $ok;
    if ($state =~ /\A404 /) {
        $ok = is_deeply($proxy, { 502 => 40 }, "round $round: host1 deleted: 404 and 502 everywhere");
    } elsif (my ($p) = $state =~ /\A200 server 127\.0\.0\.1:(\d+) weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n\z/) {
        $ok = ok((grep { $_ == $p } @ports), "round $round: host1 has one of the posted servers")
           && is_deeply($proxy, { "200 $p\n" => 40 }, "round $round: and traffic goes there");
    } else {
        $ok = fail("round $round: host1 is neither deleted nor one posted server: $state");
    }
    $ok or last;
    my %lists = map { main::admin('GET', '/list')->{body} => 1 } 1 .. 40;
    is_deeply([keys %lists], [$state =~ /\A404/ ? "host2\n" : "host1\nhost2\n"], "round $round: /list agrees, in configuration order")
        or last;
    my %details = map { main::admin('GET', '/detail')->{body} => 1 } 1 .. 40;
    is(scalar(keys %details), 1, "round $round: /detail is the same in every worker")
        or do { diag(explain(\%details)); last };

    my $before = main::admin('GET', '/upstream/host1');
    nginx_restart();
    my ($after_admin, $after_proxy) = main::views(20);
    is_deeply($after_admin, { "$before->{status} $before->{body}" => 20 }, "round $round: the restart keeps host1's state")
        or last;
    is_deeply($after_proxy, $proxy->{502} ? { 502 => 20 } : { (keys %$proxy)[0] => 20 }, "round $round: and its traffic")
        or last;
}

=== TEST 3: a worker the reload replaced lists an upstream of its configuration that the new cycle deleted as deleted (its front is not a peer list)
--- workers: 1
--- http_config
upstream hostx { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
limit_req_zone $server_port zone=slow:1m rate=20r/m;
server {
    # Holds the second request of a burst for 3 s, after the worker synced.
    listen 127.0.0.1:$TEST_NGINX_PORT_7;
    limit_req zone=slow burst=10;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8;
    location / { dyups_interface; }
}
--- config
location / { dyups_interface; }
--- perl
is(main::admin('POST', '/upstream/hostx', 'server ' . main::addr(3) . ';')->{status}, 200, 'replace hostx');
my $slow = main::keepalive(port(7));
is($slow->request('GET', '/list', 'localhost')->{body}, "hostx\nhost2\n", 'the old worker lists both');
$slow->send('GET', '/detail', 'localhost');    # held by limit_req in the old worker
my $conf = main::slurp(conf_file());
$conf =~ s/upstream hostx \{[^}]*\}\n// or die "no upstream hostx in the configuration\n";
main::spew(conf_file(), $conf);
my %old = map { $_ => 1 } worker_pids();
kill 'HUP', master_pid() or die "kill HUP: $!";
ok(poll_until(sub { my @w = worker_pids(); @w && !grep { $old{$_} } @w }, 10, 'a new worker'), 'reloaded');
is(main::admin('DELETE', '/upstream/hostx')->{status}, 200, 'the new cycle deletes hostx, one of its run-time upstreams');
ok(!$slow->answered, 'the old worker still holds /detail');
my $detail = $slow->read;
is("$detail->{status} $detail->{body}", "200 host2\n" . main::line(main::addr(2)) . "\n",
   "the old worker's /detail: hostx is gone");
