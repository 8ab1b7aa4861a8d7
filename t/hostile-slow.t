# Both admin APIs against hostile clients at the socket level: bodies sent
# byte by byte, bodies that never complete, connections cut mid-request,
# garbage bytes, broken framing, pipelined and smuggled requests. A slow but
# valid request must still be read correctly; everything else must change
# nothing (listings and state files byte for byte as before), crash no worker
# (the worker pids stay the same), and nginx must keep serving.
use lib 't/lib';
use NginxTest;
# (state() is this file's own: it covers both APIs and both state files.)
use NginxTest::Dyups qw(setup proxied);
use NginxTest::Files;
use IO::Select;
use IO::Socket::INET;
use Socket qw(IPPROTO_TCP TCP_NODELAY SHUT_WR);
use Time::HiRes qw(sleep time);

# Like NginxTest::Hostile's show(), but cut shorter (to 60 of more than 80
# bytes): this file's test names are made with it.
sub show {
    my ($s) = @_;
    my $len = length $s;
    $s = substr($s, 0, 60) . "...($len bytes)" if $len > 80;
    $s =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
    return $s;
}

sub p { port($_[0]) }

# Everything a change could touch, through both APIs, and the state files.
sub state {
    my $out = '';
    for my $path ('/dynamic?upstream=backends&verbose=', '/list', '/detail', '/upstream/dyhost') {
        my $r = http_get($path);
        $out .= "$path: $r->{status}\n$r->{body}\n";
    }
    for my $f ('backends.state', 'dyups.conf') {
        $out .= "--- $f ---\n" . (slurp(data_dir() . "/$f") // "(none)\n");
    }
    return $out;
}

# nginx still serves: proxying through the zone upstream and by Host, and
# no worker was replaced.
sub serving {
    my ($what, $workers) = @_;
    my $r = http_get('/proxy');
    ok($r->{status} == 200 && $r->{body} =~ /\A(?:${\ p(1)}|${\ p(2)})\n\z/, "$what: the zone upstream still proxies")
        or diag("GET /proxy: $r->{status} " . show($r->{body}));
    $r = proxied('dyhost');
    ok($r->{status} == 200 && $r->{body} eq p(2) . "\n", "$what: dyhost still routes")
        or diag("via dyhost: $r->{status} " . show($r->{body}));
    is(join(',', worker_pids()), $workers, "$what: the same workers run (none crashed)") if defined $workers;
}

sub connect_raw {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port(), Proto => 'tcp',
                                  Timeout => 5) or die "connect: $@";
    binmode $s;
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    return $s;
}

sub send_all {
    my ($s, $bytes) = @_;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($s, $bytes, length($bytes) - $off, $off);
        return 0 unless defined $n;
        $off += $n;
    }
    return 1;
}

