# dynamic_upstream: refused requests. Each answers `STATUS Reason: reason\n`
# and changes nothing: every error is followed by a verbose listing that
# must show the upstream exactly as before.
use lib 't/lib';
use NginxTest;

# refused(URI, STATUS, BODY_OR_REGEX, UPSTREAM, EXPECTED_VERBOSE_LIST[, METHOD])
# The request must answer STATUS with BODY (string: exact; qr//: match), and
# the verbose list of UPSTREAM must then still be EXPECTED_VERBOSE_LIST.
sub refused {
    my ($uri, $status, $body, $upstream, $list, $method) = @_;
    $method //= 'GET';
    my $r = http($method, $uri);
    is($r->{status}, $status, "$method $uri: status $status");
    if (ref $body) {
        like($r->{body}, $body, "$method $uri: body");
    } else {
        is($r->{body}, $body, "$method $uri: body");
    }
    is($r->{headers}{'content-type'}, 'text/plain', "$method $uri: text/plain");
    my $l = http_get("/dynamic?upstream=$upstream&verbose=");
    is($l->{status}, 200, "listing after $uri");
    is($l->{body}, $list, "nothing changed by $method $uri");
}

# The verbose list of the standard three-peer upstream.
sub three {
    join '', map { "server 127.0.0.1:" . port($_) . " weight=1 max_fails=1 fail_timeout=10;\n" } 1 .. 3;
}

run_tests();
__DATA__

=== TEST 1: 404 for an upstream or zone that does not exist
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
>>> GET /dynamic?upstream=nope
<<< 404
404 Not Found: upstream "nope" not found

>>> GET /dynamic?upstream=zone_for_backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=nope&server=127.0.0.1:$TEST_NGINX_PORT_1&down=
<<< 404
404 Not Found: upstream "nope" not found

>>> GET /dynamic?upstream=zone_for_backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=nope&add=&server=127.0.0.1:$TEST_NGINX_PORT_4
<<< 404
404 Not Found: upstream "nope" not found

>>> GET /dynamic?upstream=zone_for_backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=Zone_For_Backends
<<< 404
404 Not Found: upstream "Zone_For_Backends" not found

>>> GET /dynamic?upstream=zone_for_backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;



=== TEST 2: 400 when server names no peer (update, down, up, remove), as ngx_dynamic_upstream answers
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $p4 = port(4);
my $missing = qq{400 Bad Request: server 127.0.0.1:$p4 is not in upstream "backends"\n};
for my $change ('weight=2', 'max_fails=2', 'fail_timeout=2', 'max_conns=2', 'down=', 'up=',
                'weight=3&max_fails=3&down=', 'remove=') {
    main::refused("/dynamic?upstream=zone_for_backends&server=127.0.0.1:$p4&$change",
                  400, $missing, 'zone_for_backends', main::three());
}
# same address, other port; same port, other address
my $p1 = port(1);
main::refused("/dynamic?upstream=backends&server=127.0.0.2:$p1&down=", 400,
              qq{400 Bad Request: server 127.0.0.2:$p1 is not in upstream "backends"\n}, 'backends', main::three());
main::refused("/dynamic?upstream=backends&server=127.0.0.1&remove=", 400,
              qq{400 Bad Request: server 127.0.0.1:80 is not in upstream "backends"\n}, 'backends', main::three());
main::refused("/dynamic?upstream=backends&server=[::1]:$p1&down=", 400,
              qq{400 Bad Request: server [::1]:$p1 is not in upstream "backends"\n}, 'backends', main::three());
main::refused("/dynamic?upstream=backends&server=unix:/tmp/none.sock&remove=", 400,
              qq{400 Bad Request: server unix:/tmp/none.sock is not in upstream "backends"\n}, 'backends', main::three());



