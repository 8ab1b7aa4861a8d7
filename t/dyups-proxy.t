# dyups_interface and traffic: after a POST, proxy_pass http://$host (and
# http://$u) reaches the new servers from every worker on the very next
# request; after a DELETE it gets 502; requests in flight finish on the old
# list; the upstreams survive a reload.
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups;

# $n requests with Host $host: hashref body => count (bodies of non-200
# answers are counted as "STATUS").
sub spread {
    my ($host, $n, $uri) = @_;
    my %seen;
    for (1 .. $n) {
        my $r = proxied($host, $uri);
        $seen{ $r->{status} == 200 ? $r->{body} : $r->{status} }++;
    }
    return \%seen;
}

run_tests();
__DATA__

=== TEST 1: create, proxy to it, replace with two (both get traffic), delete (502)
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
is(main::proxied('dyhost')->{status}, 502, 'no upstream dyhost yet: 502');
is(main::proxied('host1')->{body}, "$p1\n", 'configured host1 routes');

main::post('dyhost', main::servers(2));
is_deeply(main::spread('dyhost', 20), { "$p2\n" => 20 }, 'every request reaches the new server');

main::post('dyhost', main::servers(2, 3));
my $seen = main::spread('dyhost', 20);
is_deeply([sort keys %$seen], ["$p2\n", "$p3\n"], 'replaced with two: both get traffic, nothing else')
    or diag(explain($seen));

is(http('DELETE', '/upstream/dyhost')->{status}, 200, 'DELETE');
is_deeply(main::spread('dyhost', 10), { 502 => 10 }, 'every request gets 502 after the DELETE');
is(main::proxied('host1')->{body}, "$p1\n", 'host1 is untouched');

main::post('dyhost', main::servers(3));
is_deeply(main::spread('dyhost', 10), { "$p3\n" => 10 }, 'created again: routes again');

