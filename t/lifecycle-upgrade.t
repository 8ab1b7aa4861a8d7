# A binary upgrade (kill -USR2, then -QUIT of the old master: Debian's
# `service nginx upgrade`) runs two nginx instances side by side, each with
# its own shared memory, both reading and writing the same state files.
# Every change answered 200 must be in the state the surviving instance
# serves and in its files (each block collects them and checks at the end);
# a change an old instance's worker cannot make safely is refused (503) and
# leaves nothing behind. A rollback (the new master quits) needs a reload
# of the old one, and for run-time upstreams a restart, which the 503s say.
# `nginx -t` takes nothing over.
#
# Each block's API is on port 3; before the upgrade the test moves it to
# port 4 in the configuration file, so that port 3 reaches only the old
# instance's workers and port 4 only the new one's.
use lib 't/lib';
use NginxTest;
use NginxTest::Files;
use NginxTest::QueryApi qw(srv);

# Moves the API from port 3 to port 4 in the configuration file (the new
# instance reads it).
sub move_api_for_new_instance {
    my ($p3, $p4) = (port(3), port(4));
    my $conf = slurp(conf_file());
    $conf =~ s/listen 127\.0\.0\.1:$p3;/listen 127.0.0.1:$p4;/ or die "no listen on port 3 in the configuration\n";
    spew(conf_file(), $conf);
}

