# dynamic_upstream: 507 when the upstream's zone has no room for another
# peer. 32k is the smallest zone nginx accepts (8 pages). The refusal changes
# nothing, listing and changes that need no memory keep working, and memory
# of removed peers is reused.
use lib 't/lib';
use NginxTest;
use NginxTest::Files;

# fill(UPSTREAM, PREFIX, MAX[, EXTRA]): adds PREFIX.N:80 for N = 1.. until an
# add is refused; returns (number added, the refusing response).
sub fill {
    my ($upstream, $prefix, $max, $extra) = @_;
    $extra //= '';
    my $n = 0;
    while ($n < $max) {
        my $addr = sprintf '%s.%d.%d:80', $prefix, int(($n + 1) / 250), ($n + 1) % 250 + 1;
        my $r = http_get("/dynamic?upstream=$upstream&add=&server=$addr$extra");
        if ($r->{status} != 200) {
            my $l = http_get("/dynamic?upstream=$upstream&verbose=");
            is($l->{status}, 200, "verbose listing after the refused add of $addr");
            my @lines = split /\n/, $l->{body};
            ok(!(grep { /^server \Q$addr\E / } @lines), "the refused $addr is not listed");
            is(scalar(grep { / weight=1 max_fails=1 fail_timeout=10;$/ } @lines), scalar(@lines),
               'every listed peer has default parameters (nothing half-added)');
            return ($n, $r, $addr, scalar @lines);
        }
        $n++;
    }
    return ($n, undef);
}

our $FULL = qr/\A507 Insufficient Storage: shared memory zone "small" \(32k\) has no room left\n\z/;

run_tests();
__DATA__

