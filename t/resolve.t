# `server NAME resolve` (nginx 1.27.3 and later): the peers nginx's
# resolver makes are nginx's. The APIs list them (JSON says
# "resolved_from"), refuse to change or remove them (409 with the reason),
# never write them into a state file, and after a reload nginx carries them
# over (its zone copy) without the module duplicating them. A tiny DNS
# server (NginxTest::Dns) on the UDP side of port 5 answers backend.test
# with 127.0.0.1.

use lib 't/lib';
use NginxTest;
use NginxTest::Dns;
use NginxTest::Files;
use NginxTest::PlusApi;

plan skip_all => 'server ... resolve exists from nginx 1.27.3 on' unless nginx_at_least('1.27.3');

our $HEADER = "# Written by nginx-dynamic-upstream after every change through its APIs.\n";

sub line { "server 127.0.0.1:$_[0] weight=1 max_fails=1 fail_timeout=10;\n" }
sub verbose { http_get('/dynamic?upstream=backends&verbose=')->{body} }

# Waits until nginx resolved backend.test: the verbose listing is LINES.
sub resolved {
    my ($lines, $what) = @_;
    ok(poll_until(sub { main::verbose() eq $lines }, 15, "$what: the resolved peer listed"), "$what: listed")
        or diag(main::verbose());
}

$ENV{TEST_NGINX_RESOLVER} = 'resolver 127.0.0.1:$TEST_NGINX_PORT_5 ipv6=off valid=1s; resolver_timeout 1s;';

run_tests();
__DATA__

=== TEST 1: a resolved peer is listed, refused to change or remove with the reason, kept out of the state file; traffic reaches it
--- http_config
$TEST_NGINX_RESOLVER
upstream backends {
    zone backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server backend.test:$TEST_NGINX_PORT_2 resolve;
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
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $dns = main::dns_server(port(5), { 'backend.test' => ['127.0.0.1'] });
main::resolved(main::line($p1) . main::line($p2), 'start');
my $json = http_get('/dynamic?upstream=backends&format=json')->{body};
like($json, qr/"name":"127\.0\.0\.1:$p2"[^}]*"resolved_from":"backend\.test"/, 'JSON: resolved_from');
unlike($json, qr/"name":"127\.0\.0\.1:$p1"[^}]*"resolved_from"/, 'JSON: no resolved_from for a static peer');

my $reason = "409 409 Conflict: server 127.0.0.1:$p2 of upstream \"backends\" was resolved from \"backend.test\" by nginx "
           . "(server ... resolve): nginx adds and removes it; change the configuration's server line instead\n";
for my $q ("remove=&server=127.0.0.1:$p2", "server=127.0.0.1:$p2&weight=3", "server=127.0.0.1:$p2&down=") {
    my $r = http_get("/dynamic?upstream=backends&$q");
    is("$r->{status} $r->{body}", $reason, "$q: 409 with the reason");
}
my $r = http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$p2");
is("$r->{status} $r->{body}", "400 400 Bad Request: server 127.0.0.1:$p2 already exists in upstream \"backends\"\n",
   'adding its address: server_exists');
is(main::verbose(), main::line($p1) . main::line($p2), 'nothing changed');

$r = http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$p3");
is($r->{status}, 200, 'a static peer added') or diag($r->{body});
is(main::slurp(data_dir() . '/backends.state'), $main::HEADER . main::line($p1) . main::line($p3),
   'the state file holds the static peers only');
$r = http_get("/dynamic?upstream=backends&remove=&server=127.0.0.1:$p3");
is($r->{status}, 200, 'and removed') or diag($r->{body});

my %seen;
$seen{ http_get('/')->{body} }++ for 1 .. 10;
is_deeply(\%seen, { "$p1\n" => 5, "$p2\n" => 5 }, 'round robin over the static and the resolved peer');
--- allow_error_log
could not be resolved