# A rollback as nginx documents it for an old master whose workers still
# run: QUIT to the new master; the old one is the master again. Then the
# configuration file gets the API back on port 3 (for the reload that
# follows).
sub roll_back {
    my ($old, $new) = @_;
    kill 'QUIT', $new or die "kill QUIT $new: $!";
    ok(poll_until(sub { !kill(0, $new) && (master_pid() // 0) == $old }, 10), 'the old master is the master again');
    my ($p3, $p4) = (port(3), port(4));
    my $conf = slurp(conf_file());
    $conf =~ s/listen 127\.0\.0\.1:$p4;/listen 127.0.0.1:$p3;/ or die "no listen on port 4 in the configuration\n";
    spew(conf_file(), $conf);
}

# A request to the old instance (port 3) or the new one (port 4).
sub old_api { my ($m, $uri, $body) = @_; http($m // 'GET', 'http://127.0.0.1:' . port(3) . $uri, $body) }
sub new_api { my ($m, $uri, $body) = @_; http($m // 'GET', 'http://127.0.0.1:' . port(4) . $uri, $body) }

# The 503 of a worker whose state file FILE another nginx took over: the
# REST API's body, and the query API's.
sub taken_over {
    my ($file) = @_;
    return "503 the state file \"$file\" was taken over by another nginx (a binary upgrade's new one): this worker "
         . "changes nothing; retry the request (if no other nginx runs any more, its start failed or it was stopped "
         . "to roll back: reload this one first)";
}
sub taken_over_query { my $t = taken_over(@_); $t =~ s/^503 /503 503 Service Unavailable: /; "$t\n" }

# The 503 of a run-time upstream change after a rollback and a reload.
sub newer {
    my ($file) = @_;
    return "503 the state file \"$file\" may hold changes of another nginx (a binary upgrade that was rolled back) "
         . "that this nginx's run-time upstreams lack: restart nginx to load them; until then their changes are "
         . "refused";
}

# A query-API add of 127.0.0.1:port(N) through API (old_api or new_api);
# records N in ACCEPTED when it answers 200. Returns the response.
sub add_peer {
    my ($api, $n, $accepted) = @_;
    my $r = $api->('GET', '/dynamic?upstream=backends&add=&server=127.0.0.1:' . port($n));
    push @$accepted, $n if $r->{status} == 200;
    return $r;
}

# A REST-API upstream NAME (server 127.0.0.1:port(N)) through API;
# records NAME in ACCEPTED when it answers 200.
sub post_upstream {
    my ($api, $name, $n, $accepted) = @_;
    my $r = $api->('POST', "/upstream/$name", 'server 127.0.0.1:' . port($n) . ';');
    push @$accepted, $name if $r->{status} == 200;
    return $r;
}

run_tests();
__DATA__

=== TEST 1: zone upstream with a state file: a change through the old instance during the upgrade is refused; every accepted change survives the upgrade and a restart
--- workers: 2
--- http_config
upstream backends {
    zone zone_for_backends 64k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.conf;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    location /dynamic { dynamic_upstream; }
}
--- config
location / { return 200; }
--- perl
my $file = data_dir() . '/backends.conf';
my @accepted;
my $listing = sub { my $r = $_[0]->('GET', '/dynamic?upstream=backends&verbose='); "$r->{status}\n$r->{body}" };
is(main::add_peer(\&main::old_api, 5, \@accepted)->{status}, 200, 'before the upgrade: a change is accepted');
main::move_api_for_new_instance();
my ($old) = nginx_upgrade_start();
is($listing->(\&main::new_api), "200\n" . main::srv(2) . main::srv(5), 'the new instance starts from the state file');

my $r = main::add_peer(\&main::old_api, 6, \@accepted);
is("$r->{status} $r->{body}", main::taken_over_query($file), 'a change through an old worker: 503');
is($listing->(\&main::old_api), "200\n" . main::srv(2) . main::srv(5), 'the old instance changed nothing');
$r = main::old_api('GET', '/dynamic?upstream=backends&server=127.0.0.1:' . port(5) . '&down=');
is($r->{status}, 503, 'down through an old worker: 503 too');
is(main::add_peer(\&main::new_api, 7, \@accepted)->{status}, 200, 'a change through the new instance is accepted');
nginx_upgrade_finish($old);

my $expected = join '', map { main::srv($_) } 2, @accepted;
is($listing->(\&main::new_api), "200\n$expected", 'after the old master quit: every accepted change, nothing else');
my $in_file = join '', grep { /^server / } split /^/, main::slurp($file);
is($in_file, $expected, 'so has the state file');
nginx_restart();
is($listing->(\&main::new_api), "200\n$expected", 'and a restart');



=== TEST 2: run-time upstreams (dyups_upstream_conf): the same
--- workers: 2
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    location / { dyups_interface; }
}
--- config
location / { return 200; }
--- perl
my $file = data_dir() . '/dyups.conf';
my @accepted;
my $r = main::post_upstream(\&main::old_api, 'first', 5, \@accepted);
is("$r->{status} $r->{body}", '200 success', 'before the upgrade: an upstream is created');
main::move_api_for_new_instance();
my ($old) = nginx_upgrade_start();
like(main::new_api('GET', '/upstream/first')->{body}, qr/^server 127\.0\.0\.1:${\ port(5)} weight=1 /,
     'the new instance restored it');

$r = main::post_upstream(\&main::old_api, 'second', 6, \@accepted);
is("$r->{status} $r->{body}", main::taken_over($file), 'an update through an old worker: 503');
is(main::old_api('DELETE', '/upstream/first')->{status}, 503, 'a delete through an old worker: 503');
is(main::old_api('GET', '/upstream/second')->{status}, 404, 'the old instance has no second upstream');
$r = main::post_upstream(\&main::new_api, 'third', 7, \@accepted);
is("$r->{status} $r->{body}", '200 success', 'an update through the new instance is accepted');
nginx_upgrade_finish($old);

my $expected = join '', map { "$_\n" } sort @accepted;
is(main::new_api('GET', '/list')->{body}, $expected, 'after the old master quit: every accepted upstream, nothing else');
nginx_restart();
is(main::new_api('GET', '/list')->{body}, $expected, 'and after a restart (from the file)');



=== TEST 3: rollback of a zone upstream: the new master quits; the old instance refuses changes until it is reloaded, which loads the new one's
--- workers: 2
--- http_config
upstream backends {
    zone zone_for_backends 64k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.conf;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    location /dynamic { dynamic_upstream; }
}
--- config
location / { return 200; }
--- perl
my $file = data_dir() . '/backends.conf';
my @accepted;
main::move_api_for_new_instance();
my ($old, $new) = nginx_upgrade_start();
is(main::add_peer(\&main::new_api, 5, \@accepted)->{status}, 200, 'a change through the new instance');
main::roll_back($old, $new);
my $r = main::add_peer(\&main::old_api, 6, \@accepted);
is("$r->{status} $r->{body}", main::taken_over_query($file), 'the old instance refuses changes');
nginx_reload();
is(main::add_peer(\&main::old_api, 6, \@accepted)->{status}, 200, 'after a reload it accepts them again');
is(main::old_api('GET', '/dynamic?upstream=backends&verbose=')->{body}, join('', map { main::srv($_) } 2, @accepted),
   'with the new instance\'s change, read from the file');



=== TEST 4: rollback of run-time upstreams: after the reload their changes are refused until a restart, which loads the new instance's
--- workers: 2
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    location / { dyups_interface; }
}
--- config
location / { return 200; }
--- perl
my $file = data_dir() . '/dyups.conf';
my @accepted;
main::post_upstream(\&main::old_api, 'first', 5, \@accepted);
main::move_api_for_new_instance();
my ($old, $new) = nginx_upgrade_start();
is(main::post_upstream(\&main::new_api, 'second', 6, \@accepted)->{status}, 200, 'an update through the new instance');
main::roll_back($old, $new);
my $r = main::post_upstream(\&main::old_api, 'third', 7, \@accepted);
is("$r->{status} $r->{body}", main::taken_over($file), 'the old instance refuses changes');
nginx_reload();
$r = main::post_upstream(\&main::old_api, 'third', 7, \@accepted);
is("$r->{status} $r->{body}", main::newer($file), 'after a reload: refused until a restart');
nginx_restart();
is(main::old_api('GET', '/list')->{body}, "first\nsecond\n", 'after a restart: the new instance\'s change is there');
is(main::post_upstream(\&main::old_api, 'third', 7, \@accepted)->{status}, 200, 'and changes are accepted');
is(main::old_api('GET', '/list')->{body}, join('', map { "$_\n" } sort @accepted), 'every accepted one');
like(error_log_text(), qr/\[error\].*another nginx claimed it since the run-time upstreams were loaded/,
     'the reload said why');



=== TEST 5: nginx -t while nginx runs takes nothing over
--- workers: 2
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
upstream backends {
    zone zone_for_backends 64k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.conf;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    location /dynamic { dynamic_upstream; }
    location / { dyups_interface; }
}
--- config
location / { return 200; }
--- perl
my ($rc, $out) = nginx_t();
is($rc, 0, 'nginx -t passes') or diag($out);
my @accepted;
is(main::add_peer(\&main::old_api, 5, \@accepted)->{status}, 200, 'a zone upstream change is accepted after it');
is(main::post_upstream(\&main::old_api, 'first', 6, \@accepted)->{status}, 200, 'and a run-time upstream change');