=== TEST 1: adding until the zone is full answers 507 naming the zone and its size; nothing changes
--- http_config
upstream backends {
    zone small 32k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $p1 = port(1);
my ($added, $r, $refused) = main::fill('small', '10.9', 5000);
ok(defined $r, "the zone filled up after $added peers");
cmp_ok($added, '>=', 5, 'a 32k zone holds a few added peers');
is($r->{status}, 507, '507 when full');
like($r->{body}, $main::FULL, 'the reason names the zone and its size');
is($r->{headers}{'content-type'}, 'text/plain', 'text/plain');

my $list = http_get('/dynamic?upstream=small&verbose=');
is($list->{status}, 200, 'listing still works');
my @lines = split /\n/, $list->{body};
is(scalar @lines, 1 + $added, 'the listing has the configured and the added peers');
is($lines[0], "server 127.0.0.1:$p1 weight=1 max_fails=1 fail_timeout=10;", 'configured peer first');
ok(!(grep { /\Q$refused\E/ } @lines), 'the refused peer is not listed');

my $again = http_get("/dynamic?upstream=small&add=&server=$refused&weight=2");
is($again->{status}, 507, 'still 507 on the next add');
like($again->{body}, $main::FULL, 'same reason');
is(http_get('/dynamic?upstream=small&verbose=')->{body}, $list->{body}, 'nothing changed');

my $backup = http_get('/dynamic?upstream=small&add=&backup=&server=10.8.0.1:80');
is($backup->{status}, 507, 'a first backup (a new backup list) is refused too');
like($backup->{body}, $main::FULL, 'same reason');
is(http_get('/dynamic?upstream=small&verbose=')->{body}, $list->{body}, 'nothing changed');

my $w = http_get("/dynamic?upstream=small&server=127.0.0.1:$p1&weight=2");
is($w->{status}, 200, 'changing parameters needs no room and works');
like($w->{body}, qr/\Aserver 127\.0\.0\.1:$p1 weight=2 max_fails=1 fail_timeout=10;\n/, 'weight changed');
my $d = http_get('/dynamic?upstream=small&server=10.9.0.2:80&down=');
is($d->{status}, 200, 'down works on a full zone');
like($d->{body}, qr/^server 10\.9\.0\.2:80 weight=1 max_fails=1 fail_timeout=10 down;$/m, 'listed down');



=== TEST 2: after removing peers, adds succeed again; memory is reused, not leaked
--- http_config
upstream backends {
    zone small 32k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $p1 = port(1);
my ($added, $r) = main::fill('small', '10.9', 5000);
is($r && $r->{status}, 507, "full after $added peers");
my @peers = http_get('/dynamic?upstream=small')->{body} =~ /^server (\S+);$/mg;
is(scalar @peers, $added + 1, 'all listed');

for my $peer (@peers[1 .. 3]) {
    my $x = http_get("/dynamic?upstream=small&remove=&server=$peer");
    is($x->{status}, 200, "remove $peer");
}
my $x;
ok(poll_until(sub { $x = http_get('/dynamic?upstream=small&add=&server=10.7.0.1:80'); $x->{status} == 200 }, 5,
              'add after removals'),
   'an add succeeds again after removing peers') or diag("$x->{status} $x->{body}");
my ($refill, $r2) = main::fill('small', '10.6', 5000);
is($r2 && $r2->{status}, 507, 'full again');
like($r2->{body}, $main::FULL, 'same reason');
is($refill + 1, 3, 'exactly the room of the three removed peers was reused');

# remove every added peer: the zone is back to its start; it fills to the same count
@peers = http_get('/dynamic?upstream=small')->{body} =~ /^server (\S+);$/mg;
for my $peer (grep { $_ ne "127.0.0.1:$p1" } @peers) {
    my $y = http_get("/dynamic?upstream=small&remove=&server=$peer");
    is($y->{status}, 200, "remove $peer") if $y->{status} != 200;
}
is(http_get('/dynamic?upstream=small')->{body}, "server 127.0.0.1:$p1;\n", 'back to the configured peer');
my $again;
ok(poll_until(sub { $again = http_get('/dynamic?upstream=small&add=&server=10.5.0.1:80'); $again->{status} == 200 },
              5, 'first add after emptying'), 'adds work after emptying');
my ($third, $r3) = main::fill('small', '10.4', 5000);
is($r3 && $r3->{status}, 507, 'full a third time');
is($third + 1, $added, 'the same number of peers fits as at first (no leak)');



=== TEST 3: a full zone answers 507 in JSON
--- http_config
upstream backends {
    zone small 32k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
use JSON::PP ();
my ($added, $r) = main::fill('small', '10.9', 5000, '&format=json');
is($r && $r->{status}, 507, "full after $added peers");
like($r->{headers}{'content-type'}, qr{^application/json}, 'application/json');
my $j = eval { JSON::PP->new->decode($r->{body}) };
ok($j, 'JSON body') or diag($r->{body});
is($j->{error}{status}, 507, 'error.status');
like($j->{error}{code}, qr/^[a-z_]+$/, 'error.code');
is($j->{error}{text}, 'shared memory zone "small" (32k) has no room left', 'error.text');
my $l = http_get('/dynamic?upstream=small&verbose=');
is(scalar(() = $l->{body} =~ /^server \S+ weight=1 max_fails=1 fail_timeout=10;$/mg), $added + 1, 'listing still works');



=== TEST 4: two upstreams: filling one zone leaves the other usable
--- http_config
upstream backends {
    zone small 32k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
upstream other {
    zone other 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my ($added, $r) = main::fill('small', '10.9', 5000);
is($r && $r->{status}, 507, "small full after $added peers");
my $o = http_get('/dynamic?upstream=other&add=&server=10.1.1.1:80');
is($o->{status}, 200, 'the other zone still accepts peers');
is($o->{body}, "server 127.0.0.1:" . port(2) . ";\nserver 10.1.1.1:80;\n", 'listed');

=== TEST 5: a zone with room for nginx's copy of the servers but not for the module's bookkeeping: no nginx [crit] (nginx -t, start), an [error] that says what is off and what to do; its dynamic_state_file is not restored and stays as it is (changes answer 507)
--- http_config
upstream tight {
    zone tight 32k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/tight.state;
    server 127.0.0.1:30001;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $conf = main::slurp(conf_file());
my $with = sub {
    my ($n) = @_;
    my $servers = join "\n    ", map { 'server 127.0.0.1:' . (30000 + $_) . ';' } 1 .. $n;
    return $conf =~ s/server 127\.0\.0\.1:30001;/$servers/r;
};
my $no_room = qr/\[error\].*dynamic upstream: zone "tight" \(32 KiB\) has no room for the module's bookkeeping after upstream "tight"'s servers: the upstream cannot be changed, its dynamic_state_file is not restored and its health checks are off; give the zone more room/;
# The number of servers whose copy leaves no room for the bookkeeping
# (nginx's structures differ between versions): nginx -t says so.
my ($tight, @crit);
for my $n (2 .. 80) {
    main::spew(conf_file(), $with->($n));
    my ($code, $out) = nginx_t();
    push @crit, $out if $out =~ /\[crit\]/;
    last if $code != 0;   # nginx's own copy no longer fits
    if ($out =~ $no_room) { $tight = $n; last }
}
ok($tight, "nginx -t names the zone without room for the bookkeeping (at $tight servers)");
is("@crit", '', '  and logs no [crit]');
my $state = data_dir() . '/tight.state';
main::spew($state, "server 127.0.0.1:30001;\nserver 127.0.0.1:30002;\n");
main::spew(conf_file(), $with->($tight // 2));
nginx_restart();
like(error_log_text(), $no_room, 'at start: the same [error]');
like(error_log_text(), qr/\[error\].*dynamic_state_file "\Q$state\E" for upstream "tight": not restored: its zone has no room for the module's bookkeeping; the configuration's servers are used: give the zone more room, then reload nginx/,
     '  and one naming the state file not restored');
my $r = http_get('/dynamic?upstream=tight&add=&server=127.0.0.1:30099');
is($r->{status}, 507, 'a change: 507');
like($r->{body}, qr/upstream "tight": its zone had no room for the module's bookkeeping at start/, '  saying why');
is(main::slurp($state), "server 127.0.0.1:30001;\nserver 127.0.0.1:30002;\n", 'the state file is as it was');
--- allow_error_log
has no room for the module's bookkeeping
not restored: its zone has no room
