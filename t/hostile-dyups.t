# dyups_interface (REST API) against hostile input: everything a scanner
# would try. Every refused request must answer a clear 4xx (the module's bare
# reason in text/plain, or nginx's own 4xx page where nginx refuses the
# request before the module sees it), must change nothing (/list, /detail,
# /status and the dyups_upstream_conf file byte for byte as before), must not
# reflect control characters, and nginx must keep routing by Host afterwards.
use lib 't/lib';
use NginxTest;
# (state() is this file's own: it also covers /status, two upstreams and dyups.conf.)
use NginxTest::Dyups qw(setup line proxied);
use NginxTest::Files;
use NginxTest::Hostile;
use JSON::PP ();

our $FAILED  = qr/\Aadd server failed: [^\n]+\z/;
our $BADNAME = qr/\Aupstream name "[^\n]*" is not a valid host name [^\n]+\z/;
our $E405    = 'only GET, POST and DELETE are accepted';
our $E405GET = 'only GET is accepted here (POST and DELETE change /upstream/NAME)';
our $ANY4XX  = qr/\A4\d\d\z/;
our $MiB     = 1024 * 1024;

sub p { port($_[0]) }

# Everything a change could touch.
sub state {
    my $out = '';
    for my $path ('/list', '/detail', '/status', '/upstream/dyhost', '/upstream/host1') {
        my $r = http_get($path);
        $out .= "$path: $r->{status}\n$r->{body}\n";
    }
    return $out . "--- dyups.conf ---\n" . (slurp(data_dir() . '/dyups.conf') // "(none)\n");
}

# The upstreams still route: dyhost to port 2, host1 to port 1.
sub serving {
    my ($what) = @_;
    for ([dyhost => p(2)], [host1 => p(1)]) {
        my ($host, $port) = @$_;
        my $r = proxied($host);
        ok($r->{status} == 200 && $r->{body} eq "$port\n", "$what: $host still routes to its server")
            or diag("via $host: $r->{status} " . show($r->{body}));
    }
}

# refused(METHOD, PATH, BODY, STATUS, WANT, %opt)
# STATUS: a number or a regex. WANT: a string (exact), a regex, or undef for
# nginx's own error page (not checked); a module answer must be text/plain,
# or application/json when it is JSON. opt: headers, what.
sub refused {
    my ($method, $path, $body, $status, $want, %o) = @_;
    my $what = $o{what} // "$method " . show($path) . (defined $body ? ' body ' . show($body) : '');
    my $before = state();
    my $r = http($method, $path, $body, $o{headers});
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
    }
    # Whatever the module answers (not nginx's own HTML pages) is clean.
    clean($r->{body}, $what) if $r->{status} >= 400 && $r->{body} !~ /\A<html>/;
    ok(!grep({ lc($_->[0]) eq 'x-injected' } @{ $r->{header_list} }), "$what: no injected header");
    restore() unless is(state(), $before, "$what: nothing changed");
    serving($what);
    return $r;
}

# After a request that wrongly changed something (already reported as a
# failure): back to the block's starting point, so that one wrongly
# accepted request does not fail every later test too.
sub restore {
    http('POST', '/upstream/dyhost', 'server 127.0.0.1:' . p(2) . ';');
    http('POST', '/upstream/host1', 'server 127.0.0.1:' . p(1) . ';');
    for my $name (split /\n/, http_get('/list')->{body}) {
        http('DELETE', "/upstream/$name") unless $name eq 'dyhost' || $name eq 'host1';
    }
}

