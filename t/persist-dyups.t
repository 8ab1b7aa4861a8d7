# dyups_upstream_conf: the upstreams of the REST API (dyups_interface) and
# of Lua's ngx.dyups kept in a file of `upstream NAME { ... }` blocks.
# After every accepted POST / DELETE the file holds the whole run-time
# state: every upstream created or replaced, with its balancer, and every
# configuration upstream deleted as `upstream NAME {\n    deleted;\n}`.
# At start (a fresh zone: first start or restart) the file is loaded; a
# reload keeps the zone and its state. The state survives reload, restart
# and a worker killed with SIGKILL, in the listings and in the traffic.
#
# The admin API is also on port 8 and the proxy (proxy_pass http://$host)
# on port 9, both with `reuseport` (successive connections land on
# different workers) and X-Worker: $pid on every answer.
use lib 't/lib';
use NginxTest;
# (post() is this file's own: one test, and an optional JSON body.)
use NginxTest::Dyups qw(addr line admin proxied proxied_port);
use NginxTest::Files;
use NginxTest::Lua;

our $HEADER = "# Written by nginx-dynamic-upstream after every change through its APIs.\n";

$ENV{TEST_NGINX_LUA_EVAL} = lua_eval_location([dyups => 'ngx.dyups']);

sub dyfile { data_dir() . '/dyups.conf' }

