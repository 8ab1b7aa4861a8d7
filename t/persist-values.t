# Every server a configuration can hold survives the state files: values up
# to nginx's own limits (weight=2000000 used to be written into a
# dynamic_state_file whose reader refused it, so nginx never started again)
# and unix socket paths with any character (they used to vanish from the
# file). And a state file too big for the zone: all or nothing.
use lib 't/lib';
use NginxTest;
use NginxTest::Files;

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



=== TEST 2: a state file with more servers than the zone holds: nothing is restored, the configuration's servers stay intact, and [error] says so
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
is(main::verbose(), $config, "the configuration's servers, intact (none freed, none of the file's)");
my %ports;
$ports{ http_get('/')->{body} }++ for 1 .. 6;
is_deeply(\%ports, { "$p1\n" => 6 }, 'traffic goes to the primary of the configuration');
like(error_log_text(),
     qr/\[error\].*dynamic_state_file "\Q$path\E" for upstream "backends": zone "zone_for_backends" \(32k\) has no room for the state's 301 servers; nothing was restored: the configuration's servers are used \(the next change through the API writes them to the file\)/,
     '[error] says exactly that');
is(main::slurp($path), $file, 'the file is left as it was');
--- allow_error_log
has no room for the state's 301 servers