# A POST body that must be refused with 400 and an `add server failed: `
# reason (matching RE when given), whether it would replace dyhost, replace
# the configuration's host1 or create a new upstream.
sub bad_body {
    my ($body, $re, %o) = @_;
    for my $name (qw(dyhost host1 newname)) {
        my $what = "POST /upstream/$name " . ($o{what} // show($body));
        my $r = refused('POST', "/upstream/$name", $body, 400, $FAILED, %o, what => $what);
        like($r->{body}, $re, "$what: names the problem") if $re;
    }
}

# A POST that must be accepted.
sub accepted {
    my ($path, $body, %o) = @_;
    my $r = http('POST', $path, $body, $o{headers});
    is($r->{status}, 200, "POST $path " . show($body) . ': 200') or diag(show($r->{body}));
    is($r->{body}, 'success', "POST $path " . show($body) . ': success');
    return $r;
}

# The configuration of every block but TEST 2: a configuration upstream, the
# dyups file, backends that answer their port, and the proxy by Host on port 9.
$ENV{TEST_NGINX_DYUPS} = <<'NGINX';
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
NGINX

run_tests();
__DATA__

=== TEST 1: over-long request lines, names and addresses
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- perl
main::setup();
my $s3 = 'server 127.0.0.1:' . main::p(3) . ';';
my $K64 = 65536;
# 64 KiB request lines: nginx refuses them (414, or 400).
main::refused('POST', '/upstream/' . ('a' x $K64), $s3, qr/\A(?:414|400)\z/, undef);
main::refused('POST', '/upstream/dyhost?' . ('a' x $K64), $s3, qr/\A(?:414|400)\z/, undef);
main::refused('POST', '/upstream/dyhost?x=' . ('%00' x ($K64 / 3)), $s3, qr/\A(?:414|400)\z/, undef);
main::refused('DELETE', '/upstream/dyhost?' . ('a=b&' x ($K64 / 4)), undef, qr/\A(?:414|400)\z/, undef);
main::refused('DELETE', '/upstream/' . ('d' x $K64), undef, qr/\A(?:414|400)\z/, undef);
main::refused('GET', '/list?' . ('a' x $K64), undef, qr/\A(?:414|400)\z/, undef);
main::refused('POST', '/upstream/dyhost', $s3, $main::ANY4XX, undef, headers => { 'X-Long' => 'x' x $K64 },
              what => 'POST with a 64 KiB header');
# 255 bytes is the longest name; 256 and 7000 are refused, with a short answer.
my $n255 = 'n' x 255;
main::accepted("/upstream/$n255", $s3);
is(http_get("/upstream/$n255")->{body}, main::line('127.0.0.1:' . main::p(3)), '255-byte name: its server');
is(http('DELETE', "/upstream/$n255")->{status}, 200, '255-byte name: deleted');
for my $name ('n' x 256, 'n' x 7000) {
    for my $m (qw(POST GET DELETE)) {
        my $r = main::refused($m, "/upstream/$name", $m eq 'POST' ? $s3 : undef, 400, $main::BADNAME);
        cmp_ok(length($r->{body}), '<', 400, "$m " . main::show($name) . ': short answer');
    }
}
# Over-long addresses, numbers, keys and directives in the body.
for my $body ('server ' . ('1' x 100_000) . ';', 'server 127.0.0.1:' . ('8' x 100_000) . ';',
              'server [' . ('0:' x 50_000) . ']:80;', 'server ' . ('a.' x 50_000) . 'b:80;',
              'server 127.0.0.1:' . main::p(3) . ' weight=' . ('9' x 100_000) . ';',
              'server 127.0.0.1:' . main::p(3) . ' fail_timeout=' . ('1' x 100_000) . 's;',
              'server 127.0.0.1:' . main::p(3) . ' ' . ('k' x 100_000) . '=1;',
              ('x' x 100_000) . " $s3", "hash \$" . ('h' x 100_000) . "; $s3", "hash " . ('h' x 100_000) . "; $s3",
              "$s3 server unix:/" . ('s' x 100_000) . ';') {
    my $r = main::refused('POST', '/upstream/dyhost', $body, 400, $main::FAILED);
    cmp_ok(length($r->{body}), '<', 600, 'POST ' . main::show($body) . ': short answer');
}
# unix socket paths: 107 bytes fit sun_path (with its NUL), 108 do not.
my ($path107, $path108) = ('/' . ('s' x 106), '/' . ('s' x 107));
main::bad_body("server unix:$path108;", qr/unix/);
main::bad_body("$s3 server unix:/" . ('s' x 5000) . ' backup;', qr/unix/);
main::accepted('/upstream/sock', "server unix:$path107;");
is(http_get('/upstream/sock')->{body}, main::line("unix:$path107"), '107-byte unix path: listed whole');
is(http('DELETE', '/upstream/sock')->{status}, 200, '107-byte unix path: deleted');
main::serving('at the end');



=== TEST 2: 10 MiB bodies answer 413; 1 MiB is the limit
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8;
    client_max_body_size 20m;
    location / { dyups_interface; }
}
--- config
location / { dyups_interface; }
--- perl
main::setup();
my $s3 = 'server 127.0.0.1:' . main::p(3) . ';';
my $ten = $s3 . (' ' x (10 * $main::MiB - length $s3));
my $chunk = ' ' x 65536;
my $chunked = sprintf("%x\r\n%s\r\n", length $s3, $s3) . (sprintf("%x\r\n%s\r\n", length $chunk, $chunk) x 160) . "0\r\n\r\n";
for my $name (qw(dyhost host1 newname)) {
    main::refused('POST', "/upstream/$name", $ten, 413, undef, what => "POST /upstream/$name: 10 MiB");
    main::refused('POST', "/upstream/$name", $ten, 413, undef, headers => { 'Content-Type' => 'application/json' },
                  what => "POST /upstream/$name: 10 MiB as JSON");
    main::refused('POST', "/upstream/$name", $chunked, 413, undef, headers => { 'Transfer-Encoding' => 'chunked' },
                  what => "POST /upstream/$name: 10 MiB chunked");
}
main::refused('DELETE', '/upstream/dyhost', $ten, 413, undef, what => 'DELETE /upstream/dyhost with a 10 MiB body');
main::refused('GET', '/list', $ten, 413, undef, what => 'GET /list with a 10 MiB body');
# Where nginx would take 20m (the server on port 8), the module's own 1 MiB
# limit answers.
my $big = 'http://127.0.0.1:' . main::p(8);
for my $name (qw(dyhost host1 newname)) {
    main::refused('POST', "$big/upstream/$name", $ten, 413, qr/\Arequest body larger than 1048576 bytes\n?\z/,
                  what => "POST port 8 /upstream/$name: 10 MiB");
    main::refused('POST', "$big/upstream/$name", $chunked, 413, qr/\Arequest body larger than 1048576 bytes\n?\z/,
                  headers => { 'Transfer-Encoding' => 'chunked' }, what => "POST port 8 /upstream/$name: 10 MiB chunked");
}
# Exactly 1 MiB is read; 1 MiB + 1 is not.
my $exact = $s3 . (' ' x ($main::MiB - length $s3));
main::refused('POST', '/upstream/dyhost', "$exact ", 413, undef, what => 'POST 1 MiB + 1');
main::accepted('/upstream/onemib', $exact);
is(http_get('/upstream/onemib')->{body}, main::line('127.0.0.1:' . main::p(3)), '1 MiB body: its server');
is(http('DELETE', '/upstream/onemib')->{status}, 200, '1 MiB body: deleted');
main::serving('at the end');



