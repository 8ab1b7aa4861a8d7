# Errors an operator can act on: the dyups zone's 507 names
# dyups_shm_zone_size and what a new size does, the query API's 409 for an
# upstream the REST API took over says how to hand it back (and doing so
# works), an unknown REST path lists every endpoint, and every API answer
# names the module's version and the nginx it was built for.
use lib 't/lib';
use NginxTest;
use NginxTest::Files;

# POSTs upstreams up0, up1, ... (one server each) until the dyups zone is
# full; returns the 507 answer and how many fitted.
sub fill_dyups {
    my $n = 0;
    while (1) {
        my $r = http('POST', "/upstream/up$n", 'server 127.0.0.1:30001;');
        return ($r, $n) if $r->{status} != 200 || $n > 5000;
        $n++;
    }
}

run_tests();
__DATA__

=== TEST 1: a full dyups zone answers 507 naming dyups_shm_zone_size; a new size keeps what dyups_upstream_conf saved
--- http_config
dyups_shm_zone_size 64k;
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
--- config
location / { dyups_interface; }
--- perl
my ($full, $n) = main::fill_dyups();
is($full->{status}, 507, "507 after $n upstreams");
is($full->{body}, 'shared memory zone "dynamic_upstream_dyups_v8" (64k) has no room left: raise '
   . 'dyups_shm_zone_size and reload; a new size makes a new zone, which starts with only the upstreams '
   . 'saved in dyups_upstream_conf', 'the answer says what to change and what it does');
my $conf = main::slurp(conf_file());
main::spew(conf_file(), $conf =~ s/dyups_shm_zone_size 64k;/dyups_shm_zone_size 1m;/r);
nginx_reload();
my $last = $n - 1;
is(http_get("/upstream/up$last")->{status}, 200, 'after the reload with a new size, the saved upstreams are there');
is(http('POST', "/upstream/up$n", 'server 127.0.0.1:30001;')->{status}, 200, 'and there is room for more');

=== TEST 2: 409 for a zone upstream the REST API replaced says how to hand it back; a reload does not, a restart without its entry does
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:30001; }
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
--- config
location /dynamic { dynamic_upstream; }
location / { dyups_interface; }
--- perl
my $file = data_dir() . '/dyups.conf';
is(http('POST', '/upstream/backends', 'server 127.0.0.1:30002;')->{status}, 200, 'REST replaces the upstream');
my $change = '/dynamic?upstream=backends&server=127.0.0.1:30001&weight=5';
my $expected = "409 Conflict: upstream \"backends\" is managed through the REST API since it was replaced or "
   . "deleted there: to manage it here again, remove its entry from $file and restart nginx "
   . "(a reload keeps the REST API's copy)\n";
is(http_get($change)->{body}, $expected, 'the 409 says how to hand it back');
nginx_reload();
is(http_get($change)->{body}, $expected, 'a reload does not hand it back');
my $saved = main::slurp($file);
like($saved, qr/^upstream backends \{/m, 'the file has its entry');
main::spew($file, $saved =~ s/^upstream backends \{.*?^\}\n//msr);
nginx_restart();
is(http_get($change)->{status}, 200, 'after removing the entry and restarting, the query API changes it again');
is(http_get('/dynamic?upstream=backends&verbose=')->{body},
   "server 127.0.0.1:30001 weight=5 max_fails=1 fail_timeout=10;\n", 'with the configuration\'s servers');

=== TEST 3: 409 without dyups_upstream_conf: a restart hands it back
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:30001; }
--- config
location /dynamic { dynamic_upstream; }
location / { dyups_interface; }
--- perl
is(http('DELETE', '/upstream/backends')->{status}, 200, 'REST deletes the upstream');
my $change = '/dynamic?upstream=backends&server=127.0.0.1:30001&down=';
is(http_get($change)->{body}, "409 Conflict: upstream \"backends\" is managed through the REST API since it was "
   . "replaced or deleted there: to manage it here again, restart nginx (a reload keeps the REST API's copy)\n",
   'the 409 says how to hand it back');
nginx_restart();
is(http_get($change)->{status}, 200, 'after a restart the query API changes it again');

=== TEST 4: an unknown REST path lists every endpoint
--- config
location / { dyups_interface; }
--- request
GET /nope
--- error_code: 404
--- response_body chomp
not found: use GET /list, GET /detail, GET /status, GET /upstream/NAME, POST /upstream/NAME or DELETE /upstream/NAME

=== TEST 5: every answer of both APIs names the module's version and the nginx it was built for
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:30001; }
--- config
location /dynamic { dynamic_upstream; }
location / { dyups_interface; }
--- perl
# The nginx under test: a module only loads into the nginx it was built for.
my ($nginx) = `$NginxTest::BINARY -v 2>&1` =~ m{nginx/(\S+)};
for my $req (['GET', '/dynamic?upstream=backends'], ['GET', '/dynamic?upstream=nope'], ['GET', '/list'],
             ['GET', '/status'], ['POST', '/upstream/x', 'server 127.0.0.1:30001;'], ['DELETE', '/upstream/x'],
             ['GET', '/nope']) {
    my $r = http(@$req);
    is($r->{headers}{'x-dynamic-upstream'}, "0.1.0 (nginx $nginx)", "@$req[0,1]: $r->{status} with the header");
}

=== TEST 6: a zone named as another upstream: [warn] at start naming both (the query API finds zones first, as ngx_dynamic_upstream does, so upstream=NAME reaches the zone's upstream)
--- http_config
upstream one {
    zone two 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream two {
    zone zone_two 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my ($p1, $p2) = (port(1), port(2));
like(error_log_text(), qr/\[warn\].*zone "two" of upstream "one" has the name of upstream "two": the query API's upstream=two reaches upstream "one", which finds zones first \(give the zone another name\)/,
     'the [warn] names the zone and both upstreams');
is(http_get('/dynamic?upstream=two')->{body}, "server 127.0.0.1:$p1;\n", 'upstream=two: the zone "two" (of upstream one)');
is(http_get('/dynamic?upstream=zone_two')->{body}, "server 127.0.0.1:$p2;\n", 'upstream two by its own zone');

=== TEST 10: 409 also for an upstream without a zone that the REST API replaced: it is the REST API's, whatever the query API could do with it before (hunt 26: 400 "has no zone")
--- http_config
upstream plain { server 127.0.0.1:30001; }
--- config
location /dynamic { dynamic_upstream; }
location / { dyups_interface; }
--- perl
my $change = '/dynamic?upstream=plain&server=127.0.0.1:30001&weight=5';
like(http_get($change)->{body}, qr/^400 Bad Request: upstream "plain" has no zone/, 'before: it has no zone');
is(http('POST', '/upstream/plain', 'server 127.0.0.1:30002;')->{status}, 200, 'REST replaces the upstream');
is(http_get($change)->{body}, "409 Conflict: upstream \"plain\" is managed through the REST API since it was "
   . "replaced or deleted there: to manage it here again, restart nginx (a reload keeps the REST API's copy)\n",
   'then: 409, saying how to hand it back');
