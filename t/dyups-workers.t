# dyups_interface with several workers: every worker sees a change on its
# very next request (no stale answers, no polling), concurrent changes are
# safe, and dyups_trylock on still accepts uncontended changes.
use lib 't/lib';
use NginxTest;
# The admin API is also on port 8 (admin()) and the proxy on port 9
# (proxied()), both with reuseport so that successive connections land on
# different workers; each answer carries the worker's pid in X-Pid.
# (post() is this file's own: through port 8, answering a failure text.)
use NginxTest::Dyups qw(admin proxied keepalive);
use HttpClient;

sub post {
    my ($name, $body) = @_;
    my $r = admin('POST', "/upstream/$name", $body);
    return $r->{status} == 200 && $r->{body} eq 'success' ? '' : "POST /upstream/$name: $r->{status} $r->{body}";
}

sub srv { join '', map { "server 127.0.0.1:$_;" } @_ }

# Sends every request at once on its own connection to port 8, then reads
# every answer: list of [status, body] ([0, ''] for no answer).
sub burst {
    my @conns = map {
        my ($m, $uri, $body) = @$_;
        my $c = HttpClient::Connection->open(port(8), 10) or die "connect: $@";
        $c->send(HttpClient::request_text($m, $uri, $body // '', [[Connection => 'close']]));
        [$c, $m];
    } @_;
    return map { my $r = $_->[0]->read($_->[1]); $r ? [$r->{status}, $r->{body}] : [0, ''] } @conns;
}

run_tests();
__DATA__

=== TEST 1: four workers: after each POST every /detail and every proxied request is fresh
--- workers: 4
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    listen 127.0.0.1:$TEST_NGINX_PORT_5;
    listen 127.0.0.1:$TEST_NGINX_PORT_6;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    add_header X-Pid $pid always;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    add_header X-Pid $pid always;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my (%admin_pids, %proxy_pids);
my ($stale_detail, $stale_proxy, $errors) = (0, 0, 0);
my @ports = map { port($_) } 2 .. 6;
for my $round (1 .. 3) {
    for my $p (@ports) {
        my $e = main::post('dyhost', "server 127.0.0.1:$p;");
        if ($e) { diag($e); $errors++; next }
        for (1 .. 50) {
            my $d = main::admin('GET', '/upstream/dyhost');
            $admin_pids{ $d->{headers}{'x-pid'} // '?' }++;
            if ($d->{status} != 200 || $d->{body} !~ /\Aserver 127\.0\.0\.1:$p /) {
                $stale_detail++;
                diag("round $round port $p: /upstream/dyhost: $d->{status} $d->{body}") if $stale_detail < 5;
            }
            my $r = main::proxied('dyhost');
            $proxy_pids{ $r->{headers}{'x-pid'} // '?' }++;
            if ($r->{status} != 200 || $r->{body} ne "$p\n") {
                $stale_proxy++;
                diag("round $round port $p: proxied: $r->{status} $r->{body}") if $stale_proxy < 5;
            }
        }
    }
}
is($errors, 0, 'every POST succeeded');
is($stale_detail, 0, 'no stale GET /upstream/dyhost in 750');
is($stale_proxy, 0, 'no stale proxied request in 750');
my $workers = scalar @{ [worker_pids()] };
is($workers, 4, 'four workers');
cmp_ok(scalar(grep { $_ ne '?' } keys %admin_pids), '>=', 2, 'the API was answered by several workers') or diag(explain(\%admin_pids));
cmp_ok(scalar(grep { $_ ne '?' } keys %proxy_pids), '>=', 2, 'the proxy ran in several workers') or diag(explain(\%proxy_pids));

=== TEST 2: four workers: DELETE, re-create and replacing a configured upstream are seen at once
--- workers: 4
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $check = sub {
    my ($what, $host, $want_status, $want_body, $want_list) = @_;
    my ($bad_proxy, $bad_list) = (0, 0);
    for (1 .. 50) {
        my $r = main::proxied($host);
        $bad_proxy++ unless $r->{status} == $want_status && (!defined $want_body || $r->{body} eq $want_body);
        $bad_list++ unless main::admin('GET', '/list')->{body} eq $want_list;
    }
    is($bad_proxy, 0, "$what: all 50 proxied requests fresh");
    is($bad_list, 0, "$what: all 50 /list fresh");
};
for my $round (1 .. 3) {
    is(main::post('dyhost', main::srv($p2)), '', "round $round: create dyhost");
    $check->("round $round created", 'dyhost', 200, "$p2\n", "host1\ndyhost\n");
    is(main::admin('DELETE', '/upstream/dyhost')->{status}, 200, "round $round: delete dyhost");
    $check->("round $round deleted", 'dyhost', 502, undef, "host1\n");
    is(main::post('host1', main::srv($round % 2 ? $p3 : $p2)), '', "round $round: replace host1");
    $check->("round $round host1 replaced", 'host1', 200, ($round % 2 ? $p3 : $p2) . "\n", "host1\n");
    is(main::admin('DELETE', '/upstream/host1')->{status}, 200, "round $round: delete host1");
    $check->("round $round host1 deleted", 'host1', 502, undef, '');
    is(main::post('host1', main::srv($p1)), '', "round $round: re-create host1");
    $check->("round $round host1 back", 'host1', 200, "$p1\n", "host1\n");
}

=== TEST 3: concurrent POSTs from many connections: all succeed, the result is one of them everywhere
--- workers: 4
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my @ports = map { port($_) } 1 .. 4;
for my $round (1 .. 5) {
    my @reqs = map { ['POST', '/upstream/dyhost', main::srv($ports[$_ % 4], $ports[($_ + 1) % 4])] } 0 .. 19;
    push @reqs, map { ['POST', "/upstream/other$_", main::srv($ports[0])] } 1 .. 5;
    my @res = main::burst(@reqs);
    my @bad = grep { $_->[0] != 200 || $_->[1] ne 'success' } @res;
    is(scalar(@bad), 0, "round $round: all 25 concurrent POSTs answered 200 success") or diag(explain(\@bad));
    my $detail = main::admin('GET', '/upstream/dyhost')->{body};
    my @got = $detail =~ /^server 127\.0\.0\.1:(\d+) /mg;
    is(scalar(@got), 2, "round $round: dyhost has two server lines") or diag($detail);
    my %same = map { main::admin('GET', '/upstream/dyhost')->{body} => 1 } 1 .. 20;
    is_deeply([keys %same], [$detail], "round $round: every worker shows the same list");
    ok((grep { $got[0] == $ports[$_] && ($got[1] // 0) == $ports[($_ + 1) % 4] } 0 .. 3),
       "round $round: it is one of the bodies posted, not a mix") or diag($detail);
    my %traffic = map { main::proxied('dyhost')->{body} => 1 } 1 .. 20;
    is_deeply([sort keys %traffic], [sort map { "$_\n" } @got], "round $round: and traffic goes to those two");
}
# Created concurrently, so in no particular order, but each exactly once.
my @listed = split /\n/, main::admin('GET', '/list')->{body};
is_deeply([sort @listed], [sort 'dyhost', map { "other$_" } 1 .. 5], 'each upstream listed once') or diag(explain(\@listed));

=== TEST 4: concurrent DELETEs of one upstream: exactly one succeeds
--- workers: 4
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    location / { dyups_interface; }
}
--- config
location / { dyups_interface; }
--- perl
for my $round (1 .. 5) {
    is(main::post('dyhost', main::srv(port(1))), '', "round $round: create");
    my @res = main::burst(map { ['DELETE', '/upstream/dyhost'] } 1 .. 10);
    my @ok = grep { $_->[0] == 200 } @res;
    my @nf = grep { $_->[0] == 404 } @res;
    is(scalar(@ok), 1, "round $round: one DELETE succeeded");
    is(scalar(@nf), 9, "round $round: the other nine got 404");
    is(main::admin('GET', '/list')->{status}, 204, "round $round: gone");
}

=== TEST 5: dyups_trylock on: uncontended POSTs and DELETEs still answer 200
--- workers: 2
--- http_config
dyups_trylock on;
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
for my $i (1 .. 20) {
    my $p = $i % 2 ? $p1 : $p2;
    is(main::post('dyhost', main::srv($p)), '', "POST $i: 200 success");
    is(main::proxied('dyhost')->{body}, "$p\n", "POST $i: routes");
}
my $r = main::admin('DELETE', '/upstream/dyhost');
is($r->{status}, 200, 'DELETE: 200');
is($r->{body}, 'success', 'DELETE: success');
is(main::post('host1', main::srv($p2)), '', 'replace host1');
is(main::proxied('host1')->{body}, "$p2\n", 'host1 routes to the new server');

=== TEST 6: dyups_trylock on: concurrent POSTs answer 200 or 409, never anything else
--- workers: 4
--- http_config
dyups_trylock on;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
my %status;
for my $round (1 .. 5) {
    my @res = main::burst(map { ['POST', '/upstream/dyhost', main::srv($_ % 2 ? $p1 : $p2)] } 1 .. 20);
    $status{ $_->[0] }++ for @res;
}
my @other = grep { $_ != 200 && $_ != 409 } keys %status;
is_deeply(\@other, [], 'only 200 and 409') or diag(explain(\%status));
ok($status{200}, 'some POSTs succeeded');
diag("trylock statuses: " . join(', ', map { "$_ x $status{$_}" } sort keys %status)) if $ENV{TEST_NGINX_VERBOSE};
my $body = main::admin('GET', '/upstream/dyhost')->{body};
like($body, qr/\Aserver 127\.0\.0\.1:(?:$p1|$p2) [^\n]*\n\z/, 'dyhost has one of the posted servers');
my ($p) = $body =~ /:(\d+) /;
my %got = map { main::proxied('dyhost')->{body} => 1 } 1 .. 20;
is_deeply([keys %got], ["$p\n"], 'and traffic goes there from every worker');

=== TEST 7: requests on idle keep-alive connections of every worker see each change at once
--- workers: 4
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    add_header X-Pid $pid always;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    keepalive_requests 10000;
    add_header X-Pid $pid always;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
my @proxy = map { main::keepalive(port(9)) } 1 .. 12;
my @admin = map { main::keepalive(port(8)) } 1 .. 12;
my (%ppids, %apids);
my $stale = 0;
is(main::post('dyhost', main::srv(port(1))), '', 'create');
for my $c (@proxy) { my $r = $c->request('GET', '/', 'dyhost'); $ppids{ $r->{pid} // '?' }++; $stale++ if $r->{body} ne port(1) . "\n" }
for my $c (@admin) { my $r = $c->request('GET', '/list', 'localhost'); $apids{ $r->{pid} // '?' }++ }
for my $round (1 .. 8) {
    my $p = port(1 + $round % 4);
    is(main::post('dyhost', main::srv($p)), '', "round $round: POST");
    for my $c (@proxy) {
        my $r = $c->request('GET', '/', 'dyhost');
        if ($r->{status} != 200 || $r->{body} ne "$p\n") { $stale++; diag("round $round: $r->{status} $r->{body}") }
    }
    for my $c (@admin) {
        my $r = $c->request('GET', '/upstream/dyhost', 'localhost');
        if ($r->{body} !~ /\Aserver 127\.0\.0\.1:$p /) { $stale++; diag("round $round admin: $r->{body}") }
    }
    is(main::admin('DELETE', '/upstream/dyhost')->{status}, 200, "round $round: DELETE");
    for my $c (@proxy) { $stale++ if $c->request('GET', '/', 'dyhost')->{status} != 502 }
    for my $c (@admin) { $stale++ if $c->request('GET', '/list', 'localhost')->{body} ne "host1\n" }
    is(main::post('dyhost', main::srv($p)), '', "round $round: re-create");
}
is($stale, 0, 'no stale answer on any kept-alive connection');
cmp_ok(scalar(grep { $_ ne '?' } keys %ppids), '>=', 2, 'the proxy connections are on several workers') or diag(explain(\%ppids));
cmp_ok(scalar(grep { $_ ne '?' } keys %apids), '>=', 2, 'the API connections are on several workers') or diag(explain(\%apids));



=== TEST 8: a worker that missed many changes catches up on its next request (by the changes, then in full)
--- workers: 4
--- http_config
dyups_read_msg_timeout 1h;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    add_header X-Pid $pid always;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    keepalive_requests 10000;
    add_header X-Pid $pid always;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
# Every change goes through one kept-alive admin connection, so one worker
# makes them all; the idle timer is an hour, so the other workers learn of
# them only from their next request, all at once. The registry remembers
# the latest 32 deletions: phase 1 (6 deletions) is caught up by the
# changes alone, phase 2 (39 deletions) needs a full copy.
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
my $admin = main::keepalive(port(8));
my $change = sub {
    my ($m, $name, $body) = @_;
    my $r = $admin->request($m, "/upstream/$name", 'localhost', $body);
    return $r->{status} == 200 ? '' : "$m $name: $r->{status} $r->{body}";
};
my $admin_pid = $admin->request('GET', '/list', 'localhost')->{pid} // '?';
my @proxy = map { main::keepalive(port(9)) } 1 .. 16;
my %want;
my @errors;
for my $i (1 .. 40) { push @errors, $change->('POST', "up$i", main::srv($p1)); $want{"up$i"} = "$p1\n" }
my %idle;    # proxy connections on workers that make no change
for my $c (@proxy) {
    my $r = $c->request('GET', '/', 'up1');
    $idle{$c} = $c if ($r->{pid} // '') ne $admin_pid;
}
my $check = sub {
    my ($phase) = @_;
    my $stale = 0;
    for my $c (values %idle) {
        for my $name (sort keys %want) {
            my $r = $c->request('GET', '/', $name);
            my $got = $r->{status} == 200 ? $r->{body} : "status $r->{status}";
            next if $got eq $want{$name};
            $stale++;
            diag("$phase: $name on worker $r->{pid}: got $got, want $want{$name}") if $stale < 6;
        }
    }
    is($stale, 0, "$phase: every idle worker answers every upstream as changed (" . scalar(keys %idle) . " connections)");
};
cmp_ok(scalar(keys %idle), '>=', 2, 'several proxy connections are on workers that make no change');

# Phase 1: 20 replaced (more than one copy round holds), 5 deleted, 1 of them
# created again, 1 deleted and created again, 3 new.
for my $i (1 .. 20) { push @errors, $change->('POST', "up$i", main::srv($p2)); $want{"up$i"} = "$p2\n" }
for my $i (21 .. 25) { push @errors, $change->('DELETE', "up$i"); $want{"up$i"} = 'status 502' }
push @errors, $change->('POST', 'up21', main::srv($p3)); $want{up21} = "$p3\n";
push @errors, $change->('DELETE', 'up26'), $change->('POST', 'up26', main::srv($p4)); $want{up26} = "$p4\n";
for my $i (1 .. 3) { push @errors, $change->('POST', "new$i", main::srv($p3)); $want{"new$i"} = "$p3\n" }
is(join('', @errors), '', 'phase 1: every change answered 200');
$check->('phase 1');

# Phase 2: 39 deletions, then 2 of the names created again.
@errors = ();
for my $name (sort keys %want) {
    next if $want{$name} eq 'status 502';
    push @errors, $change->('DELETE', $name);
    $want{$name} = 'status 502';
}
push @errors, $change->('POST', 'up7', main::srv($p4)); $want{up7} = "$p4\n";
push @errors, $change->('POST', 'new2', main::srv($p1)); $want{new2} = "$p1\n";
is(join('', @errors), '', 'phase 2: every change answered 200');
is(scalar(grep { $_ eq 'status 502' } values %want), 41, 'phase 2: 41 upstreams deleted in all');
$check->('phase 2');
is($admin->request('GET', '/list', 'localhost')->{body}, "up7\nnew2\n", 'the registry lists what is left');
