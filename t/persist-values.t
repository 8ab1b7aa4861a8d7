# Every server a configuration can hold survives the state files: values up
# to nginx's own limits (weight=2000000 used to be written into a
# dynamic_state_file whose reader refused it, so nginx never started again)
# and unix socket paths with any character (they used to vanish from the
# file). And a state file too big for the zone: all or nothing.
use lib 't/lib';
use NginxTest;
use NginxTest::Files;
use NginxTest::PlusApi;

our $HEADER = "# Written by nginx-dynamic-upstream after every change through its APIs.\n";

sub state_file { data_dir() . '/backends.state' }
sub verbose { http_get('/dynamic?upstream=backends&verbose=')->{body} }

run_tests();
__DATA__

=== TEST 1: nginx's largest values and a unix path with spaces, quotes and ';' round-trip through the file and a restart
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1 weight=2000000 max_fails=9223372036854775807 fail_timeout=9223372036854775807 max_conns=9223372036854775807;
    server 127.0.0.1:$TEST_NGINX_PORT_2 weight=5000000000 max_fails=0 fail_timeout=0;
    server "unix:$TEST_NGINX_DATA_DIR/a b;'#{\"x\"}.sock" max_conns=2000000;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $dir = data_dir();
my $before = main::verbose();
my $max = '9223372036854775807';
my $expected = "server 127.0.0.1:$p1 weight=2000000 max_fails=$max fail_timeout=$max max_conns=$max;\n"
             . "server 127.0.0.1:$p2 weight=5000000000 max_fails=0 fail_timeout=0;\n"
             . "server unix:$dir/a b;'#{\"x\"}.sock weight=1 max_fails=1 fail_timeout=10 max_conns=2000000;\n";
is($before, $expected, 'the configuration as nginx read it');

my $r = http_get("/dynamic?upstream=backends&server=127.0.0.1:$p2&down=");
is($r->{status}, 200, 'one change through the API') or diag($r->{body});
my $quoted = qq{"unix:$dir/a b;'#{\\"x\\"}.sock"};
is(main::slurp(main::state_file()),
   $main::HEADER . "server 127.0.0.1:$p1 weight=2000000 max_fails=$max fail_timeout=$max max_conns=$max;\n"
           . "server 127.0.0.1:$p2 weight=5000000000 max_fails=0 fail_timeout=0 down;\n"
           . "server $quoted weight=1 max_fails=1 fail_timeout=10 max_conns=2000000;\n",
   'the state file holds every server, values as configured, the unix path quoted');
my ($rc, $out) = nginx_t();
is($rc, 0, 'nginx -t accepts the file') or diag($out);
ok(eval { nginx_restart(); 1 }, 'nginx restarts') or diag($@);
(my $down = $expected) =~ s/(fail_timeout=0);/$1 down;/;
is(main::verbose(), $down, 'after the restart: every server, every value');
ok(eval { nginx_reload(); 1 }, 'and reloads') or diag($@);
is(main::verbose(), $down, 'after the reload: the same');



