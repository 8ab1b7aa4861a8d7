# dyups_interface, writing: POST /upstream/NAME creates or replaces the
# whole server list, DELETE /upstream/NAME removes it; configured upstreams
# included.  (Traffic is checked in t/dyups-proxy.t.)
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups;

# POST that must succeed: status 200 and body exactly "success".
sub post_ok {
    my ($name, $body, $what) = @_;
    my $r = http('POST', "/upstream/$name", $body);
    is($r->{status}, 200, "$what: status") or diag($r->{body});
    is($r->{body}, 'success', "$what: body is 'success' without a newline");
}

run_tests();
__DATA__

=== TEST 1: POST creates an upstream and answers "success"
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- steps
>>> POST /upstream/dyhost

server 127.0.0.1:$TEST_NGINX_PORT_2;
<<< 200 chomp
success

>>> GET /upstream/dyhost
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0

>>> GET /list
<<< 200
host1
dyhost



=== TEST 2: POST replaces the whole server list; it does not merge
--- config
location / { dyups_interface; }
--- perl
main::post_ok('dyhost', 'server 127.0.0.1:' . port(1) . '; server 127.0.0.1:' . port(2) . ';', 'create with two');
is(http_get('/upstream/dyhost')->{body}, main::line(main::addr(1)) . main::line(main::addr(2)), 'two servers');
main::post_ok('dyhost', 'server 127.0.0.1:' . port(3) . ' weight=4;', 'replace with one');
is(http_get('/upstream/dyhost')->{body}, main::line(main::addr(3), weight => 4), 'only the new server');
main::post_ok('dyhost', 'server 127.0.0.1:' . port(3) . ' weight=4;', 'the same body again');
is(http_get('/upstream/dyhost')->{body}, main::line(main::addr(3), weight => 4), 'unchanged by a repeat');
main::post_ok('dyhost', 'server 127.0.0.1:' . port(1) . ';', 'back to a default server');
is(http_get('/upstream/dyhost')->{body}, main::line(main::addr(1)), 'parameters are not carried over');
is(http_get('/list')->{body}, "dyhost\n", 'still one upstream');

=== TEST 3: POST replaces a configured upstream, which keeps its place
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2 weight=7; }
upstream host3 { server 127.0.0.1:$TEST_NGINX_PORT_3; }
--- config
location / { dyups_interface; }
--- perl
main::post_ok('host2', 'server 127.0.0.1:' . port(4) . '; server 127.0.0.1:' . port(5) . ' max_fails=3;', 'replace host2');
is(http_get('/upstream/host2')->{body}, main::line(main::addr(4)) . main::line(main::addr(5), max_fails => 3), 'host2 has the new servers');
is(http_get('/detail')->{body},
   "host1\n" . main::line(main::addr(1)) . "\n"
   . "host2\n" . main::line(main::addr(4)) . main::line(main::addr(5), max_fails => 3) . "\n"
   . "host3\n" . main::line(main::addr(3)) . "\n",
   '/detail shows the replacement in host2\'s place');
is(http_get('/list')->{body}, "host1\nhost2\nhost3\n", 'listed once, in config order');

=== TEST 4: whitespace and newlines between statements are free
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2, $p3) = map { port($_) } 1 .. 3;
my $body = "\n\n  server   127.0.0.1:$p1;\n"
         . "\tserver 127.0.0.1:$p2\t weight=2 ;\r\n"
         . "\n  \n"
         . "server 127.0.0.1:$p3    max_fails=4   fail_timeout=3;   \n\n";
main::post_ok('dyhost', $body, 'spaced-out body');
is(http_get('/upstream/dyhost')->{body},
   main::line(main::addr(1)) . main::line(main::addr(2), weight => 2)
   . main::line(main::addr(3), max_fails => 4, fail_timeout => 3),
   'all three servers');
main::post_ok('dyhost', "server 127.0.0.1:$p1;server 127.0.0.1:$p2;", 'no whitespace at all');
is(http_get('/upstream/dyhost')->{body}, main::line(main::addr(1)) . main::line(main::addr(2)), 'both servers');
main::post_ok('dyhost', "least_conn;\nserver 127.0.0.1:$p3;\n", 'balancer line then a server, newline-separated');
is(http_get('/upstream/dyhost')->{body}, main::line(main::addr(3)), 'one server');

=== TEST 5: every balancer line is accepted, before or after the servers
--- http_config
map $uri $bucket { default a; }
--- config
location / { dyups_interface; }
--- perl
my $s = 'server 127.0.0.1:' . port(1) . '; server 127.0.0.1:' . port(2) . ' weight=2;';
my $want = main::line(main::addr(1)) . main::line(main::addr(2), weight => 2);
my @balancers = ('ip_hash;', 'least_conn;', 'hash $arg_k;', 'hash $arg_k consistent;', 'random;',
                 'hash $remote_addr$uri;', 'hash ${arg_k}x consistent;', 'hash fixed;',
                 'hash $http_x_user;', 'hash $cookie_sid consistent;', 'hash $bucket;');
