# dyups_interface request bodies: read whole whatever their size up to
# 1 MiB, also when nginx buffers them to a temp file or they come chunked;
# above 1 MiB: 413 and nothing changes.
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups;

our $MiB = 1024 * 1024;

# A valid body of exactly $size bytes: one server, then padding made of
# spaces and newlines.
sub padded {
    my ($size, $port) = @_;
    my $s = "server 127.0.0.1:$port;";
    my $pad = $size - length($s);
    my $filler = (" " x 63 . "\n") x int($pad / 64);
    $filler .= " " x ($pad - length $filler);
    return $s . $filler;
}

# $n server lines with distinct ports and weights (~75 bytes each) and the
# /upstream/NAME text they must produce.
sub many {
    my ($n) = @_;
    my ($body, $want) = ('', '');
    for my $i (1 .. $n) {
        my $port = 30000 + $i;
        my $w = 1 + $i % 7;
        $body .= "server 127.0.0.1:$port weight=$w max_fails=2 fail_timeout=11 max_conns=$i;\n";
        $want .= line("127.0.0.1:$port", weight => $w, max_fails => 2, fail_timeout => 11, max_conns => $i);
    }
    return ($body, $want);
}

sub chunked {
    my ($body, $size) = @_;
    my $out = '';
    for (my $off = 0; $off < length $body; $off += $size) {
        my $c = substr($body, $off, $size);
        $out .= sprintf("%x\r\n%s\r\n", length $c, $c);
    }
    return $out . "0\r\n\r\n";
}

run_tests();
__DATA__