# Reads until nginx closes the connection or $timeout seconds pass.
sub read_all {
    my ($s, $timeout) = @_;
    my ($buf, $sel, $deadline) = ('', IO::Select->new($s), time + ($timeout // 5));
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
    }
    return $buf;
}

# One raw exchange: send BYTES, half-close (so that nginx never waits for
# more), read until nginx closes.
sub raw {
    my ($bytes, $timeout) = @_;
    my $s = connect_raw();
    send_all($s, $bytes);
    shutdown($s, SHUT_WR);
    my $res = read_all($s, $timeout);
    close $s;
    return $res;
}

# The status codes of the responses in a buffer, in order (the module's
# bodies end without a newline, so a status line may follow a body directly).
sub statuses { my @c = $_[0] =~ m{HTTP/1\.[01] (\d{3}) [A-Za-z -]*\r\n}g; return @c }

# hostile(NAME, CODE): CODE talks to nginx on its own; afterwards nothing may
# have changed, no worker may have crashed, and nginx must still serve.
sub hostile {
    my ($what, $code) = @_;
    my $before = state();
    my $workers = join ',', worker_pids();
    $code->();
    is(state(), $before, "$what: nothing changed");
    serving($what, $workers);
}

sub req {
    my ($line, %o) = @_;
    my $h = "$line HTTP/1.1\r\nHost: localhost\r\n";
    $h .= "Connection: close\r\n" unless $o{keepalive};
    $h .= "$_\r\n" for @{ $o{headers} // [] };
    $h .= 'Content-Length: ' . length($o{body}) . "\r\n" if defined $o{body} && !$o{no_length};
    return "$h\r\n" . ($o{body} // '');
}

# The configuration of every block: a zone upstream with a state file, a
# configuration upstream and the dyups file, backends that answer their port,
# and the proxy by Host on port 9.
$ENV{TEST_NGINX_UPSTREAMS} = <<'NGINX';
upstream backends {
    zone zone_for_backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 weight=2;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
}
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

=== TEST 1: valid requests sent byte by byte are read whole and applied
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
location / { dyups_interface; }
--- perl
main::setup();
my $workers = join ',', worker_pids();
my $a3 = '127.0.0.1:' . main::p(3);
# A 40-byte text body, one byte every 20 ms.
my $body = "server $a3 weight=3;";
$body .= ' ' x (40 - length $body);
is(length($body), 40, 'the body is 40 bytes');
my $s = main::connect_raw();
main::send_all($s, "POST /upstream/slowhost HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 40\r\n\r\n");
for my $byte (split //, $body) {
    sleep 0.02;
    main::send_all($s, $byte) or last;
}
my $res = main::read_all($s);
close $s;
like($res, qr{\AHTTP/1\.1 200 }, 'slow text body: 200') or diag(main::show($res));
like($res, qr/\r\n\r\nsuccess\z/, 'slow text body: success');
is(http_get('/upstream/slowhost')->{body},
   "server $a3 weight=3 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n", 'slow text body: read whole');
# A chunked JSON body, one byte per chunk, every 20 ms.
my $json = qq({"servers":[{"server":"$a3","weight":4}]});
$s = main::connect_raw();
main::send_all($s, "POST /upstream/slowhost HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                 . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
for my $byte (split //, $json) {
    sleep 0.02;
    main::send_all($s, "1\r\n$byte\r\n") or last;
}
main::send_all($s, "0\r\n\r\n");
$res = main::read_all($s);
close $s;
like($res, qr{\AHTTP/1\.1 200 }, 'slow chunked JSON body: 200') or diag(main::show($res));
is(http_get('/upstream/slowhost')->{body},
   "server $a3 weight=4 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n", 'slow chunked JSON body: read whole');
# A query-string change whose request line arrives a few bytes at a time.
my $req = "GET /dynamic?upstream=backends&server=127.0.0.1:" . main::p(1) . "&weight=5 HTTP/1.1\r\n"
        . "Host: localhost\r\nConnection: close\r\n\r\n";
$s = main::connect_raw();
for (my $off = 0; $off < length $req; $off += 8) {
    main::send_all($s, substr($req, $off, 8)) or last;
    sleep 0.005;
}
$res = main::read_all($s);
close $s;
like($res, qr{\AHTTP/1\.1 200 }, 'slow query-string request: 200') or diag(main::show($res));
like(http_get('/dynamic?upstream=backends&verbose=')->{body}, qr/^server 127\.0\.0\.1:${\ main::p(1)} weight=5 /m,
     'slow query-string request: applied');
main::serving('after the slow clients', $workers);



=== TEST 2: bodies that never complete: cut, half-closed, chunked and cut
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
location / { dyups_interface; }
--- perl
main::setup();
my $a3 = '127.0.0.1:' . main::p(3);
my $ten = "server $a3";    # 10+ bytes of a valid body that would go on
for my $target ('/upstream/dyhost', '/upstream/host1', '/upstream/newname', '/dynamic?upstream=backends',
                '/dynamic?upstream=backends&server=127.0.0.1:' . main::p(1) . '&down=') {
    my $head = "POST $target HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n";
    # Content-Length 1000, 10 bytes, then the connection is closed.
    main::hostile("POST $target: 10 of 1000 bytes, then close", sub {
        my $s = main::connect_raw();
        main::send_all($s, $head . substr($ten, 0, 10));
        sleep 0.02;
        close $s;
    });
    # Same, but the client only half-closes and waits for an answer.
    main::hostile("POST $target: 10 of 1000 bytes, then half-close", sub {
        my $s = main::connect_raw();
        main::send_all($s, $head . substr($ten, 0, 10));
        shutdown($s, 1);    # SHUT_WR
        my $res = main::read_all($s, 3);
        close $s;
        ok($res eq '' || $res =~ m{\AHTTP/1\.1 4\d\d }, "POST $target, half-closed: no answer or a 4xx")
            or diag(main::show($res));
    });
    # Reset instead of close (SO_LINGER 0).
    main::hostile("POST $target: 10 of 1000 bytes, then reset", sub {
        my $s = main::connect_raw();
        main::send_all($s, $head . substr($ten, 0, 10));
        sleep 0.02;
        setsockopt($s, Socket::SOL_SOCKET(), Socket::SO_LINGER(), pack('ii', 1, 0));
        close $s;
    });
    # A chunked body cut inside a chunk, and one cut before its last chunk.
    for my $partial ("14\r\nserver 127.0", "5\r\nserve\r\n", "5\r\nserve\r\n0\r\n") {
        main::hostile("POST $target: chunked, cut after " . main::show($partial), sub {
            my $s = main::connect_raw();
            main::send_all($s, "POST $target HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n$partial");
            sleep 0.02;
            close $s;
        });
    }
    # Only part of the headers, then close.
    main::hostile("POST $target: headers cut", sub {
        my $s = main::connect_raw();
        main::send_all($s, "POST $target HTTP/1.1\r\nHost: localhost\r\nContent-Le");
        sleep 0.02;
        close $s;
    });
}
# Expect: 100-continue, then nothing.
main::hostile('Expect: 100-continue, then close', sub {
    my $s = main::connect_raw();
    main::send_all($s, "POST /upstream/dyhost HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20\r\nExpect: 100-continue\r\n\r\n");
    my $sel = IO::Select->new($s);
    my $buf = '';
    sysread($s, $buf, 1024) if $sel->can_read(2);
    like($buf, qr{\AHTTP/1\.1 100 }, 'Expect: 100-continue: nginx asks for the body');
    close $s;
});



=== TEST 3: clients too slow for nginx's timeouts are dropped; nothing changes
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
client_body_timeout 300ms;
client_header_timeout 300ms;
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
location / { dyups_interface; }
--- perl
main::setup();
my $a3 = '127.0.0.1:' . main::p(3);
for my $name ('dyhost', 'newname') {
    main::hostile("POST /upstream/$name: body stalls", sub {
        my $s = main::connect_raw();
        main::send_all($s, "POST /upstream/$name HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nserver $a3");
        my $t0 = time;
        my $res = main::read_all($s, 3);
        close $s;
        ok($res eq '' || $res =~ m{\AHTTP/1\.1 4\d\d }, "POST /upstream/$name, stalled: dropped, or a 4xx")
            or diag(main::show($res));
        cmp_ok(time - $t0, '<', 2.5, "POST /upstream/$name, stalled: dropped within the timeout");
    });
}
main::hostile('GET /dynamic: headers stall', sub {
    my $s = main::connect_raw();
    main::send_all($s, "GET /dynamic?upstream=backends&server=127.0.0.1:" . main::p(1) . "&down= HTTP/1.1\r\nHost: loc");
    my $res = main::read_all($s, 3);
    close $s;
    ok($res eq '' || $res =~ m{\AHTTP/1\.1 4\d\d }, 'GET /dynamic, stalled headers: dropped, or a 4xx')
        or diag(main::show($res));
});



=== TEST 4: garbage, broken framing and unsupported versions
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
location / { dyups_interface; }
--- perl
main::setup();
my $a3 = '127.0.0.1:' . main::p(3);
my $s1 = '127.0.0.1:' . main::p(1);
my $body = "server $a3;";
srand(42);
my $garbage = join '', map { chr int rand 256 } 1 .. 2048;
# Requests nginx itself must refuse (4xx; 505 for an HTTP version it does not
# speak; 501 for a transfer encoding it does not know) or drop. Each would
# change dyhost if it were taken as a valid request.
my $set = "POST /upstream/dyhost";
my $cl = "Content-Length: " . length($body);
my %refused = (
    'random bytes'               => $garbage,
    'NUL bytes'                  => "\0" x 512,
    'a TLS ClientHello'          => "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" . ("\xab" x 32) . "\x00\x00\x02\x00\x2f\x01\x00\r\n\r\n",
    'the HTTP/2 preface'         => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    'empty lines'                => "\r\n" x 500,
    'a bare method'              => "GET\r\n\r\n",
    'a method and spaces'        => "POST      \r\n\r\n",
    'HTTP/9.9 change'            => "GET /dynamic?upstream=backends&server=$s1&down= HTTP/9.9\r\nHost: localhost\r\n\r\n",
    'HTTP/9.9 listing'           => "GET /dynamic?upstream=x HTTP/9.9\r\nHost: localhost\r\n\r\n",
    'HTTP/2.0 POST'              => "$set HTTP/2.0\r\nHost: localhost\r\n$cl\r\n\r\n$body",
    'HTTP/0.9 POST'              => "$set\r\n\r\n$body",
    'HTTP/0.9 DELETE'            => "DELETE /upstream/dyhost\r\n\r\n",
    'HTTP/1.1 without Host'      => "DELETE /upstream/dyhost HTTP/1.1\r\n\r\n",
    'two Host headers'           => "DELETE /upstream/dyhost HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    'a bad Host'                 => "DELETE /upstream/dyhost HTTP/1.1\r\nHost: a/b\r\n\r\n",
    'two Content-Lengths'        => "$set HTTP/1.1\r\nHost: localhost\r\n$cl\r\nContent-Length: 3\r\n\r\n$body",
    'Content-Length and chunked' => "$set HTTP/1.1\r\nHost: localhost\r\n$cl\r\nTransfer-Encoding: chunked\r\n\r\n$body",
    'a negative Content-Length'  => "$set HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n$body",
    'a huge Content-Length'      => "$set HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999999\r\n\r\n$body",
    'Content-Length: abc'        => "$set HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n$body",
    'Content-Length: 1 2'        => "$set HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1 2\r\n\r\n$body",
    'a bad chunk size'           => "$set HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n$body\r\n0\r\n\r\n",
    'a huge chunk size'          => "$set HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n$body\r\n0\r\n\r\n",
    'a chunk longer than said'   => "$set HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n$body\r\n0\r\n\r\n",
    'an unknown encoding'        => "$set HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n$body",
    'a lower-case method'        => "delete /upstream/dyhost HTTP/1.1\r\nHost: localhost\r\n\r\n",
    'a method with a NUL'        => "DEL\0ETE /upstream/dyhost HTTP/1.1\r\nHost: localhost\r\n\r\n",
    'no path'                    => "DELETE HTTP/1.1\r\nHost: localhost\r\n\r\n",
    'a relative path'            => "DELETE upstream/dyhost HTTP/1.1\r\nHost: localhost\r\n\r\n",
    'a path above the root'      => "DELETE /../upstream/dyhost HTTP/1.1\r\nHost: localhost\r\n\r\n",
    'an encoded path above root' => "DELETE /%2E%2E/upstream/dyhost HTTP/1.1\r\nHost: localhost\r\n\r\n",
    'a 100 KB header'            => "DELETE /upstream/dyhost HTTP/1.1\r\nHost: localhost\r\nX-Big: " . ('x' x 100_000) . "\r\n\r\n",
);
for my $name (sort keys %refused) {
    main::hostile($name, sub {
        my $res = main::raw($refused{$name}, 3);
        my @st = main::statuses($res);
        ok(!grep({ !/\A(?:4\d\d|505|501)\z/ } @st), "$name: nginx refuses (" . join(',', @st) . ')')
            or diag(main::show($res));
        # without a status line: nothing, or nginx's HTML page of an HTTP/0.9 answer
        ok(@st || $res eq '' || $res =~ m{\A<html>\r\n<head><title>4\d\d }, "$name: no other answer")
            or diag(main::show($res));
        unlike($res, qr/^success/m, "$name: no change was made");
    });
}
# Odd but parseable framing nginx may accept: then the module sees a request
# whose body it refuses. Either way: 4xx only.
my $bad = "server $a3 weight=0;";
my $badcl = "Content-Length: " . length($bad);
my %odd = (
    'HTTP/1.10'                => "$set HTTP/1.10\r\nHost: localhost\r\n$badcl\r\n\r\n$bad",
    'a header without colon'   => "$set HTTP/1.1\r\nHost: localhost\r\nX-Broken\r\n$badcl\r\n\r\n$bad",
    'a header with NUL'        => "$set HTTP/1.1\r\nHost: localhost\r\nX-A: a\0b\r\n$badcl\r\n\r\n$bad",
    'a folded header'          => "$set HTTP/1.1\r\nHost: localhost\r\n X-Folded: 1\r\n$badcl\r\n\r\n$bad",
    'a space before the colon' => "$set HTTP/1.1\r\nHost : localhost\r\n$badcl\r\n\r\n$bad",
    '1000 headers'             => "$set HTTP/1.1\r\nHost: localhost\r\n" . ("X-H: 1\r\n" x 1000) . "$badcl\r\n\r\n$bad",
    'LF-only line ends'        => "$set HTTP/1.1\nHost: localhost\n$badcl\n\n$bad",
);
for my $name (sort keys %odd) {
    main::hostile($name, sub {
        my $res = main::raw($odd{$name}, 3);
        my @st = main::statuses($res);
        ok(@st && !grep({ !/\A4\d\d\z/ } @st), "$name: 4xx (" . join(',', @st) . ')') or diag(main::show($res));
    });
}



=== TEST 5: pipelined and smuggled requests
--- http_config
$TEST_NGINX_UPSTREAMS
--- config
location /dynamic { dynamic_upstream; }
location /proxy { proxy_pass http://backends; }
location / { dyups_interface; }
--- perl
main::setup();
my $a3 = '127.0.0.1:' . main::p(3);
my $s1 = '127.0.0.1:' . main::p(1);
my $listing = http_get('/dynamic?upstream=backends&verbose=')->{body};
my $detail = http_get('/detail')->{body};
# Refused requests then a listing, on one keep-alive connection, in one write.
main::hostile('pipelined: bad query, bad body, listings', sub {
    my $res = main::raw(main::req("GET /dynamic?upstream=backends&server=$s1&weight=0", keepalive => 1)
                      . main::req("GET /dynamic?upstream=backends&server=$s1%00&down=", keepalive => 1)
                      . main::req('POST /upstream/dyhost', keepalive => 1, body => "server $a3 weight=0;")
                      . main::req('POST /upstream/newname', keepalive => 1, body => "server $a3;\0")
                      . main::req('PUT /upstream/dyhost', keepalive => 1, body => "server $a3;")
                      . main::req('GET /dynamic?upstream=backends&verbose=', keepalive => 1)
                      . main::req('GET /detail'));
    is(join(',', main::statuses($res)), '400,400,400,400,405,200,200', 'pipelined: every request answered in order')
        or diag(main::show($res));
    like($res, qr/\r\n\r\n\Q$listing\E/, 'pipelined: the listing is unchanged');
    like($res, qr/\r\n\r\n\Q$detail\E\z/, 'pipelined: /detail is unchanged');
});
# Content-Length shorter than the body: the rest is a new request, refused.
main::hostile('Content-Length shorter than the body', sub {
    my $body = "server $a3;";
    my $res = main::raw("POST /upstream/dyhost HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n$body");
    my @st = main::statuses($res);
    ok(@st && !grep({ !/\A4\d\d\z/ } @st), 'short Content-Length: only 4xx (' . join(',', @st) . ')') or diag(main::show($res));
});
# A second request hidden in a body is only a body.
main::hostile('a request inside a body', sub {
    my $inner = "DELETE /upstream/dyhost HTTP/1.1\r\nHost: localhost\r\n\r\n";
    my $res = main::raw(main::req('POST /upstream/newname', body => $inner));
    is(join(',', main::statuses($res)), '400', 'request inside a body: one 400');
});
main::hostile('a request inside a body of a refused method', sub {
    my $inner = "DELETE /upstream/dyhost HTTP/1.1\r\nHost: localhost\r\n\r\n";
    my $res = main::raw(main::req('PUT /upstream/dyhost', keepalive => 1, body => $inner)
                      . main::req('GET /list'));
    is(join(',', main::statuses($res)), '405,200', 'inside a PUT body: 405, then the next request')
        or diag(main::show($res));
    my $res2 = main::raw(main::req("GET /dynamic?upstream=backends", keepalive => 1, body => $inner)
                       . main::req('GET /list'));
    is(join(',', main::statuses($res2)), '200,200', 'inside a GET body: discarded, then the next request');
});
