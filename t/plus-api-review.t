# The review of the NGINX Plus API (brief P2): server IDs from hand-edited
# state files, IDs of servers moved between primary and backup, the PUT
# rollback when the zone has no room, PUT on balancers that cannot follow
# set changes, removed peers still in use (zombies), If-Match across
# workers, and the cost of a large PUT.
use lib 't/lib';
use NginxTest;
use NginxTest::PlusApi;
use NginxTest::QueryApi qw(tables_fixed);
use IO::Socket::INET;
use Time::HiRes ();

sub state_file { data_dir() . '/' . $_[0] . '.state' }

sub put {
    my ($upstream, $servers, $headers) = @_;
    my $body = '[' . join(',', map { ref $_ ? qq({"server":"$_->[0]","backup":true}) : qq({"server":"$_"}) } @$servers) . ']';
    return http('PUT', "/api/9/http/upstreams/$upstream/servers", $body, $headers);
}

# The REST API on port 4, its state file in the data directory (TESTs 8-10).
$ENV{TEST_NGINX_DYUPS_ON_4} = <<'NGINX';
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
server { listen 127.0.0.1:$TEST_NGINX_PORT_4; location / { dyups_interface; } }
NGINX

# POSTs run-time upstream dyhost of servers 127.0.0.1:PORT... through the
# REST API on 127.0.0.1:API (TESTs 9, 10: while nothing counts statistics).
sub post_dyhost {
    my ($api, @ports) = @_;
    my $servers = join ' ', map { "server 127.0.0.1:$_;" } @ports;
    is(http('POST', "http://127.0.0.1:$api/upstream/dyhost", $servers)->{status}, 200, 'a run-time upstream made without statistics');
}

# Adds the first NGINX Plus API location (/api) to the block's configuration,
# beside its "location /ok"; the caller reloads.
sub add_plus_api {
    my $conf = NginxTest::Files::slurp(conf_file());
    $conf =~ s{location /ok \{ return 200; \}}{location /ok { return 200; }\n        location /api { dynamic_upstream_api write=on; }}
        or die 'no /ok';
    NginxTest::Files::spew(conf_file(), $conf);
}

run_tests();
__DATA__

