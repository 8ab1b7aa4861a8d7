# dyups_interface: the balancers and server parameters of a POSTed body
# really drive the traffic: weights, backup, down, ip_hash, least_conn,
# hash KEY, hash KEY consistent, random, random two [least_conn].
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups;
use NginxTest::Files;
use IO::Socket::INET;

# Ports (numbers) that answered $n requests, in order; non-200 answers are
# recorded as "STATUS:body".
sub hits {
    my ($host, $n, $uri) = @_;
    my @got;
    for my $i (1 .. $n) {
        my $u = ref $uri eq 'CODE' ? $uri->($i) : $uri;
        my $r = proxied($host, $u);
        push @got, $r->{status} == 200 ? ($r->{body} =~ s/\n\z//r) : "$r->{status}:$r->{body}";
    }
    return @got;
}

sub count { my %c; $c{$_}++ for @_; \%c }

sub srv { my ($n, $extra) = @_; "server 127.0.0.1:" . port($n) . ($extra ? " $extra" : '') . ";" }

# busy_goes_idle(HOST, P1, P2): while a slow request holds one of the two
# peers, every other request goes to the idle one (what `random two` adds
# to `random`: of two peers picked, the one with fewer connections).
sub busy_goes_idle {
    my ($host, $p1, $p2) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(9)) or die "connect: $!";
    print $sock "GET /slow HTTP/1.0\r\nHost: $host\r\n\r\n";
    my $busy;
    ok(poll_until(sub {
        ($busy) = http_get("/upstream/$host?format=json")->{body} =~ /"server":"127\.0\.0\.1:(\d+)"[^}]*"conns":1/;
        defined $busy;
    }, 5, "$host: a peer holds the slow request"), "$host: the slow request is on a peer");
    my $idle = ($busy // 0) == $p1 ? $p2 : $p1;
    is_deeply(count(hits($host, 10)), { $idle => 10 }, "$host: every request goes to the idle peer");
    local $/;
    like(scalar(<$sock>), qr/slow $busy\n\z/, "$host: the slow request completed");
}

run_tests();
__DATA__

=== TEST 1: weights, one worker: round robin is exact, 3:1 in every 4 requests
--- workers: 1
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
main::post('dyhost', main::srv(1, 'weight=3') . main::srv(2));
my @got = main::hits('dyhost', 40);
for my $w (0 .. 9) {
    my $c = main::count(@got[4 * $w .. 4 * $w + 3]);
    is_deeply($c, { $p1 => 3, $p2 => 1 }, "requests " . (4 * $w + 1) . ".." . (4 * $w + 4) . ": 3 x weight 3, 1 x weight 1")
        or diag("@got");
}
main::post('dyhost', main::srv(1) . main::srv(2));
@got = main::hits('dyhost', 20);
for my $w (0 .. 9) {
    my $c = main::count(@got[2 * $w .. 2 * $w + 1]);
    is_deeply($c, { $p1 => 1, $p2 => 1 }, "equal weights: requests " . (2 * $w + 1) . ".." . (2 * $w + 2) . " alternate")
        or diag("@got");
}