=== TEST 2: set $u NAME; proxy_pass http://$u; follows the upstream too
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { set $u dyhost; proxy_pass http://$u; }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
is(main::proxied('whatever')->{status}, 502, 'before: 502');
main::post('dyhost', main::servers(1));
is_deeply(main::spread('whatever', 10), { "$p1\n" => 10 }, 'via $u');
main::post('dyhost', main::servers(2));
is_deeply(main::spread('whatever', 10), { "$p2\n" => 10 }, 'replaced: via $u');
is(http('DELETE', '/upstream/dyhost')->{status}, 200, 'DELETE');
is_deeply(main::spread('whatever', 5), { 502 => 5 }, 'deleted: 502');

=== TEST 3: Host lookups are case-insensitive, like nginx's own upstream lookup
--- http_config
upstream Host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
    location /u { set $u DyHost; proxy_pass http://$u; }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
is(main::proxied('HOST1')->{body}, "$p1\n", 'nginx itself: Host: HOST1 finds upstream Host1');
main::post('dyhost', main::servers(2));
is(main::proxied('dyhost')->{body}, "$p2\n", 'Host: dyhost');
is(main::proxied('DYHOST')->{body}, "$p2\n", 'Host: DYHOST');
is(main::proxied('DyHost')->{body}, "$p2\n", 'Host: DyHost');
is(main::proxied('x', '/u')->{body}, "$p2\n", 'set $u DyHost');
main::post('HOST1', main::servers(2));
is(main::proxied('host1')->{body}, "$p2\n", 'POST /upstream/HOST1 replaced Host1');
is(http_get('/list')->{body}, "Host1\ndyhost\n", 'no second upstream was created');

=== TEST 4: a request in flight on the old list completes normally
--- modules: echo
--- workers: 2
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    location /slow { echo_sleep 0.5; echo "slow $server_port"; }
    location / { echo "fast $server_port"; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
use IO::Socket::INET;
my ($p1, $p2) = map { port($_) } 1 .. 2;
main::post('dyhost', main::servers(1));
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(9)) or die "connect: $!";
print $sock "GET /slow HTTP/1.0\r\nHost: dyhost\r\n\r\n";
ok(poll_until(sub {
    http_get('/upstream/dyhost?format=json')->{body} =~ /"conns":1/;
}, 5, 'the slow request holds the old server'), 'request in flight on the old server');
main::post('dyhost', main::servers(2));
is(main::proxied('dyhost', '/fast')->{body}, "fast $p2\n", 'new requests use the new list at once');
is(http('DELETE', '/upstream/dyhost')->{status}, 200, 'and even a DELETE');
is(main::proxied('dyhost', '/fast')->{status}, 502, 'new requests get 502');
local $/;
my $reply = <$sock>;
like($reply, qr{\AHTTP/1\.1 200 .*\r\n\r\nslow $p1\n\z}s, 'the request in flight got its 200 from the old server');

=== TEST 5: a unix socket server
--- http_config
server {
    listen unix:$TEST_NGINX_DATA_DIR/b.sock;
    return 200 "unix\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / { dyups_interface; }
--- perl
main::post('dyhost', 'server unix:' . data_dir() . '/b.sock;');
is_deeply(main::spread('dyhost', 6), { "unix\n" => 6 }, 'proxied to the unix socket');

=== TEST 6: replacing a configured upstream: /detail shows it, traffic follows
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / { proxy_pass http://$host; }
    location /named { proxy_pass http://host1; }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
is_deeply(main::spread('host1', 6), { "$p1\n" => 6 }, 'host1 as configured');
main::post('host1', main::servers(3));
like(http_get('/detail')->{body}, qr/\Ahost1\nserver 127\.0\.0\.1:$p3 [^\n]*\n\nhost2\n/, '/detail shows the new server');
is_deeply(main::spread('host1', 10), { "$p3\n" => 10 }, 'proxy_pass http://$host follows');
is_deeply(main::spread('x', 10, '/named'), { "$p3\n" => 10 }, 'proxy_pass http://host1 follows too');
is_deeply(main::spread('host2', 4), { "$p2\n" => 4 }, 'host2 untouched');

=== TEST 7: deleting a configured upstream: 502, unlisted; re-creating it works again
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
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
is(main::proxied('host2')->{body}, "$p2\n", 'host2 as configured');
my $r = http('DELETE', '/upstream/host2');
is($r->{status}, 200, 'DELETE host2');
is($r->{body}, 'success', 'success');
is_deeply(main::spread('host2', 10), { 502 => 10 }, 'Host: host2 gets 502');
is(http_get('/list')->{body}, "host1\n", 'host2 is not in /list');
is(main::proxied('host1')->{body}, "$p1\n", 'host1 still routes');
main::post('host2', main::servers(3));
is_deeply(main::spread('host2', 10), { "$p3\n" => 10 }, 're-created host2 routes to its new server');
main::post('host2', main::servers(2));
is_deeply(main::spread('host2', 10), { "$p2\n" => 10 }, 'and can be replaced again');

=== TEST 8: upstreams created at run time survive a reload; deleted ones stay deleted
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
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
main::post('dyhost', main::servers(2) . 'server 127.0.0.1:' . port(3) . ' weight=2;');
main::post('gone', main::servers(3));
is(http('DELETE', '/upstream/gone')->{status}, 200, 'delete gone');
my $before = http_get('/upstream/dyhost')->{body};
nginx_reload();
is(http_get('/list')->{body}, "host1\ndyhost\n", 'dyhost is still listed after the reload, gone is not');
is(http_get('/upstream/dyhost')->{body}, $before, 'with the same servers');
my $seen = main::spread('dyhost', 12);
is_deeply([sort keys %$seen], ["$p2\n", "$p3\n"], 'and still routes to both');
is(main::proxied('gone')->{status}, 502, 'gone is still gone');
main::post('dyhost', main::servers(1));
is_deeply(main::spread('dyhost', 8), { "$p1\n" => 8 }, 'and can be changed after the reload');

=== TEST 9: host names with dots and dashes, as dyups users name upstreams
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
main::post('api.example.com', main::servers(1));
main::post('www-2.example.com', main::servers(2));
is_deeply(main::spread('api.example.com', 6), { "$p1\n" => 6 }, 'Host: api.example.com');
is_deeply(main::spread('www-2.example.com', 6), { "$p2\n" => 6 }, 'Host: www-2.example.com');
is_deeply(main::spread('API.Example.COM', 4), { "$p1\n" => 4 }, 'Host: API.Example.COM');
is(main::proxied('example.com')->{status}, 502, 'Host: example.com is not one of them');
is(http_get('/list')->{body}, "api.example.com\nwww-2.example.com\n", 'both listed');

=== TEST 10: configured upstreams with zone, keepalive or hash are replaced and deleted too
--- http_config
upstream zoned { zone zoned 64k; server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream kept  { server 127.0.0.1:$TEST_NGINX_PORT_1; keepalive 8; }
upstream hashed { hash $uri consistent; server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream lc    { least_conn; server 127.0.0.1:$TEST_NGINX_PORT_1; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / {
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_pass http://$host;
    }
}
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
for my $name (qw(zoned kept hashed lc)) {
    is_deeply(main::spread($name, 4), { "$p1\n" => 4 }, "$name as configured");
    main::post($name, main::servers(2, 3));
    my $seen = main::spread($name, 10);
    is_deeply([sort keys %$seen], ["$p2\n", "$p3\n"], "$name replaced: traffic to both new servers") or diag(explain($seen));
    is(http('DELETE', "/upstream/$name")->{status}, 200, "$name deleted");
    is_deeply(main::spread($name, 4), { 502 => 4 }, "$name deleted: 502");
    main::post($name, main::servers(1));
    is_deeply(main::spread($name, 4), { "$p1\n" => 4 }, "$name re-created");
}

=== TEST 11: a hash key survives a reload that renumbers nginx's variables
--- http_config
log_format before '$arg_a $arg_b $http_x_c';
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
main::post('plain', 'hash $arg_k; ' . main::servers(1, 2, 3));
main::post('ring', 'hash $arg_k consistent; ' . main::servers(1, 2, 3));
my %before;
for my $u (qw(plain ring)) {
    $before{$u}{$_} = main::proxied($u, "/?k=key$_")->{body} for 1 .. 30;
    cmp_ok(scalar(keys %{ { reverse %{ $before{$u} } } }), '>=', 2, "$u: keys spread before the reload");
}
# More variables, used before the old ones, then reload.
my $conf = do { local (@ARGV, $/) = conf_file(); <> };
$conf =~ s/(# --- http_config\n)/$1log_format shift '\$arg_z1 \$arg_z2 \$http_z3 \$cookie_z4 \$arg_z5 \$arg_z6 \$arg_z7';\nmap \$arg_q \$zz { default 1; }\n/ or die "no http_config marker";
open(my $fh, '>', conf_file()) or die $!;
print $fh $conf;
close $fh;
nginx_reload();
for my $u (qw(plain ring)) {
    my %after = map { $_ => main::proxied($u, "/?k=key$_")->{body} } 1 .. 30;
    is_deeply(\%after, $before{$u}, "$u: every key reaches the same peer after the reload");
}

=== TEST 12: a version a worker cannot build (no memory for its consistent-hash table) answers 502 (nginx ≥ 1.27.3: its requests 500), never the replaced list; only the timer retries, with backoff
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
--- allow_error_log
malloc\(\d+\) failed
--- perl
# Memory pressure, for real: nginx starts again under `ulimit -v` (a
# TEST_NGINX_BINARY-style wrapper), its address space limited to what its
# processes use now plus 16 MiB; then a valid body whose consistent-hash
# table takes just under 64 MiB in every worker (a total weight of 26200: 160 points of
# 16 bytes per unit) cannot be set up. ASan and valgrind reserve huge
# address ranges of their own: the limit means nothing there.
my $read = sub { local (@ARGV, $/) = @_; <> // '' };
my @pids = (master_pid(), worker_pids());
SKIP: {
skip('ASan or valgrind: an address-space limit cannot make an allocation fail', 1)
    if grep { $read->("/proc/$_/maps") =~ /libasan|vgpreload|valgrind/ } @pids;
my ($kb) = sort { $b <=> $a } map { $read->("/proc/$_/status") =~ /^VmSize:\s+(\d+) kB/m } @pids;
my $wrapper = prefix() . 'nginx-ulimit.sh';
open(my $fh, '>', $wrapper) or die "$wrapper: $!";
print $fh "#!/bin/sh\nulimit -v " . ($kb + 16 * 1024) . "\nexec '$NginxTest::BINARY' \"\$@\"\n";
close($fh);
chmod(0755, $wrapper) or die "$wrapper: $!";
{ local $NginxTest::BINARY = $wrapper; nginx_restart(); }
my @workers = worker_pids();
like($read->("/proc/$workers[0]/limits"), qr/^Max address space\s+\d+/m, 'the workers run with an address-space limit');
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
main::post('dyhost', main::servers(1));
is_deeply(main::spread('dyhost', 10), { "$p1\n" => 10 }, 'dyhost routes to its server');
# Were it set up, it would route to $p1.
main::post('dyhost', "hash \$arg_k consistent; server 127.0.0.1:$p1 weight=" . 262 * 100 . ';');
my $seen = main::spread('dyhost', 10);
if (nginx_at_least('1.27.3')) {
    # nginx builds the table of a list with a generation word per request
    # (when the word moved): the version is set up, and each request that
    # cannot build the table fails (500), never reaching the replaced list.
    is_deeply($seen, { 500 => 10 }, 'requests that cannot build the table: 500, not the replaced list')
        or diag(explain($seen));
    main::post('dyhost', main::servers(3));
    is_deeply(main::spread('dyhost', 10), { "$p3\n" => 10 }, 'a version whose table fits routes again');
    skip('nginx 1.27.3 and later build the table per request: no version fails to set up', 1);
}
is_deeply($seen, { 502 => 10 }, 'no worker can set the new version up: 502, not the replaced list') or diag(explain($seen));
# Requests never try an old failure again; the timer does, 1 s after the
# failure, then 2 s after that, 4 s, ...: in 4 s, at most 3 tries per
# worker (one [emerg] each), and the module's [error] once per worker.
my $logged = sub { scalar(() = error_log_text() =~ /could not set up upstream "dyhost"/g) };
my $tries = sub { scalar(() = error_log_text() =~ /malloc\(\d+\) failed/g) };
my %during;
ok(!poll_until(sub { $during{ main::proxied('dyhost')->{status} }++; $logged->() > @workers }, 4, 'a repeated [error]'),
   'the failure is logged once per worker');
is_deeply([keys %during], [502], 'requests meanwhile get 502') or diag(explain(\%during));
is($logged->(), scalar(@workers), 'one [error] per worker');
cmp_ok($tries->(), '>', scalar(@workers), 'the timer tried again');
cmp_ok($tries->(), '<=', 3 * @workers, 'with a growing delay, and never for a request') or diag(error_log_text());
# The replaced list is freed by now; a new list can take its memory.
main::post('other', main::servers(2));
$seen = main::spread('dyhost', 10);
is_deeply($seen, { 502 => 10 }, 'still 502 once the replaced list was freed and reused') or diag(explain($seen));
is_deeply(main::spread('other', 10), { "$p2\n" => 10 }, 'the other upstream routes');
main::post('dyhost', main::servers(3));
is_deeply(main::spread('dyhost', 10), { "$p3\n" => 10 }, 'a version the workers can set up routes again');
ok(poll_until(sub { (() = error_log_text() =~ /\[notice\].*upstream "dyhost" is set up again in this worker/g) == @workers }, 5),
   'each worker logs the recovery once, at notice');
}

=== TEST 13: a run-time upstream wins over an implicit upstream of the same name for http://$host; a literal proxy_pass keeps its own
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    add_header X-Upstream $upstream_addr always;
    proxy_connect_timeout 2s;
    proxy_read_timeout 2s;
    location / { proxy_pass http://$host; }
    # An implicit upstream "127.0.0.1" (port 80, the one peer
    # 127.0.0.1:80): an address, so nothing the machine's hosts file says
    # changes it. http://$host with Host 127.0.0.1 (no port: 80) finds it.
    location /literal { proxy_pass http://127.0.0.1; }
}
--- config
location / { dyups_interface; }
--- perl
my $p1 = port(1);
my $implicit = '127.0.0.1:80';
is(main::proxied('127.0.0.1')->{headers}{'x-upstream'}, $implicit, 'before: Host 127.0.0.1 finds the implicit upstream');
main::post('127.0.0.1', main::servers(1));
my $seen = main::spread('127.0.0.1', 10);
is_deeply($seen, { "$p1\n" => 10 }, 'the run-time upstream 127.0.0.1 wins for http://$host') or diag(explain($seen));
my $r = main::proxied('127.0.0.1', '/literal');
is($r->{headers}{'x-upstream'}, $implicit, 'proxy_pass http://127.0.0.1; keeps its implicit upstream');
is(http('DELETE', '/upstream/127.0.0.1')->{status}, 200, 'DELETE 127.0.0.1');
is(main::proxied('127.0.0.1')->{headers}{'x-upstream'}, $implicit, 'after: Host 127.0.0.1 finds the implicit upstream again');
is(http_get('/list')->{status}, 204, 'the implicit upstream is never listed');