=== TEST 1: state files with IDs out of range, duplicated, or past the last one: nginx starts, IDs are fresh and distinct
--- http_config
upstream backends {
    zone backends 64k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream last {
    zone last 64k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/last.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream handmade {
    zone handmade 64k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/handmade.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
}
--- config
location /api { dynamic_upstream_api write=on; }
--- perl
my @p = map { "127.0.0.1:" . port($_) } 1 .. 5;
my $line = sub { "server $_[0] weight=1 max_fails=1 fail_timeout=10;" . (defined $_[1] ? " # id=$_[1]" : '') . "\n" };
NginxTest::Files::spew(main::state_file('backends'),
           $line->($p[0], '18446744073709551614') . $line->($p[1]) . $line->($p[2], 5) . $line->($p[3], 5));
NginxTest::Files::spew(main::state_file('last'), $line->($p[0], 4294967294) . $line->($p[1]));
nginx_restart();
is_deeply(main::server_list('backends'), ["6 $p[0] w1", "7 $p[1] w1", "5 $p[2] w1", "8 $p[3] w1"],
          'the out-of-range ID and the second 5 are replaced by fresh IDs after the highest');
is_deeply(main::server_list('last'), ["4294967294 $p[0] w1", "0 $p[1] w1"],
          'past the highest ID, the lowest free one');
my $log = error_log_text();
like($log, qr/\[warn\].*dynamic_state_file "[^"]*backends\.state", line 1: the ID of server \Q$p[0]\E is above 4294967294: it gets a new one/,
     'the out-of-range ID is logged');
like($log, qr/\[warn\].*line 4: the ID of server \Q$p[3]\E is given to an earlier server too: it gets a new one/,
     'the duplicate is logged');
is(http('POST', '/api/9/http/upstreams/last/servers', qq({"server":"$p[2]"}))->{status}, 201, 'POST past the highest ID');
is_deeply(main::server_list('last'), ["4294967294 $p[0] w1", "0 $p[1] w1", "1 $p[2] w1"], 'gets the next free one');
is(NginxTest::Files::slurp(main::state_file('last')) =~ s/^#.*\n//r, $line->($p[0], 4294967294) . $line->($p[1], 0) . $line->($p[2], 1),
   'the file keeps them');
nginx_restart();
is_deeply(main::server_list('last'), ["4294967294 $p[0] w1", "0 $p[1] w1", "1 $p[2] w1"], 'and a restart restores them');

# Lines added by hand without an ID, before lines of the same address that
# have one: each keeps its place (review 13 F3: each took the next line's
# ID, the primary the backup's, and a PATCH of ID 7 set the primary down).
my $weighted = sub { my ($addr, $w, $id, $backup) = @_;
    "server $addr weight=$w max_fails=1 fail_timeout=10" . ($backup ? ' backup' : '') . ';' . (defined $id ? " # id=$id" : '') . "\n" };
NginxTest::Files::spew(main::state_file('handmade'), $weighted->($p[0], 5) . $weighted->($p[0], 1, 4)
                                                   . $weighted->($p[1], 2) . $weighted->($p[1], 1, 7, 1));
nginx_restart();
is_deeply(main::server_list('handmade'), ["8 $p[0] w5", "4 $p[0] w1", "9 $p[1] w2", "7 $p[1] w1 backup"],
          'lines with IDs keep them; the lines without get fresh ones');
is(http('PATCH', '/api/9/http/upstreams/handmade/servers/7', '{"down":true}')->{status}, 200, 'PATCH 7 down');
is_deeply(main::server_list('handmade'), ["8 $p[0] w5", "4 $p[0] w1", "9 $p[1] w2", "7 $p[1] w1 down backup"],
          'the backup that carried ID 7 is down, the primary of its address is not');
unlike(error_log_text(), qr/handmade\.state.*the ID of/, 'nothing to warn about');

=== TEST 2: a server PUT from primary to backup gets a new ID, on run-time and zone upstreams alike
--- http_config
upstream backends {
    zone backends 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /api { dynamic_upstream_api write=on; }
location /upstream { dyups_interface; }
--- perl
my @p = map { "127.0.0.1:" . port($_) } 1 .. 2;
is(http('POST', '/upstream/rt', "server $p[0]; server $p[1];")->{status}, 200, 'run-time upstream created');
for my $u (qw(rt backends)) {
    is_deeply(main::server_list($u), ["0 $p[0] w1", "1 $p[1] w1"], "$u: IDs 0 and 1");
    is(main::put($u, [$p[0], [$p[1]]])->{status}, 200, "$u: PUT with $p[1] as a backup");
    is_deeply(main::server_list($u), ["0 $p[0] w1", "2 $p[1] w1 backup"], "$u: the moved server has a new ID");
}

=== TEST 3: a PUT whose new servers fit the list but not the zone answers 507 and changes nothing; all its memory is given back
--- http_config
upstream backends {
    zone backends 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /api { dynamic_upstream_api write=on; }
--- perl
my $post = sub { http('POST', '/api/9/http/upstreams/backends/servers', qq({"server":"127.0.0.2:$_[0]"}))->{status} };
my $fill = sub { my ($base) = @_; my $n = 0; $n++ while $n < 500 && $post->($base + $n) == 201; $n };
my $full = $fill->(50000);
ok($full > 20 && $full < 500, "the zone is full after $full more servers");
# Keep two thirds: a PUT replacing all of them needs room for old and new at once.
my @before = @{ main::server_list('backends') };
my @keep = grep { defined } @before[0 .. int(@before * 2 / 3)];
for my $s (@before[@keep .. $#before]) {
    my ($id) = split / /, $s;
    is(http('DELETE', "/api/9/http/upstreams/backends/servers/$id")->{status}, 200, "server $id deleted") or last;
}
is_deeply(main::server_list('backends'), \@keep, 'two thirds left');
my @new = map { "127.0.0.3:" . (30000 + $_) } 1 .. @keep;
main::plus_error(main::put('backends', \@new), 507, 'UpstreamOutOfMemory', qr/^shared memory zone "backends" \(64k\) has no room/,
                 'PUT of as many new servers');
is_deeply(main::server_list('backends'), \@keep, 'nothing changed');
my $again = $fill->(51000);
is($again, @before - @keep, 'the zone takes exactly as many servers as before the PUT: it gave everything back');

=== TEST 4: PUT on balancers that cannot follow set changes (before nginx 1.27.3): 409, parameter-only changes apply; keepalive follows
--- http_config
upstream consistent {
    zone consistent 64k;
    hash $request_uri consistent;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream rnd {
    zone rnd 64k;
    random;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream kept {
    zone kept 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    keepalive 4;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200 "one\n"; }
server { listen 127.0.0.1:$TEST_NGINX_PORT_2; return 200 "two\n"; }
--- config
location /api { dynamic_upstream_api write=on; }
location /kept { proxy_pass http://kept; proxy_http_version 1.1; proxy_set_header Connection ""; }
--- perl
my @p = map { "127.0.0.1:" . port($_) } 1 .. 3;
for my $u (qw(consistent rnd)) {
    my $r;
    # From nginx 1.27.3 on both rebuild their tables when the set changes.
    my $second = 1;
    if (main::tables_fixed()) {
        $r = main::put($u, [$p[0]]);
        main::plus_error($r, 409, 'BalancerFixedAtStart', qr/^upstream "$u" uses the .* balancer/, "$u: removing");
        main::plus_error(main::put($u, [@p]), 409, 'BalancerFixedAtStart', qr/^upstream "$u"/, "$u: adding");
    } else {
        is(main::put($u, [$p[0]])->{status}, 200, "$u: removing (nginx >= 1.27.3)");
        is(main::put($u, [@p[0, 1]])->{status}, 200, "$u: adding back");
        $second = 2;
    }
    my $body = qq([{"server":"$p[0]","max_fails":3},{"server":"$p[1]","down":true}]);
    $r = http('PUT', "/api/9/http/upstreams/$u/servers", $body);
    is($r->{status}, 200, "$u: parameters only");
    is($r->{headers}{'x-upstream-changed'}, 'true', "$u: changed");
    my $servers = main::plus_json(http_get("/api/9/http/upstreams/$u/servers"), 200, "$u: servers");
    is_deeply([map { "$_->{id} $_->{server} $_->{max_fails}" . ($_->{down} ? ' down' : '') } @$servers],
              ["0 $p[0] 3", "$second $p[1] 1 down"], "$u: applied, the same IDs");
}
is(main::put('kept', [$p[1]])->{status}, 200, 'keepalive: the server replaced');
is(http_get('/kept')->{body}, "two\n", 'keepalive: traffic goes to the new one');

=== TEST 5: a peer a slow request holds, removed by PUT and by DELETE: a zombie until the request ends, then reaped
--- modules: echo
--- workers: 1
--- http_config
upstream backends {
    zone backends 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    location / { echo_sleep 0.5; echo "slow $server_port"; }
}
--- config
location /api { dynamic_upstream_api write=on; }
location / { proxy_pass http://backends; }
--- perl
my @p = map { "127.0.0.1:" . port($_) } 1 .. 2;
my $zombies = sub { main::plus_json(http_get('/api/9/http/upstreams/backends'), 200, 'upstream')->{zombies} };
for my $how (qw(PUT DELETE)) {
    is(http('PATCH', '/api/9/http/upstreams/backends/servers/1', '{"down":true}')->{status}, 200, "$how: the other server down");
    my $held = $how eq 'PUT' ? 0 : 2;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port()) or die $!;
    print $sock "GET /slow HTTP/1.0\r\nHost: localhost\r\n\r\n";
    ok(poll_until(sub { my ($s) = grep { $_->{id} == $held } @{ main::upstream_peers('backends') }; $s && $s->{active} == 1 },
                  5, "$how: the slow request holds server $held"), "$how: in flight");
    my $r = $how eq 'PUT' ? main::put('backends', [$p[1]]) : http('DELETE', "/api/9/http/upstreams/backends/servers/$held");
    is($r->{status}, 200, "$how: removed");
    # From nginx 1.27.3 on a removed peer a request holds is nginx's zombie,
    # freed by nginx when the request ends: the module cannot count it.
    my $counted = !nginx_at_least('1.27.3');
    SKIP: {
        skip('nginx 1.27.3 and later free removed peers themselves: zombies are not counted', 1) unless $counted;
        is($zombies->(), 1, "$how: one zombie");
    }
    local $/;
    my $reply = <$sock>;
    like($reply, qr/^HTTP\/1\.1 200 .*slow/s, "$how: the request on the removed peer completed");
    is($zombies->(), 0, "$how: none once its request ended: the listing frees it (hunt 26: counted until the next change)");
    is(http('PATCH', '/api/9/http/upstreams/backends/servers/1', '{"down":false}')->{status}, 200, "$how: a change");
    is($zombies->(), 0, "$how: reaped");
    is(http('POST', '/api/9/http/upstreams/backends/servers', qq({"server":"$p[0]"}))->{status}, 201, "$how: added back");
}
is_deeply(main::server_list('backends'), ["1 $p[1] w1", "3 $p[0] w1"], 'the servers left, with their IDs');

=== TEST 6: If-Match across two workers: of concurrent PUTs from the same revision exactly one applies, the others get 412
--- workers: 2
--- http_config
upstream backends {
    zone backends 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /api { dynamic_upstream_api write=on; }
--- perl
my $tag = http_get('/api/9/http/upstreams/backends/servers')->{headers}{etag};
my $dir = prefix();
my @pids;
for my $n (1 .. 8) {
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        my $body = qq([{"server":"127.0.0.1:) . (40000 + $n) . qq("}]);
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port()) or POSIX::_exit(1);
        print $s "PUT /api/9/http/upstreams/backends/servers HTTP/1.0\r\nHost: x\r\nIf-Match: $tag\r\n"
            . "Content-Length: " . length($body) . "\r\n\r\n$body";
        local $/;
        my $reply = <$s>;
        my ($status) = $reply =~ m{^HTTP/1\.\d (\d+)};
        open(my $fh, '>', "$dir/put-$n") or POSIX::_exit(1);
        print $fh $status // 0;
        close $fh;
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
waitpid($_, 0) for @pids;
my @statuses = sort map { NginxTest::Files::slurp("$dir/put-$_") } 1 .. 8;
is_deeply(\@statuses, [200, (412) x 7], 'one 200, seven 412');
my @left = @{ main::server_list('backends') };
is(scalar @left, 1, 'one server: the winner\'s') and like($left[0], qr/^1 127\.0\.0\.1:4000\d w1$/, 'its ID is the next one');

=== TEST 7: a PUT replacing 6,000 servers with 6,000 others does linear work under the lock
--- http_config
upstream backends {
    zone backends 16m;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
client_max_body_size 2m;
--- config
location /api { dynamic_upstream_api write=on; }
--- timeout: 120
--- perl
my $n = 6000;
my @a = map { sprintf '127.0.%d.%d:80', 10 + int($_ / 250), 1 + $_ % 250 } 0 .. $n - 1;
my @b = map { sprintf '127.1.%d.%d:80', 10 + int($_ / 250), 1 + $_ % 250 } 0 .. $n - 1;
is(main::put('backends', \@a)->{status}, 200, "$n servers");
my $t0 = Time::HiRes::time();
my $r = main::put('backends', \@b);
my $took = Time::HiRes::time() - $t0;
is($r->{status}, 200, "replaced by $n others");
my $t1 = Time::HiRes::time();
http_get('/api/9/http/upstreams/backends/servers');
my $listing = Time::HiRes::time() - $t1;
ok($took < 1 + 10 * $listing, sprintf('the PUT took %.2fs, listing the servers %.2fs', $took, $listing));

=== TEST 8: run-time servers restored from a dyups_upstream_conf without IDs (a Tengine file, lines added by hand) get distinct IDs, and a DELETE of a listed ID removes that server
--- http_config
$TEST_NGINX_DYUPS_ON_4
--- config
location /api { dynamic_upstream_api write=on; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
is(http('POST', "http://127.0.0.1:$p4/upstream/dyhost", "server 127.0.0.1:$p1; server 127.0.0.1:$p2; server 127.0.0.1:$p3;")->{status},
   200, 'a run-time upstream of three servers');
my $file = data_dir() . '/dyups.conf';
(my $bare = NginxTest::Files::slurp($file)) =~ s/ # id=\d+$//mg;
unlike($bare, qr/id=/, 'its file without IDs');
NginxTest::Files::spew($file, $bare);
nginx_restart();
# Before, restored lines without IDs got none: all were listed as 0, and a
# DELETE of 0 removed the first server whichever the client meant.
is_deeply(main::server_list('dyhost'), ["0 127.0.0.1:$p1 w1", "1 127.0.0.1:$p2 w1", "2 127.0.0.1:$p3 w1"],
          'distinct IDs after a restart');
is(http('DELETE', '/api/9/http/upstreams/dyhost/servers/2')->{status}, 200, 'DELETE of the third server\'s ID');
is_deeply(main::server_list('dyhost'), ["0 127.0.0.1:$p1 w1", "1 127.0.0.1:$p2 w1"], 'removed that server');
like(NginxTest::Files::slurp($file), qr/127\.0\.0\.1:$p2 [^\n]*# id=1\n/, 'the file has the IDs');

=== TEST 9: a reload that adds the first NGINX Plus API location gives the kept run-time upstreams' servers IDs
--- http_config
$TEST_NGINX_DYUPS_ON_4
--- config
location /ok { return 200; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
main::post_dyhost($p4, $p1, $p2, $p3);
main::add_plus_api();
nginx_reload();
ok(poll_until(sub { http_get('/api/9/http/upstreams/dyhost/servers')->{status} == 200 }, 10, 'reloaded'), 'the API answers');
is_deeply(main::server_list('dyhost'), ["0 127.0.0.1:$p1 w1", "1 127.0.0.1:$p2 w1", "2 127.0.0.1:$p3 w1"],
          'the kept upstream\'s servers have distinct IDs');
is(http('PATCH', '/api/9/http/upstreams/dyhost/servers/1', '{"down":true}')->{status}, 200, 'PATCH of the second');
is_deeply(main::server_list('dyhost'), ["0 127.0.0.1:$p1 w1", "1 127.0.0.1:$p2 w1 down", "2 127.0.0.1:$p3 w1"],
          'changed that server');

=== TEST 10: a change a worker of the previous configuration finishes after that reload gives its new servers IDs too
--- http_config
$TEST_NGINX_DYUPS_ON_4
--- config
location /ok { return 200; }
--- perl
# Review 20 F2: the master gives the kept servers IDs at the reload that
# turns statistics on (TEST 9), but a worker of the old configuration,
# which counts nothing, still finishes a change it was reading: its new
# server got no ID (listed as 0 next to the real 0).
my ($p1, $p2, $p3, $p4, $p5) = map { port($_) } 1 .. 5;
main::post_dyhost($p4, $p1, $p2, $p3);
my $body = "server 127.0.0.1:$p1; server 127.0.0.1:$p2; server 127.0.0.1:$p3; server 127.0.0.1:$p5;";
my $slow = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p4) or die "connect: $!";
print $slow "POST /upstream/dyhost HTTP/1.0\r\nHost: x\r\nContent-Length: " . length($body) . "\r\n\r\n";
# The old worker reads the headers and waits for the body.
Time::HiRes::sleep(0.3);
main::add_plus_api();
# (nginx_reload would wait for the old worker, which waits for the body.)
my @old = worker_pids();
kill 'HUP', master_pid();
# Every old worker gone or shutting down (no longer accepting), so that the
# requests below reach new ones.
my $old_done = sub {
    !grep { my $title = NginxTest::Files::slurp("/proc/$_/cmdline") // ''; $title ne '' && $title !~ /shutting down/ } @old
};
ok(poll_until($old_done, 10, 'reloaded'), 'the old workers no longer accept');
is(http_get('/api/9/http/upstreams/dyhost/servers')->{status}, 200, 'the new workers answer');
print $slow $body;
my $reply = do { local $/; <$slow> } // '';
like($reply, qr{^HTTP/1\.\d 200}, 'the old worker finished the POST');
is_deeply(main::server_list('dyhost'),
          ["0 127.0.0.1:$p1 w1", "1 127.0.0.1:$p2 w1", "2 127.0.0.1:$p3 w1", "3 127.0.0.1:$p5 w1"], 'the new server has the next ID');

=== TEST 11: a run-time upstream POSTed again with a server given several times: each copy keeps the ID of the old copy in its place (the k-th of that address in the same list takes the k-th), extra copies get new IDs: no ID is listed twice (review 22: every copy took the first old copy's ID)
--- http_config
$TEST_NGINX_DYUPS_ON_4
--- config
location /api { dynamic_upstream_api write=on; }
--- perl
my ($a, $b, $c, $e, $p4) = map { port($_) } 1, 2, 3, 5, 4;
my $post = sub {
    my $r = http('POST', "http://127.0.0.1:$p4/upstream/dyhost", join '', map { "server 127.0.0.1:$_;" } @_);
    is("$r->{status} $r->{body}", '200 success', 'POST ' . join(' ', @_));
};
$post->($a, $b, $a, "$c backup", "$a backup");
is_deeply(main::server_list('dyhost'), ["0 127.0.0.1:$a w1", "1 127.0.0.1:$b w1", "2 127.0.0.1:$a w1",
                                        "3 127.0.0.1:$c w1 backup", "4 127.0.0.1:$a w1 backup"], 'created: IDs 0 to 4');
$post->("$a weight=2", $e, $a, $b, "$a backup", "$c backup", "$c backup");
is_deeply(main::server_list('dyhost'), ["0 127.0.0.1:$a w2", "5 127.0.0.1:$e w1", "2 127.0.0.1:$a w1", "1 127.0.0.1:$b w1",
                                        "4 127.0.0.1:$a w1 backup", "3 127.0.0.1:$c w1 backup", "6 127.0.0.1:$c w1 backup"],
          'posted again: each copy of a server keeps its ID in order, the extra copy gets a new one');
$post->($c, $a, "$a backup");
is_deeply(main::server_list('dyhost'), ["7 127.0.0.1:$c w1", "0 127.0.0.1:$a w1", "4 127.0.0.1:$a w1 backup"],
          'fewer copies: the first ones keep theirs');

=== TEST 12: the reload that turns statistics on gives the kept run-time upstreams' servers IDs as a change: a worker of the previous configuration that writes dyups_upstream_conf after it renders them again, with their IDs (review 23: it wrote the blocks it had rendered before, without)
--- workers: 1
--- http_config
$TEST_NGINX_DYUPS_ON_4
--- config
location /ok { return 200; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
main::post_dyhost($p4, $p1);
is(http('POST', "http://127.0.0.1:$p4/upstream/other", "server 127.0.0.1:$p2;")->{status}, 200, 'a second run-time upstream');
my $file = data_dir() . '/dyups.conf';
unlike(NginxTest::Files::slurp($file), qr/# id=/, 'the file has no IDs before the reload');
# The only worker reads the headers of a POST and waits for its body
# across the reload.
my $body = "server 127.0.0.1:$p3;";
my $slow = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p4) or die "connect: $!";
print $slow "POST /upstream/third HTTP/1.0\r\nHost: x\r\nContent-Length: " . length($body) . "\r\n\r\n";
Time::HiRes::sleep(0.3);
main::add_plus_api();
my @old = worker_pids();
kill 'HUP', master_pid();
ok(poll_until(sub { http_get('/api/9/http/upstreams/dyhost/servers')->{status} == 200 }, 10, 'reloaded'),
   'a new worker answers the Plus API');
print $slow $body;
my $reply = do { local $/; <$slow> } // '';
like($reply, qr{^HTTP/1\.\d 200}, 'the old worker finished the POST, writing the file');
my $text = NginxTest::Files::slurp($file);
like($text, qr/^upstream dyhost \{\n    server 127\.0\.0\.1:$p1 [^\n]*; # id=0\n\}$/m, 'dyhost\'s server with its ID')
    or diag($text);
like($text, qr/^upstream other \{\n    server 127\.0\.0\.1:$p2 [^\n]*; # id=0\n\}$/m, 'the other upstream\'s too');
like($text, qr/^upstream third \{\n    server 127\.0\.0\.1:$p3 /m, 'and the new upstream');

=== TEST 13: the first REST replace of a configuration upstream continues its zone's numbering: the revision goes on (an ETag read before no longer matches: 412) and the new servers get IDs the zone never gave (a DELETE by an old ID is 404), also after a reload (hunt 26: the revision was given again or went back, the IDs started again at 0)
--- workers: 1
--- http_config
$TEST_NGINX_DYUPS_ON_4
upstream mixed {
    zone mixed 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream again {
    zone again 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /api { dynamic_upstream_api write=on; }
location /dynamic { dynamic_upstream; }
--- perl
my ($p1, $p2, $p3, $p4, $p5, $p6) = map { port($_) } 1 .. 6;
my $servers = '/api/9/http/upstreams/mixed/servers';
is(http_get("/dynamic?upstream=mixed&server=127.0.0.1:$p2&weight=3")->{status}, 200, 'a query-API change');
my $before = http_get($servers)->{headers}{etag};
like($before, qr/^"\d+"$/, 'the ETag before');
my $r = http('POST', "http://127.0.0.1:$p4/upstream/mixed", "server 127.0.0.1:$p5;server 127.0.0.1:$p6;");
is("$r->{status} $r->{body}", '200 success', 'the REST API replaces it');
my $after = http_get($servers)->{headers}{etag};
my ($n_before, $n_after) = map { /(\d+)/ ? $1 : 0 } $before, $after;
cmp_ok($n_after, '>', $n_before, 'the revision went on');
is_deeply(main::server_list('mixed'), ["2 127.0.0.1:$p5 w1", "3 127.0.0.1:$p6 w1"], 'the new servers: IDs after the zone\'s');
is(main::put('mixed', ["127.0.0.1:$p1"], [['If-Match', $before]])->{status}, 412, 'a PUT with the ETag read before: 412');
is(http('DELETE', "$servers/0")->{status}, 404, 'a DELETE by an ID of the zone\'s: 404');
is(scalar @{ main::server_list('mixed') }, 2, '  nothing removed');
# After a reload the zone's revision starts at the reload's time.
nginx_reload();
is(http_get('/dynamic?upstream=again&server=127.0.0.1:' . $p1 . '&weight=2')->{status}, 200, 'a change of the other upstream, after a reload');
$before = http_get('/api/9/http/upstreams/again/servers')->{headers}{etag};
$r = http('POST', "http://127.0.0.1:$p4/upstream/again", "server 127.0.0.1:$p5;");
is("$r->{status} $r->{body}", '200 success', 'the REST API replaces it');
$after = http_get('/api/9/http/upstreams/again/servers')->{headers}{etag};
($n_before, $n_after) = map { /(\d+)/ ? $1 : 0 } $before, $after;
cmp_ok($n_after, '>', $n_before, '  its revision went on');
is_deeply(main::server_list('again'), ["1 127.0.0.1:$p5 w1"], '  its new server an ID after the zone\'s');

=== TEST 14: a reload that loads the registry anew (another dyups_shm_zone_size) does not take run-time upstreams' revisions back: no earlier ETag matches again (hunt 26: versions restarted, an ETag of 50 changes before matched a later list)
--- workers: 1
--- http_config
$TEST_NGINX_DYUPS_ON_4
--- config
location /api { dynamic_upstream_api write=on; }
location /ok { return 200; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
my $servers = '/api/9/http/upstreams/dyrev/servers';
my %seen;
for my $i (1 .. 5) {
    is(http('POST', "http://127.0.0.1:$p4/upstream/dyrev", "server 127.0.0.1:$p1 weight=$i;")->{status}, 200, "change $i");
    $seen{ http_get($servers)->{headers}{etag} } = $i;
}
my $last = (sort { $seen{$b} <=> $seen{$a} } keys %seen)[0];
my $conf = NginxTest::Files::slurp(conf_file());
$conf =~ s{(dyups_upstream_conf [^;]*;)}{$1\n    dyups_shm_zone_size 4m;} or die 'no dyups_upstream_conf';
NginxTest::Files::spew(conf_file(), $conf);
nginx_reload();
my $tag = http_get($servers)->{headers}{etag};
my ($n_last, $n_now) = map { /(\d+)/ ? $1 : 0 } $last, $tag;
cmp_ok($n_now, '>', $n_last, 'the revision after the reload is past the last one before');
for my $i (1 .. 5) {
    is(http('POST', "http://127.0.0.1:$p4/upstream/dyrev", "server 127.0.0.1:$p2 weight=$i;")->{status}, 200, "change $i after");
    my $now = http_get($servers)->{headers}{etag};
    ok(!exists $seen{$now}, "  a new ETag ($now)");
}
is(main::put('dyrev', ["127.0.0.1:$p3"], [['If-Match', $last]])->{status}, 412, 'a PUT with the last ETag of before the reload: 412');

=== TEST 15: the first REST replace of a configuration upstream, finished by a worker a reload replaced, answers 503 (retry): it would number from its own cycle's zone, which the new configuration no longer uses (review 26: an ID given again, the revision back); retried, it continues the new zone's numbering
--- workers: 1
--- http_config
$TEST_NGINX_DYUPS_ON_4
upstream mixed {
    zone mixed 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /api { dynamic_upstream_api write=on; }
--- perl
my ($p1, $p2, $p3, $p4, $p5) = map { port($_) } 1 .. 5;
my $servers = '/api/9/http/upstreams/mixed/servers';
# The only worker reads the headers of a POST and waits for its body
# across the reload.
my $body = "server 127.0.0.1:$p5;";
my $slow = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p4) or die "connect: $!";
print $slow "POST /upstream/mixed HTTP/1.0\r\nHost: x\r\nContent-Length: " . length($body) . "\r\n\r\n";
Time::HiRes::sleep(0.3);
my ($old) = worker_pids();
kill 'HUP', master_pid();
# Once the old worker shuts down (it no longer accepts), only the new one answers.
ok(poll_until(sub { error_log_text() =~ /\b$old#\d+: gracefully shutting down/ }, 10, 'old worker leaving'), 'reloaded');
is(http('POST', $servers, qq({"server":"127.0.0.1:$p2"}))->{status}, 201, 'a new worker adds a server to the new zone');
my $before = http_get($servers)->{headers}{etag};
print $slow $body;
my $reply = do { local $/; <$slow> } // '';
like($reply, qr{^HTTP/1\.\d 503 }, 'the old worker answers 503') or diag($reply);
is_deeply(main::server_list('mixed'), ["0 127.0.0.1:$p1 w1", "1 127.0.0.1:$p2 w1"], '  nothing changed');
my $r = http('POST', "http://127.0.0.1:$p4/upstream/mixed", $body);
is("$r->{status} $r->{body}", '200 success', 'retried: replaced');
is_deeply(main::server_list('mixed'), ["2 127.0.0.1:$p5 w1"], '  its server an ID after the new zone\'s');
my ($n_before, $n_after) = map { /(\d+)/ ? $1 : 0 } $before, http_get($servers)->{headers}{etag};
cmp_ok($n_after, '>', $n_before, '  the revision went on');
