# dynamic_upstream: backup peers: adding them (creating the backup list),
# listing them after the primaries, changing and removing them, the
# balancers that refuse them, and their traffic.
use lib 't/lib';
use NginxTest;
use NginxTest::Files;
run_tests();
__DATA__

=== TEST 1: add=&backup= creates the backup list; backups listed after primaries
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=zone_for_backends&add=&backup=&server=127.0.0.1:$TEST_NGINX_PORT_4
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;
server 127.0.0.1:$TEST_NGINX_PORT_4 backup;

>>> GET /dynamic?upstream=zone_for_backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_4 weight=1 max_fails=1 fail_timeout=10 backup;

>>> GET /dynamic?upstream=zone_for_backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_5
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;
server 127.0.0.1:$TEST_NGINX_PORT_5;
server 127.0.0.1:$TEST_NGINX_PORT_4 backup;

>>> GET /dynamic?upstream=zone_for_backends&add=&backup=&server=127.0.0.1:$TEST_NGINX_PORT_6
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2;
server 127.0.0.1:$TEST_NGINX_PORT_3;
server 127.0.0.1:$TEST_NGINX_PORT_5;
server 127.0.0.1:$TEST_NGINX_PORT_4 backup;
server 127.0.0.1:$TEST_NGINX_PORT_6 backup;



=== TEST 2: backup added with parameters and down answers the verbose list
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&add=&backup=&server=127.0.0.1:$TEST_NGINX_PORT_2&weight=2&max_conns=3&down=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=2 max_fails=1 fail_timeout=10 max_conns=3 backup down;

>>> GET /dynamic?upstream=backends
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2 backup down;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_2&up=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=2 max_fails=1 fail_timeout=10 max_conns=3 backup;



=== TEST 3: a backup peer's parameters and down flag can be changed
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_2&weight=7&max_fails=2&fail_timeout=3&max_conns=4
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=7 max_fails=2 fail_timeout=3 max_conns=4 backup;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_2&down=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=7 max_fails=2 fail_timeout=3 max_conns=4 backup down;

>>> GET /dynamic?upstream=backends
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2 backup down;



=== TEST 4: removing backup peers, configured and added; the list can be refilled
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&add=&backup=&server=127.0.0.1:$TEST_NGINX_PORT_3
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
server 127.0.0.1:$TEST_NGINX_PORT_3 backup;

>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_2
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_3 backup;

>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_3
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&add=&backup=&server=127.0.0.1:$TEST_NGINX_PORT_2
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2 backup;



=== TEST 5: a peer that exists as a backup cannot be added as a primary, nor the reverse
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_2
<<< 400
400 Bad Request: server 127.0.0.1:$TEST_NGINX_PORT_2 already exists in upstream "backends"

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10 backup;

>>> GET /dynamic?upstream=backends&add=&backup=&server=127.0.0.1:$TEST_NGINX_PORT_1
<<< 400
400 Bad Request: server 127.0.0.1:$TEST_NGINX_PORT_1 already exists in upstream "backends"

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10 backup;



=== TEST 6: the last primary cannot be removed even when backups remain
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_1
<<< 400
400 Bad Request: server 127.0.0.1:$TEST_NGINX_PORT_1 is the last primary server of upstream "backends" and cannot be removed

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10 backup;