=== TEST 2: a state file with more servers than the zone holds: nothing is restored, the configuration's servers stay intact, [error] says so, in the configured error_log (at start it went to nginx's initial log only, stderr or the compiled-in file: hunt 39), and changes answer 500 leaving the file byte for byte (the next change used to overwrite it with the configuration's servers); a reload with a larger zone restores it and changes work again
--- main_config
error_log $TEST_NGINX_DATA_DIR/configured.log info;
--- http_config
upstream backends {
    zone zone_for_backends 32k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1 weight=3;
    server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
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
my ($p1, $p2) = (port(1), port(2));
my $config = "server 127.0.0.1:$p1 weight=3 max_fails=1 fail_timeout=10;\n"
           . "server 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10 backup;\n";
is(main::verbose(), $config, 'the configuration, before');
my $path = main::state_file();
my $file = join('', map { "server 127.0.0.1:" . (30000 + $_) . ";\n" } 1 .. 300) . "server 127.0.0.1:32000 backup;\n";
main::spew($path, $file);
ok(eval { nginx_restart(); 1 }, 'nginx starts') or diag($@);
is(main::verbose(), $config, "the configuration's servers, intact (rebuilt as they were, none of the file's)");
my %ports;
$ports{ http_get('/')->{body} }++ for 1 .. 6;
is_deeply(\%ports, { "$p1\n" => 6 }, 'traffic goes to the primary of the configuration');
like(error_log_text(),
     qr/\[error\].*dynamic_state_file "\Q$path\E" for upstream "backends": zone "zone_for_backends" \(32k\) has no room for the state's 301 servers; nothing was restored: the configuration's servers are used, and changes to the upstream are refused until the file is restored \(the next change would overwrite it\): fix the cause \(or delete the file\), then reload nginx/,
     '[error] says exactly that');
like(main::slurp(data_dir() . '/configured.log') // '', qr/\[error\].*dynamic_state_file "\Q$path\E" for upstream "backends": zone "zone_for_backends" \(32k\) has no room/,
     '  also in the error_log the configuration names (not only in nginx\'s -e log)');
is(main::slurp($path), $file, 'the file is left as it was');

my $reason = "dynamic_state_file \"$path\" was not restored at start (the error log says why): changes to upstream "
           . "\"backends\" are refused so that the file keeps its servers; fix the cause (or delete the file to use "
           . "the configuration's servers), then reload nginx";
my $r = http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&weight=2");
is("$r->{status} $r->{body}", "500 500 Internal Server Error: $reason\n", 'a change through the query API: 500 with the reason');
main::plus_error(http('PATCH', '/api/9/http/upstreams/backends/servers/0', '{"weight": 2}'), 500,
                 'StateFileNotRestored', $reason, 'a change through the NGINX Plus API');
is(main::verbose(), $config, 'nothing changed');
is(main::slurp($path), $file, 'the file is still byte for byte as it was');

my $conf = main::slurp(conf_file());
$conf =~ s/zone zone_for_backends 32k;/zone zone_for_backends 256k;/ or die 'no zone line';
main::spew(conf_file(), $conf);
ok(eval { nginx_reload(); 1 }, 'a reload with a larger zone') or diag($@);
ok(poll_until(sub { (split /\n/, main::verbose())[0] eq "server 127.0.0.1:30001 weight=1 max_fails=1 fail_timeout=10;" }),
   "the file's servers are restored");
$r = http_get("/dynamic?upstream=backends&server=127.0.0.1:30001&weight=2");
is($r->{status}, 200, 'and changes work again') or diag($r->{body});
like(main::slurp($path), qr/^server 127\.0\.0\.1:30001 weight=2 /m, 'the file holds the change');
is(scalar(() = main::slurp($path) =~ /^server /mg), 301, 'and all of its 301 servers');
--- allow_error_log
has no room for the state's 301 servers



=== TEST 3: hash: a state file whose weights nginx would sum to 2^64 (0, the divisor of every request) is refused with [emerg] naming the file and line (the first request used to kill the worker with signal 8)
--- http_config
upstream backends {
    hash $uri;
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my $path = main::state_file();
my $max = '9223372036854775807';
main::spew($path, "server 127.0.0.1:" . port(1) . " weight=$max;\n"
                . "server 127.0.0.1:30001 weight=$max;\nserver 127.0.0.1:30002 weight=2;\n");
my ($rc, $out) = nginx_t();
isnt($rc, 0, 'nginx -t refuses the file');
my $refusal = qr/\[emerg\].*dynamic_state_file "\Q$path\E": line 1: the weights of the primary servers total more than 2305843009213693951, the most nginx's balancers can add up without overflow/;
like($out, $refusal, '[emerg] names the file, the line and the limit');
my $started = eval { nginx_restart(); 1 };
ok(!$started, 'nginx refuses to start with the file');
is(http_get('/x')->{status}, 200, 'a request (only if nginx started)') if $started;
like(error_log_text(), $refusal, 'error.log: the same [emerg]');
--- allow_error_log
dynamic_state_file ".*": line 1: the weights



=== TEST 4: hash: weights nginx sums to 3 (2^63-1 + 2^63-1 + 5 wraps); weight=2 on the third through the API (which would make it 0) is refused with 400 naming the limit, nothing changes, traffic flows (it used to kill the worker with signal 8)
--- http_config
upstream backends {
    hash $uri;
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 weight=9223372036854775807;
    server 127.0.0.1:$TEST_NGINX_PORT_2 weight=9223372036854775807;
    server 127.0.0.1:$TEST_NGINX_PORT_3 weight=5;
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
my ($p1, $p2, $p3) = (port(1), port(2), port(3));
is(http_get('/x')->{status}, 200, 'nginx alone serves the configuration');
my $before = main::verbose();
my $r = http_get("/dynamic?upstream=backends&server=127.0.0.1:$p3&weight=2");
is($r->{status}, 400, 'weight=2 on the third server: 400');
is($r->{body}, "400 Bad Request: the weights of upstream \"backends\"'s primary servers would total more than "
             . "2305843009213693951, the most nginx's balancers can add up without overflow\n", 'one line naming the limit');
is(main::verbose(), $before, 'nothing changed');
is(http_get('/x')->{status}, 200, 'traffic flows');



=== TEST 5: a zone filled through the API until 507 writes a file that the next restart restores in full (the configuration's peers are freed before the file's are allocated)
--- http_config
upstream backends {
    zone zone_for_backends 32k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my ($added, $last) = (0, 0);
for my $i (1 .. 100) {
    $last = http_get('/dynamic?upstream=backends&add=&server=127.0.0.1:' . (30000 + $i))->{status};
    last if $last != 200;
    $added++;
}
is($last, 507, "adds until the zone is full: $added answered 200, then 507");
my $full = main::verbose();
my $file = main::slurp(main::state_file());
ok(eval { nginx_restart(); 1 }, 'nginx restarts') or diag($@);
is(main::verbose(), $full, 'after the restart: all ' . ($added + 1) . ' servers, as in the file');
is(main::slurp(main::state_file()), $file, 'the file is left as it was');
--- no_error_log
nothing was restored

=== TEST 6: a backup server written before hash (stock nginx accepts that order and keeps it as a backup): a change through the API writes it, and nginx -t, a restart and a reload accept the file (it used to be refused with [emerg]: nginx did not start again)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
    hash $uri;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200 "one\n"; }
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $r = http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&max_fails=3");
is($r->{status}, 200, 'one change through the API') or diag($r->{body});
is(main::slurp(main::state_file()),
   $main::HEADER . "server 127.0.0.1:$p1 weight=1 max_fails=3 fail_timeout=10;\n"
           . "server 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10 backup;\n",
   'the state file holds the backup server as configured');
my $after = main::verbose();
my ($rc, $out) = nginx_t();
is($rc, 0, 'nginx -t accepts the file') or diag($out);
ok(eval { nginx_restart(); 1 }, 'nginx restarts') or diag($@);
is(main::verbose(), $after, 'after the restart: the same servers');
ok(eval { nginx_reload(); 1 }, 'and reloads') or diag($@);
is(main::verbose(), $after, 'after the reload: the same');
is(http_get('/x')->{body}, "one\n", 'traffic flows');

=== TEST 7: the same with ip_hash; the APIs take such a backup too (a PUT of what GET lists used to be refused with UpstreamNoBackup)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
    ip_hash;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200 "one\n"; }
--- config
location /dynamic { dynamic_upstream; }
location /api { dynamic_upstream_api write=on; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $r = http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&max_fails=3");
is($r->{status}, 200, 'one change through the API') or diag($r->{body});
like(main::slurp(main::state_file()), qr/^server 127\.0\.0\.1:$p2 .* backup;( # id=\d+)?$/m, 'the state file holds the backup server');
my $after = main::verbose();
my ($rc, $out) = nginx_t();
is($rc, 0, 'nginx -t accepts the file') or diag($out);
ok(eval { nginx_restart(); 1 }, 'nginx restarts') or diag($@);
is(main::verbose(), $after, 'after the restart: the same servers');
is(http_get('/x')->{body}, "one\n", 'traffic flows');
my $listed = http_get('/api/9/http/upstreams/backends/servers')->{body};
my $put = http('PUT', '/api/9/http/upstreams/backends/servers', $listed);
is($put->{status}, 200, 'a PUT of what GET lists, the backup with it') or diag($put->{body});
my $post = http('POST', '/api/9/http/upstreams/backends/servers', qq({"server":"127.0.0.1:$p1","backup":true}));
is($post->{status}, 409, 'a POST of an address it has: 409, not UpstreamNoBackup') or diag($post->{body});
$r = http_get("/dynamic?upstream=backends&add=&backup=&server=127.0.0.1:" . port(3));
is($r->{status}, 200, 'the query API adds another backup') or diag($r->{body});
like(main::slurp(main::state_file()), qr/^server 127\.0\.0\.1:@{[port(3)]} .* backup;/m, 'written to the file');

=== TEST 8: the same with random (whose peers nginx 1.22 to 1.27.2 cannot change, only their parameters)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
    random;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200 "one\n"; }
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $r = http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&max_fails=3");
is($r->{status}, 200, 'one change through the API') or diag($r->{body});
like(main::slurp(main::state_file()), qr/^server 127\.0\.0\.1:$p2 .* backup;$/m, 'the state file holds the backup server');
my $after = main::verbose();
my ($rc, $out) = nginx_t();
is($rc, 0, 'nginx -t accepts the file') or diag($out);
ok(eval { nginx_restart(); 1 }, 'nginx restarts') or diag($@);
is(main::verbose(), $after, 'after the restart: the same servers');
is(http_get('/x')->{body}, "one\n", 'traffic flows');

=== TEST 9: a state file whose primary weights would give hash ... consistent a table past 64 MiB (written under round robin, the upstream made consistent since) is not restored on nginx >= 1.27.3: [error] naming the limit, the configuration's servers serve (it used to stall the first request for seconds and take hundreds of MB per worker)
--- http_config
upstream backends {
    hash $uri consistent;
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    return 200 "ok\n";
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = (port(1), port(2));
main::spew(main::state_file(), $main::HEADER . "server 127.0.0.1:$p1 weight=150000;\nserver 127.0.0.1:$p2;\n");
my ($rc, $out) = nginx_t();
is($rc, 0, 'nginx -t accepts the file (a restore failure is not fatal)') or diag($out);
nginx_restart();
if (nginx_at_least('1.27.3')) {
    like(error_log_text(), qr/\[error\].*dynamic_state_file "[^"]*backends\.state" for upstream "backends": upstream "backends" uses the consistent hash balancer, which keeps 160 points of 16 bytes per unit of its primary servers' weight in every worker: total weight 150001 would take 367 MiB, more than the 64 MiB allowed \(total weight at most 26214\): the configuration's servers are used/,
         '[error] naming the file and the limit');
    is(main::verbose(), "server 127.0.0.1:$p1 weight=1 max_fails=1 fail_timeout=10;\nserver 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10;\n",
       'the configuration\'s servers');
} else {
    is(main::verbose(), "server 127.0.0.1:$p1 weight=1 max_fails=1 fail_timeout=10;\nserver 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10;\n",
       'before 1.27.3 only parameters other than the weight are restored for this balancer');
}
is(http_get('/x')->{status}, 200, 'traffic flows');

=== TEST 10: random with a backup written before it keeps that backup, and takes no other, through every API and from a state file (nginx 1.28's random reads past its table with two backups once the primaries fail: its workers crashed holding the peers' lock)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
    random;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_2; return 200 "backup\n"; }
--- config
location /dynamic { dynamic_upstream; }
location /api { dynamic_upstream_api write=on; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
my $before = main::verbose();
my $reason = "upstream \"backends\" uses the random balancer, which takes no backup server but its configuration's (with more, nginx's random balancer reads past its table once the primary servers fail, and its workers crash)";
my $r = http_get("/dynamic?upstream=backends&add=&backup=&server=127.0.0.1:$p3");
is("$r->{status} $r->{body}", "400 400 Bad Request: $reason\n", 'a second backup: 400 with the reason');
main::plus_error(http('POST', '/api/9/http/upstreams/backends/servers', qq({"server":"127.0.0.1:$p3","backup":true})),
                 400, 'UpstreamNoBackup', $reason, 'Plus API POST of a second backup');
for my $put ([qq([{"server":"127.0.0.1:$p1"},{"server":"127.0.0.1:$p2","backup":true},{"server":"127.0.0.1:$p3","backup":true}]), 'two backups'],
             [qq([{"server":"127.0.0.1:$p1"},{"server":"127.0.0.1:$p3","backup":true}]), 'another backup instead']) {
    my $r = http('PUT', '/api/9/http/upstreams/backends/servers', $put->[0]);
    if (nginx_at_least('1.27.3')) {
        main::plus_error($r, 400, 'UpstreamNoBackup', $reason, "Plus API PUT with $put->[1]");
    } else {
        is($r->{status}, 409, "Plus API PUT with $put->[1]: 409 (random takes no other set before 1.27.3)");
    }
}
my $put = http('PUT', '/api/9/http/upstreams/backends/servers', http_get('/api/9/http/upstreams/backends/servers')->{body});
is($put->{status}, 200, 'a PUT of what GET lists (the configuration\'s backup): 200') or diag($put->{body});
is(main::verbose(), $before, 'the servers are as configured');
is(http_get('/x')->{body}, "backup\n", 'the primary fails: the backup serves, no worker crashes') for 1 .. 3;

main::spew(main::state_file(), $main::HEADER . "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2 backup;\nserver 127.0.0.1:$p3 backup;\n");
nginx_restart();
if (nginx_at_least('1.27.3')) {
    like(error_log_text(), qr/\[error\].*dynamic_state_file "[^"]*backends\.state" for upstream "backends": \Q$reason\E: the configuration's servers are used/,
         'a state file with a backup the configuration has not is not restored: [error] with the reason');
} else {
    like(error_log_text(), qr/\[error\].*dynamic_state_file "[^"]*backends\.state" for upstream "backends": its servers differ from the configuration's/,
         'before 1.27.3 a different set is not restored');
}
is(main::verbose(), $before, 'the configuration\'s servers');
is(http_get('/x')->{body}, "backup\n", 'traffic flows');

=== TEST 11: a balancer with fixed tables (random) restores each server's parameters from its state file, a server given twice taking its lines in order, the backup its own (on nginx 1.22-1.27.2 they are set in one pass: a server per list walk made the restart of 20,000 servers take 57 s)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3 backup;
    random;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_2; return 200 "two\n"; }
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3) = (port(1), port(2), port(3));
my $saved = "server 127.0.0.1:$p1 weight=1 max_fails=2 fail_timeout=5 down;\n"
          . "server 127.0.0.1:$p1 weight=1 max_fails=4 fail_timeout=10 max_conns=7 down;\n"
          . "server 127.0.0.1:$p2 weight=1 max_fails=0 fail_timeout=30;\n"
          . "server 127.0.0.1:$p3 weight=1 max_fails=1 fail_timeout=10 max_conns=3 backup;\n";
main::spew(main::state_file(), $main::HEADER . $saved);
nginx_restart();
is(main::verbose(), $saved, 'after the restart: each server as its line says');
is(http_get('/x')->{body}, "two\n", 'the servers marked down take no request') for 1 .. 3;
ok(eval { nginx_reload(); 1 }, 'nginx reloads') or diag($@);
is(main::verbose(), $saved, 'after the reload: the same');
SKIP: {
    skip('nginx >= 1.27.3: random takes the file\'s set of servers', 2) if nginx_at_least('1.27.3');
    main::spew(main::state_file(), $main::HEADER . $saved . "server 127.0.0.1:$p1 weight=1 max_fails=9 fail_timeout=10;\n");
    nginx_restart();
    like(error_log_text(), qr/\[error\].*dynamic_state_file "[^"]*backends\.state" for upstream "backends": its servers differ from the configuration's/,
         'a third line for a server the configuration has twice: not restored, [error] (its max_fails=9 was dropped unseen)');
    unlike(main::verbose(), qr/max_fails=9/, '  the configuration\'s servers');
}

