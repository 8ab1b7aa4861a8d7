# dynamic_upstream (query-string API) against hostile input: everything a
# scanner would try. Every refused request must answer a clear 4xx (the
# module's `STATUS Reason: text\n` in text/plain, or nginx's own 4xx page
# where nginx refuses the request before the module sees it), must change
# nothing (the verbose listings of both zone upstreams and the state file are
# byte for byte as before), must not reflect control characters, and nginx
# must keep proxying through the upstream afterwards.
use lib 't/lib';
use NginxTest;
use NginxTest::Files;
use NginxTest::Hostile;
use JSON::PP ();

# A 255-byte upstream (and zone) name for the configuration.
$ENV{TEST_NGINX_NAME255} = 'u' x 255;

# The module's error answers: one line, "STATUS Reason: text\n".
our $E400 = qr/\A400 Bad Request: [^\n]+\n\z/;
our $E4XX = qr/\A4\d\d [A-Za-z ]+: [^\n]+\n\z/;
our $E405 = "405 Not Allowed: only GET and HEAD are accepted\n";

# Everything a change could touch: the verbose listings of both zone
# upstreams (with their status) and the state file of "backends".
sub state {
    my $out = '';
    for my $u ('backends', 'other') {
        my $r = http_get("/dynamic?upstream=$u&verbose=");
        $out .= "$u: $r->{status}\n$r->{body}";
    }
    return $out . '--- state file ---' . "\n" . (slurp(data_dir() . '/backends.state') // "(none)\n");
}

# nginx still serves: a proxied request through "backends" reaches one of
# its primaries.
sub serving {
    my ($what) = @_;
    my $r = http_get('/proxy');
    my ($p1, $p2) = (port(1), port(2));
    ok($r->{status} == 200 && $r->{body} =~ /\A(?:$p1|$p2)\n\z/, "$what: nginx still proxies")
        or diag("GET /proxy: $r->{status} " . show($r->{body}));
}

# refused(METHOD, URI, STATUS, BODY, %opt)
# STATUS: a number or a regex. BODY: a string (exact), a regex, or undef for
# nginx's own error page (not checked); a module answer must be text/plain,
# or application/json when it is JSON. opt: body, headers, what (name).
sub refused {
    my ($method, $uri, $status, $want, %o) = @_;
    my $what = $o{what} // "$method " . show($uri);
    my $before = state();
    my $r = http($method, $uri, $o{body}, $o{headers});
    if (ref $status) {
        like($r->{status}, $status, "$what: status");
    } else {
        is($r->{status}, $status, "$what: status $status");
    }
    if (defined $want) {
        if (ref $want) {
            like($r->{body}, $want, "$what: body") or diag('body: ' . show($r->{body}));
        } else {
            is($r->{body}, $want, "$what: body");
        }
        my $type = $r->{body} =~ /\A\{/ ? 'application/json' : 'text/plain';
        is($r->{headers}{'content-type'}, $type, "$what: $type") if $method ne 'HEAD';
        clean($r->{body}, $what) if $r->{status} >= 400;
    }
    ok(!grep({ lc($_->[0]) eq 'x-injected' } @{ $r->{header_list} }), "$what: no injected header");
    is(state(), $before, "$what: nothing changed");
    serving($what);
    return $r;
}

# A GET that must be accepted; returns the answer.
sub accepted {
    my ($uri, $re) = @_;
    my $r = http_get($uri);
    is($r->{status}, 200, 'GET ' . show($uri) . ': 200') or diag(show($r->{body}));
    like($r->{body}, $re, 'GET ' . show($uri) . ': answer') if $re;
    return $r;
}

# The configuration of every block but TEST 2 (which has long names): two zone
# upstreams, "backends" with a state file, and the backends that answer their
# port.
$ENV{TEST_NGINX_UPSTREAMS} = <<'NGINX';
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 weight=2 max_fails=3 fail_timeout=7;
    server 127.0.0.1:$TEST_NGINX_PORT_3 backup;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
}
upstream other {
    zone other_zone 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_4 max_conns=5;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
NGINX

run_tests();
__DATA__

=== TEST 1: over-long request lines and values
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my ($p1, $p4) = (port(1), port(4));
my $K64 = 65536;
# 64 KiB query strings: nginx refuses the request line itself (414, or 400).
for my $q ("upstream=backends&server=127.0.0.1:$p1&weight=" . ('9' x $K64),
           "upstream=" . ('b' x $K64) . "&server=127.0.0.1:$p1&down=",
           "upstream=backends&add=&server=127.0.0.1:" . ('4' x $K64),
           "upstream=backends&server=127.0.0.1:$p1&down=&" . ('a=b&' x ($K64 / 4)),
           "upstream=backends&server=127.0.0.1:$p1&down=&x=" . ('%00' x ($K64 / 3))) {
    main::refused('GET', "/dynamic?$q", qr/\A(?:414|400)\z/, undef);
}
# A 64 KiB header next to a change.
main::refused('GET', "/dynamic?upstream=backends&server=127.0.0.1:$p1&down=", qr/\A4\d\d\z/, undef,
              headers => { 'X-Long' => 'x' x $K64 }, what => 'down= with a 64 KiB header');
# Long values that fit in nginx's buffers reach the module: refused, and the
# answer stays short (the value is not echoed whole).
for my $q ('upstream=' . ('b' x 7000),
           "upstream=backends&server=" . ('1' x 7000) . '&down=',
           "upstream=backends&add=&server=127.0.0.1:" . ('8' x 7000),
           "upstream=backends&add=&server=[" . ('0:' x 3000) . ']:80',
           "upstream=backends&add=&server=" . ('a.' x 3000) . 'b:80',
           "upstream=backends&add=&server=" . ('%41' x 2000),
           "upstream=backends&server=127.0.0.1:$p1&weight=" . ('9' x 7000),
           "upstream=backends&server=127.0.0.1:$p1&fail_timeout=" . ('1' x 7000) . 's',
           "upstream=backends&server=127.0.0.1:$p1&" . ('k' x 7000) . '=1',
           "upstream=backends&format=" . ('j' x 7000)) {
    my $r = main::refused('GET', "/dynamic?$q", 400, $main::E400);
    cmp_ok(length($r->{body}), '<', 400, 'GET ' . main::show("/dynamic?$q") . ': short answer');
}
is(http_get("/dynamic?upstream=other")->{body}, "server 127.0.0.1:$p4;\n", 'other is intact');



=== TEST 2: 255- and 256-byte upstream names, long unix socket paths
--- http_config
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 weight=2 max_fails=3 fail_timeout=7;
    server 127.0.0.1:$TEST_NGINX_PORT_3 backup;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
}
upstream other {
    zone other_zone 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_4 max_conns=5;
}
upstream $TEST_NGINX_NAME255 {
    zone $TEST_NGINX_NAME255 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_5;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my ($p1, $p5) = (port(1), port(5));
my ($n255, $n256) = ('u' x 255, 'u' x 256);
main::accepted("/dynamic?upstream=$n255", qr/\Aserver 127\.0\.0\.1:$p5;\n\z/);
for my $q ("upstream=$n256", "upstream=$n256&server=127.0.0.1:$p5&down=", "upstream=${n255}u&add=&server=127.0.0.1:9",
           'upstream=' . ('v' x 256) . '&verbose=') {
    main::refused('GET', "/dynamic?$q", 400, $main::E400);
}
is(http_get("/dynamic?upstream=$n255&verbose=")->{body}, "server 127.0.0.1:$p5 weight=1 max_fails=1 fail_timeout=10;\n",
   '255-byte upstream unchanged');

# unix socket paths: 107 bytes fit sun_path (with its NUL), 108 do not.
my $path107 = '/' . ('s' x 106);
my $path108 = '/' . ('s' x 107);
for my $path ($path108, '/' . ('s' x 300), '/' . ('s' x 5000)) {
    for my $op ("add=&server=unix:$path", "add=&backup=&server=unix:$path", "server=unix:$path&down=",
                "remove=&server=unix:$path") {
        main::refused('GET', "/dynamic?upstream=backends&$op", 400, $main::E400);
    }
}
# The longest path that fits is accepted, listed whole, and removable.
my $before = http_get('/dynamic?upstream=backends&verbose=')->{body};
main::accepted("/dynamic?upstream=backends&add=&server=unix:$path107",
               qr/^server unix:\Q$path107\E;$/m);
main::accepted("/dynamic?upstream=backends&verbose=",
               qr/^server unix:\Q$path107\E weight=1 max_fails=1 fail_timeout=10;\n/m);
main::accepted("/dynamic?upstream=backends&remove=&server=unix:$path107");
is(http_get('/dynamic?upstream=backends&verbose=')->{body}, $before, 'after add and remove of the 107-byte path: as before');
main::serving('after the unix peer');



=== TEST 3: percent-encoded control characters in every key and value
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $s1 = "127.0.0.1:$p1";
for my $c ('%00', '%0A', '%0D', '%09', '%7F', '%1B', '%0D%0AX-Injected:%201', '%C2%85') {
    my @q = (
        "upstream=backends$c",
        "upstream=${c}backends",
        "upstream=back${c}ends&server=$s1&down=",
        "upstream=backends&server=$s1$c&down=",
        "upstream=backends&server=${c}$s1&down=",
        "upstream=backends&add=&server=127.0.0.1:9$c",
        "upstream=backends&remove=&server=$s1$c",
        "upstream=backends&server=$s1&weight=2$c",
        "upstream=backends&server=$s1&weight=${c}2",
        "upstream=backends&server=$s1&max_fails=2$c",
        "upstream=backends&server=$s1&fail_timeout=2$c",
        "upstream=backends&server=$s1&fail_timeout=1m${c}5s",
        "upstream=backends&server=$s1&max_conns=2$c",
        "upstream=backends&server=$s1&down=$c",
        "upstream=backends&server=$s1&up=$c",
        "upstream=backends&server=127.0.0.1:$p2&down=1$c",
        "upstream=backends&verbose=$c",
        "upstream=backends&format=json$c",
        "upstream=backends&add=$c&server=127.0.0.1:9",
        "upstream=backends&add=&backup=$c&server=127.0.0.1:9",
        "upstream=backends&server=$s1&wei${c}ght=2",
        "upstream=backends&server=$s1&down$c=",
        "upstream=backends&server=$s1&${c}=1&down=",
        "upstream=backends&server=$s1&down=&$c",
        "ups${c}tream=backends",
    );
    main::refused('GET', "/dynamic?$_", 400, $main::E400) for @q;
}



=== TEST 4: malformed escapes, invalid UTF-8 and non-ASCII text
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my $s1 = '127.0.0.1:' . port(1);
for my $bad ('%', '%4', '%zz', '%%', '%G0', '%0', '%ff', '%C3', '%C3%28', '%C0%80', '%ED%A0%80', '%F8%88%80%80%80',
             '%FE', '%C3%A9', '%EF%BC%91', '%E2%80%8B', '%C2%A0') {
    for my $q ("upstream=backends$bad", "upstream=backends&server=$s1&down=&x$bad=",
               "upstream=backends&server=$s1&weight=1$bad", "upstream=backends&add=&server=127.0.0.1:9$bad",
               "upstream=backends&server=$s1$bad&down=") {
        main::refused('GET', "/dynamic?$q", qr/\A4\d\d\z/, $main::E4XX);
    }
}



=== TEST 5: duplicate parameters, also spelled with escapes
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $s1 = "127.0.0.1:$p1";
my %dup = (
    "upstream=backends&server=$s1&weight=1&weight=2"               => 'weight',
    "upstream=backends&server=$s1&weight=2&weight=2"               => 'weight',
    "upstream=backends&server=$s1&weight=2&w%65ight=3"             => 'weight',
    "upstream=backends&server=$s1&%77%65%69%67%68%74=2&weight=3"   => 'weight',
    "upstream=backends&server=$s1&max_fails=1&max_fails=2"         => 'max_fails',
    "upstream=backends&server=$s1&fail_timeout=1&fail_timeout=2"   => 'fail_timeout',
    "upstream=backends&server=$s1&max_conns=1&max_conns=2"         => 'max_conns',
    "upstream=backends&server=$s1&server=127.0.0.1:$p2&down="      => 'server',
    "upstream=backends&server=$s1&server=$s1&down="                => 'server',
    "upstream=backends&add=&server=127.0.0.1:9&server=127.0.0.1:8" => 'server',
    "upstream=backends&server=$s1&server=&down="                   => 'server',
    "upstream=backends&upstream=other&server=$s1&down="            => 'upstream',
    "upstream=other&upstream=backends&server=$s1&down="            => 'upstream',
    "upstream=backends&%75pstream=backends&server=$s1&down="       => 'upstream',
    "upstream=backends&server=$s1&down=&down="                     => 'down',
    "upstream=backends&server=$s1&down=&down=1"                    => 'down',
    "upstream=backends&server=$s1&up=&up="                         => 'up',
    "upstream=backends&add=&add=&server=127.0.0.1:9"               => 'add',
    "upstream=backends&remove=&remove=&server=$s1"                 => 'remove',
    "upstream=backends&add=&backup=&backup=&server=127.0.0.1:9"    => 'backup',
    "upstream=backends&verbose=&verbose=&server=$s1&down="         => 'verbose',
    "upstream=backends&format=json&format=text&server=$s1&down="   => 'format',
);
for my $q (sort keys %dup) {
    my $r = main::refused('GET', "/dynamic?$q", 400, undef);
    # format=json asks for a JSON answer; everything else is text
    if ($q =~ /format=json/) {
        like($r->{body}, qr/given more than once/, "$q: names the duplicate");
    } else {
        is($r->{body}, "400 Bad Request: parameter $dup{$q} is given more than once\n", "$q: body");
    }
}



=== TEST 6: numbers at and beyond the limits of every parameter
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $s1 = "127.0.0.1:$p1";
my %reason = (
    weight       => "400 Bad Request: weight must be an integer from 1 to 1000000\n",
    max_fails    => "400 Bad Request: max_fails must be an integer from 0 to 1000000\n",
    max_conns    => "400 Bad Request: max_conns must be an integer from 0 to 1000000\n",
    fail_timeout => "400 Bad Request: fail_timeout must be a number of seconds from 0 to 31536000\n",
);
my @common = ('4294967296', '18446744073709551616', '18446744073709551617', '99999999999999999999999999',
              '-1', '-0', '+1', '%2B1', '1e3', '1E3', '0x10', '0X10', '010x', '%201', '1%20', '1.0', '1,0',
              '', '%EF%BC%91', '1_000', 'NaN', 'inf', 'true');
my %bad = (
    weight       => ['0', '1000001', @common],
    max_fails    => ['1000001', @common],
    max_conns    => ['1000001', @common],
    fail_timeout => ['31536001', '999999999999y', '1y1s', '2y', '1y%201s', '366d', '1ms', '1s1s', @common],
);
my $new = 30000;    # a fresh address per add, so that one wrongly accepted add does not affect the next
for my $param (sort keys %bad) {
    for my $v (@{ $bad{$param} }) {
        main::refused('GET', "/dynamic?upstream=backends&server=$s1&$param=$v", 400, $reason{$param});
        $new++;
        main::refused('GET', "/dynamic?upstream=backends&add=&server=127.0.0.1:$new&$param=$v", 400, $reason{$param});
    }
}



=== TEST 7: the largest and smallest values are accepted and shown as given
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my $s1 = '127.0.0.1:' . port(1);
my $initial = http_get('/dynamic?upstream=backends&verbose=')->{body};
main::accepted("/dynamic?upstream=backends&server=$s1&weight=1000000&max_fails=1000000&max_conns=1000000&fail_timeout=1y",
               qr/^server \Q$s1\E weight=1000000 max_fails=1000000 fail_timeout=31536000 max_conns=1000000;\n/m);
main::accepted("/dynamic?upstream=backends&server=$s1&fail_timeout=31536000",
               qr/^server \Q$s1\E weight=1000000 max_fails=1000000 fail_timeout=31536000 max_conns=1000000;\n/m);
main::accepted("/dynamic?upstream=backends&server=$s1&max_fails=0&max_conns=0&fail_timeout=0",
               qr/^server \Q$s1\E weight=1000000 max_fails=0 fail_timeout=0;\n/m);
main::accepted("/dynamic?upstream=backends&server=$s1&weight=1&max_fails=1&fail_timeout=10");
is(http_get('/dynamic?upstream=backends&verbose=')->{body}, $initial, 'restored');
main::serving('after the boundary values');



=== TEST 8: bad ports and IPv6 edge forms
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
for my $addr ('127.0.0.1:0', '127.0.0.1:00', '127.0.0.1:65536', '127.0.0.1:99999', '127.0.0.1:4294967376',
              '127.0.0.1:-1', '127.0.0.1:%2B80', '127.0.0.1:80:80', '127.0.0.1:0x50', ':', '::', ':80', '%3A',
              '[fe80::1%25eth0]:80', '[fe80::1%25]:80', '[::1', '::1]:80', '[[::1]]:80', '[::1]:', '[]:80', '[]',
              '[::1]]:80', '[::1]:80]', '[:::1]:80', '[::1::2]:80', '[1:2:3:4:5:6:7:8:9]:80', '[::g]:80',
              '[::1]:0', '[::1]:65536', '1.2.3.4.5:80', '256.1.1.1:80', '01.2.3.4:80', '1.2.3:80', '1.2.3.4.:80',
              '.1.2.3.4:80', '2130706433:80', '127.1:80', '0x7f.0.0.1:80', '-1.2.3.4:80', '1.2.3.4%2F24:80',
              'unix:', 'unix:relative', 'unix:/tmp/a%20b', 'unix:/tmp/a;b', 'unix:/tmp/%7B',
              'unix:/tmp/a%22b', 'UNIX:/tmp/x', 'http://127.0.0.1:80', '127.0.0.1:80/x', '127.0.0.1%2080',
              '127.0.0.1;80') {
    for my $op ("add=&server=$addr", "server=$addr&down=", "server=$addr&weight=3", "remove=&server=$addr") {
        main::refused('GET', "/dynamic?upstream=backends&$op", qr/\A4\d\d\z/, $main::E4XX);
    }
}



=== TEST 9: valid IPv6 edge forms are added under their canonical name and removed again
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my $initial = http_get('/dynamic?upstream=backends&verbose=')->{body};
my %canonical = ('[::]:80' => '[::]:80', '[::ffff:127.0.0.1]:80' => '[::ffff:127.0.0.1]:80',
                 '[0:0:0:0:0:0:0:1]:81' => '[::1]:81', '[::FFFF:7F00:1]:82' => '[::ffff:127.0.0.1]:82');
for my $addr (sort keys %canonical) {
    my $name = $canonical{$addr};
    main::accepted("/dynamic?upstream=backends&add=&server=$addr", qr/^server \Q$name\E;\n/m);
    # the same peer again, in any spelling, is refused
    main::refused('GET', "/dynamic?upstream=backends&add=&server=$name", 400, $main::E400);
    main::accepted("/dynamic?upstream=backends&remove=&server=$addr");
    is(http_get('/dynamic?upstream=backends&verbose=')->{body}, $initial, "$addr: removed again");
}
main::serving('after the IPv6 peers');



=== TEST 10: upstream names with odd characters
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my $s1 = '127.0.0.1:' . port(1);
for my $name ('a/b', 'backends/', '/backends', '..', '../backends', 'backends/..', '.', '...', '%2E%2E', 'a;b',
              'backends;', '%3Bbackends', '{', '}', 'backends%7B%7D', '%22backends%22', "'backends'", '%27',
              'back%20ends', 'backends%20', '%20backends', '+backends', 'back%09ends', 'caf%C3%A9', '%C3%A9',
              'backends%C3%A9', '', '*', '%2A', 'backends*', 'BACKENDS', 'Backends', 'zone_for_backends%23',
              'backends%23x', 'backends%5C', '%24upstream', '$host', '<script>', 'backends,other', 'backends=') {
    for my $op ('', '&verbose=', "&server=$s1&down=", "&add=&server=127.0.0.1:9", "&remove=&server=$s1",
                '&format=json') {
        my $r = main::refused('GET', "/dynamic?upstream=$name$op", qr/\A40[04]\z/,
                              $op eq '&format=json' ? qr/\A\{"error":\{/ : $main::E4XX);
    }
}



=== TEST 11: empty values, bare keys and stray separators
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my $s1 = '127.0.0.1:' . port(1);
for my $q ('', '?', '?&&&', '?=', '?==', '?=&=', '?&=&', '?=backends', '?upstream', '?upstream=', '?upstream==',
           '?upstream==backends', '?upstream=backends=', '?upstream&backends', '?upstream=&upstream=',
           "?upstream=backends&server=", "?upstream=backends&server", "?upstream=backends&server=&down=",
           "?upstream=backends&server=&add=", "?upstream=backends&server==$s1&down=",
           "?upstream=backends&server=$s1&weight=", "?upstream=backends&server=$s1&weight",
           "?upstream=backends&server=$s1&weight==2", "?upstream=backends&server=$s1&max_fails",
           "?upstream=backends&server=$s1&fail_timeout=", "?upstream=backends&server=$s1&max_conns=",
           "?upstream=backends&=", "?upstream=backends&=1", "?upstream=backends&foo", "?upstream=backends&foo=",
           "?upstream=backends&server=$s1&down=0", "?upstream=backends&server=$s1&down=false",
           "?upstream=backends&server=$s1&down=yes", "?upstream=backends&server=$s1&down==",
           "?upstream=backends&verbose=0", "?upstream=backends&format=", "?upstream=backends&format=JSON",
           "?upstream=backends&add=&server=127.0.0.1:9&weight=", "?upstream=backends;server=$s1;down=",
           "?upstream=backends%26server=$s1%26down=", "?upstream%3Dbackends&server=$s1&down=",
           "?&&&upstream=backends&&&server=$s1&&&weight=&&&") {
    main::refused('GET', "/dynamic$q", qr/\A4\d\d\z/, $main::E4XX);
}



=== TEST 12: methods other than GET and HEAD; HEAD
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my $s1 = '127.0.0.1:' . port(1);
my @changes = ("upstream=backends&server=$s1&down=", "upstream=backends&add=&server=127.0.0.1:9",
               "upstream=backends&remove=&server=$s1", "upstream=backends&server=$s1&weight=9");
for my $m (qw(POST PUT PATCH DELETE OPTIONS FOO PROPFIND MKCOL COPY MOVE LOCK UNLOCK)) {
    for my $q (@changes, 'upstream=backends') {
        main::refused($m, "/dynamic?$q", 405, $main::E405, body => ($m =~ /^P/ ? 'upstream=backends&down=' : undef));
    }
}
# nginx itself refuses TRACE and CONNECT (405) and lower-case methods (400).
for my $m (qw(TRACE CONNECT get Get)) {
    main::refused($m, "/dynamic?$_", qr/\A40[05]\z/, undef) for @changes;
}
# HEAD lists like GET, without a body; refused HEADs change nothing either.
my $h = http('HEAD', '/dynamic?upstream=backends&verbose=');
is($h->{status}, 200, 'HEAD listing: 200');
is($h->{body}, '', 'HEAD listing: no body');
for my $q ("upstream=backends&server=$s1&weight=0", "upstream=backends&server=$s1%00&down=",
           "upstream=nope&server=$s1&down=", "upstream=backends&server=$s1&down=&up=",
           "upstream=backends&server=$s1&weight=1&weight=2") {
    main::refused('HEAD', "/dynamic?$q", qr/\A40[04]\z/, '');
}



=== TEST 13: JSON error answers are valid JSON without raw control characters
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my $s1 = '127.0.0.1:' . port(1);
for my $q ("upstream=backends%00&format=json", "upstream=backends&server=$s1%0D%0AX-Injected:%201&down=&format=json",
           "upstream=backends&server=$s1&weight=%1B[31m&format=json", "upstream=%22%5C&format=json",
           "upstream=backends&server=%22%7D,%22x%22:%22&add=&format=json",
           "upstream=backends&server=$s1&weight=0&format=json", "upstream=nope&format=json",
           "upstream=backends&x%22y=1&format=json") {
    for my $accept (undef, 'application/json') {
        my $uri = "/dynamic?$q";
        $uri =~ s/&format=json// if $accept;
        my $what = 'GET ' . main::show($uri) . ($accept ? ' (Accept: application/json)' : '');
        my $before = main::state();
        my $r = http('GET', $uri, undef, $accept ? { Accept => $accept } : undef);
        like($r->{status}, qr/\A40[04]\z/, "$what: 4xx");
        is($r->{headers}{'content-type'}, 'application/json', "$what: application/json");
        unlike($r->{body}, qr/[\x00-\x09\x0b-\x1f\x7f]/, "$what: no raw control characters");
        my $j = eval { JSON::PP->new->decode($r->{body}) };
        ok($j && ref $j->{error} eq 'HASH', "$what: valid JSON error") or diag(main::show($r->{body}));
        is($j->{error}{status}, $r->{status}, "$what: status in the JSON") if $j;
        ok(!grep({ lc($_->[0]) eq 'x-injected' } @{ $r->{header_list} }), "$what: no injected header");
        is(main::state(), $before, "$what: nothing changed");
    }
}
main::serving('after the JSON errors');



=== TEST 14: header injection and raw control bytes, at the socket level
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my $s1 = '127.0.0.1:' . port(1);
my $tail = " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
# Encoded CR/LF in every value: refused by the module; no header appears.
for my $q ("upstream=backends%0D%0AX-Injected:%201", "upstream=backends&server=$s1%0D%0AX-Injected:%201&down=",
           "upstream=backends&server=$s1&weight=1%0D%0AX-Injected:%201",
           "upstream=backends&server=$s1&down=&format=json%0D%0AX-Injected:%201",
           "upstream=backends&server=$s1&down=&X-Injected:%201%0D%0A=1",
           "upstream=backends%0D%0A%0D%0A<html>&server=$s1&down=") {
    my $what = 'raw GET ' . main::show($q);
    my $before = main::state();
    my $res = main::raw("GET /dynamic?$q$tail");
    my ($head, $body) = split /\r\n\r\n/, $res, 2;
    like($head, qr{\AHTTP/1\.1 400 }, "$what: 400");
    unlike($head, qr/^X-Injected/mi, "$what: no injected header");
    main::clean($body // '', $what);
    is(main::state(), $before, "$what: nothing changed");
}
# Raw control bytes inside the request line: nginx answers 400 itself.
for my $q ("upstream=backends&server=$s1\x00&down=", "upstream=backends&server=$s1\x7f&down=",
           "upstream=backends&server=$s1\x1b&down=", "upstream=backends&server=$s1\t&down=",
           "upstream=backends&server=$s1\x0b&down=", "upstream=backends\rX-Injected: 1&server=$s1&down=") {
    my $what = 'raw GET ' . main::show($q);
    my $before = main::state();
    my $res = main::raw("GET /dynamic?$q$tail");
    like($res, qr{\A(?:HTTP/1\.1 400 |<html>\r\n<head><title>400 )}, "$what: 400");
    unlike($res, qr/^X-Injected/mi, "$what: no injected header");
    is(main::state(), $before, "$what: nothing changed");
}
# A raw CR LF ends the request line: nginx takes what precedes it as an
# HTTP/0.9 request (a plain listing, answered without headers). What follows
# is never a header of the answer and the change is never made.
for my $q ("upstream=backends\r\nX-Injected: 1\r\n&server=$s1&down=",
           "upstream=backends\nX-Injected: 1\n&server=$s1&down=") {
    my $what = 'raw GET ' . main::show($q);
    my $before = main::state();
    my $res = main::raw("GET /dynamic?$q$tail");
    unlike($res, qr/^X-Injected/mi, "$what: no injected header");
    unlike($res, qr/\bdown\b/, "$what: the change was not made");
    is(main::state(), $before, "$what: nothing changed");
}
main::serving('after the raw requests');



=== TEST 15: a 10 MiB body is refused with 413 (Content-Length and chunked)
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
--- perl
my $s1 = '127.0.0.1:' . port(1);
my $big = 'upstream=backends&down=&' x (10 * 1024 * 1024 / 24);
for my $m (qw(POST PUT GET)) {
    main::refused($m, "/dynamic?upstream=backends&server=$s1&down=", 413, undef, body => $big,
                  what => "$m with a 10 MiB body");
}
my $chunk = 'x' x 65536;
my $chunked = (sprintf("%x\r\n%s\r\n", length $chunk, $chunk) x 160) . "0\r\n\r\n";
# Chunked, the size is not known up front: nginx discards the body for this
# location and the module refuses the method.
main::refused('POST', "/dynamic?upstream=backends&server=$s1&down=", qr/\A(?:405|413)\z/, undef, body => $chunked,
              headers => { 'Transfer-Encoding' => 'chunked' }, what => 'POST with a chunked 10 MiB body');

=== TEST 16: conditional request headers (If-Match, If-None-Match, If-Unmodified-Since) neither stop a change nor turn its answer into 412 or 304 (nginx's not_modified filter answered 412 or 304 to a change it had made)
--- http_config
upstream backends { zone backends 64k; server 127.0.0.1:30001; }
--- config
location /dynamic { dynamic_upstream; }
--- perl
my @conditionals = (['If-Match' => '"7"'], ['If-None-Match' => '*'], ['If-Unmodified-Since' => 'Thu, 01 Jan 1970 00:00:00 GMT']);
my $weight = 1;
for my $header (@conditionals) {
    $weight++;
    my $r = http('GET', "/dynamic?upstream=backends&server=127.0.0.1:30001&weight=$weight", undef, { @$header });
    is("$r->{status} $r->{body}", "200 server 127.0.0.1:30001 weight=$weight max_fails=1 fail_timeout=10;\n",
       "an update with $header->[0]: 200, made");
}