for my $b (@balancers) {
    main::post_ok('dyhost', "$b $s", "'$b' first");
    is(http_get('/upstream/dyhost')->{body}, $want, "'$b' first: servers");
    main::post_ok('dyhost', "$s $b", "'$b' last");
    is(http_get('/upstream/dyhost')->{body}, $want, "'$b' last: servers");
}

=== TEST 6: server parameters: down, backup, weight, max_fails, fail_timeout, max_conns
--- config
location / { dyups_interface; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
main::post_ok('dyhost',
    "server 127.0.0.1:$p1 weight=1000000 max_fails=0 fail_timeout=0 max_conns=1;"
  . "server 127.0.0.1:$p2 fail_timeout=2m;"
  . "server 127.0.0.1:$p3 down;"
  . "server 127.0.0.1:$p4 backup weight=2;",
  'parameters at their limits, a time with a unit, down and backup');
my @got = split /(?<=\n)/, http_get('/upstream/dyhost')->{body};
is_deeply(\@got, [
    main::line(main::addr(1), weight => 1000000, max_fails => 0, fail_timeout => 0, max_conns => 1),
    main::line(main::addr(2), fail_timeout => 120),
    main::line(main::addr(3), down => 1),
    main::line(main::addr(4), weight => 2, backup => 1),
], 'every parameter shown as given');

=== TEST 7: unix sockets and IPv6 addresses are accepted
--- config
location / { dyups_interface; }
--- perl
my $sock = data_dir() . '/b.sock';
main::post_ok('dyhost', "server unix:$sock; server [::1]:" . port(1) . " weight=2;", 'unix + IPv6');
is(http_get('/upstream/dyhost')->{body},
   main::line("unix:$sock") . main::line('[::1]:' . port(1), weight => 2),
   'both shown with their address');

=== TEST 8: DELETE removes an upstream; a second DELETE is 404 naming it
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- steps
>>> POST /upstream/dyhost

server 127.0.0.1:$TEST_NGINX_PORT_2;
<<< 200 chomp
success

>>> DELETE /upstream/dyhost
<<< 200 chomp
success

>>> GET /upstream/dyhost
<<< 404 any

>>> GET /list
<<< 200
host1

>>> DELETE /upstream/dyhost
<<< 404 like
\Aupstream "dyhost" not found\z

>>> DELETE /upstream/neverthere
<<< 404 like
\Aupstream "neverthere" not found\z

>>> GET /list
<<< 200
host1



=== TEST 9: DELETE removes a configured upstream; POST brings it back
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream host2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
upstream host3 { server 127.0.0.1:$TEST_NGINX_PORT_3; }
--- config
location / { dyups_interface; }
--- perl
my $r = http('DELETE', '/upstream/host2');
is($r->{status}, 200, 'DELETE host2');
is($r->{body}, 'success', 'success');
is(http_get('/list')->{body}, "host1\nhost3\n", 'host2 is not listed');
is(http_get('/detail')->{body},
   "host1\n" . main::line(main::addr(1)) . "\n" . "host3\n" . main::line(main::addr(3)) . "\n",
   'nor detailed');
is(http_get('/upstream/host2')->{status}, 404, 'GET /upstream/host2 is 404');
$r = http('DELETE', '/upstream/host2');
is($r->{status}, 404, 'a second DELETE is 404');
like($r->{body}, qr/\Aupstream "host2" not found\z/, '... naming it');

main::post_ok('host2', 'server 127.0.0.1:' . port(4) . ';', 're-create host2');
is(http_get('/upstream/host2')->{body}, main::line(main::addr(4)), 'host2 has the new server');
my @names = split /\n/, http_get('/list')->{body};
is_deeply([sort @names], [qw(host1 host2 host3)], 'host2 is listed again, once');

=== TEST 10: DELETE of a replaced configured upstream, then of every upstream
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- perl
main::post_ok('host1', 'server 127.0.0.1:' . port(2) . ';', 'replace host1');
main::post_ok('dyhost', 'server 127.0.0.1:' . port(3) . ';', 'create dyhost');
is(http('DELETE', '/upstream/host1')->{status}, 200, 'delete host1');
is(http_get('/list')->{body}, "dyhost\n", 'only dyhost left');
is(http('DELETE', '/upstream/host1')->{status}, 404, 'host1 is gone');
is(http('DELETE', '/upstream/dyhost')->{status}, 200, 'delete dyhost');
is(http_get('/list')->{status}, 204, 'nothing left');