=== TEST 12: a file the module wrote that the configuration no longer suits is not restored, and nginx still starts and reloads: a backup, then `hash` or `hash ... consistent` added to the upstream; static backups only (as written beside primaries nginx resolves, 1.27.3 and later), then those primaries made static: [error] naming the file and the reason, the configuration's servers serve, changes answer 500 leaving the file as it was; with the file deleted they work again (each was an [emerg]: nginx did not start again, hunt 33)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 backup;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; return 200 "one\n"; }
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3) = (port(1), port(2), port(3));
my $path = main::state_file();
is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&max_fails=3")->{status}, 200, 'a change writes the file');
like(main::slurp($path), qr/^server 127\.0\.0\.1:$p2 .* backup;/m, '  with the backup');
my $conf = main::slurp(conf_file());
my $file = main::slurp($path);
my ($rc, $out);
# (hash ... consistent before nginx 1.27.3 restores parameters only: it
# took the file's and dropped the backup flag, review 32.)
for my $balancer ('hash $uri', 'hash $uri consistent') {
    my $hashed = $conf =~ s{(server 127\.0\.0\.1:$p2 backup;\n)}{$1    $balancer;\n}r;
    $hashed =~ s{ backup;}{;};    # nginx refuses a backup beside hash written after it
    main::spew(conf_file(), $hashed);
    my $not_restored = qr/\[error\].*dynamic_state_file "\Q$path\E" for upstream "backends": backup servers, but the (?:consistent )?hash balancer does not allow them: the configuration's servers are used, and changes to the upstream are refused until the file is restored/;
    ($rc, $out) = nginx_t();
    is($rc, 0, "$balancer added: nginx -t passes") or diag($out);
    my $logged = length error_log_text();
    ok(eval { nginx_reload(); 1 }, '  a reload is accepted') or diag($@);
    like(substr(error_log_text(), $logged), $not_restored, '  [error]: the file is not restored, and why');
    is(main::verbose(), "server 127.0.0.1:$p1 weight=1 max_fails=1 fail_timeout=10;\nserver 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10;\n", '  the configuration\'s servers');
    is(http_get('/x')->{status}, 200, '  traffic flows');
    is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&weight=2")->{status}, 500, '  a change: 500');
    is(main::slurp($path), $file, '  the file is as it was');
    ok(eval { nginx_restart(); 1 }, '  and nginx restarts') or diag($@);
}
# Backups only, as nginx 1.27.3 and later write it beside resolved primaries.
main::spew(conf_file(), $conf);
main::spew($path, "$main::HEADER" . "server 127.0.0.1:$p3 weight=1 max_fails=1 fail_timeout=10 backup;\n");
($rc, $out) = nginx_t();
is($rc, 0, 'backups only, no resolved primary: nginx -t passes') or diag($out);
ok(eval { nginx_restart(); 1 }, '  nginx starts') or diag($@);
like(error_log_text(), qr/\[error\].*dynamic_state_file "\Q$path\E" for upstream "backends": every server of the file is a backup, and the configuration has no primary server that nginx resolves: at least one primary is needed: the configuration's servers are used/, '  [error] says why');
is(main::verbose(), "server 127.0.0.1:$p1 weight=1 max_fails=1 fail_timeout=10;\nserver 127.0.0.1:$p2 weight=1 max_fails=1 fail_timeout=10 backup;\n", '  the configuration\'s servers');
unlink $path or die "unlink: $!";
ok(eval { nginx_reload(); 1 }, 'the file deleted, a reload') or diag($@);
is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p1&weight=2")->{status}, 200, '  changes work again');
--- allow_error_log
dynamic_state_file "

=== TEST 13: hash ... consistent keeps its keys on their servers across the restore of a state file: the restored peers keep the configuration's spelling of each address (`127.0.0.1:0PORT`), by which nginx places their points (on nginx 1.27.3 and later the restore named them by their addresses: most keys moved to other servers at the first reload after any change, hunt 33)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    hash $arg_k consistent;
    server 127.0.0.1:0$TEST_NGINX_PORT_1;
    server 127.0.0.1:0$TEST_NGINX_PORT_2;
    server 127.0.0.1:0$TEST_NGINX_PORT_3;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location /api { dynamic_upstream_api; }
location / { proxy_pass http://backends; }
--- perl
my $placement = sub { join ' ', map { my $r = http_get("/x?k=key$_"); $r->{status} == 200 ? $r->{body} =~ s/\n//r : $r->{status} } 1 .. 90 };
my $names = sub { join ' ', http_get('/api/9/http/upstreams/backends/servers')->{body} =~ /"server":"([^"]+)"/g };
my $before = $placement->();
my $spelled = join ' ', map { '127.0.0.1:0' . port($_) } 1 .. 3;
is($names->(), $spelled, 'the servers as the configuration spells them');
is(http_get('/dynamic?upstream=backends&server=127.0.0.1:' . port(1) . '&max_fails=2')->{status}, 200, 'a change writes the file');
ok(eval { nginx_reload(); 1 }, 'a reload restores it') or diag($@);
like(http_get('/dynamic?upstream=backends&verbose=')->{body}, qr/^server 127\.0\.0\.1:@{[port(1)]} weight=1 max_fails=2 /m, '  restored');
is($names->(), $spelled, '  the same spellings');
is($placement->(), $before, '  every key on the server it had');
ok(eval { nginx_restart(); 1 }, 'a restart') or diag($@);
is($placement->(), $before, '  every key on the server it had');

=== TEST 14: a balancer with fixed tables (random) restores the parameters of servers whatever their spelling: an IPv4-compatible IPv6 address, which nginx names [::1.2.3.4] and Rust writes [::102:304] (before 1.27.3 the file was refused as different: changes answered 500), and a port with a leading zero; nothing is sent to them
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:0$TEST_NGINX_PORT_1;
    server [::1.2.3.4]:$TEST_NGINX_PORT_2;
    server [::102:305]:$TEST_NGINX_PORT_2 backup;
    random;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my ($p1, $p2) = (port(1), port(2));
for my $server ("127.0.0.1:$p1", "[::1.2.3.4]:$p2", "[::102:305]:$p2") {
    my $r = http_get("/dynamic?upstream=backends&server=$server&max_fails=7");
    is($r->{status}, 200, "max_fails=7 on $server") or diag($r->{body});
}
my $changed = main::verbose();
is(() = $changed =~ /max_fails=7/g, 3, 'three servers changed') or diag($changed);
ok(eval { nginx_restart(); 1 }, 'a restart') or diag($@);
unlike(error_log_text(), qr/\[error\]/, '  restores the file without an error');
is(main::verbose(), $changed, '  every server as it was');