=== TEST 2: after a reload the resolved peer is still there once, next to the state file's static peers
--- http_config
$TEST_NGINX_RESOLVER
upstream backends {
    zone backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server backend.test:$TEST_NGINX_PORT_2 resolve;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $dns = main::dns_server(port(5), { 'backend.test' => ['127.0.0.1'] });
main::resolved(main::line($p1) . main::line($p2), 'start');
my $r = http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$p3");
is($r->{status}, 200, 'a static peer added') or diag($r->{body});
main::resolved(main::line($p1) . main::line($p2) . main::line($p3), 'after the add');
nginx_reload();
main::resolved(main::line($p1) . main::line($p3) . main::line($p2), 'after the reload');
is(main::slurp(data_dir() . '/backends.state'), $main::HEADER . main::line($p1) . main::line($p3),
   'the state file still holds the static peers only');
--- allow_error_log
could not be resolved



=== TEST 3: the NGINX Plus API follows the same rules: PATCH and DELETE of a resolved peer by ID are 409, POST of its address 409, and a PUT replaces the static peers only
--- http_config
$TEST_NGINX_RESOLVER
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server backend.test:$TEST_NGINX_PORT_2 resolve;
}
--- config
location /dynamic { dynamic_upstream; }
location /api { dynamic_upstream_api write=on; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $dns = main::dns_server(port(5), { 'backend.test' => ['127.0.0.1'] });
main::resolved(main::line($p1) . main::line($p2), 'start');
my $servers = main::plus_json(http_get('/api/9/http/upstreams/backends/servers'), 200, 'GET');
is_deeply([map { "$_->{id} $_->{server}" } @$servers], ["0 127.0.0.1:$p1", "1 backend.test:$p2"],
          'the resolved peer is listed with its server line (as NGINX Plus does) and the next free ID');
my $reason = "server 127.0.0.1:$p2 of upstream \"backends\" was resolved from \"backend.test\" by nginx "
           . "(server ... resolve): nginx adds and removes it; change the configuration's server line instead";
main::plus_error(http('PATCH', '/api/9/http/upstreams/backends/servers/1', '{"weight":3}'), 409, 'ServerResolved',
                 $reason, 'PATCH');
main::plus_error(http('DELETE', '/api/9/http/upstreams/backends/servers/1'), 409, 'ServerResolved', $reason, 'DELETE');
main::plus_error(http('POST', '/api/9/http/upstreams/backends/servers', qq({"server":"127.0.0.1:$p2"})), 409,
                 'EntryExists', "server 127.0.0.1:$p2 already exists in upstream \"backends\"", 'POST of its address');
my $r = http('PUT', '/api/9/http/upstreams/backends/servers', qq([{"server":"127.0.0.1:$p1"},{"server":"127.0.0.1:$p2"}]));
main::plus_error($r, 409, 'ServerResolved', $reason, 'PUT naming the resolved peer');
is(main::verbose(), main::line($p1) . main::line($p2), 'nothing changed');

$r = http('PUT', '/api/9/http/upstreams/backends/servers', qq([{"server":"127.0.0.1:$p3"}]));
my $put = main::plus_json($r, 200, 'PUT of the static peers');
is_deeply([map { "$_->{id} $_->{server}" } @$put], ["1 backend.test:$p2", "2 127.0.0.1:$p3"],
          'the answer shows the resolved peer kept and the new static one');
is(main::verbose(), main::line($p2) . main::line($p3), 'the resolved peer was neither removed nor duplicated');
$r = http('PUT', '/api/9/http/upstreams/backends/servers', qq([{"server":"127.0.0.1:$p3"}]));
is($r->{headers}{'x-upstream-changed'}, 'false', 'the same static peers again: no change');
# A PUT of what GET lists keeps the resolved server (review 33: it was
# refused as a host name); changing it is refused as a PATCH of it is.
my $listed = http_get('/api/9/http/upstreams/backends/servers')->{body};
$r = http('PUT', '/api/9/http/upstreams/backends/servers', $listed);
is("$r->{status} $r->{headers}{'x-upstream-changed'}", '200 false', 'a PUT of the servers as GET lists them: 200, nothing changed')
    or diag($r->{body});
(my $reweighted = $listed) =~ s/("server":"backend\.test:$p2","weight":)1\b/${1}5/ or die "no resolved server in $listed";
main::plus_error(http('PUT', '/api/9/http/upstreams/backends/servers', $reweighted), 409, 'ServerResolved',
                 "server \"backend.test:$p2\" is resolved by nginx (server ... resolve): a PUT keeps it as it is, and "
                 . "cannot change its \"weight\"; change the configuration's server line instead",
                 'a PUT that changes the resolved server');
$r = http('PUT', '/api/9/http/upstreams/backends/servers', qq([{"server":"backend.test:$p2"}]));
is($r->{status}, 200, 'a PUT of the resolved server alone: 200') or diag($r->{body});
is(main::verbose(), main::line($p2), '  the static servers removed, the resolved one kept');
--- allow_error_log
could not be resolved

=== TEST 4: a state file holds the static servers only: where every primary is resolved by nginx, it may hold backups only, or none (the module's file of no server), and nginx -t, a reload and a restart restore exactly that (a file of backups only used to stop nginx with [emerg]; an empty one brought the configuration's servers back)
--- http_config
$TEST_NGINX_RESOLVER
upstream backends {
    zone backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server backend.test:$TEST_NGINX_PORT_2 resolve;
}
upstream rb {
    zone rb 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/rb.state;
    server backend.test:$TEST_NGINX_PORT_2 resolve;
    server 127.0.0.1:$TEST_NGINX_PORT_3 backup;
}
--- config
location /dynamic { dynamic_upstream; }
location /api { dynamic_upstream_api write=on; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
my $dns = main::dns_server(port(5), { 'backend.test' => ['127.0.0.1'] });
my $rb = sub { http_get('/dynamic?upstream=rb&verbose=')->{body} };
my $backup = sub { "server 127.0.0.1:$_[0] weight=1 max_fails=1 fail_timeout=10 backup$_[1];\n" };
main::resolved(main::line($p1) . main::line($p2), 'start');
ok(poll_until(sub { $rb->() eq main::line($p2) . $backup->($p3, '') }, 15, 'rb resolved'), 'rb: resolved');
my $file = sub { (my $f = main::slurp(data_dir() . "/$_[0].state")) =~ s/ # id=\d+$//mg; $f };

my $r = http_get("/dynamic?upstream=backends&remove=&server=127.0.0.1:$p1");
is($r->{status}, 200, 'the last static server of backends removed (the resolved one serves)') or diag($r->{body});
is($file->('backends'), $main::HEADER, 'its file: the header, no server');
$r = http_get("/dynamic?upstream=rb&server=127.0.0.1:$p3&down=");
is($r->{status}, 200, 'rb\'s static backup set down') or diag($r->{body});
is($file->('rb'), $main::HEADER . "server 127.0.0.1:$p3 weight=1 max_fails=1 fail_timeout=10 backup down;\n",
   'its file: the backup only');
my ($rc, $out) = nginx_t();
is($rc, 0, 'nginx -t accepts both files') or diag($out);
ok(eval { nginx_restart(); 1 }, 'nginx restarts') or diag($@);
main::resolved(main::line($p2), 'after the restart: backends has the resolved server only');
ok(poll_until(sub { $rb->() eq main::line($p2) . $backup->($p3, ' down') }, 15, 'rb'), 'rb: the backup, still down')
    or diag($rb->());

main::plus_json(http('POST', '/api/9/http/upstreams/rb/servers', qq({"server":"127.0.0.1:$p4","backup":true})), 201,
                'a second backup through the NGINX Plus API');
$r = http_get("/dynamic?upstream=rb&remove=&server=127.0.0.1:$p3");
is($r->{status}, 200, 'the first removed') or diag($r->{body});
$r = http_get("/dynamic?upstream=rb&remove=&server=127.0.0.1:$p4");
is($r->{status}, 200, 'and the second: rb has no static server') or diag($r->{body});
is($file->('rb'), $main::HEADER, 'its file: the header, no server');
nginx_reload();
ok(poll_until(sub { $rb->() eq main::line($p2) }, 15, 'rb after the reload'), 'after the reload: the configuration\'s backup does not come back')
    or diag($rb->());
main::resolved(main::line($p2), 'after the reload: nor does backends\' static server');
--- allow_error_log
could not be resolved

=== TEST 5: must_die: "check" in an upstream with a "resolve" server is refused, saying why (it was refused with "server address \"\" is empty")
--- http_config
$TEST_NGINX_RESOLVER
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server backend.test:$TEST_NGINX_PORT_2 resolve backup;
    check interval=1000 rise=1 fall=1 timeout=500 type=tcp;
}
--- config
location /dynamic { dynamic_upstream; }
--- must_die
--- error_log
qr/\[emerg\].*"check" does not probe servers with "resolve" \(nginx adds and removes their peers at run time\) in upstream "backends"/

=== TEST 6: the REST API refuses to replace or delete an upstream of the configuration that has "resolve" servers (nginx's resolver changes its list through the upstream's peer.data, where the run-time version sat: nginx wrote past the worker's structure at every DNS change, hunt 23); such an upstream in dyups_upstream_conf is not used: the configuration's servers stay, with a [warn]
--- http_config
$TEST_NGINX_RESOLVER
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server backend.test:$TEST_NGINX_PORT_2 resolve;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    location / { dyups_interface; }
}
--- config
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
my $dns = main::dns_server(port(5), { 'backend.test' => ['127.0.0.1'] });
main::resolved(main::line($p1) . main::line($p2), 'start');
my $reason = "409 upstream \"backends\" of the configuration has servers with \"resolve\", whose peers nginx's resolver "
           . "changes: it cannot be replaced or deleted through this API; change its other servers with the NGINX Plus "
           . "API or the query-string API";
my $r = http('POST', "http://127.0.0.1:$p4/upstream/backends", "server 127.0.0.1:$p3;");
like("$r->{status} $r->{body}", qr/\A\Q$reason\E\n?\z/, 'POST: 409 with the reason');
$r = http('DELETE', "http://127.0.0.1:$p4/upstream/BACKENDS");
like("$r->{status} $r->{body}", qr/\A\Q$reason\E\n?\z/, 'DELETE (any case): 409 with the reason');
$r = http('POST', "http://127.0.0.1:$p4/upstream/other", "server 127.0.0.1:$p3;");
is("$r->{status} $r->{body}", '200 success', 'another upstream: 200');
is(main::verbose(), main::line($p1) . main::line($p2), 'backends unchanged');

# An entry for it in the file (written before the configuration had
# "resolve", or by hand): not used.
main::spew(data_dir() . '/dyups.conf', $main::HEADER . "upstream backends {\n    server 127.0.0.1:$p3;\n}\n");
nginx_restart();
main::resolved(main::line($p1) . main::line($p2), 'after a restart with the entry');
my %seen;
$seen{ http_get('/')->{body} }++ for 1 .. 10;
is_deeply(\%seen, { "$p1\n" => 5, "$p2\n" => 5 }, 'traffic goes to the configuration\'s servers');
like(error_log_text(), qr/\[warn\].*upstream "backends" has servers with "resolve": its run-time replacement or deletion is not used/,
     '[warn] says why');

=== TEST 7: a static server added while DNS did not return its address, then a resolved peer of the same address: the static one is the one the APIs name (a PUT of the servers as listed applies; down and remove by address reach it, a backup too), and the refusal of a resolved-only address names the name it was resolved from (hunt 27: the PUT answered 409 'resolved from ""', and a static backup could not be reached by address)
--- http_config
$TEST_NGINX_RESOLVER
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server backend.test:$TEST_NGINX_PORT_2 resolve;
}
upstream other {
    zone other 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server backend.test:$TEST_NGINX_PORT_3 resolve;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; listen 127.0.0.1:$TEST_NGINX_PORT_2; return 200 "$server_port\n"; }
--- config
location /dynamic { dynamic_upstream; }
location /api { dynamic_upstream_api write=on; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $dns = main::dns_server(port(5), { 'other.test' => ['127.0.0.1'] });
my $r = http_get("/dynamic?upstream=backends&add=&server=127.0.0.1:$p2");
is($r->{status}, 200, 'static X added while DNS does not answer backend.test') or diag($r->{body});
$r = http_get("/dynamic?upstream=other&add=&backup=&server=127.0.0.1:$p3");
is($r->{status}, 200, 'a static backup Y likewise') or diag($r->{body});
$dns->stop;
$dns = main::dns_server(port(5), { 'backend.test' => ['127.0.0.1'] });
main::resolved(main::line($p1) . main::line($p2) . main::line($p2), 'X resolved too');
ok(poll_until(sub { http_get('/dynamic?upstream=other&verbose=')->{body} =~ /\Q:$p3\E.*\n.*\Q:$p3\E/s }, 15, 'Y'), 'Y resolved too');
my $servers = '/api/9/http/upstreams/backends/servers';
$r = http('PUT', $servers, qq([{"server":"127.0.0.1:$p1"},{"server":"127.0.0.1:$p2"}]));
is($r->{status}, 200, 'PUT of the static servers as GET lists them') or diag($r->{body});
$r = http('PUT', $servers, qq([{"server":"127.0.0.1:$p1"},{"server":"127.0.0.1:$p2","weight":2}]));
is($r->{status}, 200, 'a PUT that re-weights static X') or diag($r->{body});
my @listed = map { "$_->{server} w$_->{weight}" } @{ main::plus_json(http_get($servers), 200, 'GET') };
is_deeply([sort @listed], [sort("127.0.0.1:$p1 w1", "127.0.0.1:$p2 w2", "backend.test:$p2 w1")],
          'static X re-weighted, the resolved one as it was');
my ($y) = grep { $_->{backup} } @{ main::plus_json(http_get('/api/9/http/upstreams/other/servers'), 200, 'GET other') };
$r = http('PATCH', "/api/9/http/upstreams/other/servers/$y->{id}", '{"max_fails":7}');
my $patched = main::plus_json($r, 200, 'PATCH of static backup Y by ID');
is(join(' ', map { $patched->{$_} } qw(id server max_fails)), "$y->{id} 127.0.0.1:$p3 7",
   '  the answer is Y, patched (review 29: the resolved twin\'s, unchanged)');
ok($patched->{backup}, '  a backup');
$r = http_get("/dynamic?upstream=other&server=127.0.0.1:$p3&down=");
is($r->{status}, 200, 'down of static backup Y by address') or diag($r->{body});
like($r->{body}, qr/\Q127.0.0.1:$p3\E[^\n]*max_fails=7[^\n]*backup down;/, '  the backup is down');
$r = http_get("/dynamic?upstream=other&remove=&server=127.0.0.1:$p3");
is($r->{status}, 200, 'remove of static backup Y by address') or diag($r->{body});
is(http_get('/dynamic?upstream=other&verbose=')->{body}, main::line($p1) . main::line($p3), '  only the resolved Y is left');
$r = http('PUT', '/api/9/http/upstreams/other/servers', qq([{"server":"127.0.0.1:$p1"},{"server":"127.0.0.1:$p3"}]));
is($r->{status}, 409, 'a PUT naming the resolved-only Y: 409');
like($r->{body}, qr/was resolved from \\"backend\.test:$p3\\"|was resolved from \\"backend\.test\\"/, '  naming what it was resolved from') or diag($r->{body});