=== TEST 2: weights, two workers: roughly 3:1
--- workers: 2
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
main::post('dyhost', main::srv(1, 'weight=3') . main::srv(2, 'weight=1'));
my $c = main::count(main::hits('dyhost', 80));
is(($c->{$p1} // 0) + ($c->{$p2} // 0), 80, 'every request reached one of the two') or diag(explain($c));
cmp_ok($c->{$p1} // 0, '>=', 54, 'weight 3 got about 3/4 (60 of 80)');
cmp_ok($c->{$p1} // 0, '<=', 66, 'but not much more');

=== TEST 3: backup: never used while a primary is up; takes everything when all primaries are down
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
main::post('dyhost', main::srv(1, 'down') . main::srv(2) . main::srv(3, 'backup'));
is_deeply(main::count(main::hits('dyhost', 20)), { $p2 => 20 }, 'only the live primary; not the down one, not the backup');
main::post('dyhost', main::srv(1, 'down') . main::srv(2, 'down') . main::srv(3, 'backup'));
is_deeply(main::count(main::hits('dyhost', 20)), { $p3 => 20 }, 'all primaries down: the backup gets all');
main::post('dyhost', main::srv(1) . main::srv(2) . main::srv(3, 'backup'));
my $c = main::count(main::hits('dyhost', 20));
is_deeply([sort keys %$c], [sort $p1, $p2], 'primaries up again: both primaries, no backup') or diag(explain($c));

=== TEST 4: backup takes over from a primary that refuses connections
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my $p3 = port(3);
# Nothing listens on port 8.
main::post('dyhost', main::srv(8, 'max_fails=1 fail_timeout=30') . main::srv(3, 'backup'));
is_deeply(main::count(main::hits('dyhost', 10)), { $p3 => 10 }, 'every request answered by the backup');

=== TEST 5: a configured upstream's balancer and servers are replaced by POST
--- http_config
upstream host1 { ip_hash; server 127.0.0.1:$TEST_NGINX_PORT_1; server 127.0.0.1:$TEST_NGINX_PORT_2; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
is(scalar(keys %{ main::count(main::hits('host1', 10)) }), 1, 'configured ip_hash sticks to one peer');
main::post('host1', main::srv(2) . main::srv(3));
my $c = main::count(main::hits('host1', 20));
is_deeply([sort keys %$c], [sort $p2, $p3], 'replaced without a balancer line: round robin over both new servers')
    or diag(explain($c));

=== TEST 6: ip_hash sticks: every request from 127.0.0.1 goes to one peer, from every worker
--- workers: 4
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
main::post('dyhost', main::srv(1) . main::srv(2) . main::srv(3));
my $c = main::count(main::hits('dyhost', 12));
cmp_ok(scalar(keys %$c), '>', 1, 'without ip_hash: spread over the peers') or diag(explain($c));
main::post('dyhost', 'ip_hash; ' . main::srv(1) . main::srv(2) . main::srv(3));
$c = main::count(main::hits('dyhost', 40));
is(scalar(keys %$c), 1, 'ip_hash: all 40 requests to a single peer') or diag(explain($c));
my ($peer) = keys %$c;
like($peer, qr/\A(?:$p1|$p2|$p3)\z/, 'one of the three');
main::post('dyhost', main::srv(1) . main::srv(2) . main::srv(3) . ' ip_hash;');
is_deeply(main::count(main::hits('dyhost', 20)), { $peer => 20 }, 'the same peer again after re-POSTing the same list');

=== TEST 7: least_conn: a busy peer is avoided while it holds a request
--- modules: echo
--- workers: 1
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    location /slow { echo_sleep 1; echo "slow $server_port"; }
    location / { echo $server_port; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
use NginxTest::Files;
use IO::Socket::INET;
my ($p1, $p2) = map { port($_) } 1 .. 2;
main::post('dyhost', 'least_conn; ' . main::srv(1) . main::srv(2));
my $c = main::count(main::hits('dyhost', 10));
is_deeply($c, { $p1 => 5, $p2 => 5 }, 'idle: least_conn falls back to round robin') or diag(explain($c));
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(9)) or die "connect: $!";
print $sock "GET /slow HTTP/1.0\r\nHost: dyhost\r\n\r\n";
my $busy;
ok(poll_until(sub {
    my $j = http_get('/upstream/dyhost?format=json')->{body};
    ($busy) = $j =~ /"server":"127\.0\.0\.1:(\d+)"[^}]*"conns":1/;
    defined $busy;
}, 5, 'a peer holds the slow request'), 'the slow request is on a peer');
my $idle = ($busy // 0) == $p1 ? $p2 : $p1;
is_deeply(main::count(main::hits('dyhost', 10)), { $idle => 10 }, 'every request goes to the idle peer');
local $/;
like(scalar(<$sock>), qr/slow $busy\n\z/, 'the slow request completed');

=== TEST 8: hash $arg_k: the same key always reaches the same peer; keys spread
--- workers: 2
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
main::post('dyhost', 'hash $arg_k; ' . main::srv(1) . main::srv(2) . main::srv(3));
my %peer_of;
for my $k (qw(a b c)) {
    my $c = main::count(main::hits('dyhost', 15, "/?k=$k"));
    is(scalar(keys %$c), 1, "key $k: all 15 requests to one peer") or diag(explain($c));
    ($peer_of{$k}) = keys %$c;
}
my %by_key;
for my $i (1 .. 40) {
    my ($p) = main::hits('dyhost', 1, "/?k=key$i");
    $by_key{$i} = $p;
}
my $spread = main::count(values %by_key);
cmp_ok(scalar(keys %$spread), '>=', 2, '40 different keys reach more than one peer') or diag(explain($spread));
ok(!grep({ !/\A\d+\z/ } values %by_key), 'and every one was answered');
my $again = 0;
for my $i (1 .. 40) { $again++ if (main::hits('dyhost', 1, "/?k=key$i"))[0] eq $by_key{$i} }
is($again, 40, 'asking again: each key reaches the same peer as before');

=== TEST 9: hash $arg_k consistent: the same key always reaches the same peer; keys spread
--- workers: 2
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
main::post('dyhost', main::srv(1) . main::srv(2) . main::srv(3) . ' hash $arg_k consistent;');
for my $k (qw(a b c)) {
    my $c = main::count(main::hits('dyhost', 15, "/?k=$k"));
    is(scalar(keys %$c), 1, "key $k: all 15 requests to one peer") or diag(explain($c));
}
my %by_key = map { $_ => (main::hits('dyhost', 1, "/?k=key$_"))[0] } 1 .. 40;
my $spread = main::count(values %by_key);
cmp_ok(scalar(keys %$spread), '>=', 2, '40 different keys reach more than one peer') or diag(explain($spread));
ok(!grep({ !/\A\d+\z/ } values %by_key), 'and every one was answered');
my $again = grep { (main::hits('dyhost', 1, "/?k=key$_"))[0] eq $by_key{$_} } 1 .. 40;
is($again, 40, 'asking again: each key reaches the same peer as before');

# Consistent hashing: removing one peer moves only the keys it had.
my $p3 = port(3);
main::post('dyhost', main::srv(1) . main::srv(2) . ' hash $arg_k consistent;');
my $moved = grep { $by_key{$_} ne $p3 && (main::hits('dyhost', 1, "/?k=key$_"))[0] ne $by_key{$_} } 1 .. 40;
is($moved, 0, 'after removing a peer, keys of the other peers did not move');

=== TEST 10: random: traffic reaches both peers
--- workers: 2
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
main::post('dyhost', 'random; ' . main::srv(1) . main::srv(2));
my $c = main::count(main::hits('dyhost', 40));
is_deeply([sort keys %$c], [sort $p1, $p2], 'both peers got some of 40 requests, nothing else') or diag(explain($c));
main::post('dyhost', 'random; ' . main::srv(1, 'down') . main::srv(2));
is_deeply(main::count(main::hits('dyhost', 20)), { $p2 => 20 }, 'random skips a down peer');

=== TEST 11: down works with every balancer
--- workers: 2
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my $p2 = port(2);
for my $b ('', 'ip_hash;', 'least_conn;', 'hash $arg_k;', 'hash $arg_k consistent;', 'random;') {
    main::post('dyhost', "$b " . main::srv(1, 'down') . main::srv(2));
    is_deeply(main::count(main::hits('dyhost', 12, sub { "/?k=$_[0]" })), { $p2 => 12 },
              "'$b': the down peer gets nothing");
}

=== TEST 12: max_conns: a peer at its limit is skipped (here: the backup takes the request)
--- modules: echo
--- workers: 1
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    location /slow { echo_sleep 1; echo "slow $server_port"; }
    location / { echo $server_port; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
use NginxTest::Files;
use IO::Socket::INET;
my ($p1, $p3) = map { port($_) } 1, 3;
main::post('dyhost', main::srv(1, 'max_conns=1') . main::srv(3, 'backup'));
is_deeply(main::count(main::hits('dyhost', 4)), { $p1 => 4 }, 'idle: the primary');
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(9)) or die "connect: $!";
print $sock "GET /slow HTTP/1.0\r\nHost: dyhost\r\n\r\n";
ok(poll_until(sub { http_get('/upstream/dyhost?format=json')->{body} =~ /"server":"127\.0\.0\.1:$p1"[^}]*"conns":1/ },
              5, 'the primary holds the slow request'), 'the primary is at max_conns');
is_deeply(main::count(main::hits('dyhost', 5)), { $p3 => 5 }, 'while it is busy, the backup gets the requests');
local $/;
like(scalar(<$sock>), qr/slow $p1\n\z/, 'the slow request completed on the primary');
is_deeply(main::count(main::hits('dyhost', 4)), { $p1 => 4 }, 'and the primary is used again');

=== TEST 13: max_fails and fail_timeout apply: a failed peer is left alone for fail_timeout
--- workers: 1
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my $p1 = port(1);
my $p8 = port(8);    # nothing listens there
my $refused = sub { scalar(() = error_log_text() =~ /connect\(\) failed \(111: Connection refused\)[^\n]*127\.0\.0\.1:$p8/g) };
main::post('dyhost', main::srv(8, 'max_fails=1 fail_timeout=60') . main::srv(1));
is_deeply(main::count(main::hits('dyhost', 10)), { $p1 => 10 }, 'max_fails=1: all answered by the live peer');
is($refused->(), 1, 'max_fails=1 fail_timeout=60: the dead peer was tried once');
main::post('dyhost', main::srv(8, 'max_fails=0') . main::srv(1));
is_deeply(main::count(main::hits('dyhost', 10)), { $p1 => 10 }, 'max_fails=0: all answered by the live peer');
is($refused->(), 1 + 5, 'max_fails=0: the dead peer was tried every other request');
main::post('dyhost', main::srv(8, 'max_fails=3 fail_timeout=60') . main::srv(1));
is_deeply(main::count(main::hits('dyhost', 12)), { $p1 => 12 }, 'max_fails=3: all answered by the live peer');
is($refused->(), 6 + 3, 'max_fails=3: the dead peer was tried 3 times, then left alone');

=== TEST 14: random two [least_conn] (text and JSON bodies): traffic, the busy peer avoided, listings, state file, restart
--- modules: echo
--- workers: 1
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    location /slow { echo_sleep 1; echo "slow $server_port"; }
    location / { echo $server_port; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
use NginxTest::Files;
use IO::Socket::INET;
my ($p1, $p2) = map { port($_) } 1 .. 2;
my $servers = main::srv(1) . main::srv(2);
my $json = sub { qq({"servers":[{"server":"127.0.0.1:$p1"},{"server":"127.0.0.1:$p2"}],"balancer":"$_[0]"}) };
# [name, body, JSON?, the balancer line the state file writes]
my @forms = (['r2', "random two; $servers", 0, 'random two;'],
             ['r2lc', "random  two\tleast_conn ; $servers", 0, 'random two least_conn;'],
             ['j2', $json->('random_two'), 1, 'random two;'],
             ['j2lc', $json->('random_two_least_conn'), 1, 'random two least_conn;']);
my $lines = main::line(main::addr(1)) . main::line(main::addr(2));
for my $f (@forms) {
    my ($name, $body, $is_json) = @$f;
    my $r = http('POST', "/upstream/$name", $body, $is_json ? { 'Content-Type' => 'application/json' } : undef);
    is("$r->{status} $r->{body}", '200 success', "POST /upstream/$name");
}
my $file = main::slurp(data_dir() . '/dyups.conf') // '';
my $detail = http_get('/detail')->{body};
is($detail, join('', map { "$_->[0]\n$lines\n" } @forms), 'GET /detail lists the four upstreams');
for my $f (@forms) {
    my ($name, undef, undef, $statement) = @$f;
    is(http_get("/upstream/$name")->{body}, $lines, "GET /upstream/$name");
    like($file, qr/^upstream $name \{\n    \Q$statement\E\n    server 127\.0\.0\.1:$p1 [^\n]*\n    server [^\n]*\n\}\n/m,
         "the state file writes $name with \"$statement\"");
    is_deeply([sort keys %{ main::count(main::hits($name, 40)) }], [sort $p1, $p2], "$name: both peers get requests");
    main::busy_goes_idle($name, $p1, $p2);
}
nginx_restart();
is(main::slurp(data_dir() . '/dyups.conf'), $file, 'after a restart: the state file is unchanged');
is(http_get('/detail')->{body}, $detail, 'after a restart: GET /detail as before');
main::busy_goes_idle($_->[0], $p1, $p2) for @forms;

=== TEST 15: random's arguments are checked as nginx checks them; a refused body changes nothing
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
--- config
location / { dyups_interface; }
--- perl
my $p1 = port(1);
main::post('dyhost', 'random two; ' . main::srv(1));
my $before = main::state();
my $file = main::slurp(data_dir() . '/dyups.conf');
for (['random one;', 'invalid parameter "one" in "random"'],
     ['random least_conn;', 'invalid parameter "least_conn" in "random"'],
     ['random two most_conn;', 'invalid parameter "most_conn" in "random"'],
     ['random two LEAST_CONN;', 'invalid parameter "LEAST_CONN" in "random"'],
     ['random two least_conn extra;', 'invalid number of arguments in "random"'],
     ['random two; ip_hash;', 'more than one balancer ("ip_hash" after "random")'],
     ['random two least_conn; server 127.0.0.1:1 backup;', 'backup server 127.0.0.1:1 is not allowed with the random balancer']) {
    my ($balancer, $reason) = @$_;
    my $r = http('POST', '/upstream/dyhost', "$balancer " . main::srv(1));
    is("$r->{status} $r->{body}", "400 add server failed: $reason", "'$balancer': 400 with the reason");
}
for my $b ('random_two_most_conn', 'random two', 'random_one') {
    my $r = http('POST', '/upstream/dyhost', qq({"servers":[{"server":"127.0.0.1:$p1"}],"balancer":"$b"}),
                 { 'Content-Type' => 'application/json' });
    is("$r->{status} $r->{body}", "400 add server failed: unknown balancer \"$b\"", "JSON \"$b\": 400");
}
is(main::state(), $before, 'nothing changed');
is(main::slurp(data_dir() . '/dyups.conf'), $file, 'the state file is unchanged');
