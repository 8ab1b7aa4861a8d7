# A binary upgrade (kill -USR2, then -QUIT of the old master: Debian's
# `service nginx upgrade`) runs two nginx instances side by side, each with
# its own shared memory, both reading and writing the same state files. A
# change answered 200 must be in the state the surviving instance serves; a
# change an old instance's worker cannot make safely is refused (503) and
# leaves nothing behind; a rollback (the new master quits) needs a reload of
# the old one, which the 503 says.
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

# A request to the old instance (port 3) or the new one (port 4).
sub old_api { my ($m, $uri, $body) = @_; http($m // 'GET', 'http://127.0.0.1:' . port(3) . $uri, $body) }
sub new_api { my ($m, $uri, $body) = @_; http($m // 'GET', 'http://127.0.0.1:' . port(4) . $uri, $body) }

# The 503 of a worker whose state file FILE a newer nginx took over: the
# REST API's body, and the query API's.
sub taken_over {
    my ($file) = @_;
    return "503 the state file \"$file\" was taken over by a newer nginx (a binary upgrade or a reload started after "
         . "this worker's): this worker changes nothing; retry the request (after a rollback to this nginx, reload "
         . "it first)";
}
sub taken_over_query { my $t = taken_over(@_); $t =~ s/^503 /503 503 Service Unavailable: /; "$t\n" }

run_tests();
__DATA__

=== TEST 1: zone upstream with a state file: a change through the old instance during the upgrade is refused, one through the new instance survives it and a restart
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
my $listing = sub { my $r = $_[0]->('GET', '/dynamic?upstream=backends&verbose='); "$r->{status}\n$r->{body}" };
my $r = main::old_api('GET', '/dynamic?upstream=backends&add=&server=127.0.0.1:' . port(5));
is($r->{status}, 200, 'before the upgrade: a change is accepted');
main::move_api_for_new_instance();
my ($old) = nginx_upgrade_start();
is($listing->(\&main::new_api), "200\n" . main::srv(2) . main::srv(5), 'the new instance starts from the state file');

$r = main::old_api('GET', '/dynamic?upstream=backends&add=&server=127.0.0.1:' . port(6));
is("$r->{status} $r->{body}", main::taken_over_query($file), 'a change through an old worker: 503');
is($listing->(\&main::old_api), "200\n" . main::srv(2) . main::srv(5), 'the old instance changed nothing');
is($listing->(\&main::new_api), "200\n" . main::srv(2) . main::srv(5), 'nor did the new one');
$r = main::old_api('GET', '/dynamic?upstream=backends&server=127.0.0.1:' . port(5) . '&down=');
is($r->{status}, 503, 'down through an old worker: 503 too');

$r = main::new_api('GET', '/dynamic?upstream=backends&add=&server=127.0.0.1:' . port(7));
is($r->{status}, 200, 'a change through the new instance is accepted');
nginx_upgrade_finish($old);
is($listing->(\&main::new_api), "200\n" . main::srv(2) . main::srv(5) . main::srv(7), 'after the old master quit: every accepted change');
like(main::slurp($file), qr/\Q127.0.0.1:${\ port(7)}\E/, 'in the state file');
unlike(main::slurp($file), qr/\Q127.0.0.1:${\ port(6)}\E/, 'the refused one is not');
nginx_restart();
is($listing->(\&main::new_api), "200\n" . main::srv(2) . main::srv(5) . main::srv(7), 'after a restart: the same');



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
my $body = sub { 'server 127.0.0.1:' . port($_[0]) . ';' };
my $r = main::old_api('POST', '/upstream/first', $body->(5));
is("$r->{status} $r->{body}", '200 success', 'before the upgrade: an upstream is created');
main::move_api_for_new_instance();
my ($old) = nginx_upgrade_start();
$r = main::new_api('GET', '/upstream/first');
like("$r->{status} $r->{body}", qr/^200 server 127\.0\.0\.1:${\ port(5)} weight=1 /, 'the new instance restored it');

$r = main::old_api('POST', '/upstream/second', $body->(6));
is("$r->{status} $r->{body}", main::taken_over($file), 'an update through an old worker: 503');
$r = main::old_api('DELETE', '/upstream/first');
is($r->{status}, 503, 'a delete through an old worker: 503');
is(main::new_api('GET', '/upstream/second')->{status}, 404, 'the new instance has no second upstream');
is(main::old_api('GET', '/upstream/second')->{status}, 404, 'nor has the old one');

$r = main::new_api('POST', '/upstream/third', $body->(7));
is("$r->{status} $r->{body}", '200 success', 'an update through the new instance is accepted');
nginx_upgrade_finish($old);
nginx_restart();
is(main::new_api('GET', '/list')->{body}, "first\nthird\n", 'after the upgrade and a restart: every accepted change');
unlike(main::slurp($file), qr/second/, 'the refused one is not in the file');



=== TEST 3: rollback: the new master quits; the old instance refuses changes until it is reloaded
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
main::move_api_for_new_instance();
my ($old, $new) = nginx_upgrade_start();
kill 'QUIT', $new or die "kill QUIT $new: $!";
ok(poll_until(sub { !kill(0, $new) && (master_pid() // 0) == $old }, 10), 'the old master is the master again');
my $r = main::old_api('GET', '/dynamic?upstream=backends&add=&server=127.0.0.1:' . port(6));
is("$r->{status} $r->{body}", main::taken_over_query($file), 'the old instance still refuses changes');
my $conf = main::slurp(conf_file());
my ($p3, $p4) = (port(3), port(4));
$conf =~ s/listen 127\.0\.0\.1:$p4;/listen 127.0.0.1:$p3;/;
main::spew(conf_file(), $conf);
nginx_reload();
$r = main::old_api('GET', '/dynamic?upstream=backends&add=&server=127.0.0.1:' . port(6));
is($r->{status}, 200, 'after a reload it accepts them again');
is(main::old_api('GET', '/dynamic?upstream=backends&verbose=')->{body}, main::srv(2) . main::srv(6), 'and applies them');