=== TEST 3: 400 for an upstream without a zone
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
upstream plain {
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $no_zone = qq{400 Bad Request: upstream "plain" has no zone: its peers are not shared between workers }
            . qq{and cannot be changed (add "zone NAME SIZE;" to it)\n};
my $p2 = port(2);
for my $q ('', '&verbose=', "&server=127.0.0.1:$p2&down=", "&add=&server=127.0.0.1:9", "&remove=&server=127.0.0.1:$p2") {
    main::refused("/dynamic?upstream=plain$q", 400, $no_zone, 'backends', main::three());
}



=== TEST 4: 400 when the upstream parameter is missing
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $p1 = port(1);
for my $q ('', '?', '?verbose=', "?server=127.0.0.1:$p1&down=", "?add=&server=127.0.0.1:9",
           "?remove=&server=127.0.0.1:$p1") {
    main::refused("/dynamic$q", 400, "400 Bad Request: the upstream parameter is required\n",
                  'backends', main::three());
}
main::refused("/dynamic?upstream=&server=127.0.0.1:$p1&down=", 400, qr/^400 Bad Request: .*upstream/,
              'backends', main::three());



=== TEST 5: 400 when an operation lacks the server parameter
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my %want = (
    'add='                  => 'add',
    'add=&weight=2'         => 'add',
    'add=&backup='          => 'add',
    'remove='               => 'remove',
    'weight=2'              => 'changing a peer',
    'max_fails=2'           => 'changing a peer',
    'fail_timeout=2'        => 'changing a peer',
    'max_conns=2'           => 'changing a peer',
    'down='                 => 'changing a peer',
    'up='                   => 'changing a peer',
);
for my $q (sort keys %want) {
    main::refused("/dynamic?upstream=backends&$q", 400,
                  "400 Bad Request: the server parameter is required for $want{$q}\n",
                  'backends', main::three());
}
main::refused("/dynamic?upstream=backends&server=&down=", 400, qr/^400 Bad Request: /, 'backends', main::three());



=== TEST 6: 400 for values that are not numbers in range (update)
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my %reason = (
    weight       => 'weight must be an integer from 1 to 1000000',
    max_fails    => 'max_fails must be an integer from 0 to 1000000',
    max_conns    => 'max_conns must be an integer from 0 to 1000000',
    fail_timeout => 'fail_timeout must be a number of seconds from 0 to 31536000',
);
my %bad = (
    weight       => ['abc', '0', '-1', '1.5', '', '1000001', '99999999999999999999', '2m', '+3', '%201', '0x10'],
    max_fails    => ['abc', '-1', '1.5', '', '1000001', '99999999999999999999', '1s'],
    max_conns    => ['abc', '-1', '1.5', '', '1000001', '99999999999999999999'],
    fail_timeout => ['abc', '-1', '1.5', '', '31536001', '366d', '99999999999999999999', '10x', 's', '1ms'],
);
my $p3 = port(3);
for my $param (sort keys %bad) {
    for my $value (@{ $bad{$param} }) {
        main::refused("/dynamic?upstream=backends&server=127.0.0.1:$p3&$param=$value", 400,
                      "400 Bad Request: $reason{$param}\n", 'backends', main::three());
    }
}
# a valid parameter next to a bad one changes nothing either
main::refused("/dynamic?upstream=backends&server=127.0.0.1:$p3&max_fails=5&weight=0&down=", 400,
              "400 Bad Request: $reason{weight}\n", 'backends', main::three());
main::refused("/dynamic?upstream=backends&server=127.0.0.1:$p3&weight=5&max_conns=-2", 400,
              "400 Bad Request: $reason{max_conns}\n", 'backends', main::three());



=== TEST 7: 400 for bad values on add: no peer is added
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $p4 = port(4);
main::refused("/dynamic?upstream=backends&add=&server=127.0.0.1:$p4&weight=0", 400,
              "400 Bad Request: weight must be an integer from 1 to 1000000\n", 'backends', main::three());
main::refused("/dynamic?upstream=backends&add=&server=127.0.0.1:$p4&weight=99999999999999999999", 400,
              "400 Bad Request: weight must be an integer from 1 to 1000000\n", 'backends', main::three());
main::refused("/dynamic?upstream=backends&add=&server=127.0.0.1:$p4&max_fails=x", 400,
              "400 Bad Request: max_fails must be an integer from 0 to 1000000\n", 'backends', main::three());
main::refused("/dynamic?upstream=backends&add=&server=127.0.0.1:$p4&fail_timeout=-5", 400,
              "400 Bad Request: fail_timeout must be a number of seconds from 0 to 31536000\n", 'backends', main::three());
main::refused("/dynamic?upstream=backends&add=&backup=&server=127.0.0.1:$p4&max_conns=-1", 400,
              "400 Bad Request: max_conns must be an integer from 0 to 1000000\n", 'backends', main::three());



=== TEST 8: 400 for down with up, add with remove
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
>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_3&down=&up=
<<< 400
400 Bad Request: down and up cannot be combined

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_3&up=&weight=4&down=
<<< 400
400 Bad Request: down and up cannot be combined

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&add=&remove=&server=127.0.0.1:$TEST_NGINX_PORT_3
<<< 400
400 Bad Request: add and remove cannot be combined

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&remove=&add=&server=127.0.0.1:$TEST_NGINX_PORT_4
<<< 400
400 Bad Request: add and remove cannot be combined

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_3&weight=5
<<< 400 like
^400 Bad Request: 
>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_3&down=
<<< 400 like
^400 Bad Request: 
>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&add=&up=&server=127.0.0.1:$TEST_NGINX_PORT_4
<<< 400 like
^400 Bad Request: 
>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;



=== TEST 9: 400 for adding a peer that exists (changes nothing, not even its parameters)
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
>>> GET /dynamic?upstream=backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_2
<<< 400
400 Bad Request: server 127.0.0.1:$TEST_NGINX_PORT_2 already exists in upstream "backends"

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=zone_for_backends&add=&server=127.0.0.1:$TEST_NGINX_PORT_3&weight=9&down=
<<< 400
400 Bad Request: server 127.0.0.1:$TEST_NGINX_PORT_3 already exists in upstream "backends"

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_1 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;
server 127.0.0.1:$TEST_NGINX_PORT_3 weight=1 max_fails=1 fail_timeout=10;



=== TEST 10: 400 for removing the last primary peer
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
--- config
location /dynamic { dynamic_upstream; }
--- steps
>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_1
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2;

>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_2
<<< 400
400 Bad Request: server 127.0.0.1:$TEST_NGINX_PORT_2 is the last primary server of upstream "backends" and cannot be removed

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10;

>>> GET /dynamic?upstream=backends&server=127.0.0.1:$TEST_NGINX_PORT_2&down=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10 down;

>>> GET /dynamic?upstream=backends&remove=&server=127.0.0.1:$TEST_NGINX_PORT_2
<<< 400
400 Bad Request: server 127.0.0.1:$TEST_NGINX_PORT_2 is the last primary server of upstream "backends" and cannot be removed

>>> GET /dynamic?upstream=backends&verbose=
<<< 200
server 127.0.0.1:$TEST_NGINX_PORT_2 weight=1 max_fails=1 fail_timeout=10 down;



=== TEST 11: 400 for host names: only addresses are accepted
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $host = qq{400 Bad Request: server "localhost:80" is a host name; only IP addresses and unix sockets }
         . qq{are accepted (names are not resolved at run time)\n};
for my $q ('add=&server=localhost:80', 'server=localhost:80&down=', 'server=localhost:80&weight=2',
           'remove=&server=localhost:80', 'add=&backup=&server=localhost:80') {
    main::refused("/dynamic?upstream=backends&$q", 400, $host, 'backends', main::three());
}
main::refused("/dynamic?upstream=backends&add=&server=example.com", 400,
              qr/^400 Bad Request: server "example\.com" is a host name; only IP addresses/, 'backends', main::three());
main::refused("/dynamic?upstream=backends&add=&server=backend-1.example.org:8080", 400,
              qr/^400 Bad Request: .*host name.*only IP addresses/, 'backends', main::three());



=== TEST 12: 400 for malformed addresses and bad ports
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
for my $addr ('127.0.0.1:0', '127.0.0.1:65536', '127.0.0.1:99999', '127.0.0.1:', '127.0.0.1:-1',
              '127.0.0.1:http', '1.2.3', '256.1.1.1:80', '::1', '[::1', '[::1]x', '[::1]:0',
              '[::1]:65536', 'unix:relative.sock', 'unix:', '127.0.0.1 :80') {
    (my $q = $addr) =~ s/ /%20/g;
    for my $op ("add=&server=$q", "server=$q&down=") {
        main::refused("/dynamic?upstream=backends&$op", 400, qr/^400 Bad Request: .*\Q$addr\E/,
                      'backends', main::three());
    }
}
main::refused("/dynamic?upstream=backends&add=&server=127.0.0.1:0", 400,
              qr/^400 Bad Request: .*port/, 'backends', main::three());
main::refused("/dynamic?upstream=backends&add=&server=127.0.0.1:65536", 400,
              qr/^400 Bad Request: .*port/, 'backends', main::three());



=== TEST 13: 400 for unknown and duplicate parameters
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $p3 = port(3);
main::refused("/dynamic?upstream=backends&foo=1", 400, "400 Bad Request: unknown parameter foo\n",
              'backends', main::three());
main::refused("/dynamic?upstream=backends&server=127.0.0.1:$p3&down=&foo=1", 400,
              "400 Bad Request: unknown parameter foo\n", 'backends', main::three());
# Names in any case, as nginx's $arg_NAME reads them (ngx_dynamic_upstream's).
main::refused("/dynamic?upstream=backends&server=127.0.0.1:$p3&Weight=3&weight=4", 400,
              "400 Bad Request: parameter weight is given more than once\n", 'backends', main::three());
# A parameter without "=" is no parameter for $arg_NAME: a change here
# would be a listing there (hunt 34).
main::refused("/dynamic?upstream=backends&server=127.0.0.1:$p3&down", 400,
              "400 Bad Request: parameter down has no \"=\": give down= (a flag) or down=VALUE\n", 'backends', main::three());
main::refused("/dynamic?upstream=backends&add=&server=127.0.0.1:9&weights=3", 400,
              "400 Bad Request: unknown parameter weights\n", 'backends', main::three());
main::refused("/dynamic?upstream=backends&server=127.0.0.1:$p3&weight=1&weight=2", 400,
              "400 Bad Request: parameter weight is given more than once\n", 'backends', main::three());
main::refused("/dynamic?upstream=backends&server=127.0.0.1:$p3&down=&down=", 400,
              "400 Bad Request: parameter down is given more than once\n", 'backends', main::three());
main::refused("/dynamic?upstream=backends&server=127.0.0.1:$p3&server=127.0.0.1:9&weight=2", 400,
              "400 Bad Request: parameter server is given more than once\n", 'backends', main::three());
main::refused("/dynamic?upstream=backends&upstream=backends&server=127.0.0.1:$p3&down=", 400,
              "400 Bad Request: parameter upstream is given more than once\n", 'backends', main::three());
# flags take no value other than empty, 1 or true
main::refused("/dynamic?upstream=backends&server=127.0.0.1:$p3&down=0", 400, qr/^400 Bad Request: .*down/,
              'backends', main::three());
main::refused("/dynamic?upstream=backends&format=xml", 400, qr/^400 Bad Request: .*format/,
              'backends', main::three());



=== TEST 14: 400 for backup without add
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $p3 = port(3);
my $reason = "400 Bad Request: backup is only accepted with add (a peer cannot move between lists)\n";
main::refused("/dynamic?upstream=backends&server=127.0.0.1:$p3&backup=", 400, $reason, 'backends', main::three());
main::refused("/dynamic?upstream=backends&server=127.0.0.1:$p3&backup=&down=", 400, $reason, 'backends', main::three());
main::refused("/dynamic?upstream=backends&backup=", 400, $reason, 'backends', main::three());



=== TEST 15: 400 for backup on ip_hash and hash upstreams
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
upstream iph {
    ip_hash;
    zone iph 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
upstream hsh {
    hash $arg_key;
    zone hsh 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $p4 = port(4);
main::refused("/dynamic?upstream=iph&add=&backup=&server=127.0.0.1:$p4", 400,
              qq{400 Bad Request: upstream "iph" uses the ip_hash balancer, which does not allow backup servers\n},
              'iph', main::three());
main::refused("/dynamic?upstream=hsh&add=&backup=&server=127.0.0.1:$p4", 400,
              qr/\A400 Bad Request: upstream "hsh" uses the hash balancer, which does not allow backup servers\n\z/,
              'hsh', main::three());



=== TEST 16: 405 for methods other than GET and HEAD; nothing changes
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my ($p3, $p4) = (port(3), port(4));
my $reason = "405 Not Allowed: only GET and HEAD are accepted\n";
for my $method (qw(POST PUT DELETE PATCH OPTIONS)) {
    main::refused("/dynamic?upstream=backends", 405, $reason, 'backends', main::three(), $method);
    main::refused("/dynamic?upstream=backends&server=127.0.0.1:$p3&down=", 405, $reason, 'backends',
                  main::three(), $method);
    main::refused("/dynamic?upstream=backends&add=&server=127.0.0.1:$p4", 405, $reason, 'backends',
                  main::three(), $method);
    main::refused("/dynamic?upstream=backends&remove=&server=127.0.0.1:$p3", 405, $reason, 'backends',
                  main::three(), $method);
}
my $r = http('POST', "/dynamic?upstream=backends&server=127.0.0.1:$p3&down=", "upstream=backends&down=",
             { 'Content-Type' => 'application/x-www-form-urlencoded' });
is($r->{status}, 405, 'POST with a body: 405');
is($r->{body}, $reason, 'POST with a body: reason');
is(http_get('/dynamic?upstream=backends&verbose=')->{body}, main::three(), 'nothing changed by the POST');



=== TEST 17: errors are text/plain with the reason phrase
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $p1 = port(1);
my %phrase = (400 => 'Bad Request', 404 => 'Not Found', 405 => 'Not Allowed');
for my $c ([GET => "server=127.0.0.1:$p1&weight=0", 400], [GET => "server=127.0.0.1:9&down=", 400],
           [PUT => "server=127.0.0.1:$p1&down=", 405]) {
    my ($m, $q, $status) = @$c;
    main::refused("/dynamic?upstream=backends&$q", $status, qr/\A$status \Q$phrase{$status}\E: [^\n]+\n\z/,
                  'backends', main::three(), $m);
}



=== TEST 18: a malformed query string is refused
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $p3 = port(3);
for my $q ("upstream=backends%zz&server=127.0.0.1:$p3&down=", "upstream=backends&server=127.0.0.1:$p3%00&down=",
           "upstream=backends&server=127.0.0.1:$p3&down=&weight=%ff") {
    main::refused("/dynamic?$q", 400, qr/^400 Bad Request: /, 'backends', main::three());
}

=== TEST 19: an upstream named beyond ASCII, as nginx's configuration allows (upstream ünï): the query API changes it as the NGINX Plus API does (it answered 400 "characters not allowed in a name"); a name with a non-ASCII space is still refused
--- http_config
upstream ünï {
    zone ünï 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my $p1 = port(1);
my $r = http_get("/dynamic?upstream=%C3%BCn%C3%AF&server=127.0.0.1:$p1&weight=3");
is("$r->{status} $r->{body}", "200 server 127.0.0.1:$p1 weight=3 max_fails=1 fail_timeout=10;\n", 'weight changed');
$r = http_get('/dynamic?upstream=%C3%BCn%C3%AF&add=&server=127.0.0.1:30001');
is($r->{status}, 200, 'a server added');
$r = http_get('/dynamic?upstream=%C3%BC%C2%A0n');
like("$r->{status} $r->{body}", qr/^400 400 Bad Request: the upstream name "[^"]*" has characters not allowed in a name/, 'a non-ASCII space is refused');