=== TEST 3: control characters, CR/LF and NUL in names
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- perl
main::setup();
my $s3 = 'server 127.0.0.1:' . main::p(3) . ';';
for my $c ('%00', '%0A', '%0D', '%09', '%7F', '%1B', '%0D%0AX-Injected:%201', '%C2%85', '%08', '%0B', '%0C') {
    for my $name ("a${c}b", "dyhost$c", "${c}dyhost", "host1$c", $c) {
        main::refused('POST', "/upstream/$name", $s3, 400, undef);
        main::refused('GET', "/upstream/$name", undef, 400, undef);
        main::refused('DELETE', "/upstream/$name", undef, 400, undef);
    }
}



=== TEST 4: names with odd characters, only dots, empty
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- perl
main::setup();
my $s3 = 'server 127.0.0.1:' . main::p(3) . ';';
for my $name ('a/b', 'a%2Fb', 'dyhost%2F', 'a%5Cb', 'a;b', 'dyhost;', 'a%3Bb', '%7B', '%7D', 'a%7Bb%7D',
              '%22dyhost%22', "'dyhost'", '%27', 'a%20b', 'dyhost%20', '%20dyhost', 'a%09b', 'caf%C3%A9',
              '%C3%A9', 'dyhost%C2%A0', 'dyhost%E2%80%8B', '', '.', '..', '...', '....', '%2E%2E%2E', '.%2E.',
              '*', '%2A', '$host', '%24host', '%3Cscript%3E', 'a:b', 'a@b', 'a,b', 'a=b', 'a+b', 'a%25b',
              'a%23b', 'a%3Fb', 'a%26b', '~dyhost', 'dyhost!', '%FF', '%C3%28') {
    for my $m (qw(POST GET DELETE)) {
        main::refused($m, "/upstream/$name", $m eq 'POST' ? $s3 : undef, qr/\A40[04]\z/, undef);
    }
}



