# dynamic_upstream on each load balancer: least_conn, ip_hash and hash $arg_key
# accept down/up, add, remove and weight (the list shows them, the traffic
# follows); hash ... consistent and random refuse add/remove/weight with 409
# but accept down/up, max_fails, fail_timeout and max_conns where nginx
# computes their tables once (before 1.27.3), and follow every change where
# it rebuilds them (1.27.3 and later).
use lib 't/lib';
use NginxTest;
use NginxTest::Traffic;
use NginxTest::QueryApi qw(set_change_refused tables_fixed);

# by_key(KEYS): for hash $arg_key: { key => port answering /?key=KEY }.
sub by_key {
    my (@keys) = @_;
    my %map;
    for my $k (@keys) {
        my $r = http_get("/?key=$k");
        ($map{$k} = $r->{status} == 200 ? $r->{body} : "status $r->{status}") =~ s/\n\z//;
    }
    return \%map;
}

sub api {
    my ($upstream, $q, $status) = @_;
    $status //= 200;
    my $r = http_get("/dynamic?upstream=$upstream&$q");
    is($r->{status}, $status, "$upstream $q: $status") or diag($r->{body});
    return $r;
}

sub vline {
    my ($port, $extra) = @_;
    return "server 127.0.0.1:$port weight=1 max_fails=1 fail_timeout=10" . ($extra // '') . ";\n";
}

# conflict(UPSTREAM, BALANCER): "STATUS BODY" of the 409 to adding,
# removing or re-weighting on a balancer that computes its table at start.
sub conflict { '409 ' . set_change_refused(@_) }

# fixed_behind_keepalive(BALANCER[, URI_OF]): the upstream "backends" (live
# peers on ports 1 and 2, keepalive, one worker) has served a request, so
# the worker built its table; then ~100 adds (as the crash report did),
# removes and weights must all answer 409 and change nothing, down/up must
# work, and traffic must only reach the live, up peers.
sub fixed_behind_keepalive {
    my ($balancer, $uri_of) = @_;
    my @p = map { port($_) } 1 .. 2;
    my $list = join '', map { vline($_) } @p;
    is(http_get('/')->{status}, 200, 'one request builds the worker\'s table');
    my @dead = dead_ports(100);
    my %answers;
    for (@dead) {
        my $r = http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$_");
        $answers{ $r->{status} == 409 ? "$r->{status} $r->{body}" : $r->{status} }++;
    }
    is_deeply(\%answers, { conflict('backends', $balancer) => 100 }, '100 adds: all refused with the reason');
    for my $q ("remove=&server=127.0.0.1:$p[1]", "server=127.0.0.1:$p[1]&weight=2") {
        my $r = http_get("/dynamic?upstream=backends&$q");
        is($r->{status} == 409 ? "$r->{status} $r->{body}" : $r->{status}, conflict('backends', $balancer),
           "$q: refused");
    }
    is(http_get('/dynamic?upstream=backends&verbose=')->{body}, $list, 'nothing changed');
    my $s = spread(300, $uri_of);
    is(($s->{ $p[0] } // 0) + ($s->{ $p[1] } // 0), 300, 'every request answered by a live peer') or diag(explain($s));
    api('backends', "server=127.0.0.1:$p[0]&down=");
    $s = spread(50, $uri_of);
    is_deeply($s, { $p[1] => 50 }, 'down: only the other peer answers');
    api('backends', "server=127.0.0.1:$p[0]&up=");
    $s = spread(50, $uri_of);
    is(($s->{ $p[0] } // 0) + ($s->{ $p[1] } // 0), 50, 'up: all answered by live peers') or diag(explain($s));
}

# follows_changes(KEYED) (nginx 1.27.3 and later, hash ... consistent
# and random on "backends", peers on ports 1-3): an added peer (port 4)
# gets traffic, a removed peer no more; with KEYED (hash $arg_key
# consistent) down/up brings every key back to its peer and a weight
# change moves keys (the list's generation moved: every worker rebuilt its
# table).
sub follows_changes {
    my ($keyed) = @_;
    my $uri_of = sub { "/?key=k$_[0]" };
    my @p = map { port($_) } 1 .. 4;
    my @keys = map { "k$_" } 1 .. 40;
    is(http_get('/')->{status}, 200, 'one request builds the worker\'s table');
    api('backends', "add=&server=127.0.0.1:$p[3]");
    my $s = spread(80, $uri_of);
    ok($s->{ $p[3] }, 'the added peer gets traffic') or diag(explain($s));
    my $before = by_key(@keys);
    api('backends', "server=127.0.0.1:$p[1]&down=");
    api('backends', "server=127.0.0.1:$p[1]&up=");
    is_deeply(by_key(@keys), $before, 'down and up: every key back on its peer') if $keyed;
    api('backends', "server=127.0.0.1:$p[0]&weight=5");
    my $after = by_key(@keys);
    ok((grep { $after->{$_} ne $before->{$_} } @keys), 'a weight change moves keys') or diag(explain($after))
        if $keyed;
    api('backends', "remove=&server=127.0.0.1:$p[3]");
    is(http_get('/dynamic?upstream=backends&verbose=')->{body},
       "server 127.0.0.1:$p[0] weight=5 max_fails=1 fail_timeout=10;\n" . vline($p[1]) . vline($p[2]), 'listed');
    $s = spread(60, $uri_of);
    is(($s->{ $p[0] } // 0) + ($s->{ $p[1] } // 0) + ($s->{ $p[2] } // 0), 60, 'the removed peer gets nothing')
        or diag(explain($s));
}

# follows_behind_keepalive([URI_OF]) (nginx 1.27.3 and later): as
# fixed_behind_keepalive, but adds (50), and their removals, are accepted.
sub follows_behind_keepalive {
    my ($uri_of) = @_;
    my @p = map { port($_) } 1 .. 2;
    is(http_get('/')->{status}, 200, 'one request builds the worker\'s table');
    my @dead = dead_ports(50);
    my %answers;
    $answers{ http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$_")->{status} }++ for @dead;
    is_deeply(\%answers, { 200 => 50 }, '50 adds accepted (what the 64k zone holds)');
    %answers = ();
    $answers{ http_get("/dynamic?upstream=backends&remove=&server=127.0.0.1:$_")->{status} }++ for @dead;
    is_deeply(\%answers, { 200 => 50 }, '50 removes accepted');
    is(http_get('/dynamic?upstream=backends&verbose=')->{body}, join('', map { vline($_) } @p), 'the two peers left');
    my $s = spread(300, $uri_of);
    is(($s->{ $p[0] } // 0) + ($s->{ $p[1] } // 0), 300, 'every request answered by a live peer') or diag(explain($s));
}

# past_64th_peer(UPSTREAMS): on each upstream (proxied at /NAME/, one live
# peer on port 1), after one proxied request (so that the request hook has
# seen the balancer's request data), 70 dead peers and a live one (port 2)
# are added, then removed: every request reaches a live peer past the 64th
# (each request's tried bitmap covers them), and the lists come back.
sub past_64th_peer {
    my ($p1, $p2) = map { port($_) } 1 .. 2;
    my @dead = dead_ports(70);
    for my $u (@_) {
        is(http_get("/$u/?key=first")->{status}, 200, "$u: proxied");
        # 70 peers that refuse connections, never taken out (max_fails=0), then
        # a second live peer listed 72nd
        my $bad = 0;
        for my $i (1 .. 70) {
            my $r = http_get("/dynamic?upstream=$u&add=&max_fails=0&server=127.0.0.1:$dead[$i - 1]");
            $bad++ if $r->{status} != 200;
        }
        is($bad, 0, "$u: 70 peers added");
        api($u, "add=&server=127.0.0.1:$p2");
        my $s = spread(30, sub { "/$u/?key=k$_[0]" });
        is(($s->{$p1} // 0) + ($s->{$p2} // 0), 30, "$u: every request reached a live peer") or diag(explain($s));
        $bad = 0;
        for my $i (1 .. 70) {
            my $r = http_get("/dynamic?upstream=$u&remove=&server=127.0.0.1:$dead[$i - 1]");
            $bad++ if $r->{status} != 200;
        }
        is($bad, 0, "$u: 70 peers removed");
        is(http_get("/dynamic?upstream=$u")->{body}, "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\n", "$u: two peers left");
        $s = spread(20, sub { "/$u/?key=k$_[0]" });
        is(($s->{$p1} // 0) + ($s->{$p2} // 0), 20, "$u: traffic after removal") or diag(explain($s));
    }
}

run_tests();
__DATA__

=== TEST 1: least_conn: down/up, add, remove, weight in the list and in the traffic
--- workers: 1
--- http_config
upstream backends {
    least_conn;
    zone zone_for_backends 128k;
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
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
is_deeply(main::spread(20), { $p1 => 10, $p2 => 10 }, 'two idle peers share evenly');

my $r = main::api('backends', "server=127.0.0.1:$p1&down=");
is($r->{body}, main::vline($p1, ' down') . main::vline($p2), 'down listed');
is_deeply(main::spread(10), { $p2 => 10 }, 'down peer gets nothing');
main::api('backends', "server=127.0.0.1:$p1&up=");
is_deeply(main::spread(20), { $p1 => 10, $p2 => 10 }, 'up again: shares');

$r = main::api('backends', "add=&server=127.0.0.1:$p3");
is($r->{body}, "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\nserver 127.0.0.1:$p3;\n", 'add listed');
is_deeply(main::spread(30), { $p1 => 10, $p2 => 10, $p3 => 10 }, 'added peer gets its share');

$r = main::api('backends', "remove=&server=127.0.0.1:$p2");
is($r->{body}, "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p3;\n", 'remove listed');
is_deeply(main::spread(20), { $p1 => 10, $p3 => 10 }, 'removed peer gets nothing');

$r = main::api('backends', "server=127.0.0.1:$p3&weight=3");
is($r->{body}, main::vline($p1) . "server 127.0.0.1:$p3 weight=3 max_fails=1 fail_timeout=10;\n", 'weight listed');
is_deeply(main::spread(40), { $p1 => 10, $p3 => 30 }, 'weight=3: 3:1 among idle peers');



=== TEST 2: least_conn: an added peer takes part, and connection counts return to 0
--- workers: 1
--- http_config
upstream backends {
    least_conn;
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    location / { return 200 "$server_port\n"; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    location / { return 200 "$server_port\n"; }
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
main::api('backends', "add=&server=127.0.0.1:$p2");
my $s = main::spread(20);
is_deeply($s, { $p1 => 10, $p2 => 10 }, 'the added peer takes part in least_conn') or diag(explain($s));
my $j = http_get('/dynamic?upstream=backends&format=json');
like($j->{body}, qr/"conns":0.*"conns":0/s, 'no connection left counted on either peer');



=== TEST 3: ip_hash: requests from one address stick to one peer; down moves them; add, remove, weight
--- http_config
upstream backends {
    ip_hash;
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
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my @p = map { port($_) } 1 .. 4;
my $s = main::spread(10);
is(scalar keys %$s, 1, 'all requests from 127.0.0.1 go to one peer') or diag(explain($s));
my ($sticky) = keys %$s;
ok((grep { $_ eq $sticky } @p[0 .. 2]), 'a configured peer');

my $r = main::api('backends', "server=127.0.0.1:$sticky&down=");
like($r->{body}, qr/^server 127\.0\.0\.1:$sticky weight=1 max_fails=1 fail_timeout=10 down;$/m, 'down listed');
$s = main::spread(10);
is(scalar keys %$s, 1, 'after down: still one peer') or diag(explain($s));
my ($moved) = keys %$s;
isnt($moved, $sticky, 'they moved to another peer');
ok((grep { $_ eq $moved } @p[0 .. 2]), 'an up configured peer');

main::api('backends', "server=127.0.0.1:$sticky&up=");
is_deeply(main::spread(10), { $sticky => 10 }, 'up again: back to the first peer');

$r = main::api('backends', "add=&server=127.0.0.1:$p[3]");
is($r->{body}, join('', map { "server 127.0.0.1:$_;\n" } @p), 'add listed');
$s = main::spread(10);
is(scalar keys %$s, 1, 'after add: one peer') or diag(explain($s));
($sticky) = keys %$s;

# down every other peer: the added one must take the traffic
for my $q (grep { $_ ne $p[3] } @p) { main::api('backends', "server=127.0.0.1:$q&down=") }
is_deeply(main::spread(10), { $p[3] => 10 }, 'the added peer takes traffic when the others are down');
for my $q (grep { $_ ne $p[3] } @p) { main::api('backends', "server=127.0.0.1:$q&up=") }

$r = main::api('backends', "remove=&server=127.0.0.1:$sticky");
unlike($r->{body}, qr/:$sticky;/, 'remove listed');
$s = main::spread(10);
is(scalar keys %$s, 1, 'after remove: one peer') or diag(explain($s));
ok(!exists $s->{$sticky}, 'not the removed peer');
my ($now) = keys %$s;

$r = main::api('backends', "server=127.0.0.1:$now&weight=5");
like($r->{body}, qr/^server 127\.0\.0\.1:$now weight=5 max_fails=1 fail_timeout=10;$/m, 'weight listed');
$s = main::spread(10);
is(scalar keys %$s, 1, 'after a weight change: one peer') or diag(explain($s));
ok(!exists $s->{$sticky}, 'still not the removed peer');



=== TEST 4: ip_hash with a single remaining up peer, and 502 when all are down
--- http_config
upstream backends {
    ip_hash;
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
main::api('backends', "server=127.0.0.1:$p1&down=");
is_deeply(main::spread(10), { $p2 => 10 }, 'only the up peer');
main::api('backends', "server=127.0.0.1:$p2&down=");
main::api('backends', "server=127.0.0.1:$p1&up=");
is_deeply(main::spread(10), { $p1 => 10 }, 'only the other up peer');
main::api('backends', "server=127.0.0.1:$p1&down=");
is_deeply(main::spread(4), { 'status 502' => 4 }, 'all down: 502');



=== TEST 5: hash $arg_key: a key sticks to a peer; down moves it; add, remove and weight follow
--- http_config
upstream backends {
    hash $arg_key;
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
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my @p = map { port($_) } 1 .. 4;
my @keys = map { "k$_" } 1 .. 60;
my $map = main::by_key(@keys);
is_deeply(main::by_key(@keys), $map, 'each key sticks to its peer');
my %count;
$count{$_}++ for values %$map;
is_deeply([sort keys %count], [sort @p[0 .. 2]], 'the keys spread over the three peers') or diag(explain(\%count));

my $r = main::api('backends', "server=127.0.0.1:$p[0]&down=");
like($r->{body}, qr/^server 127\.0\.0\.1:$p[0] weight=1 max_fails=1 fail_timeout=10 down;$/m, 'down listed');
my $after = main::by_key(@keys);
ok(!(grep { $_ eq $p[0] } values %$after), 'no key reaches the down peer');
is_deeply({ map { $_ => $after->{$_} } grep { $map->{$_} ne $p[0] } @keys },
          { map { $_ => $map->{$_} } grep { $map->{$_} ne $p[0] } @keys },
          'keys of the other peers did not move');
main::api('backends', "server=127.0.0.1:$p[0]&up=");
is_deeply(main::by_key(@keys), $map, 'up again: every key back on its peer');

$r = main::api('backends', "add=&server=127.0.0.1:$p[3]");
is($r->{body}, join('', map { "server 127.0.0.1:$_;\n" } @p), 'add listed');
$after = main::by_key(@keys);
my %c4;
$c4{$_}++ for values %$after;
is_deeply([sort keys %c4], [sort @p], 'the keys now spread over four peers, the added one included')
    or diag(explain(\%c4));
is_deeply(main::by_key(@keys), $after, 'and stick there');

$r = main::api('backends', "remove=&server=127.0.0.1:$p[1]");
is($r->{body}, join('', map { "server 127.0.0.1:$_;\n" } @p[0, 2, 3]), 'remove listed');
$after = main::by_key(@keys);
ok(!(grep { $_ eq $p[1] } values %$after), 'no key reaches the removed peer');
my %c3;
$c3{$_}++ for values %$after;
is_deeply([sort keys %c3], [sort @p[0, 2, 3]], 'the keys spread over the remaining three') or diag(explain(\%c3));

$r = main::api('backends', "server=127.0.0.1:$p[3]&weight=20");
like($r->{body}, qr/^server 127\.0\.0\.1:$p[3] weight=20 max_fails=1 fail_timeout=10;$/m, 'weight listed');
$after = main::by_key(@keys);
my %cw;
$cw{$_}++ for values %$after;
cmp_ok($cw{ $p[3] } // 0, '>=', 40, 'the weight=20 peer (of 22) gets most of the 60 keys') or diag(explain(\%cw));



=== TEST 6: hash ... consistent: add, remove and weight answer 409 (nginx ≥ 1.27.3: follow them); down/up and the other parameters work
--- http_config
upstream backends {
    hash $arg_key consistent;
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
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
if (!main::tables_fixed()) {
    main::follows_changes(1);
} else {
    my @p = map { port($_) } 1 .. 4;
    my $list = join '', map { main::vline($_) } @p[0 .. 2];
    my $conflict = qr/\A409 Conflict: upstream "backends" uses the consistent hash balancer, which computes its table once at start on this nginx \(before 1\.27\.3\): adding, removing or re-weighting peers is refused \(down, up, max_fails, fail_timeout and max_conns work\)\n\z/;
    for my $q ("add=&server=127.0.0.1:$p[3]", "add=&server=127.0.0.1:$p[3]&weight=2",
               "remove=&server=127.0.0.1:$p[2]", "server=127.0.0.1:$p[2]&weight=2",
               "server=127.0.0.1:$p[2]&weight=2&down=") {
        my $r = main::api('backends', $q, 409);
        like($r->{body}, $conflict, "$q: reason");
        is(http_get('/dynamic?upstream=backends&verbose=')->{body}, $list, "$q: nothing changed");
    }

    my @keys = map { "k$_" } 1 .. 40;
    my $map = main::by_key(@keys);
    is_deeply(main::by_key(@keys), $map, 'keys stick');
    my $r = main::api('backends', "server=127.0.0.1:$p[0]&down=");
    is($r->{body}, main::vline($p[0], ' down') . main::vline($p[1]) . main::vline($p[2]), 'down listed');
    my $after = main::by_key(@keys);
    ok(!(grep { $_ eq $p[0] } values %$after), 'no key reaches the down peer');
    main::api('backends', "server=127.0.0.1:$p[0]&up=");
    is_deeply(main::by_key(@keys), $map, 'up: keys back');

    $r = main::api('backends', "server=127.0.0.1:$p[1]&max_fails=3&fail_timeout=20&max_conns=50");
    is($r->{body}, main::vline($p[0]) . "server 127.0.0.1:$p[1] weight=1 max_fails=3 fail_timeout=20 max_conns=50;\n"
                 . main::vline($p[2]), 'max_fails, fail_timeout, max_conns accepted');
    # The weight it has is no re-weighting (hunt 26: 409, where a Plus API
    # PUT of the same weights was accepted).
    $r = main::api('backends', "server=127.0.0.1:$p[2]&weight=1&max_fails=2");
    is($r->{body}, main::vline($p[0]) . "server 127.0.0.1:$p[1] weight=1 max_fails=3 fail_timeout=20 max_conns=50;\n"
                 . "server 127.0.0.1:$p[2] weight=1 max_fails=2 fail_timeout=10;\n", 'the same weight with max_fails: accepted');
    $r = main::api('backends', "server=127.0.0.1:$p[2]&down=&max_fails=0");
    is($r->{body}, main::vline($p[0]) . "server 127.0.0.1:$p[1] weight=1 max_fails=3 fail_timeout=20 max_conns=50;\n"
                 . "server 127.0.0.1:$p[2] weight=1 max_fails=0 fail_timeout=10 down;\n", 'down with max_fails accepted');
}



=== TEST 7: random: add, remove and weight answer 409 (nginx ≥ 1.27.3: follow them); down/up and the other parameters work
--- http_config
upstream backends {
    random;
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
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
if (!main::tables_fixed()) {
    main::follows_changes();
} else {
    my @p = map { port($_) } 1 .. 4;
    my $list = join '', map { main::vline($_) } @p[0 .. 2];
    my $conflict = "409 Conflict: upstream \"backends\" uses the random balancer, which computes its table once at start "
                 . "on this nginx (before 1.27.3): adding, removing or re-weighting peers is refused (down, up, max_fails, fail_timeout "
                 . "and max_conns work)\n";
    # traffic first, so that every worker has built its table
    my $s = main::spread(30);
    is(scalar keys %$s, 3, 'random spreads over the three peers') or diag(explain($s));
    for my $q ("add=&server=127.0.0.1:$p[3]", "remove=&server=127.0.0.1:$p[2]", "server=127.0.0.1:$p[2]&weight=2",
               "server=127.0.0.1:$p[0]&weight=3") {
        my $r = main::api('backends', $q, 409);
        is($r->{body}, $conflict, "$q: reason");
        is(http_get('/dynamic?upstream=backends&verbose=')->{body}, $list, "$q: nothing changed");
    }
    # The weight it has is no re-weighting (hunt 26: 409 too).
    is(main::api('backends', "server=127.0.0.1:$p[0]&weight=1")->{body}, $list, 'the same weight: accepted, nothing changed');
    my $r = main::api('backends', "server=127.0.0.1:$p[0]&down=");
    is($r->{body}, main::vline($p[0], ' down') . main::vline($p[1]) . main::vline($p[2]), 'down listed');
    $s = main::spread(40);
    ok(!exists $s->{ $p[0] }, 'the down peer gets nothing') or diag(explain($s));
    is(($s->{ $p[1] } // 0) + ($s->{ $p[2] } // 0), 40, 'the up peers answer everything');
    main::api('backends', "server=127.0.0.1:$p[0]&up=");
    $s = main::spread(40);
    ok($s->{ $p[0] }, 'up again: it gets traffic') or diag(explain($s));

    $r = main::api('backends', "server=127.0.0.1:$p[2]&max_fails=2&fail_timeout=1m&max_conns=9");
    is($r->{body}, main::vline($p[0]) . main::vline($p[1])
                 . "server 127.0.0.1:$p[2] weight=1 max_fails=2 fail_timeout=60 max_conns=9;\n",
       'max_fails, fail_timeout, max_conns accepted');
    $s = main::spread(20);
    is(eval { my $t = 0; $t += $_ for values %$s; $t }, 20, 'traffic still flows') or diag(explain($s));
    ok(!(grep { /^status/ } keys %$s), 'no errors') or diag(explain($s));
}



=== TEST 8: round robin (no balancer directive): weights over three peers
--- workers: 1
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
my @p = map { port($_) } 1 .. 3;
main::api('backends', "server=127.0.0.1:$p[0]&weight=2");
main::api('backends', "server=127.0.0.1:$p[2]&weight=5");
is_deeply(main::spread(80), { $p[0] => 20, $p[1] => 10, $p[2] => 50 }, '2:1:5');



=== TEST 9: more than 64 peers on least_conn, ip_hash and hash: failover past the 64th peer, no crash
--- http_config
upstream lc {
    least_conn;
    zone lc 1m;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream iph {
    ip_hash;
    zone iph 1m;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream hsh {
    hash $arg_key;
    zone hsh 1m;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location /lc/ { proxy_pass http://lc; }
location /iph/ { proxy_pass http://iph; }
location /hsh/ { proxy_pass http://hsh; }
--- perl
main::past_64th_peer(qw(lc iph hsh));



=== TEST 10: random behind keepalive: add, remove and weight answer 409 (a worker's table cannot overrun; nginx ≥ 1.27.3: 200, the tables are rebuilt); traffic stays on live peers
--- workers: 1
--- http_config
upstream backends {
    zone zone_for_backends 64k;
    random;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    keepalive 4;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / {
    proxy_pass http://backends;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
}
--- perl
main::tables_fixed() ? main::fixed_behind_keepalive('random') : main::follows_behind_keepalive();



=== TEST 11: hash ... consistent behind keepalive: add, remove and weight answer 409 (nginx ≥ 1.27.3: 200); traffic stays on live peers
--- workers: 1
--- http_config
upstream backends {
    zone zone_for_backends 64k;
    hash $request_uri consistent;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    keepalive 4;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / {
    proxy_pass http://backends;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
}
--- perl
main::tables_fixed() ? main::fixed_behind_keepalive('consistent hash', sub { "/?i=$_[0]" })
               : main::follows_behind_keepalive(sub { "/?i=$_[0]" });



=== TEST 12: keepalive before the balancer directive: nginx drops keepalive ("load balancing method redefined"), the balancer is still recognised
--- workers: 1
--- http_config
upstream rnd {
    zone rnd 64k;
    keepalive 4;
    random;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream chash {
    zone chash 64k;
    keepalive 4;
    hash $request_uri consistent;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream lc {
    zone lc 64k;
    keepalive 4;
    least_conn;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location /rnd { proxy_pass http://rnd; }
location /chash { proxy_pass http://chash; }
location /lc { proxy_pass http://lc; }
--- perl
my @p = map { port($_) } 1 .. 3;
is(http_get("/$_")->{status}, 200, "$_: proxied") for qw(rnd chash lc);
for (['rnd', 'random'], ['chash', 'consistent hash']) {
    my ($u, $name) = @$_;
    my $r = http_get("/dynamic?upstream=$u&add=&server=127.0.0.1:$p[2]");
    is(main::tables_fixed() ? "$r->{status} $r->{body}" : $r->{status}, main::tables_fixed() ? main::conflict($u, $name) : 200,
       "$u: add refused (accepted from nginx 1.27.3 on)");
    $r = http_get("/dynamic?upstream=$u&server=127.0.0.1:$p[1]&down=");
    is($r->{status}, 200, "$u: down accepted");
}
my $r = http_get("/dynamic?upstream=lc&add=&server=127.0.0.1:$p[1]");
is("$r->{status} $r->{body}", "200 server 127.0.0.1:$p[0];\nserver 127.0.0.1:$p[1];\n", 'least_conn: add accepted');
$r = http_get("/dynamic?upstream=lc&add=&backup=&server=127.0.0.1:$p[2]");
is($r->{status}, 200, 'least_conn: backup add accepted') or diag($r->{body});
my %seen;
$seen{ http_get('/lc')->{body} }++ for 1 .. 20;
is_deeply(\%seen, { "$p[0]\n" => 10, "$p[1]\n" => 10 }, 'least_conn: both primaries answer');
--- error_log
load balancing method redefined



=== TEST 13: round robin, least_conn and ip_hash behind keepalive keep their rules: add, remove, weight accepted; backup as the balancer allows
--- workers: 1
--- http_config
upstream rr {
    zone rr 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    keepalive 4;
}
upstream lc {
    zone lc 64k;
    least_conn;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    keepalive 4;
}
upstream iph {
    zone iph 64k;
    ip_hash;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    keepalive 4;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my @p = map { port($_) } 1 .. 3;
for my $u (qw(rr lc iph)) {
    my $r = http_get("/dynamic?upstream=$u&add=&server=127.0.0.1:$p[1]");
    is("$r->{status} $r->{body}", "200 server 127.0.0.1:$p[0];\nserver 127.0.0.1:$p[1];\n", "$u: add");
    $r = http_get("/dynamic?upstream=$u&server=127.0.0.1:$p[1]&weight=3");
    is($r->{status}, 200, "$u: weight");
    $r = http_get("/dynamic?upstream=$u&remove=&server=127.0.0.1:$p[1]");
    is("$r->{status} $r->{body}", "200 server 127.0.0.1:$p[0];\n", "$u: remove");
}
for my $u (qw(rr lc)) {
    my $r = http_get("/dynamic?upstream=$u&add=&backup=&server=127.0.0.1:$p[2]");
    is("$r->{status} $r->{body}", "200 server 127.0.0.1:$p[0];\nserver 127.0.0.1:$p[2] backup;\n", "$u: backup add");
}
my $r = http_get("/dynamic?upstream=iph&add=&backup=&server=127.0.0.1:$p[2]");
is("$r->{status} $r->{body}",
   "400 400 Bad Request: upstream \"iph\" uses the ip_hash balancer, which does not allow backup servers\n",
   'ip_hash: backup refused');



=== TEST 14: a balancer the module does not know (balancer_by_lua): add, remove and weight answer 409; down/up and the other parameters work
--- modules: lua
--- workers: 1
--- http_config
upstream backends {
    zone zone_for_backends 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    balancer_by_lua_block { local unused = true }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my @p = map { port($_) } 1 .. 3;
my $list = main::vline($p[0]) . main::vline($p[1]);
my $conflict = "409 409 Conflict: upstream \"backends\" uses a balancer this module does not know (another module's), "
             . "which may keep its own copy of the peers: adding, removing or re-weighting peers is refused "
             . "(down, up, max_fails, fail_timeout and max_conns work)\n";
for my $q ("add=&server=127.0.0.1:$p[2]", "remove=&server=127.0.0.1:$p[1]", "server=127.0.0.1:$p[1]&weight=2") {
    my $r = http_get("/dynamic?upstream=backends&$q");
    is("$r->{status} $r->{body}", $conflict, "$q: refused");
    is(http_get('/dynamic?upstream=backends&verbose=')->{body}, $list, "$q: nothing changed");
}
my $r = http_get("/dynamic?upstream=backends&add=&backup=&server=127.0.0.1:$p[2]");
is("$r->{status} $r->{body}",
   "400 400 Bad Request: upstream \"backends\" uses the third-party balancer, which does not allow backup servers\n",
   'backup add refused: balancer_by_lua declares no backups');
$r = main::api('backends', "server=127.0.0.1:$p[0]&down=");
is($r->{body}, main::vline($p[0], ' down') . main::vline($p[1]), 'down listed');
is_deeply(main::spread(10), { $p[1] => 10 }, 'the down peer gets nothing');
main::api('backends', "server=127.0.0.1:$p[0]&up=&max_fails=3&fail_timeout=20&max_conns=5");
is(http_get('/dynamic?upstream=backends&verbose=')->{body},
   "server 127.0.0.1:$p[0] weight=1 max_fails=3 fail_timeout=20 max_conns=5;\n" . main::vline($p[1]),
   'up and parameters accepted');
is_deeply(main::spread(10), { $p[0] => 5, $p[1] => 5 }, 'both answer');



=== TEST 15: more than 64 peers on least_conn, ip_hash and hash behind keepalive: the request hook finds the balancer's data inside keepalive's
--- http_config
upstream lc {
    least_conn;
    zone lc 1m;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    keepalive 4;
}
upstream iph {
    ip_hash;
    zone iph 1m;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    keepalive 4;
}
upstream hsh {
    hash $arg_key;
    zone hsh 1m;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    keepalive 4;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location /lc/ { proxy_pass http://lc; proxy_http_version 1.1; proxy_set_header Connection ""; }
location /iph/ { proxy_pass http://iph; proxy_http_version 1.1; proxy_set_header Connection ""; }
location /hsh/ { proxy_pass http://hsh; proxy_http_version 1.1; proxy_set_header Connection ""; }
--- perl
main::past_64th_peer(qw(lc iph hsh));

=== TEST 16: hash ... consistent (nginx ≥ 1.27.3, which rebuilds its points in every worker at each change): a change that raises the primary servers' total weight past 26214 (a 64 MiB table per worker) is refused with 400 naming the limit, through every API; below it, and changes that do not raise it, work (weight=1000000 used to stall every worker for a minute and take 2.5 GB each)
--- http_config
upstream backends {
    hash $arg_key consistent;
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 weight=20000;
    server 127.0.0.1:$TEST_NGINX_PORT_2 weight=10000;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location /api { dynamic_upstream_api write=on; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $list = sub { http_get('/dynamic?upstream=backends&verbose=')->{body} };
my $before = $list->();
if (main::tables_fixed()) {
    main::api('backends', "server=127.0.0.1:$p2&weight=1000000", 409);
    is($list->(), $before, 'nothing changed');
} else {
    my $limit = "400 Bad Request: upstream \"backends\" uses the consistent hash balancer, which keeps 160 points of 16 bytes per unit of its primary servers' weight in every worker: total weight %d would take %d MiB, more than the 64 MiB allowed (total weight at most 26214)\n";
    my $r = main::api('backends', "server=127.0.0.1:$p2&weight=1000000", 400);
    is($r->{body}, sprintf($limit, 1020000, 2491), 'weight=1000000: the limit named');
    is($list->(), $before, 'nothing changed');
    $r = main::api('backends', "server=127.0.0.1:$p2&weight=10001", 400);
    is($r->{body}, sprintf($limit, 30001, 74), 'a weight that still raises the total (30000, from the configuration, past the limit already)');
    $r = main::api('backends', "add=&server=127.0.0.1:$p3", 400);
    is($r->{body}, sprintf($limit, 30001, 74), 'add: refused too');
    is($list->(), $before, 'nothing changed');
    main::api('backends', "server=127.0.0.1:$p2&weight=4000&max_fails=2");
    like($list->(), qr/^server 127\.0\.0\.1:$p2 weight=4000 max_fails=2 /m, 'lowering the total works');
    main::api('backends', "server=127.0.0.1:$p2&weight=6214");
    like($list->(), qr/^server 127\.0\.0\.1:$p2 weight=6214 /m, 'up to the limit: 26214');
    main::api('backends', "add=&server=127.0.0.1:$p3", 400);
    my $plus = http('POST', '/api/9/http/upstreams/backends/servers', qq({"server":"127.0.0.1:$p3"}));
    is($plus->{status}, 400, 'Plus API POST past the limit: 400');
    like($plus->{body}, qr/total weight 26215 would take 65 MiB, more than the 64 MiB allowed/, 'its reason');
    $plus = http('PATCH', '/api/9/http/upstreams/backends/servers/1', '{"weight":6215}');
    is($plus->{status}, 400, 'Plus API PATCH past the limit: 400');
    like($plus->{body}, qr/"code":"UpstreamBadWeight"/, 'its code');
    $plus = http('PUT', '/api/9/http/upstreams/backends/servers',
                 qq([{"server":"127.0.0.1:$p1","weight": 20000},{"server":"127.0.0.1:$p2","weight": 7000}]));
    is($plus->{status}, 400, 'Plus API PUT past the limit: 400') or diag($plus->{body});
    main::api('backends', "server=127.0.0.1:$p1&down=");
    like($list->(), qr/^server 127\.0\.0\.1:$p1 weight=20000 .* down;$/m, 'down: not a change of weight');
    is(http_get('/?key=a')->{body}, "$p2\n", 'traffic flows');
}