=== TEST 7: least_conn accepts backup peers
--- http_config
upstream backends {
    least_conn;
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&add=&backup=&server=127.0.0.1:$TEST_NGINX_PORT_2
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;
server 127.0.0.1:$TEST_NGINX_PORT_2 backup;

>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_2
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1;



=== TEST 8: ip_hash refuses backup peers
--- http_config
upstream iph {
    ip_hash;
    zone iph 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=iph&add=&backup=&server=127.0.0.1:$TEST_NGINX_PORT_3
<<< 400
400 Bad Request: upstream "iph" uses the ip_hash balancer, which does not allow backup servers

>>> GET /dynamic?upstream=iph&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;



=== TEST 9: hash refuses backup peers
--- http_config
upstream hsh {
    hash $arg_key;
    zone hsh 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=hsh&add=&backup=&server=127.0.0.1:$TEST_NGINX_PORT_3
<<< 400 like
\A400 Bad Request: upstream "hsh" uses the hash balancer, which does not allow backup servers\n\z

>>> GET /dynamic?upstream=hsh&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;



=== TEST 10: hash ... consistent refuses backup peers
--- http_config
upstream chash {
    hash $arg_key consistent;
    zone chash 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=chash&add=&backup=&server=127.0.0.1:$TEST_NGINX_PORT_3
<<< 400 like
^400 Bad Request: .*backup
>>> GET /dynamic?upstream=chash&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;



=== TEST 11: backup without add is refused (a peer cannot move between lists)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_2&backup=
<<< 400
400 Bad Request: backup is only accepted with add (a peer cannot move between lists)

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_2&backup=&weight=2
<<< 400
400 Bad Request: backup is only accepted with add (a peer cannot move between lists)

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&remove=&backup=&server=127.0.0.1:$TEST_NGINX_PORT_2
<<< 400
400 Bad Request: backup is only accepted with add (a peer cannot move between lists)

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;



=== TEST 12: backup peers get traffic only when every primary is down
--- workers: 1
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
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
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
my $spread = sub {
    my ($n) = @_;
    my %seen;
    for (1 .. $n) {
        my $r = http_get('/');
        $seen{ $r->{status} == 200 ? ($r->{body} =~ s/\n\z//r) : "status $r->{status}" }++;
    }
    return \%seen;
};
my $r = http_get("/dynamic?upstream=backends&add=&backup=&server=127.0.0.1:$p3");
is($r->{status}, 200, 'backup added');
is_deeply($spread->(20), { $p1 => 10, $p2 => 10 }, 'primaries up: the backup gets nothing');

http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&down=");
is_deeply($spread->(10), { $p2 => 10 }, 'one primary down: the other primary, not the backup');

$r = http_get("/dynamic?upstream=backends&server=127.0.0.1:$p2&down=");
is($r->{body}, "server 127.0.0.1:$p1 weight=1 max_fails=1 fail_timeout=10 down;\n"
             . "server 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10 down;\n"
             . "server 127.0.0.1:$p3 weight=1 max_fails=1 fail_timeout=10 backup;\n", 'both primaries down');
is_deeply($spread->(10), { $p3 => 10 }, 'all primaries down: the backup takes everything');

$r = http_get("/dynamic?upstream=backends&add=&backup=&server=127.0.0.1:$p4");
is($r->{status}, 200, 'second backup added');
is_deeply($spread->(20), { $p3 => 10, $p4 => 10 }, 'the two backups share the traffic');

http_get("/dynamic?upstream=backends&server=127.0.0.1:$p3&down=");
is_deeply($spread->(10), { $p4 => 10 }, 'a down backup gets nothing');

http_get("/dynamic?upstream=backends&server=127.0.0.1:$p2&up=");
is_deeply($spread->(10), { $p2 => 10 }, 'a primary up again: it takes everything back');

http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&up=");
is_deeply($spread->(20), { $p1 => 10, $p2 => 10 }, 'both primaries up again');

http_get("/dynamic?upstream=backends&remove=&server=127.0.0.1:$p4");
http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&down=");
http_get("/dynamic?upstream=backends&server=127.0.0.1:$p2&down=");
is_deeply($spread->(3), { 'status 502' => 3 }, 'primaries down, the remaining backup down: 502');



=== TEST 13: a backup added to a least_conn upstream takes over when the primaries are down
--- http_config
upstream backends {
    least_conn;
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
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
my ($p1, $p2) = (port(1), port(2));
is(http_get("/dynamic?upstream=backends&add=&backup=&server=127.0.0.1:$p2")->{status}, 200, 'backup added');
my %seen;
$seen{ http_get('/')->{body} }++ for 1 .. 10;
is_deeply(\%seen, { "$p1\n" => 10 }, 'primary up: all traffic on it');
is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&down=")->{status}, 200, 'primary down');
%seen = ();
$seen{ http_get('/')->{body} }++ for 1 .. 10;
is_deeply(\%seen, { "$p2\n" => 10 }, 'primary down: all traffic on the backup');



=== TEST 14: a one-peer round-robin upstream gains a backup: it serves when the peer is down
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
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my %seen;
$seen{ http_get('/')->{body} }++ for 1 .. 4;
is_deeply(\%seen, { "$p1\n" => 4 }, 'the one peer serves');
is(http_get("/dynamic?upstream=backends&add=&backup=&server=127.0.0.1:$p2")->{status}, 200, 'backup added');
%seen = ();
$seen{ http_get('/')->{body} }++ for 1 .. 6;
is_deeply(\%seen, { "$p1\n" => 6 }, 'primary up: the backup gets nothing');
is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&down=")->{status}, 200, 'primary down');
%seen = ();
$seen{ http_get('/')->{body} }++ for 1 .. 6;
is_deeply(\%seen, { "$p2\n" => 6 }, 'primary down: the backup serves');
is(http_get("/dynamic?upstream=backends&remove=&server=127.0.0.1:$p2")->{status}, 200, 'backup removed');
my $r = http_get('/');
is($r->{status}, 502, 'primary down and no backup left: 502');
is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&up=")->{status}, 200, 'primary up');
%seen = ();
$seen{ http_get('/')->{body} }++ for 1 .. 4;
is_deeply(\%seen, { "$p1\n" => 4 }, 'the primary serves again');

=== TEST 15: hash with a backup written before it: a request that met a lone primary server while the API added a primary and a backup, then removed that backup, ends with 502, and its worker lives (hunt 32, review 30: before nginx 1.27.3 hash read the single flag apart from round robin, went on over the backups, and divided by their total weight, 0: the worker died of SIGFPE). gdb holds the worker at each step while the API changes the lists
--- workers: 2
--- needs_nginx_before: 1.27.3 from it on hash takes round robin below two peers, and a request whose list changed gets no further peer from it
--- http_config
upstream hashed {
    zone zone_hashed 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_6 down;
    server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
    server 127.0.0.1:$TEST_NGINX_PORT_7 backup;
    hash $uri;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_7;
    return 502 "bad $server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://hashed; proxy_next_upstream error timeout http_502; proxy_next_upstream_tries 10; }
--- perl
my ($p1, $p2, $p3, $p6, $p7) = map { port($_) } 1, 2, 3, 6, 7;
my $log = data_dir() . '/changes.out';
my $api = '/dynamic?upstream=hashed';
my $curl = sub { map { qq{shell curl -s 'http://127.0.0.1:} . server_port() . qq{$api&$_' >> $log} } @_ };
# The steps, each when the worker that serves the request reaches it: at
# its second connect (the first server failed) the lists become a lone
# primary beside an emptied backup list; when round robin is called, a
# primary (down) and a backup are added; when that backup has failed, it
# is removed.
my @script = ('set pagination off', 'set confirm off', 'handle SIGPIPE nostop noprint pass', 'set $stage = 0',
    'set $hits = 0',
    'break ngx_event_connect_peer if $stage == 0 && ++$hits == 2', 'commands', 'silent', 'set $stage = 1',
    $curl->("remove=&server=127.0.0.1:$p6", "remove=&server=127.0.0.1:$p7", "remove=&server=127.0.0.1:$p2"),
    'continue', 'end',
    'break ngx_http_upstream_get_round_robin_peer if $stage == 1', 'commands', 'silent', 'set $stage = 2',
    $curl->("add=&server=127.0.0.1:$p3&down=", "add=&backup=&server=127.0.0.1:$p2"),
    'continue', 'end',
    'break ngx_http_upstream_free_round_robin_peer if $stage == 2', 'commands', 'silent', 'set $stage = 3',
    $curl->("remove=&server=127.0.0.1:$p2"), qq{shell echo removed >> $log},
    'continue', 'end',
    'continue', 'continue');
my $file = data_dir() . '/steps.gdb';
NginxTest::Files::spew($file, join("\n", @script) . "\n");
my @gdb;
for my $worker (worker_pids()) {
    my $out = data_dir() . "/gdb-$worker.out";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, '>', $out) or die; open(STDERR, '>&', \*STDOUT) or die;
        exec('gdb', '-p', $worker, '-batch', '-x', $file) or die "exec gdb: $!";
    }
    push @gdb, [$pid, $out];
}
ok(poll_until(sub { !grep { (NginxTest::Files::slurp($_->[1]) // '') !~ /^Breakpoint 3 at/m } @gdb }, 30, 'gdb'),
   'gdb holds every worker');
my $r = http_get('/some/key');
is($r->{status}, 502, 'the request ends with 502: every server failed');
like(NginxTest::Files::slurp($log) // '', qr/removed/, 'every step was taken while it ran');
for (@gdb) { kill 'TERM', $_->[0]; waitpid($_->[0], 0) }
is(http_get("$api&verbose=")->{body},
   "server 127.0.0.1:$p1 weight=1 max_fails=0 fail_timeout=10;\nserver 127.0.0.1:$p3 weight=1 max_fails=1 fail_timeout=10 down;\n",
   'the lists as the steps left them');
--- allow_error_log
upstream server temporarily disabled
no live upstreams