=== TEST 5: NUL, CR/LF and other control bytes in text bodies
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- perl
main::setup();
my $a3 = '127.0.0.1:' . main::p(3);
for my $c ("\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\xc2\x85") {
    for my $body ("${c}server $a3;", "server$c $a3;", "ser${c}ver $a3;", "server $a3$c;", "server $c$a3;",
                  "server $a3 weight=2$c;", "server $a3 weight=${c}2;", "server $a3 ${c}weight=2;",
                  "server $a3 down$c;", "server $a3 backup${c};", "server $a3;$c", "server $a3; $c server $a3;",
                  "least_conn$c; server $a3;", "hash \$uri$c; server $a3;", "server unix:/tmp/a${c}b;") {
        main::bad_body($body);
    }
}
# CR/LF/TAB inside a token split it; the halves are refused.
for my $sep ("\r\n", "\n", "\r", "\t") {
    for my $body ("ser${sep}ver $a3;", "server 127.0.0.1:${sep}" . main::p(3) . ';', "server 127.${sep}0.0.1:" . main::p(3) . ';',
                  "server $a3 weight=${sep}2;", "server $a3 weight${sep}=2;", "server $a3 fail_timeout=1m${sep}s;",
                  "server $a3 max_${sep}fails=2;", "server unix:/tmp/a${sep}b;", "least_${sep}conn; server $a3;") {
        main::bad_body($body);
    }
}
# A raw header line inside a body is not a directive.
main::bad_body("server $a3;\r\nX-Injected: 1\r\n");
main::bad_body("server $a3;\r\n\r\nGET /list HTTP/1.1\r\nHost: localhost\r\n\r\n");
# Bytes that are not UTF-8.
main::bad_body("server $a3 weight=\xff;", qr/UTF-8/);
main::bad_body("server \xc3\x28$a3;", qr/UTF-8/);
main::bad_body("\xef\xbb\xbfserver $a3;");
# CR, LF and TAB between tokens are whitespace: accepted, and stored and
# listed without them.
for my $sep ("\r\n", "\n", "\r", "\t", "\r\n\t \r\n") {
    my $a2 = '127.0.0.1:' . main::p(2);
    my $body = "least_conn${sep};${sep}server${sep}$a3${sep}weight=3${sep};${sep}server $a2 backup;$sep";
    main::accepted('/upstream/wsp', $body);
    is(http_get('/upstream/wsp')->{body}, main::line($a3, weight => 3) . main::line($a2, backup => 1),
       'whitespace ' . main::show($sep) . ': servers as given');
    unlike(main::state(), qr/[\x00-\x08\x0b-\x1f\x7f]|\r/, 'whitespace ' . main::show($sep) . ': nothing shows control bytes');
    is(http('DELETE', '/upstream/wsp')->{status}, 200, 'whitespace ' . main::show($sep) . ': deleted');
}
unlike(main::slurp(main::data_dir() . '/dyups.conf') // '', qr/\r|\t/, 'the dyups.conf file has no CR or TAB');
main::serving('at the end');



=== TEST 6: control characters in JSON bodies
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- perl
main::setup();
my $a3 = '127.0.0.1:' . main::p(3);
my $json = { 'Content-Type' => 'application/json' };
for my $esc ('\u0000', '\r\n', '\n', '\t', '\u001b', '\u007f', '\u0085', '\r\nX-Injected: 1') {
    for my $body (qq({"servers":[{"server":"$a3$esc"}]}), qq({"servers":[{"server":"$esc$a3"}]}),
                  qq({"servers":[{"server":"$a3","wei${esc}ght":2}]}), qq({"servers":[{"server":"$a3"}],"balancer":"least_conn$esc"}),
                  qq({"servers":[{"server":"$a3"}],"balancer":"hash","hash_key":"\$uri$esc"}),
                  qq({"servers":[{"server":"$a3"}],"x$esc":1}), qq({"servers":[{"server":"unix:/tmp/a${esc}b"}]})) {
        main::bad_body($body, undef, headers => $json);
    }
}
# Raw control bytes outside strings, and inside them (invalid JSON).
for my $c ("\x00", "\x01", "\x1b", "\x0b", "\x0c") {
    main::bad_body(qq({"servers":[{"server":"$a3"}]}$c), qr/JSON/, headers => $json);
    main::bad_body(qq($c\{"servers":[{"server":"$a3"}]}), qr/JSON/, headers => $json);
    main::bad_body(qq({"servers":[{"server":"$a3$c"}]}), qr/JSON/, headers => $json);
}
main::bad_body(qq(\xef\xbb\xbf{"servers":[{"server":"$a3"}]}), undef, headers => $json);
main::bad_body(qq({"servers":[{"server":"$a3\xff"}]}), undef, headers => $json);
# JSON error answers with format=json are valid JSON with escaped texts.
my $before = main::state();
my $r = http('POST', '/upstream/dyhost?format=json', qq({"servers":[{"server":"$a3\\u0000\\r\\n"}]}), $json);
is($r->{status}, 400, 'JSON error: 400');
unlike($r->{body}, qr/[\x00-\x09\x0b-\x1f\x7f]/, 'JSON error: no raw control characters');
my $j = eval { JSON::PP->new->decode($r->{body}) };
ok($j && $j->{error}{status} == 400, 'JSON error: valid JSON') or diag(main::show($r->{body}));
is(main::state(), $before, 'JSON error: nothing changed');



=== TEST 7: numbers at and beyond the limits (text and JSON bodies)
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- perl
main::setup();
my $a3 = '127.0.0.1:' . main::p(3);
my $json = { 'Content-Type' => 'application/json' };
my %reason = (
    weight       => qr/\Aadd server failed: weight must be an integer from 1 to 1000000\z/,
    max_fails    => qr/\Aadd server failed: max_fails must be an integer from 0 to 1000000\z/,
    max_conns    => qr/\Aadd server failed: max_conns must be an integer from 0 to 1000000\z/,
    fail_timeout => qr/\Aadd server failed: fail_timeout must be a number of seconds from 0 to 31536000\z/,
);
my @common = ('4294967296', '18446744073709551616', '99999999999999999999999999', '-1', '-0', '+1', '1e3', '0x10',
              '1.0', '1,0', '', 'NaN', 'true', '1_000');
my %bad = (
    weight       => ['0', '1000001', @common],
    max_fails    => ['1000001', @common],
    max_conns    => ['1000001', @common],
    fail_timeout => ['31536001', '999999999999y', '1y1s', '2y', '1ms', @common],
);
for my $param (sort keys %bad) {
    for my $v (@{ $bad{$param} }) {
        main::bad_body("server $a3 $param=$v;", $reason{$param});
    }
    # `param= 1`: an empty value, then a stray word
    main::bad_body("server $a3 $param= 1;");
}
# JSON: only plain non-negative integers in range.
my @jcommon = ('4294967296', '18446744073709551616', '1e3', '1E3', '1.0', '-1', '"1"', '"0x10"', 'null', 'true',
               '[]', '{}', '1.5');
my %jbad = (weight => ['0', '1000001', @jcommon], max_fails => ['1000001', @jcommon],
            max_conns => ['1000001', @jcommon], fail_timeout => ['31536001', '"1y1s"', @jcommon]);
for my $param (sort keys %jbad) {
    for my $v (@{ $jbad{$param} }) {
        main::bad_body(qq({"servers":[{"server":"$a3","$param":$v}]}), $reason{$param}, headers => $json);
    }
    for my $v ('+1', '0x10', '01', '1.', '.5', 'NaN', 'Infinity', '-') {    # not JSON at all
        main::bad_body(qq({"servers":[{"server":"$a3","$param":$v}]}), qr/JSON/, headers => $json);
    }
}
# The limits themselves are accepted.
main::accepted('/upstream/limits', "server $a3 weight=1000000 max_fails=1000000 max_conns=1000000 fail_timeout=1y;"
                                 . " server 127.0.0.1:" . main::p(2) . " max_fails=0 max_conns=0 fail_timeout=0;");
is(http_get('/upstream/limits')->{body},
   main::line($a3, weight => 1000000, max_fails => 1000000, max_conns => 1000000, fail_timeout => 31536000)
   . main::line('127.0.0.1:' . main::p(2), max_fails => 0, fail_timeout => 0), 'limits: as given');
main::accepted('/upstream/limits', qq({"servers":[{"server":"$a3","weight":1000000,"max_fails":1000000,)
                                 . qq("max_conns":1000000,"fail_timeout":31536000}]}), headers => $json);
is(http_get('/upstream/limits')->{body},
   main::line($a3, weight => 1000000, max_fails => 1000000, max_conns => 1000000, fail_timeout => 31536000),
   'JSON limits: as given');
is(http('DELETE', '/upstream/limits')->{status}, 200, 'limits: deleted');
main::serving('at the end');



=== TEST 8: duplicate parameters and keys
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- perl
main::setup();
my ($a2, $a3) = map { '127.0.0.1:' . main::p($_) } 2, 3;
my $json = { 'Content-Type' => 'application/json' };
for my $body ("server $a3 weight=1 weight=2;", "server $a3 weight=2 weight=2;", "server $a3 max_fails=1 max_fails=2;",
              "server $a3 fail_timeout=1 fail_timeout=2;", "server $a3 max_conns=1 max_conns=2;",
              "server $a3 backup backup; server $a2;", "server $a3 down down;", "server $a3 $a2;",
              "least_conn; least_conn; server $a3;", "ip_hash; hash \$uri; server $a3;") {
    main::bad_body($body);
}
for my $body (qq({"servers":[{"server":"$a3","weight":1,"weight":2}]}),
              qq({"servers":[{"server":"$a2","server":"$a3"}]}),
              qq({"servers":[{"server":"$a3","down":true,"down":false}]}),
              qq({"servers":[{"server":"$a3"}],"servers":[{"server":"$a2"}]}),
              qq({"servers":[{"server":"$a3"}],"balancer":"least_conn","balancer":"ip_hash"})) {
    main::bad_body($body, undef, headers => $json);
}



=== TEST 9: bad ports and IPv6 edge forms; valid edge forms under their canonical names
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- perl
main::setup();
my $json = { 'Content-Type' => 'application/json' };
for my $addr ('127.0.0.1:0', '127.0.0.1:00', '127.0.0.1:65536', '127.0.0.1:99999', '127.0.0.1:4294967376',
              '127.0.0.1:-1', '127.0.0.1:+80', '127.0.0.1:80:80', '127.0.0.1:0x50', ':', '::', ':80',
              '[fe80::1%eth0]:80', '[fe80::1%25eth0]:80', '[::1', '::1]:80', '[[::1]]:80', '[::1]:', '[]:80', '[]',
              '[::1]]:80', '[:::1]:80', '[::1::2]:80', '[1:2:3:4:5:6:7:8:9]:80', '[::g]:80', '[::1]:0', '[::1]:65536',
              '1.2.3.4.5:80', '256.1.1.1:80', '01.2.3.4:80', '1.2.3:80', '1.2.3.4.:80', '.1.2.3.4:80',
              '2130706433:80', '127.1:80', '0x7f.0.0.1:80', '1.2.3.4/24:80', 'unix:', 'unix:relative',
              'unix:/tmp/a"b', "unix:/tmp/a'b", 'unix:/tmp/a{b', 'unix:/tmp/a}b', 'unix:/tmp/a#b', 'unix:/tmp/a\\b',
              'unix:/tmp/a$b', 'UNIX:/tmp/x', 'http://127.0.0.1:80', '127.0.0.1:80/x', '"127.0.0.1:80"',
              "'127.0.0.1:80'", '{127.0.0.1:80}') {
    main::bad_body("server $addr;");
    (my $j = $addr) =~ s/(["\\])/\\$1/g;
    main::bad_body(qq({"servers":[{"server":"$j"}]}), undef, headers => $json);
}
my %canonical = ('[::]:80' => '[::]:80', '[::ffff:127.0.0.1]:80' => '[::ffff:127.0.0.1]:80',
                 '[0:0:0:0:0:0:0:1]:81' => '[::1]:81', '[::FFFF:7F00:1]:82' => '[::ffff:127.0.0.1]:82');
for my $addr (sort keys %canonical) {
    main::accepted('/upstream/v6', "server $addr;");
    is(http_get('/upstream/v6')->{body}, main::line($canonical{$addr}), "$addr: listed as $canonical{$addr}");
    main::accepted('/upstream/v6', qq({"servers":[{"server":"$addr"}]}), headers => $json);
    is(http_get('/upstream/v6')->{body}, main::line($canonical{$addr}), "$addr (JSON): listed as $canonical{$addr}");
    is(http('DELETE', '/upstream/v6')->{status}, 200, "$addr: deleted");
}
main::serving('at the end');



=== TEST 10: odd statements, empty values, stray separators
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- perl
main::setup();
my $a3 = '127.0.0.1:' . main::p(3);
for my $body ('', ';', ';;;', ' ; ; ', '#', "# server $a3;", "server $a3 # ;", 'server;', 'server =;', 'server ;',
              "server $a3 =;", "server $a3 =2;", "server $a3 weight;", "server $a3 weight==2;", "server $a3 weight=;",
              "server $a3 backup=;", "server $a3 backup=1;", "server $a3 down=0;", "server $a3 = weight 2;",
              "server=$a3;", "server:$a3;", "server\\ $a3;", '{', '}', "{ server $a3; }", "server $a3; }",
              "upstream x { server $a3; }", "server $a3 { }", "server $a3 {};", "\"server\" $a3;", "'server' $a3;",
              "server \"$a3\";", "server '$a3';", "include /etc/passwd; server $a3;", "server $a3; include /etc/passwd;",
              "proxy_pass http://$a3; server $a3;", "location / { } server $a3;", "server $a3 resolve;",
              "server $a3 route=x;", "server $a3 slow_start=10s;", "server $a3 weight=2,max_fails=3;",
              "server $a3,127.0.0.1:9;", "server $a3\\;", "\\; server $a3;", "server $a3 weight=\$arg_w;",
              "upstream=dyhost&server=$a3", "server=$a3&weight=2", "-- server $a3;", "server $a3; --",
              "server $a3; /* x */", "/* */ server $a3;") {
    main::bad_body($body);
}
my $json = { 'Content-Type' => 'application/json' };
for my $body ('', ' ', '{}', '[]', 'null', '""', '0', 'true', '{"servers":null}', '{"servers":{}}', '{"servers":[]}',
              '{"servers":[null]}', '{"servers":[1]}', '{"servers":[{}]}', '{"servers":[{"server":""}]}',
              '{"servers":[{"server":null}]}', qq({"servers":[{"server":"$a3"}],"balancer":""}),
              qq({"servers":[{"server":"$a3"}],"balancer":null,"hash_key":""}), qq({"servers":[{"server":"$a3"}],"":1}),
              qq({"servers":[{"server":"$a3","":1}]}), qq([{"servers":[{"server":"$a3"}]}]),
              qq({"servers":[{"server":"$a3"}]}{"servers":[{"server":"$a3"}]}), qq({"servers":[{"server":"$a3"}]),
              qq({"servers":[{"server":"$a3"}],}), qq({'servers':[{'server':'$a3'}]}), qq({servers:[{server:"$a3"}]})) {
    main::bad_body($body, undef, headers => $json);
}



=== TEST 11: methods other than GET, POST, DELETE; HEAD
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- perl
main::setup();
my $s3 = 'server 127.0.0.1:' . main::p(3) . ';';
my @upstreams = ('/upstream/dyhost', '/upstream/host1', '/upstream/newname');
my @listings = ('/list', '/detail', '/status');
my @paths = (@upstreams, @listings);
for my $m (qw(PUT PATCH OPTIONS FOO PROPFIND MKCOL COPY MOVE LOCK UNLOCK)) {
    main::refused($m, $_, $s3, 405, $main::E405) for @upstreams;
    main::refused($m, $_, undef, 405, $main::E405) for @upstreams;
    main::refused($m, $_, $s3, 405, $main::E405GET) for @listings;
    main::refused($m, $_, undef, 405, $main::E405GET) for @listings;
}
# (A POST of /list was told POST is accepted: hunt 43.)
for my $m (qw(POST DELETE)) {
    main::refused($m, $_, ($m eq 'POST' ? $s3 : undef), 405, $main::E405GET) for @listings;
}
# nginx itself refuses TRACE and CONNECT (405) and lower-case methods (400).
for my $m (qw(TRACE CONNECT post Post delete)) {
    main::refused($m, $_, $s3, qr/\A40[05]\z/, undef) for @paths;
}
# HEAD reads like GET, without a body, and changes nothing.
for my $path ('/list', '/detail', '/status', '/upstream/dyhost', '/upstream/host1') {
    my $before = main::state();
    my $r = http('HEAD', $path);
    is($r->{status}, 200, "HEAD $path: 200");
    is($r->{body}, '', "HEAD $path: no body");
    is(main::state(), $before, "HEAD $path: nothing changed");
}
main::refused('HEAD', '/upstream/newname', $s3, 404, '');
main::refused('HEAD', '/upstream/a;b', $s3, 400, '');
main::refused('HEAD', '/nope', $s3, 404, '');



=== TEST 12: content types
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- perl
main::setup();
my $a3 = '127.0.0.1:' . main::p(3);
my $jbody = qq({"servers":[{"server":"$a3","weight":3}],"balancer":"least_conn"});
my $tbody = "least_conn; server $a3 weight=3;";
# JSON parsed as text, text parsed as JSON: refused.
for my $type (undef, 'text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded',
              'application/octet-stream', 'multipart/form-data; boundary=x', 'text/json', 'json', '*/*', '',
              'application/ json', 'application/javascript') {
    main::bad_body($jbody, qr/JSON/, headers => (defined $type ? { 'Content-Type' => $type } : undef),
                   what => 'JSON body as ' . ($type // '(no type)'));
}
for my $type ('application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'Application/Json;charset=UTF-8',
              'application/json;charset=latin1') {
    main::bad_body($tbody, qr/JSON/, headers => { 'Content-Type' => $type }, what => "text body as $type");
}
main::bad_body("--x\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nserver $a3;\r\n--x--\r\n", undef,
               headers => { 'Content-Type' => 'multipart/form-data; boundary=x' }, what => 'multipart body');
main::bad_body("server=$a3&weight=3", undef, headers => { 'Content-Type' => 'application/x-www-form-urlencoded' },
               what => 'form body');
# Both accepted with the matching type; a charset parameter is fine.
my $want = main::line($a3, weight => 3);
for my $type ('application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON') {
    main::accepted('/upstream/ct', $jbody, headers => { 'Content-Type' => $type });
    is(http_get('/upstream/ct')->{body}, $want, "JSON as $type: the server");
}
main::accepted('/upstream/ct', $tbody, headers => { 'Content-Type' => 'text/plain' });
is(http_get('/upstream/ct')->{body}, $want, 'text as text/plain: the server');
is(http('DELETE', '/upstream/ct')->{status}, 200, 'deleted');
main::serving('at the end');



=== TEST 13: header injection and raw control bytes, at the socket level
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- perl
main::setup();
my $s3 = 'server 127.0.0.1:' . main::p(3) . ';';
my $head = sub { "$_[0] HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: " . length($s3) . "\r\n\r\n$s3" };
for my $m (qw(POST GET DELETE)) {
    for my $path ('/upstream/a%0D%0AX-Injected:%201', '/upstream/dyhost%0D%0AX-Injected:%201',
                  '/upstream/%0D%0AX-Injected:%201%0D%0A%0D%0A<html>') {
        my $what = "raw $m " . main::show($path);
        my $before = main::state();
        my $res = main::raw($head->("$m $path"));
        my ($h, $b) = split /\r\n\r\n/, $res, 2;
        like($h, qr{\AHTTP/1\.1 400 }, "$what: 400");
        unlike($h, qr/^X-Injected/mi, "$what: no injected header");
        main::clean($b // '', $what);
        is(main::state(), $before, "$what: nothing changed");
    }
    for my $path ("/upstream/dy\x00host", "/upstream/dyhost\x7f", "/upstream/dy\x1bhost", "/upstream/dy\thost",
                  "/upstream/dyhost\rX-Injected: 1") {
        my $what = "raw $m " . main::show($path);
        my $before = main::state();
        my $res = main::raw($head->("$m $path"));
        like($res, qr{\A(?:HTTP/1\.1 400 |<html>\r\n<head><title>400 )}, "$what: 400");
        unlike($res, qr/^X-Injected/mi, "$what: no injected header");
        is(main::state(), $before, "$what: nothing changed");
    }
    # A raw CR LF ends the request line (nginx takes it as HTTP/0.9).
    for my $path ("/upstream/dyhost\r\nX-Injected: 1\r\n", "/upstream/newname\nX-Injected: 1\n") {
        my $what = "raw $m " . main::show($path);
        my $before = main::state();
        my $res = main::raw($head->("$m $path"));
        unlike($res, qr/^X-Injected/mi, "$what: no injected header");
        unlike($res, qr/^success/m, "$what: no change was made");
        is(main::state(), $before, "$what: nothing changed");
    }
}
main::serving('at the end');



=== TEST 14: a body of very many servers is refused whole
--- http_config
$TEST_NGINX_DYUPS
--- config
location / { dyups_interface; }
--- perl
main::setup();
# ~45,000 distinct servers in just under 1 MiB: more than the 2m zone holds.
my $body = '';
OUTER: for my $x (0 .. 255) {
    for my $y (0 .. 255) {
        my $s = "server 127.1.$x.$y:80;";
        last OUTER if length($body) + length($s) > $main::MiB;
        $body .= $s;
    }
}
for my $name (qw(dyhost host1 newname)) {
    main::refused('POST', "/upstream/$name", $body, qr/\A(?:4\d\d|507)\z/, qr/\A[^\n]+\z/,
                  what => "POST /upstream/$name: " . ($body =~ tr/;//) . ' servers');
}

=== TEST 15: conditional request headers are the module's, never nginx's not_modified filter's (which answered 412 or 304 to a change it had made): If-Unmodified-Since is ignored; If-Match with a revision the module never gave answers 412 and If-None-Match 400, and neither changes anything (t/dyups-if-match.t: If-Match with an ETag)
--- config
location / { dyups_interface; }
--- perl
my $date = ['If-Unmodified-Since' => 'Thu, 01 Jan 1970 00:00:00 GMT'];
my $r = http('POST', '/upstream/c', 'server 127.0.0.1:30001;', {@$date});
is("$r->{status} $r->{body}", '200 success', 'POST with If-Unmodified-Since: 200');
$r = http('DELETE', '/upstream/c', undef, {@$date});
is("$r->{status} $r->{body}", '200 success', 'DELETE with If-Unmodified-Since: 200');
my $stale = 'upstream "c" changed since the revision given in If-Match: read it again';
my $none = 'If-None-Match is not supported on changes: use If-Match with the ETag of GET /upstream/NAME (a 404 answers one too)';
for my $refused ([['If-Match' => '"7"'], "412 $stale"], [['If-None-Match' => '*'], "400 $none"]) {
    my ($header, $answer) = @$refused;
    $r = http('POST', '/upstream/c', 'server 127.0.0.1:30001;', {@$header});
    is("$r->{status} $r->{body}", $answer, "POST with $header->[0]");
    is(http_get('/upstream/c')->{status}, 404, "  not made");
    is(http('POST', '/upstream/c', 'server 127.0.0.1:30001;')->{status}, 200, '  made without it');
    $r = http('DELETE', '/upstream/c', undef, {@$header});
    is("$r->{status} $r->{body}", $answer, "DELETE with $header->[0]");
    is(http_get('/upstream/c')->{status}, 200, "  not deleted");
    is(http('DELETE', '/upstream/c')->{status}, 200, '  deleted without it');
}
