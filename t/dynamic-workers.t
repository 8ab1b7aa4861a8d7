# dynamic_upstream with several workers: a change made through one request
# is seen by every following request, whichever worker handles it, both in
# the listings and in the proxied traffic. A second server listening with
# `reuseport` spreads connections over all workers and names the worker
# that answered (X-Worker: $pid).
use lib 't/lib';
use NginxTest;
use NginxTest::Traffic;
use HttpClient;
use POSIX ();

# The status of GET PATH on port 9, for forked children (no Test::More).
sub raw_get { HttpClient->new(timeout => 10)->once('GET', port(9), $_[0])->{status} }

run_tests();
__DATA__

=== TEST 1: down through one request: no worker sends traffic to the peer, every listing shows it
--- workers: 4
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
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
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $r = http_get("/dynamic?upstream=zone_for_backends&server=127.0.0.1:$p3&down=");
is($r->{status}, 200, 'down');
my %seen;
for (1 .. 40) {
    my $x = http_get('/');
    $seen{ $x->{status} == 200 ? $x->{body} =~ s/\n//r : "status $x->{status}" }++;
}
ok(!exists $seen{$p3}, '40 proxied requests: none reaches the down peer') or diag(explain(\%seen));
is(($seen{$p1} // 0) + ($seen{$p2} // 0), 40, 'the two up peers answer all') or diag(explain(\%seen));
my $want = "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\nserver 127.0.0.1:$p3 down;\n";
my $bad = 0;
for (1 .. 20) {
    my $x = http_get('/dynamic?upstream=zone_for_backends');
    $bad++, diag($x->{body}) if $x->{status} != 200 || $x->{body} ne $want;
}
is($bad, 0, '20 listings all show the peer down');



=== TEST 2: the reuseport server really spreads requests over the workers
--- workers: 4
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
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
my ($bad, $seen, $want) = main::every_worker('/dynamic?upstream=backends', sub { $_[0]{status} == 200 });
is($bad, 0, 'listings answered');
is($seen, $want, "all $want workers answered");
is($want, 4, 'four workers');



=== TEST 3: every change is seen by every worker, in listings and in traffic
--- workers: 4
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
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
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
my $list = sub { main::via('/dynamic?upstream=backends&verbose=') };
my ($bad, $seen, $want);

# down
is(main::via("/dynamic?upstream=backends&server=127.0.0.1:$p3&down=")->{status}, 200, 'down');
($bad, $seen, $want) = main::every_worker('/dynamic?upstream=backends',
    sub { $_[0]{body} eq "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\nserver 127.0.0.1:$p3 down;\n" });
is($bad, 0, 'down: every listing shows it');
is($seen, $want, 'down: seen by all workers');
my ($s, $pids) = main::spread_via(60);
ok(!exists $s->{$p3}, 'down: no worker proxies to it') or diag(explain($s));
cmp_ok(scalar keys %$pids, '>=', 2, 'the proxied requests went through several workers');

# up
is(main::via("/dynamic?upstream=backends&server=127.0.0.1:$p3&up=")->{status}, 200, 'up');
($bad, $seen, $want) = main::every_worker('/dynamic?upstream=backends',
    sub { $_[0]{body} eq "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\nserver 127.0.0.1:$p3;\n" });
is($bad, 0, 'up: every listing shows it');
is($seen, $want, 'up: seen by all workers');
($s) = main::spread_via(60);
is_deeply($s, { $p1 => 20, $p2 => 20, $p3 => 20 }, 'up: shared state, even split over the three')
    or diag(explain($s));

# add
is(main::via("/dynamic?upstream=backends&add=&server=127.0.0.1:$p4")->{status}, 200, 'add');
($bad, $seen, $want) = main::every_worker('/dynamic?upstream=backends',
    sub { $_[0]{body} eq join('', map { "server 127.0.0.1:$_;\n" } $p1, $p2, $p3, $p4) });
is($bad, 0, 'add: every listing shows it');
is($seen, $want, 'add: seen by all workers');
($s) = main::spread_via(80);
is_deeply($s, { $p1 => 20, $p2 => 20, $p3 => 20, $p4 => 20 }, 'add: the new peer gets its share from all workers')
    or diag(explain($s));

# weight
is(main::via("/dynamic?upstream=backends&server=127.0.0.1:$p4&weight=5")->{status}, 200, 'weight');
($bad, $seen, $want) = main::every_worker('/dynamic?upstream=backends&verbose=',
    sub { $_[0]{body} =~ /^server 127\.0\.0\.1:$p4 weight=5 max_fails=1 fail_timeout=10;$/m });
is($bad, 0, 'weight: every listing shows it');
is($seen, $want, 'weight: seen by all workers');
($s) = main::spread_via(80);
is_deeply($s, { $p1 => 10, $p2 => 10, $p3 => 10, $p4 => 50 }, 'weight: 1:1:1:5') or diag(explain($s));

# remove
is(main::via("/dynamic?upstream=backends&remove=&server=127.0.0.1:$p1")->{status}, 200, 'remove');
($bad, $seen, $want) = main::every_worker('/dynamic?upstream=backends',
    sub { $_[0]{body} eq join('', map { "server 127.0.0.1:$_;\n" } $p2, $p3, $p4) });
is($bad, 0, 'remove: every listing shows it');
is($seen, $want, 'remove: seen by all workers');
($s) = main::spread_via(80);
ok(!exists $s->{$p1}, 'remove: no worker proxies to the removed peer') or diag(explain($s));

# backup
is(main::via("/dynamic?upstream=backends&add=&backup=&server=127.0.0.1:$p1")->{status}, 200, 'add backup');
for my $p ($p2, $p3, $p4) {
    is(main::via("/dynamic?upstream=backends&server=127.0.0.1:$p&down=")->{status}, 200, "down $p");
}
($s) = main::spread_via(40);
is_deeply($s, { $p1 => 40 }, 'backup: every worker uses the new backup list when all primaries are down')
    or diag(explain($s));
is($list->()->{body}, "server 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10 down;\n"
                    . "server 127.0.0.1:$p3 weight=1 max_fails=1 fail_timeout=10 down;\n"
                    . "server 127.0.0.1:$p4 weight=5 max_fails=1 fail_timeout=10 down;\n"
                    . "server 127.0.0.1:$p1 weight=1 max_fails=1 fail_timeout=10 backup;\n", 'final list');



=== TEST 4: a one-peer upstream grown through one worker balances in all workers
--- workers: 4
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
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
my ($p1, $p2) = map { port($_) } 1 .. 2;
# every worker proxies once first, with a single peer
my ($s) = main::spread_via(40);
is_deeply($s, { $p1 => 40 }, 'one peer');
is(http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$p2")->{status}, 200, 'add');
my (%per_worker);
for (1 .. 200) {
    my $r = main::via('/');
    $per_worker{ $r->{headers}{'x-worker'} // 'none' }{ $r->{body} =~ s/\n//r }++;
}
my @workers = sort keys %per_worker;
cmp_ok(scalar @workers, '>=', 2, 'several workers proxied');
ok(!exists $per_worker{none}, 'every answer names its worker');
($s) = main::spread_via(40);
is_deeply($s, { $p1 => 20, $p2 => 20 }, 'balanced across both peers');
my $lonely = grep { keys %{ $per_worker{$_} } < 2 && (values %{ $per_worker{$_} })[0] > 10 } @workers;
is($lonely, 0, 'no worker that proxied more than 10 requests kept using only one peer')
    or diag(explain(\%per_worker));



=== TEST 5: concurrent changes through all workers: nothing lost, nothing duplicated, no crash
--- workers: 4
--- timeout: 30
--- http_config
upstream backends {
    zone zone_for_backends 1m;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
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
my ($p1, $p2) = map { port($_) } 1 .. 2;
my $dir = data_dir();
my @kids;
for my $k (1 .. 4) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        # child: 25 adds (down, so traffic stays on the live peers), 10 removes,
        # and proxied requests in between; results to a file, then _exit
        my @out;
        for my $i (1 .. 25) {
            my $addr = "10.0.$k.$i:8000";
            push @out, "add $addr " . main::raw_get("/dynamic?upstream=backends&add=&down=&server=$addr");
            push @out, "proxy " . main::raw_get('/');
        }
        for my $i (1 .. 10) {
            my $addr = "10.0.$k.$i:8000";
            push @out, "remove $addr " . main::raw_get("/dynamic?upstream=backends&remove=&server=$addr");
            push @out, "proxy " . main::raw_get('/');
        }
        if (open my $fh, '>', "$dir/kid$k") { print $fh map { "$_\n" } @out; close $fh }
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid($_, 0) for @kids;
my @lines;
for my $k (1 .. 4) {
    open my $fh, '<', "$dir/kid$k" or do { fail("child $k wrote no results"); next };
    push @lines, <$fh>;
}
chomp @lines;
is(scalar @lines, 4 * 70, 'every child made all its requests');
my @failed = grep { !/ 200$/ } @lines;
if (nginx_at_least('1.27.3')) {
    # nginx's own rule from 1.27.3 on: a request whose list changed between
    # its peer.init and its first peer (microseconds, but 4 writers hit it
    # now and then) gets no peer from it: 502, logged as no live upstreams.
    my $no_live = () = error_log_text() =~ /no live upstreams while connecting to upstream/g;
    is_deeply([grep { $_ ne 'proxy 502' } @failed], [], 'every change answered 200, every proxied request 200 or 502');
    is(scalar(@failed), $no_live, 'each 502 is a request whose list changed under it (no live upstreams)');
} else {
    is_deeply(\@failed, [], 'every request answered 200');
}
my $r = http_get('/dynamic?upstream=backends');
my @peers = $r->{body} =~ /^server (\S+?)(?: down)?;$/mg;
my %count;
$count{$_}++ for @peers;
is(scalar @peers, 2 + 4 * 15, '62 peers listed');
is_deeply([grep { $count{$_} > 1 } keys %count], [], 'no peer listed twice');
my @expect = ("127.0.0.1:$p1", "127.0.0.1:$p2", map { my $k = $_; map { "10.0.$k.$_:8000" } 11 .. 25 } 1 .. 4);
is_deeply([sort @peers], [sort @expect], 'exactly the expected peers');
is_deeply([@peers[0, 1]], ["127.0.0.1:$p1", "127.0.0.1:$p2"], 'configured peers still first');
my ($bad, $seen, $want) = main::every_worker('/dynamic?upstream=backends', sub { $_[0]{body} eq $r->{body} });
is($bad, 0, 'every worker lists the same peers');
is($seen, $want, 'all workers answered');
my ($s) = main::spread_via(40);
is_deeply($s, { $p1 => 20, $p2 => 20 }, 'traffic on the two up peers');
for my $peer (@expect[2 .. $#expect]) {
    my $x = http_get("/dynamic?upstream=backends&remove=&server=$peer");
    is($x->{status}, 200, "remove $peer") if $x->{status} != 200;
}
is(http_get('/dynamic?upstream=backends')->{body}, "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\n",
   'all removed: original list');