=== TEST 1: ~100 KB of server lines through a 1k body buffer (temp file)
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    return 200 "$server_port\n";
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9;
    location / { proxy_pass http://$host; }
}
--- config
location / {
    client_body_buffer_size 1k;
    dyups_interface;
}
--- perl
my ($body, $want) = main::many(1400);
cmp_ok(length($body), '>', 100_000, 'the body is over 100 KB');
my $r = http('POST', '/upstream/dyhost', $body);
is($r->{status}, 200, 'POST: 200') or diag(substr($r->{body}, 0, 300));
is($r->{body}, 'success', 'success');
my $got = http_get('/upstream/dyhost')->{body};
is(($got =~ tr/\n//), 1400, '1400 server lines');
ok($got eq $want, 'every server with its parameters, in order')
    or diag("first: " . substr($got, 0, 200) . "\nlast: " . substr($got, -200));
like(http_get('/detail')->{body}, qr/\Adyhost\n\Q$want\E\n\z/, '/detail shows them');
# A small list afterwards through the same path still works.
$r = http('POST', '/upstream/dyhost', "server 127.0.0.1:" . port(1) . ";");
is($r->{status}, 200, 'back to one server');
is(main::proxied('dyhost')->{body}, port(1) . "\n", 'routes');
--- error_log
a client request body is buffered to a temporary file

=== TEST 2: ~100 KB of whitespace padding through a 1k body buffer
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / {
    client_body_buffer_size 1k;
    dyups_interface;
}
--- perl
for my $size (1023, 1024, 1025, 4096, 100_000, 102_401) {
    my $r = http('POST', '/upstream/dyhost', main::padded($size, port(2) + 0));
    is($r->{status}, 200, "$size bytes: 200") or diag($r->{body});
    is(http_get('/upstream/dyhost')->{body}, main::line('127.0.0.1:' . port(2)), "$size bytes: the server");
    is(http('DELETE', '/upstream/dyhost')->{status}, 200, "$size bytes: cleaned up");
}
# Padding at the front, servers at both ends.
my $s2 = 'server 127.0.0.1:' . port(2) . ';';
my $s3 = 'server 127.0.0.1:' . port(3) . ' weight=9;';
my $r = http('POST', '/upstream/dyhost', ("\n" x 60_000) . $s2 . (" " x 60_000) . $s3 . ("\t" x 1000));
is($r->{status}, 200, 'servers between 60 KB paddings: 200') or diag($r->{body});
is(http_get('/upstream/dyhost')->{body},
   main::line('127.0.0.1:' . port(2)) . main::line('127.0.0.1:' . port(3), weight => 9), 'both servers');
--- error_log
a client request body is buffered to a temporary file

=== TEST 3: exactly 1 MiB is read whole; 1 MiB + 1 is 413 and changes nothing
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / {
    client_body_buffer_size 1k;
    dyups_interface;
}
--- perl
my $r = http('POST', '/upstream/dyhost', main::padded($main::MiB, port(2) + 0));
is($r->{status}, 200, '1 MiB: 200') or diag($r->{body});
is(http_get('/upstream/dyhost')->{body}, main::line('127.0.0.1:' . port(2)), '1 MiB: the server');
my $before = main::state();
$r = http('POST', '/upstream/dyhost', main::padded($main::MiB + 1, port(3) + 0));
is($r->{status}, 413, '1 MiB + 1: 413');
is(main::state(), $before, '1 MiB + 1: nothing changed');
$r = http('POST', '/upstream/newname', main::padded($main::MiB + 1, port(3) + 0));
is($r->{status}, 413, '1 MiB + 1 to a new name: 413');
is(main::state(), $before, 'nothing created');
is(http_get('/list')->{status}, 200, 'the server still answers');

=== TEST 4: the 1 MiB limit holds even when client_max_body_size allows more
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / {
    client_max_body_size 10m;
    dyups_interface;
}
--- perl
my $r = http('POST', '/upstream/dyhost', main::padded($main::MiB, port(2) + 0));
is($r->{status}, 200, '1 MiB: 200') or diag($r->{body});
my $before = main::state();
for my $size ($main::MiB + 1, 2 * $main::MiB, 5 * $main::MiB) {
    $r = http('POST', '/upstream/dyhost', main::padded($size, port(3) + 0));
    is($r->{status}, 413, "$size bytes: 413");
    is(main::state(), $before, "$size bytes: nothing changed");
}

=== TEST 5: a chunked body is read whole, small or large; over 1 MiB chunked is 413
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / {
    client_body_buffer_size 1k;
    client_max_body_size 10m;
    dyups_interface;
}
--- perl
my $te = { 'Transfer-Encoding' => 'chunked' };
my $s = 'server 127.0.0.1:' . port(2) . '; server 127.0.0.1:' . port(3) . ' weight=2;';
my $r = http('POST', '/upstream/dyhost', main::chunked($s, 7), $te);
is($r->{status}, 200, 'small chunked body: 200') or diag($r->{body});
is(http_get('/upstream/dyhost')->{body},
   main::line('127.0.0.1:' . port(2)) . main::line('127.0.0.1:' . port(3), weight => 2), 'both servers');
my ($body, $want) = main::many(1400);
$r = http('POST', '/upstream/dyhost', main::chunked($body, 3000), $te);
is($r->{status}, 200, '100 KB chunked body: 200') or diag($r->{body});
ok(http_get('/upstream/dyhost')->{body} eq $want, '1400 servers');
$r = http('POST', '/upstream/dyhost', main::chunked(main::padded($main::MiB, port(2) + 0), 65536), $te);
is($r->{status}, 200, '1 MiB chunked: 200') or diag($r->{body});
is(http_get('/upstream/dyhost')->{body}, main::line('127.0.0.1:' . port(2)), 'the server');
my $before = main::state();
$r = http('POST', '/upstream/dyhost', main::chunked(main::padded($main::MiB + 1, port(3) + 0), 65536), $te);
is($r->{status}, 413, '1 MiB + 1 chunked: 413');
is(main::state(), $before, 'nothing changed');

=== TEST 6: Expect: 100-continue, and a JSON body through a temp file
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / {
    client_body_buffer_size 1k;
    dyups_interface;
}
--- perl
my $r = http('POST', '/upstream/dyhost', main::padded(50_000, port(2) + 0), { Expect => '100-continue' });
is($r->{status}, 200, 'Expect: 100-continue: 200') or diag($r->{body});
is(http_get('/upstream/dyhost')->{body}, main::line('127.0.0.1:' . port(2)), 'the server');
my @servers = map { sprintf '{"server":"127.0.0.1:%d","weight":%d}', 30000 + $_, 1 + $_ % 5 } 1 .. 2500;
my $json = '{"servers":[' . join(",\n", @servers) . ']}';
cmp_ok(length($json), '>', 100_000, 'JSON body over 100 KB');
$r = http('POST', '/upstream/dyhost', $json, { 'Content-Type' => 'application/json' });
is($r->{status}, 200, 'large JSON body: 200') or diag($r->{body});
my $got = http_get('/upstream/dyhost')->{body};
is(($got =~ tr/\n//), 2500, '2500 servers');
like($got, qr/\Aserver 127\.0\.0\.1:30001 weight=2 .*\nserver 127\.0\.0\.1:32500 weight=1 [^\n]*\n\z/s, 'first and last as sent');

=== TEST 7: an empty body with Content-Length: 0, and a POST without a body
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
--- perl
my $before = main::state();
my $r = http('POST', '/upstream/host1', '');
is($r->{status}, 400, 'Content-Length: 0: 400');
is($r->{body}, 'add server failed: no server given', 'no server given');
$r = http('POST', '/upstream/host1');
is($r->{status}, 400, 'no body at all: 400');
like($r->{body}, qr/\Aadd server failed: /, 'add server failed');
is(main::state(), $before, 'nothing changed');

=== TEST 8: on one keep-alive connection, every body is consumed whatever the answer
--- http_config
upstream host1 { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / {
    client_body_buffer_size 1k;
    dyups_interface;
}
--- perl
use HttpClient;
my $conn = HttpClient::Connection->open(server_port(), 10) or die "connect: $@";
# One request on the keep-alive connection, and its answer.
my $ask = sub {
    my ($m, $uri, $body, $headers) = @_;
    $conn->send(HttpClient::request_text($m, $uri, $body // '', $headers)) or die "$conn->{error}\n";
    return $conn->read($m) // die "$conn->{error}\n";
};
my $good = 'server 127.0.0.1:' . port(2) . ';';
my $big_bad = ('x' x 5000) . ';';
my @steps = (
    ['PUT',    '/upstream/dyhost', $good,              405],
    ['POST',   '/list',            $good . (' ' x 3000), 405],
    ['POST',   '/nowhere',         $good,              404],
    ['POST',   '/upstream/a;b',    $good . (' ' x 3000), 400],
    ['POST',   '/upstream/dyhost', $big_bad,           400],
    ['POST',   '/upstream/dyhost', 'aaserver x;',      400],
    ['DELETE', '/upstream/nosuch', $good,              404],
    ['GET',    '/upstream/nosuch', $good,              404],
    ['POST',   '/upstream/dyhost', $good . (' ' x 5000), 200],
    ['GET',    '/list',            $good,              200],
);
for my $s (@steps) {
    my ($m, $uri, $body, $want) = @$s;
    my $r = $ask->($m, $uri, $body);
    is($r->{status}, $want, "$m $uri with a " . length($body) . "-byte body: $want on the same connection")
        or diag(explain($r->{header_list}));
}
my $r = $ask->('GET', '/list');
is($r->{status}, 200, 'the connection is still in sync');
is($r->{body}, "host1\ndyhost\n", 'and dyhost was created once');
# A chunked POST on the same connection.
my $chunks = "5\r\nserve\r\n" . sprintf("%x\r\n%s\r\n", length("r 127.0.0.1:" . port(3) . ";"), "r 127.0.0.1:" . port(3) . ";") . "0\r\n\r\n";
$r = $ask->('POST', '/upstream/dyhost', $chunks, [['Transfer-Encoding' => 'chunked']]);
is($r->{status}, 200, 'chunked POST on the keep-alive connection');
$r = $ask->('GET', '/upstream/dyhost');
like($r->{body}, qr/\Aserver 127\.0\.0\.1:${\ port(3)} /, 'and its body was read whole');