# sv(N, OPTIONS): a server statement as the file writes it (no indentation).
sub sv {
    my ($n, %o) = @_;
    my $s = 'server ' . addr($n) . ' weight=' . ($o{weight} // 1) . ' max_fails=' . ($o{max_fails} // 1)
          . ' fail_timeout=' . ($o{fail_timeout} // 10);
    $s .= " max_conns=$o{max_conns}" if $o{max_conns};
    $s .= ' backup' if $o{backup};
    $s .= ' down' if $o{down};
    return "$s;";
}

# ublock(NAME, STATEMENTS...): an upstream block as the file writes it.
sub ublock {
    my ($name, @statements) = @_;
    return "upstream $name {\n" . join('', map { "    $_\n" } @statements) . "}\n";
}
sub deleted { "upstream $_[0] {\n    deleted;\n}\n" }

# The file holds exactly the header and BLOCKS (the order of upstreams is
# not part of the contract: compared sorted).
sub file_is {
    my ($blocks, $what) = @_;
    my $file = slurp(dyfile());
    if (!defined $file) {
        fail("$what: the file exists");
        return;
    }
    my @got = $file =~ /^(upstream [^\n]*\{\n.*?^\}\n)/msg;
    is($file, $HEADER . join('', @got), "$what: the file is the header and upstream blocks only");
    is_deeply([sort @got], [sort @$blocks], "$what: the file holds exactly the expected upstreams")
        or diag($file);
}

# One GET /upstream/NAME line for server N (127.0.0.1:port(N)) with dyups'
# defaults unless overridden.
sub dline { my ($n, %o) = @_; line(addr($n), %o) }

# post(NAME, BODY[, JSON]): must answer 200 success.
sub post {
    my ($name, $body, $json) = @_;
    my $r = http('POST', "/upstream/$name", $body, $json ? { 'Content-Type' => 'application/json' } : undef);
    is("$r->{status} $r->{body}", '200 success', "POST /upstream/$name");
}

sub del {
    my ($name) = @_;
    my $r = http('DELETE', "/upstream/$name");
    is("$r->{status} $r->{body}", '200 success', "DELETE /upstream/$name");
}

# N proxied requests with Host NAME through port 9: { backend port | "status N" => count }.
sub traffic {
    my ($n, $host) = @_;
    my %ports;
    $ports{ proxied_port($host) }++ for 1 .. $n;
    return \%ports;
}

# Through every worker (reuseport servers): GET /upstream/NAME on port 8 is
# WANT (a string, or undef for 404), and proxied requests with Host NAME
# reach only the ports in PORTS (numbers 1..9; empty: 502).
sub every_worker_has {
    my ($name, $want, $ports, $what) = @_;
    my %workers = map { $_ => 1 } worker_pids();
    my (%seen_admin, %seen_proxy, @bad);
    my %ok_port = map { port($_) => 1 } @$ports;
    for (1 .. 600) {
        if (grep { !$seen_admin{$_} } keys %workers) {
            my $r = admin('GET', "/upstream/$name");
            $seen_admin{ $r->{headers}{'x-worker'} // 'none' } = 1;
            my $good = defined $want ? $r->{status} == 200 && $r->{body} eq $want : $r->{status} == 404;
            push @bad, "worker $r->{headers}{'x-worker'}: GET /upstream/$name: $r->{status} $r->{body}" unless $good;
        }
        if (grep { !$seen_proxy{$_} } keys %workers) {
            my $r = proxied($name);
            $seen_proxy{ $r->{headers}{'x-worker'} // 'none' } = 1;
            my $good = @$ports ? $r->{status} == 200 && $ok_port{ $r->{body} =~ s/\n\z//r } : $r->{status} == 502;
            push @bad, "worker $r->{headers}{'x-worker'}: proxied to $name: $r->{status} $r->{body}" unless $good;
        }
        last if !grep { !$seen_admin{$_} || !$seen_proxy{$_} } keys %workers;
        last if @bad > 3;
    }
    is_deeply(\@bad, [], "$what: $name as expected in every worker");
    is(scalar(grep { $seen_admin{$_} && $seen_proxy{$_} } keys %workers), scalar(keys %workers),
       "$what: all " . scalar(keys %workers) . ' workers answered for ' . $name);
}

sub no_debris {
    opendir my $dh, data_dir() or die "opendir: $!";
    my @junk = grep { !/^\.\.?$/ && $_ ne 'dyups.conf' && $_ ne 'dyups.conf.lock' } readdir $dh;
    is_deeply(\@junk, [], 'no temporary files left in the data directory');
}

run_tests();
__DATA__

=== TEST 1: every accepted POST and DELETE rewrites the file with the whole run-time state; refused ones do not
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
--- config
location / { dyups_interface; }
--- perl
my @b;
main::post('dyhost', 'server ' . main::addr(3) . ';');
main::file_is([ main::ublock('dyhost', main::sv(3)) ], 'create');
ok(-e main::dyfile() . '.lock', 'the lock file dyups.conf.lock is next to the file');
my $inode = (stat main::dyfile())[1];

main::post('lc', 'least_conn; server ' . main::addr(4) . ' weight=2; server ' . main::addr(5) . ' backup;');
main::file_is([ main::ublock('dyhost', main::sv(3)),
                main::ublock('lc', 'least_conn;', main::sv(4, weight => 2), main::sv(5, backup => 1)) ],
              'create with least_conn');
isnt((stat main::dyfile())[1], $inode, 'the file was replaced (a new file renamed over it), not rewritten in place');

main::post('host1', 'server ' . main::addr(6) . ' max_fails=3 fail_timeout=30s max_conns=5;');
my $host1 = main::ublock('host1', main::sv(6, max_fails => 3, fail_timeout => 30, max_conns => 5));
main::file_is([ main::ublock('dyhost', main::sv(3)),
                main::ublock('lc', 'least_conn;', main::sv(4, weight => 2), main::sv(5, backup => 1)), $host1 ],
              'replace a configuration upstream');

main::del('host2');
main::file_is([ main::ublock('dyhost', main::sv(3)),
                main::ublock('lc', 'least_conn;', main::sv(4, weight => 2), main::sv(5, backup => 1)), $host1,
                main::deleted('host2') ],
              'delete a configuration upstream');

main::post('dyhost', 'server ' . main::addr(3) . ' down; server ' . main::addr(4) . ';');
main::file_is([ main::ublock('dyhost', main::sv(3, down => 1), main::sv(4)),
                main::ublock('lc', 'least_conn;', main::sv(4, weight => 2), main::sv(5, backup => 1)), $host1,
                main::deleted('host2') ],
              'replace a run-time upstream');

main::post('js', '{"servers":[{"server":"' . main::addr(5) . '","weight":3,"max_conns":4}],"balancer":"ip_hash"}', 1);
main::post('hc', 'hash $request_uri consistent; server ' . main::addr(3) . '; server ' . main::addr(4) . ';');
main::post('hs', '{"servers":[{"server":"' . main::addr(3) . '"}],"balancer":"hash","hash_key":"$remote_addr$uri"}', 1);
main::post('rnd', 'random; server ' . main::addr(3) . ';');
my @more = (main::ublock('js', 'ip_hash;', main::sv(5, weight => 3, max_conns => 4)),
            main::ublock('hc', 'hash $request_uri consistent;', main::sv(3), main::sv(4)),
            main::ublock('hs', 'hash $remote_addr$uri;', main::sv(3)),
            main::ublock('rnd', 'random;', main::sv(3)));
main::file_is([ main::ublock('dyhost', main::sv(3, down => 1), main::sv(4)),
                main::ublock('lc', 'least_conn;', main::sv(4, weight => 2), main::sv(5, backup => 1)), $host1,
                main::deleted('host2'), @more ],
              'JSON bodies and the other balancers');

main::del('dyhost');
my @now = (main::ublock('lc', 'least_conn;', main::sv(4, weight => 2), main::sv(5, backup => 1)), $host1,
           main::deleted('host2'), @more);
main::file_is(\@now, 'delete a run-time upstream: it is gone from the file');

my $before = main::slurp(main::dyfile());
for my $req (['POST', '/upstream/lc', 'aaserver 127.0.0.1:1;'], ['POST', '/upstream/lc', ''],
             ['POST', '/upstream/x', 'keepalive 8; server 127.0.0.1:1;'], ['DELETE', '/upstream/nosuch'],
             ['DELETE', '/upstream/dyhost'], ['DELETE', '/upstream/host2'],
             ['POST', '/upstream/lc', '{"servers":[]}', { 'Content-Type' => 'application/json' }]) {
    my $r = http(@$req);
    like($r->{status}, qr/^4\d\d$/, "refused: $req->[0] $req->[1] " . ($req->[2] // ''));
    is(main::slurp(main::dyfile()), $before, '  the file is unchanged');
}
main::file_is(\@now, 'after the refused requests');
main::no_debris();



=== TEST 2: Lua ngx.dyups update and delete rewrite the file; refused calls do not
--- modules: lua
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
$TEST_NGINX_LUA_EVAL
--- perl
is(main::lua('return show(dyups.update("luahost", "least_conn; server ' . main::addr(2) . ' weight=4;"))'),
   '200, "success"', 'dyups.update luahost');
main::file_is([ main::ublock('luahost', 'least_conn;', main::sv(2, weight => 4)) ], 'Lua update');
is(main::lua('return show(dyups.update("host1", "server ' . main::addr(3) . ' down; server ' . main::addr(4) . ';"))'),
   '200, "success"', 'dyups.update host1');
main::file_is([ main::ublock('luahost', 'least_conn;', main::sv(2, weight => 4)),
                main::ublock('host1', main::sv(3, down => 1), main::sv(4)) ], 'Lua update of a configuration upstream');
is(main::lua('return show(dyups.delete("luahost"))'), '200, "success"', 'dyups.delete luahost');
is(main::lua('return show(dyups.delete("host1"))'), '200, "success"', 'dyups.delete host1');
main::file_is([ main::deleted('host1') ], 'Lua deletes');
my $before = main::slurp(main::dyfile());
like(main::lua('return show(dyups.update("x", "aaserver 1;"))'), qr/^400, /, 'refused update');
like(main::lua('return show(dyups.delete("nosuch"))'), qr/^404, /, 'refused delete');
is(main::slurp(main::dyfile()), $before, 'the file is unchanged');
--- no_error_log
[error]



=== TEST 3: nginx_reload keeps the run-time state in every new worker (listings, traffic, file); changes after the reload are written
--- workers: 3
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    listen 127.0.0.1:$TEST_NGINX_PORT_5;
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
--- config
location / { dyups_interface; }
--- perl
main::post('dyhost', 'least_conn; server ' . main::addr(3) . '; server ' . main::addr(4) . ';');
main::post('host1', 'server ' . main::addr(5) . ';');
main::del('host2');
my @blocks = (main::ublock('dyhost', 'least_conn;', main::sv(3), main::sv(4)), main::ublock('host1', main::sv(5)),
              main::deleted('host2'));
main::file_is(\@blocks, 'before the reload');
my $file = main::slurp(main::dyfile());
my $list = http_get('/list')->{body};
my $detail = http_get('/detail')->{body};

for my $round (1 .. 3) {
    my %old = map { $_ => 1 } worker_pids();
    nginx_reload();
    is(scalar(grep { $old{$_} } worker_pids()), 0, "reload $round: all workers are new");
    is(main::slurp(main::dyfile()), $file, "reload $round: the file is unchanged");
    is(http_get('/list')->{body}, $list, "reload $round: GET /list as before");
    is(http_get('/detail')->{body}, $detail, "reload $round: GET /detail as before");
    main::every_worker_has('dyhost', main::dline(3) . main::dline(4), [3, 4], "reload $round");
    main::every_worker_has('host1', main::dline(5), [5], "reload $round");
    main::every_worker_has('host2', undef, [], "reload $round");
    is_deeply(main::traffic(20, 'dyhost'), { port(3) => 10, port(4) => 10 }, "reload $round: dyhost's traffic");
}

main::post('host2', 'server ' . main::addr(1) . ';');
main::post('dyhost', 'server ' . main::addr(4) . ';');
main::file_is([ main::ublock('dyhost', main::sv(4)), main::ublock('host1', main::sv(5)), main::ublock('host2', main::sv(1)) ],
              'changed after the reloads');
nginx_reload();
main::every_worker_has('dyhost', main::dline(4), [4], 'one more reload');
main::every_worker_has('host2', main::dline(1), [1], 'one more reload');



=== TEST 4: a reload keeps the zone: the file is not read again; the next change writes the state in memory
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
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
main::post('dyhost', 'server ' . main::addr(1) . ';');
main::spew(main::dyfile(), "upstream dyhost { server " . main::addr(2) . "; }\nupstream byhand { server " . main::addr(2) . "; }\n");
nginx_reload();
is(http_get('/upstream/dyhost')->{body}, main::dline(1), 'dyhost as in memory');
is(http_get('/upstream/byhand')->{status}, 404, 'byhand (only in the file) does not exist');
is_deeply(main::traffic(4, 'dyhost'), { port(1) => 4 }, 'traffic as in memory');
main::post('other', 'server ' . main::addr(2) . ';');
main::file_is([ main::ublock('dyhost', main::sv(1)), main::ublock('other', main::sv(2)) ],
              'the next change writes the state in memory');



=== TEST 5: nginx_restart restores the whole run-time state from the file (created, replaced, deleted, balancers)
--- workers: 2
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
upstream host3 { server 127.0.0.1:$TEST_NGINX_PORT_3; }
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
    add_header X-Worker $pid always;
    location / { dyups_interface; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    add_header X-Worker $pid always;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
main::post('dyhost', 'least_conn; server ' . main::addr(4) . ' weight=2; server ' . main::addr(5) . '; server '
                   . main::addr(6) . ' backup;');
main::post('hc', 'hash $request_uri consistent; server ' . main::addr(4) . '; server ' . main::addr(5) . ';');
main::post('gone', 'server ' . main::addr(4) . ';');
main::del('gone');
main::post('host1', 'server ' . main::addr(6) . ' max_fails=2 fail_timeout=20;');
main::del('host2');
my @blocks = (main::ublock('dyhost', 'least_conn;', main::sv(4, weight => 2), main::sv(5), main::sv(6, backup => 1)),
              main::ublock('hc', 'hash $request_uri consistent;', main::sv(4), main::sv(5)),
              main::ublock('host1', main::sv(6, max_fails => 2, fail_timeout => 20)), main::deleted('host2'));
main::file_is(\@blocks, 'before the restart');
my $file = main::slurp(main::dyfile());
my $detail = http_get('/detail')->{body};
my $master = master_pid();

nginx_restart();
isnt(master_pid(), $master, 'a new master');
is(main::slurp(main::dyfile()), $file, 'the file is unchanged by the restart');
is(http_get('/list')->{body}, "host1\nhost3\ndyhost\nhc\n", 'GET /list: host2 stays deleted, gone stays gone');
is(http_get('/detail')->{body}, $detail, 'GET /detail as before the restart');
main::every_worker_has('dyhost', main::dline(4, weight => 2) . main::dline(5) . main::dline(6, backup => 1), [4, 5],
                       'after the restart');
main::every_worker_has('host1', main::dline(6, max_fails => 2, fail_timeout => 20), [6], 'after the restart');
main::every_worker_has('host2', undef, [], 'after the restart');
main::every_worker_has('gone', undef, [], 'after the restart');
main::every_worker_has('host3', main::dline(3), [3], 'after the restart (untouched configuration upstream)');
# consistent hash: the same URI always goes to the same server
my %hc;
for (1 .. 10) { my $r = http('GET', 'http://127.0.0.1:' . port(9) . '/same/uri', undef, { Host => 'hc' }); $hc{ $r->{body} }++ }
is(scalar(keys %hc), 1, 'hc: one URI, one backend (hash)');

# the next change rewrites the file from the restored state: balancers included
main::post('host3', 'server ' . main::addr(1) . ';');
main::file_is([ @blocks, main::ublock('host3', main::sv(1)) ], 'a change after the restart');
nginx_restart();
main::file_is([ @blocks, main::ublock('host3', main::sv(1)) ], 'after a second restart');
main::every_worker_has('host3', main::dline(1), [1], 'after a second restart');
main::every_worker_has('host2', undef, [], 'after a second restart');



=== TEST 6: kill -9 of a worker: the respawned worker serves the run-time state from its first request, and can change it
--- workers: 2
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
--- config
location / { dyups_interface; }
--- perl
main::post('dyhost', 'server ' . main::addr(2) . ';');
main::post('host1', 'server ' . main::addr(3) . ';');
my @before = worker_pids();
ok(kill('KILL', $before[1]), "kill -9 worker $before[1]");
my $new;
ok(poll_until(sub {
    my @now = worker_pids();
    ($new) = grep { my $p = $_; !grep { $_ == $p } @before } @now;
    return $new && @now == 2;
}, 10, 'respawn'), 'the master respawned a worker');
# a change after the crash, before the new worker served anything
main::post('late', 'server ' . main::addr(1) . ';');

my ($admin, $proxy, $tries, @bad) = (0, 0, 0);
while (($admin < 20 || $proxy < 30) && $tries++ < 3000) {
    my $r = main::admin('GET', '/detail');
    if (($r->{headers}{'x-worker'} // 0) == $new) {
        $admin++;
        my $want = "host1\n" . main::dline(3) . "\ndyhost\n" . main::dline(2) . "\nlate\n" . main::dline(1) . "\n";
        push @bad, "detail: $r->{body}" if $r->{body} ne $want;
    }
    for my $c (['dyhost', 2], ['host1', 3], ['late', 1]) {
        my $x = main::proxied($c->[0]);
        next unless ($x->{headers}{'x-worker'} // 0) == $new;
        $proxy++;
        push @bad, "proxied $c->[0]: $x->{status} $x->{body}" if $x->{status} != 200 || $x->{body} ne port($c->[1]) . "\n";
    }
}
cmp_ok($admin, '>=', 20, 'the respawned worker answered 20 GET /detail');
cmp_ok($proxy, '>=', 30, 'the respawned worker proxied 30 requests');
is_deeply(\@bad, [], 'every answer of the respawned worker is the current state');

my $r;
for (1 .. 400) {
    $r = main::admin('POST', '/upstream/dyhost', 'server ' . main::addr(1) . ';');
    last if ($r->{headers}{'x-worker'} // 0) == $new;
}
is($r->{headers}{'x-worker'}, $new, 'a POST answered by the respawned worker');
is("$r->{status} $r->{body}", '200 success', '  accepted');
main::file_is([ main::ublock('dyhost', main::sv(1)), main::ublock('host1', main::sv(3)), main::ublock('late', main::sv(1)) ],
              'changed through the respawned worker');
main::every_worker_has('dyhost', main::dline(1), [1], 'changed through the respawned worker');
--- allow_error_log
worker process \d+ exited on signal 9



=== TEST 7: a hand-written file is loaded at start; the next change writes it in the module's own form
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
main::spew(main::dyfile(), "# upstreams, by hand\n\nupstream  handmade{server " . main::addr(3) . " weight=2;server "
    . main::addr(4) . ";}   # two\nupstream host1 {\n  least_conn ;\n\tserver " . main::addr(4) . "  ; # moved\n}\n"
    . "upstream host2 { deleted; }\n");
nginx_restart();
is(http_get('/list')->{body}, "host1\nhandmade\n", 'GET /list');
is(http_get('/upstream/handmade')->{body}, main::dline(3, weight => 2) . main::dline(4), 'handmade');
is(http_get('/upstream/host1')->{body}, main::dline(4), 'host1 replaced');
is(http_get('/upstream/host2')->{status}, 404, 'host2 deleted');
is_deeply(main::traffic(6, 'handmade'), { port(3) => 4, port(4) => 2 }, 'handmade: traffic 2:1');
is_deeply(main::traffic(2, 'host2'), { 'status 502' => 2 }, 'host2: 502');
main::post('x', 'server ' . main::addr(1) . ';');
main::file_is([ main::ublock('handmade', main::sv(3, weight => 2), main::sv(4)),
                main::ublock('host1', 'least_conn;', main::sv(4)), main::deleted('host2'), main::ublock('x', main::sv(1)) ],
              'the next change');



=== TEST 8: a deleted configuration upstream created again is written with its servers, and restored so
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
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
main::del('host2');
main::file_is([ main::deleted('host2') ], 'deleted');
main::post('host2', 'server ' . main::addr(1) . ';');
main::file_is([ main::ublock('host2', main::sv(1)) ], 'created again');
nginx_restart();
is(http_get('/upstream/host2')->{body}, main::dline(1), 'restored with its new servers');
is_deeply(main::traffic(3, 'host2'), { port(1) => 3 }, 'traffic');
main::del('host2');
nginx_restart();
is(http_get('/upstream/host2')->{status}, 404, 'deleted again, and after a restart');
is_deeply(main::traffic(3, 'host2'), { 'status 502' => 3 }, 'traffic: 502');



=== TEST 9: dyups_trylock on: a state file another process holds locked answers 409 at once and changes nothing
--- timeout: 3
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
dyups_trylock on;
--- config
location / { dyups_interface; }
--- perl
use Fcntl qw(:flock);
main::post('dyhost', 'server ' . main::addr(1) . ';');
open my $lock, '>>', main::dyfile() . '.lock' or die "open: $!";
flock($lock, LOCK_EX) or die "flock: $!";
my $busy = '409 the state file "' . main::dyfile() . '" is locked by another change; try again';
my $r = http('POST', '/upstream/dyhost', 'server ' . main::addr(2) . ';');
is("$r->{status} $r->{body}", $busy, 'POST while the file is locked');
$r = http('DELETE', '/upstream/dyhost');
is("$r->{status} $r->{body}", $busy, 'DELETE while the file is locked');
$r = http('POST', '/upstream/other', 'server ' . main::addr(2) . ';');
is("$r->{status} $r->{body}", $busy, 'a new upstream while the file is locked');
is(http_get('/upstream/dyhost')->{body}, main::dline(1), 'dyhost unchanged');
is(http_get('/upstream/other')->{status}, 404, 'other not created');
close $lock;
main::post('dyhost', 'server ' . main::addr(2) . ';');
main::file_is([ main::ublock('dyhost', main::sv(2)) ], 'the next change, once the lock is free');

=== TEST 10: a file restored only in part at start (the zone has no room for all of it): [error] says so, dyups changes answer 500 with the reason and leave the file byte for byte (the next change used to write it without the upstreams not restored); a restart with room restores all of it
--- http_config
dyups_shm_zone_size 64k;
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
--- config
location / { dyups_interface; }
--- perl
my $file = '';
for my $u (1 .. 8) {
    $file .= "upstream big$u {\n" . join('', map { "    server 127.0.0.1:" . (30000 + $u * 100 + $_) . ";\n" } 1 .. 40) . "}\n";
}
main::spew(main::dyfile(), $file);
nginx_restart();
my @listed = split /\n/, http_get('/list')->{body};
ok(@listed >= 1 && @listed < 8, 'some upstreams restored, not all (' . scalar(@listed) . ')');
my $log = error_log_text();
like($log, qr/\[error\].*dyups_upstream_conf "[^"]*dyups\.conf": .*; the upstreams after it were not restored, and dyups changes are refused until they are/,
     '[error] says what was not restored and that changes are refused');
my $reason = qr/\A500 dyups_upstream_conf "[^"]*dyups\.conf" was restored only in part at start \(the error log says why\): changes are refused so that the file keeps the upstreams not restored; fix the cause, then restart nginx \(or reload with another dyups_shm_zone_size\)\n?\z/;
my $r = http('POST', '/upstream/x', 'server 127.0.0.1:' . port(1) . ';');
like("$r->{status} $r->{body}", $reason, 'POST: 500 with the reason');
$r = http('DELETE', "/upstream/$listed[0]");
like("$r->{status} $r->{body}", $reason, 'DELETE: 500 with the reason');
is(main::slurp(main::dyfile()), $file, 'the file byte for byte');
nginx_reload();
$r = http('POST', '/upstream/x', 'server 127.0.0.1:' . port(1) . ';');
is($r->{status}, 500, 'a reload that keeps the zone keeps refusing');

NginxTest::Files::spew(conf_file(), NginxTest::Files::slurp(conf_file()) =~ s/dyups_shm_zone_size 64k;/dyups_shm_zone_size 1m;/r);
nginx_restart();
is(scalar(split /\n/, http_get('/list')->{body}), 8, 'with room: every upstream restored');
main::post('x', 'server 127.0.0.1:' . port(1) . ';');
like(main::slurp(main::dyfile()), qr/upstream big8 \{/, 'and the next change writes all of them');
--- allow_error_log
were not restored

=== TEST 11: a reload that moves dyups_upstream_conf to another file (the registry kept): the first worker writes the run-time upstreams into the new file, the old workers refuse; a restart loads them all (every dyups change used to answer 503 "a binary upgrade rolled back?", and the restart lost every upstream); a lock file deleted meanwhile is claimed again by the next reload; a file named again after a cycle without one gets the changes made meanwhile
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
# The cache manager and loader run init_process too (nginx's worker index 0).
proxy_cache_path $TEST_NGINX_DATA_DIR/cache keys_zone=cache:1m;
--- config
location / { dyups_interface; }
--- perl
my $old = main::dyfile();
my $new = data_dir() . '/moved/dyups.conf';
mkdir(data_dir() . '/moved') && chmod(0777, data_dir() . '/moved') or die "mkdir: $!";
my $conf = main::slurp(conf_file());
my $with_file = sub { main::spew(conf_file(), defined $_[0] ? $conf =~ s{\Q$old\E}{$_[0]}r : $conf =~ s{^\s*dyups_upstream_conf [^\n]*\n}{}mr) };
my $blocks = sub { $main::HEADER . join '', map { main::ublock($_, main::sv($_ eq 'one' ? 1 : 2)) } @_ };
main::post('one', 'server ' . main::addr(1) . ';');
$with_file->($new);
ok(eval { nginx_reload(); 1 }, 'reload with the file moved') or diag($@);
is(main::slurp($new), $blocks->('one'), 'the new file holds the run-time upstreams');
like(error_log_text(), qr/\[notice\].*dyups_upstream_conf "\Q$new\E" \(before this reload: "\Q$old\E"\): the first worker writes the run-time upstreams into it/,
     '  [notice] says so');
is(scalar(() = error_log_text() =~ /the run-time upstreams are written/g), 1, '  written by one process, the first worker');
is(main::slurp("$old.lock"), "moved to $new", 'the old lock tells the old workers where it went');
main::post('two', 'server ' . main::addr(2) . ';');
is(main::slurp($new), $blocks->('one', 'two'), 'the next change is written to the new file, with the earlier upstreams');
nginx_restart();
is(http_get('/upstream/one')->{body} . http_get('/upstream/two')->{body}, main::dline(1) . main::dline(2),
   'after a restart: both upstreams');

unlink("$new.lock") or die "unlink: $!";
my $r = http('POST', '/upstream/three', 'server ' . main::addr(2) . ';');
is($r->{status}, 503, 'the lock file deleted: a change is refused') or diag($r->{body});
ok(eval { nginx_reload(); 1 }, 'a reload') or diag($@);
main::post('three', 'server ' . main::addr(2) . ';');

# The directive dropped by a reload, a change, then the old path named again.
$with_file->(undef);
ok(eval { nginx_reload(); 1 }, 'a reload without dyups_upstream_conf') or diag($@);
main::post('four', 'server ' . main::addr(2) . ';');
$with_file->($old);
ok(eval { nginx_reload(); 1 }, 'a reload naming the first file again') or diag($@);
is(main::slurp($old), $blocks->('one', 'two', 'three', 'four'), '  which holds every run-time upstream');
main::post('five', 'server ' . main::addr(2) . ';');
nginx_restart();
is(join('', map { http_get("/upstream/$_")->{body} } qw(one two three four five)),
   main::dline(1) . main::dline(2) x 4, 'after a restart: all five');

=== TEST 12: each worker renders only the upstreams changed since its last write (hunt 22 F2): changes made by another worker in between, a deletion and a re-creation of the same name, all reach the file written by the first worker's next change
--- workers: 2
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    add_header X-Pid $pid always;
    location / { dyups_interface; }
}
--- config
location / { dyups_interface; }
--- perl
# One keep-alive connection on each of the two workers.
my %on;
for (1 .. 40) {
    my $c = NginxTest::Dyups::keepalive(port(8));
    my $pid = $c->request('GET', '/list', 'localhost')->{pid} // next;
    $on{$pid} //= $c;
    last if keys %on == 2;
}
my ($a, $b) = values %on;
ok(defined $b, 'a connection on each worker') or return;
my $change = sub {
    my ($c, $method, $name, $n) = @_;
    my $r = $c->request($method, "/upstream/$name", 'localhost', defined $n ? 'server ' . main::addr($n) . ';' : undef);
    is("$r->{status} $r->{body}", '200 success', "$method /upstream/$name" . (defined $n ? " (server $n)" : '') . " on worker $r->{pid}");
};
$change->($a, 'POST', 'one', 1);
$change->($a, 'POST', 'two', 1);
main::file_is([ map { main::ublock($_, main::sv(1)) } qw(one two) ], 'the first worker wrote both');
$change->($b, 'POST', 'one', 2);
$change->($a, 'POST', 'three', 1);
main::file_is([ main::ublock('one', main::sv(2)), map { main::ublock($_, main::sv(1)) } qw(two three) ],
              'the other worker replaced one: the first worker\'s next write has it');
$change->($b, 'DELETE', 'two');
$change->($b, 'POST', 'two', 3);
$change->($a, 'POST', 'four', 1);
main::file_is([ main::ublock('one', main::sv(2)), main::ublock('two', main::sv(3)), map { main::ublock($_, main::sv(1)) } qw(three four) ],
              'deleted and created again by the other worker: the new one');
$change->($b, 'DELETE', 'three');
$change->($a, 'DELETE', 'four');
main::file_is([ main::ublock('one', main::sv(2)), main::ublock('two', main::sv(3)) ], 'deletions by both workers');

=== TEST 13: a reload that names dyups_upstream_conf for the first time, the registry kept: the live run-time upstreams stay as they are and the first worker writes them into the file, which is not loaded (review 25: the master loaded the file into the live registry, waiting on the workers' locks without end, the file's upstreams replaced live ones of the same name, and a restart lost the live ones it lacked)
--- config
location / { dyups_interface; }
--- perl
my $file = main::dyfile();
main::post('live', 'server ' . main::addr(1) . ';');
main::post('same', 'server ' . main::addr(2) . ';');
main::spew($file, $main::HEADER . main::ublock('fromfile', main::sv(3)) . main::ublock('same', main::sv(3)));
my $conf = main::slurp(conf_file());
main::spew(conf_file(), $conf =~ s{^(http \{)$}{$1\n    dyups_upstream_conf $file;}mr);
ok(eval { nginx_reload(); 1 }, 'reload naming the file') or diag($@);
is(http_get('/list')->{body}, "live\nsame\n", 'the live upstreams, not the file\'s');
is(http_get('/upstream/same')->{body}, main::dline(2), '  same keeps its live server');
ok(poll_until(sub { (main::slurp($file) // '') eq $main::HEADER . main::ublock('live', main::sv(1)) . main::ublock('same', main::sv(2)) }, 5, 'written'),
   'the first worker writes them into the file') or diag(main::slurp($file));
nginx_restart();
is(http_get('/list')->{body}, "live\nsame\n", 'after a restart: both');

=== TEST 14: run-time upstreams whose hash keys name a variable the configuration no longer defines (its map removed): a reload that keeps the registry and a restart that restores it from the file both start and warn once for the variable, naming the upstreams (they were restored silently, the variable empty for every request: hunt 33; one warning per upstream and per mention: review 47); a change with that key answers 400
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
map $arg_k $mykey { default $arg_k; }
--- config
location / { dyups_interface; }
--- perl
main::post('h', 'hash $mykey consistent; server ' . main::addr(3) . ';');
main::post('h2', 'hash $arg_k$mykey-$MYKEY; server ' . main::addr(3) . ';');
main::post('known', 'hash $arg_k$uri; server ' . main::addr(4) . ';');
my $warning = qr/^.*\[warn\].*: dynamic upstream: the variable "\$mykey" in the hash keys of run-time upstreams "h", "h2" is not defined by this configuration: nginx takes it as empty for every request; define it again, or POST them with another key$/m;
my $size = -s prefix() . 'logs/error.log';
nginx_reload();
is(scalar(() = substr(error_log_text(), $size) =~ /$warning/g), 0, 'no warning while the map is there');
main::spew(conf_file(), main::slurp(conf_file()) =~ s/^map .*\n//mr);
for my $step (['reload', \&nginx_reload], ['restart', \&nginx_restart]) {
    my ($what, $do) = @$step;
    $size = -s prefix() . 'logs/error.log';
    $do->();
    my $log = substr(error_log_text(), $size);
    is(scalar(() = $log =~ /$warning/g), 1, "a $what without the map warns once") or diag($log);
    unlike($log, qr/"known"|\$arg_k/, '  not of a variable nginx knows');
    is(http_get('/upstream/h')->{status}, 200, '  h is still served');
}
my $r = http('POST', '/upstream/h', 'hash $mykey consistent; server ' . main::addr(3) . ';');
is("$r->{status} $r->{body}", '400 add server failed: unknown variable "$mykey" in hash key', 'a change with that key answers 400');
