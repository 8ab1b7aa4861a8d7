# dyups_interface's revision guard: GET and HEAD /upstream/NAME answer an
# ETag (the NGINX Plus API's revision of the upstream: the same number as
# the ETag of GET /api/9/http/upstreams/NAME/servers; a 404 answers one
# too), and POST and DELETE /upstream/NAME with `If-Match: "N"` change the
# upstream only if it is unchanged since the read that gave N; otherwise
# 412, and nothing changes:
#   upstream "NAME" changed since the revision given in If-Match: read it again
# (JSON: code upstream_revision_mismatch). Without If-Match (or with `*`)
# the answers are today's, byte for byte. If-None-Match on a change is
# refused (400 invalid_precondition); If-Unmodified-Since does not turn an
# applied change into nginx's 412 (the not_modified filter is off).
#
# TESTs 9 and 10 need the debug builds' stall points (src/dyups/test_stall.rs)
# dyups_received and delete_received, where a POST or a DELETE waits before
# it takes any lock: their assertions are skipped with a release module, as
# t/dyups-lock-takeover.t is.
use lib 't/lib';
use NginxTest;
use NginxTest::Dyups qw(addr line servers state);
use NginxTest::Files;
use HttpClient;
use JSON::PP ();
use Time::HiRes ();

# An ETag as the module writes them.
our $TAG = qr/\A"\d+"\z/;

sub release_module { ($ENV{TEST_NGINX_MODULE} // '') =~ m{/release/} }

# The ETag of a response (undef without one).
sub tag { $_[0]{headers}{etag} }

# The ETag that GET /upstream/NAME answers (whatever its status).
sub get_tag { tag(http_get("/upstream/$_[0]")) }

# The ETag of the NGINX Plus API's GET .../NAME/servers.
sub plus_tag { tag(http_get("/api/9/http/upstreams/$_[0]/servers")) }

# The number in an ETag ("12" -> 12).
sub bare { ($_[0] // '') =~ s/"//gr }

# POST /upstream/NAME with BODY and If-Match: TAG (more headers after it).
sub post_if {
    my ($name, $body, $tag, @more) = @_;
    return http('POST', "/upstream/$name", $body, [['If-Match', $tag // ''], @more]);
}

# DELETE /upstream/NAME with If-Match: TAG.
sub delete_if {
    my ($name, $tag, @more) = @_;
    return http('DELETE', "/upstream/$name", undef, [['If-Match', $tag // ''], @more]);
}

# A server line of GET /upstream/NAME for 127.0.0.1:PORT.
sub line_at { line("127.0.0.1:$_[0]") }

# A change with If-Match that was applied: 200 "success" with an ETag,
# which GET /upstream/NAME answers next (three tests). Returns the ETag.
sub applied {
    my ($r, $name, $what) = @_;
    is("$r->{status} $r->{body}", '200 success', "$what: 200 success");
    my $t = tag($r);
    like($t // '', $TAG, "$what: answers an ETag");
    is(get_tag($name), $t, "$what: the ETag that GET /upstream/$name answers next");
    return $t;
}

# An answer without If-Match: as today, 200 "success" without an ETag (two tests).
sub unconditional {
    my ($r, $what) = @_;
    is("$r->{status} $r->{body}", '200 success', "$what: 200 success");
    ok(!exists $r->{headers}{etag}, "$what: no ETag header (as today)");
}

sub mismatch_text { qq(upstream "$_[0]" changed since the revision given in If-Match: read it again) }

sub json_text { JSON::PP->new->allow_nonref->encode($_[0]) }

# The refusal of a stale or unparsable If-Match: 412, text/plain, the exact
# body (two tests).
sub mismatch {
    my ($r, $name, $what) = @_;
    is("$r->{status} $r->{body}", '412 ' . mismatch_text($name), "$what: 412 and the exact body");
    like($r->{headers}{'content-type'} // '', qr{\Atext/plain\b}, "$what: text/plain");
}

# The same refusal in JSON (two tests).
sub mismatch_json {
    my ($r, $name, $what) = @_;
    is("$r->{status} $r->{body}",
       '412 {"error":{"status":412,"code":"upstream_revision_mismatch","text":' . json_text(mismatch_text($name)) . "}}\n",
       "$what: 412 and the exact JSON body");
    like($r->{headers}{'content-type'} // '', qr{\Aapplication/json\b}, "$what: application/json");
}

# The refusal of If-None-Match on a change: 400 and the exact body (one
# test).
sub no_if_none_match {
    my ($r, $name, $what) = @_;
    is("$r->{status} $r->{body}",
       '400 If-None-Match is not supported on changes: use If-Match with the ETag of GET /upstream/NAME (a 404 answers one too)',
       "$what: 400 invalid_precondition and the exact body");
}

# How many change-log lines say a REST change of NAME was refused with
# STATUS_TEXT ("412 upstream ...").
sub refusal_logged {
    my ($name, $status_text) = @_;
    my $line = "dynamic upstream change refused: client=127.0.0.1 user=- api=rest upstream=$name: $status_text";
    return scalar grep { /\[info\] \d+#\d+: \Q$line\E$/ } split /\n/, error_log_text();
}

# The pid of the worker that logged it stalls at POINT in a change of NAME
# (the COUNT-th such line, default the first).
sub stalled_pid {
    my ($point, $name, $count) = @_;
    my @pids = error_log_text() =~ /\[notice\] (\d+)#\d+: stalling at \Q$point\E in a change of \Q$name\E$/mg;
    return $pids[($count // 1) - 1];
}

# A keep-alive connection to each of the two workers, through the admin
# port (8: reuseport, every answer says X-Worker): (holder, other), each
# { conn, pid }.
sub worker_connections {
    my %conn;
    for (1 .. 200) {
        my $c = HttpClient::Connection->open(port(8), 10) or die "connect: $@";
        $c->send(HttpClient::request_text('GET', '/list')) or die $c->{error};
        my $r = $c->read('GET') or die $c->{error};
        my $pid = $r->{headers}{'x-worker'} or die 'no X-Worker';
        $conn{$pid} //= { conn => $c, pid => $pid };
        last if keys %conn == 2;
    }
    keys %conn == 2 or die 'no connection to each of the two workers';
    return map { $conn{$_} } sort keys %conn;
}

# Sends METHOD /upstream/NAME (BODY, HEADERS) on connection C (of
# worker_connections), without reading the answer. (A connection the server
# closed, as nginx closes some after an error page, is an error, not a
# SIGPIPE that ends the script.)
sub send_on {
    my ($c, $method, $name, $body, $headers) = @_;
    local $SIG{PIPE} = 'IGNORE';
    $c->{conn}->send(HttpClient::request_text($method, "/upstream/$name", $body, $headers // [])) or die $c->{conn}{error};
}

# send_on, then reads the answer within SECONDS (default 10): returns it and
# how long it took.
sub on_conn {
    my ($c, $method, $name, $body, $headers, $seconds) = @_;
    my $t0 = Time::HiRes::time();
    send_on($c, $method, $name, $body, $headers);
    my $r = $c->{conn}->read($method, Time::HiRes::time() + ($seconds // 10));
    return ($r // { status => 599, body => $c->{conn}{error} // 'no answer', headers => {} }, Time::HiRes::time() - $t0);
}

# On connection OTHER, while a change of NAME stalls in the other worker:
# POST /upstream/NAME with server N and If-Match: TAG is applied at once
# (three tests). Returns the answer's ETag.
sub applied_at_once {
    my ($other, $name, $n, $tag, $what) = @_;
    my ($r, $took) = on_conn($other, 'POST', $name, servers($n), [['If-Match', $tag // '']], 5);
    is("$r->{status} $r->{body}", '200 success', "$what: applied");
    ok($took < 2, sprintf('  at once (%.2f s): the stalled change holds no lock', $took));
    like($r->{headers}{etag} // '', $TAG, '  answering an ETag');
    return $r->{headers}{etag};
}

# The stalled METHOD of NAME on HOLDER goes on: 412; NAME keeps server N
# with ETag TAG, in dyups_upstream_conf too (five tests).
sub refused_late {
    my ($holder, $other, $method, $name, $n, $tag) = @_;
    ok(!$holder->{conn}->answered, "the $method is still stalled");
    my $r = $holder->{conn}->read($method, Time::HiRes::time() + 15);
    is($r && "$r->{status} $r->{body}", '412 ' . mismatch_text($name), "the $method, once it goes on: 412");
    ($r) = on_conn($other, 'GET', $name);
    is("$r->{status} $r->{body}", '200 ' . line(addr($n)), "$name keeps the newer server");
    is($r->{headers}{etag}, $tag, '  and its ETag');
    like(NginxTest::Files::slurp(data_dir() . '/dyups.conf') // '', qr/^upstream $name \{\n    server \Q${\ addr($n)}\E /m,
         '  dyups_upstream_conf holds it');
}

# N concurrent POST /upstream/NAME with If-Match: TAG to the admin port
# (reuseport: both workers), each from a process of its own with server
# 127.0.0.1:31100+i, sent together once all are connected. Returns their
# answers as { status, body, etag, worker, port }.
sub concurrent_posts {
    my ($name, $tag, $n) = @_;
    my $dir = prefix();
    my $go = "${dir}go-$name";
    my @pids;
    for my $i (1 .. $n) {
        my $pid = fork() // die "fork: $!";
        if (!$pid) {
            # (Not the harness's handlers, which stop the block's nginx.)
            $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
            $SIG{PIPE} = 'IGNORE';
            eval {
                my $c = HttpClient::Connection->open(port(8), 10) or die "connect: $@";
                NginxTest::Files::spew("${dir}ready-$name-$i", '');
                poll_until(sub { -e $go }, 10);
                my $port = 31100 + $i;
                $c->send(HttpClient::request_text('POST', "/upstream/$name", "server 127.0.0.1:$port;",
                                                  [['If-Match', $tag // ''], ['Connection', 'close']]));
                my $r = $c->read('POST') // { status => 599, body => $c->{error}, headers => {} };
                NginxTest::Files::spew("${dir}answer-$name-$i",
                    JSON::PP->new->encode({ status => $r->{status}, body => $r->{body}, etag => $r->{headers}{etag},
                                            worker => $r->{headers}{'x-worker'}, port => $port }));
            };
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    poll_until(sub { !grep { !-e "${dir}ready-$name-$_" } 1 .. $n }, 10);
    NginxTest::Files::spew($go, '');
    waitpid($_, 0) for @pids;
    return map { JSON::PP->new->decode(NginxTest::Files::slurp("${dir}answer-$name-$_") // '{"status":0}') } 1 .. $n;
}

# Of CONCURRENT_POSTS' answers, exactly one is 200 and the others are 412
# with the exact body; both workers answered some; GET shows the winner's
# server with the winner's ETag (five tests).
sub one_wins {
    my ($name, $what, @answers) = @_;
    my $n = @answers;
    is_deeply([sort map { $_->{status} } @answers], [200, (412) x ($n - 1)], "$what: one 200, " . ($n - 1) . ' 412');
    my @bad = grep { $_->{status} == 412 && $_->{body} ne mismatch_text($name) } @answers;
    is(scalar @bad, 0, "$what: every 412 has the exact body");
    my %workers = map { ($_->{worker} // 'none') => 1 } @answers;
    is(scalar keys %workers, 2, "$what: both workers answered some");
    my ($winner) = grep { $_->{status} == 200 } @answers;
    $winner //= { port => 0 };
    my $r = http_get("/upstream/$name");
    is($r->{body}, line_at($winner->{port}), "$what: GET shows the winner's server");
    is(tag($r), $winner->{etag}, "$what: with the ETag the winner was answered");
}

# The admin API (port 8, reuseport, X-Worker on every answer) for TESTs 7, 9, 10.
$ENV{TEST_NGINX_ADMIN} = <<'NGINX';
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    add_header X-Worker $pid always;
    location / { dyups_interface; }
    location /api { dynamic_upstream_api write=on; }
}
NGINX

# Upstreams of the configuration: two without a zone, one with.
$ENV{TEST_NGINX_CONFIGURED} = <<'NGINX';
upstream plain { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream plain2 { server 127.0.0.1:$TEST_NGINX_PORT_2; }
upstream zoned {
    zone zoned 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
NGINX

run_tests();
__DATA__
=== TEST 1: GET and HEAD /upstream/NAME answer an ETag: a run-time or replaced upstream's is the NGINX Plus API's; a zone upstream never replaced has its zone's (which a Plus API change moves); a configuration upstream without a zone has one; a 404 has one; a 400 has none; bodies as before
--- http_config
$TEST_NGINX_CONFIGURED
--- config
location / { dyups_interface; }
location /api { dynamic_upstream_api write=on; }
--- perl
# A run-time upstream.
is(http('POST', '/upstream/dy', main::servers(3))->{status}, 200, 'dy created');
my $r = http_get('/upstream/dy');
is("$r->{status} $r->{body}", '200 ' . main::line(main::addr(3)), 'GET dy: the body as before');
like(main::tag($r) // '', $main::TAG, 'GET dy: an ETag "N"');
is(main::tag($r), main::plus_tag('dy'), 'GET dy: the NGINX Plus API\'s ETag of dy');
my $h = http('HEAD', '/upstream/dy');
is("$h->{status} $h->{body}", '200 ', 'HEAD dy: 200, no body');
is(main::tag($h), main::tag($r), 'HEAD dy: the same ETag');
is(http('POST', '/upstream/dy', main::servers(4))->{status}, 200, 'dy replaced');
isnt(main::get_tag('dy'), main::tag($r), 'a change of dy moves its ETag');
is(main::get_tag('dy'), main::plus_tag('dy'), '  still the NGINX Plus API\'s');

# A configuration upstream without a zone, never replaced, then replaced.
$r = http_get('/upstream/plain');
is("$r->{status} $r->{body}", '200 ' . main::line(main::addr(1)), 'GET plain: the configured server, as before');
like(main::tag($r) // '', $main::TAG, 'GET plain (no zone, never replaced): an ETag');
is(main::tag(http('HEAD', '/upstream/plain')), main::tag($r), 'HEAD plain: the same ETag');
is(http('POST', '/upstream/plain', main::servers(5))->{status}, 200, 'plain replaced');
$r = http_get('/upstream/plain');
is("$r->{status} $r->{body}", '200 ' . main::line(main::addr(5)), 'GET plain: the new server');
like(main::tag($r) // '', $main::TAG, 'GET plain (replaced): an ETag');
is(main::tag($r), main::plus_tag('plain'), '  the NGINX Plus API\'s ETag of plain');

# A configuration upstream with a zone, never replaced.
$r = http_get('/upstream/zoned');
is("$r->{status} $r->{body}", '200 ' . main::line(main::addr(1)) . main::line(main::addr(2)), 'GET zoned: its servers, as before');
my $zone_tag = main::tag($r);
like($zone_tag // '', $main::TAG, 'GET zoned (zone, never replaced): an ETag');
is($zone_tag, main::plus_tag('zoned'), '  the NGINX Plus API\'s ETag of zoned (its zone\'s revision)');
is(http('PATCH', '/api/9/http/upstreams/zoned/servers/1', '{"weight":2}')->{status}, 200, 'a Plus API PATCH of zoned');
my $patched = main::get_tag('zoned');
isnt($patched, $zone_tag, '  moves the ETag of GET /upstream/zoned');
is($patched, main::plus_tag('zoned'), '  to the NGINX Plus API\'s');
is(main::tag(http('HEAD', '/upstream/zoned')), $patched, 'HEAD zoned: the same ETag');
is(http('POST', '/api/9/http/upstreams/zoned/servers', '{"server":"127.0.0.1:31101"}')->{status}, 201, 'a Plus API POST of a server of zoned');
isnt(main::get_tag('zoned'), $patched, '  moves it too');
is(main::get_tag('zoned'), main::plus_tag('zoned'), '  to the NGINX Plus API\'s');

# 404: never existed, deleted (run-time and configured).
for my $name (qw(never dy plain2)) {
    is(http('DELETE', "/upstream/$name")->{status}, 200, "$name deleted") unless $name eq 'never';
    $r = http_get("/upstream/$name");
    is("$r->{status} $r->{body}", qq(404 upstream "$name" not found), "GET $name: 404, the body as before");
    like(main::tag($r) // '', $main::TAG, "GET $name: 404 with an ETag");
    $h = http('HEAD', "/upstream/$name");
    is($h->{status}, 404, "HEAD $name: 404");
    is(main::tag($h), main::tag($r), "HEAD $name: the same ETag");
}

# 400: no ETag.
my $before = http_get('/upstream/a;b');
is($before->{status}, 400, 'GET of an invalid name: 400');
ok(!exists $before->{headers}{etag}, '  without an ETag');
ok(!exists http('HEAD', '/upstream/a;b')->{headers}{etag}, 'HEAD of an invalid name: no ETag');

=== TEST 2: POST with If-Match on a run-time upstream: applied with the ETag it read (answering the new one), refused (412, nothing changes) with an older one, as text and as JSON; W/"N" and a bare N are accepted, "*" and no If-Match are unconditional (no ETag in the answer), "abc" is refused; changes of other upstreams do not matter; a Plus API change does; refusals are in the change log
--- config
location / { dyups_interface; }
location /api { dynamic_upstream_api write=on; }
--- perl
main::unconditional(http('POST', '/upstream/dy', main::servers(1)), 'POST dy without If-Match');
my $e1 = main::get_tag('dy');
like($e1 // '', $main::TAG, 'its ETag');
my $e2 = main::applied(main::post_if('dy', main::servers(2), $e1), 'dy', 'POST dy with its ETag');
isnt($e2, $e1, '  a new ETag');
is(main::plus_tag('dy'), $e2, '  the NGINX Plus API\'s');
is(http_get('/upstream/dy')->{body}, main::line(main::addr(2)), '  the new server');

my $before = main::state();
main::mismatch(main::post_if('dy', main::servers(3), $e1), 'dy', 'POST dy with the ETag before');
main::mismatch_json(main::post_if('dy', main::servers(3), $e1, ['Accept', 'application/json']), 'dy', '  with Accept: application/json');
main::mismatch_json(http('POST', '/upstream/dy?format=json', main::servers(3), [['If-Match', $e1 // '']]), 'dy', '  with ?format=json');
is(main::refusal_logged('dy', '412 ' . main::mismatch_text('dy')), 3, 'the three refusals are in the change log');
main::mismatch(main::post_if('dy', main::servers(3), 'abc'), 'dy', 'POST dy with If-Match: abc');
main::mismatch(main::post_if('dy', main::servers(3), '"abc"'), 'dy', 'POST dy with If-Match: "abc"');
is(main::state(), $before, 'none of them changed anything');
is(main::get_tag('dy'), $e2, '  nor the ETag');

# Other upstreams' changes do not make dy's ETag stale.
main::unconditional(http('POST', '/upstream/other', main::servers(4)), 'POST other');
is(http('DELETE', '/upstream/other')->{status}, 200, 'DELETE other');
my $e3 = main::applied(main::post_if('dy', main::servers(3), $e2), 'dy', 'POST dy with its ETag after changes of another upstream');

# Weak and bare forms.
my $e4 = main::applied(main::post_if('dy', main::servers(4), "W/" . ($e3 // "")), 'dy', 'POST dy with If-Match: W/"N"');
my $e5 = main::applied(main::post_if('dy', main::servers(5), main::bare($e4)), 'dy', 'POST dy with If-Match: N (bare)');
is(http_get('/upstream/dy')->{body}, main::line(main::addr(5)), 'dy has the last server');
main::mismatch(main::post_if('dy', main::servers(1), "W/" . ($e4 // "")), 'dy', 'POST dy with the previous ETag as W/"N"');
main::mismatch(main::post_if('dy', main::servers(1), main::bare($e3)), 'dy', 'POST dy with an older bare N');

# "*": unconditional, answered as without If-Match.
main::unconditional(main::post_if('dy', main::servers(6), '*'), 'POST dy with If-Match: *');
is(http_get('/upstream/dy')->{body}, main::line(main::addr(6)), '  applied');
main::mismatch(main::post_if('dy', main::servers(1), $e5), 'dy', 'the ETag before it is stale');

# A change through the NGINX Plus API moves the ETag too.
my $e6 = main::get_tag('dy');
my $listed = eval { JSON::PP->new->decode(http_get('/api/9/http/upstreams/dy/servers')->{body}) } // [{ id => 0 }];
my $id = $listed->[0]{id};
is(http('PATCH', "/api/9/http/upstreams/dy/servers/$id", '{"weight":3}')->{status}, 200, 'a Plus API PATCH of dy');
my $e7 = main::get_tag('dy');
isnt($e7, $e6, '  moves the ETag');
is($e7, main::plus_tag('dy'), '  to the NGINX Plus API\'s');
main::mismatch(main::post_if('dy', main::servers(1), $e6), 'dy', 'POST dy with the ETag before the PATCH');
is(http_get('/upstream/dy')->{body}, main::line(main::addr(6), weight => 3), '  unchanged');
main::applied(main::post_if('dy', main::servers(7), $e7), 'dy', 'POST dy with the ETag after the PATCH');

=== TEST 3: POST with the ETag of a 404: creates the upstream once (the same again is 412); not if the name was created and deleted since (also once the deletion is 33 changes old); changes of other names do not matter
--- config
location / { dyups_interface; }
--- perl
# Create with the 404's ETag, once.
my $r = http_get('/upstream/new');
is($r->{status}, 404, 'GET new: 404');
my $absent = main::tag($r);
like($absent // '', $main::TAG, '  with an ETag');
my $e1 = main::applied(main::post_if('new', main::servers(1), $absent), 'new', 'POST new with the 404\'s ETag');
isnt($e1, $absent, '  a new ETag');
is(http_get('/upstream/new')->{body}, main::line(main::addr(1)), 'new exists');
main::mismatch(main::post_if('new', main::servers(2), $absent), 'new', 'the same POST again (the 404\'s ETag)');
is(http_get('/upstream/new')->{body}, main::line(main::addr(1)), '  new unchanged');

# Created and deleted by others since the 404 was read: 412.
my $gone = main::get_tag('x');
main::unconditional(http('POST', '/upstream/x', main::servers(1)), 'POST x (by another)');
is(http('DELETE', '/upstream/x')->{status}, 200, 'DELETE x (by another)');
my $before = main::state();
main::mismatch(main::post_if('x', main::servers(2), $gone), 'x', 'POST x with the ETag of the 404 before them');
is(main::state(), $before, '  x is not created');
is(http_get('/upstream/x')->{status}, 404, '  GET x: 404');
my $e = main::get_tag('x');
isnt($e, $gone, 'the 404 after the deletion has another ETag');
main::applied(main::post_if('x', main::servers(2), $e), 'x', 'POST x with it');

# Others' names do not matter: creations, replaces and deletions.
my $y = main::get_tag('y');
main::unconditional(http('POST', '/upstream/z', main::servers(1)), 'POST z');
main::unconditional(http('POST', '/upstream/z', main::servers(2)), 'POST z again');
is(http('DELETE', '/upstream/z')->{status}, 200, 'DELETE z');
main::applied(main::post_if('y', main::servers(3), $y), 'y', 'POST y with the ETag of its 404 before changes of z');

# A deletion older than the last 32: still 412.
my $w = main::get_tag('w');
main::unconditional(http('POST', '/upstream/w', main::servers(1)), 'POST w');
is(http('DELETE', '/upstream/w')->{status}, 200, 'DELETE w');
my @codes;
for my $i (1 .. 33) {
    push @codes, http('POST', "/upstream/t$i", main::servers(2))->{status}, http('DELETE', "/upstream/t$i")->{status};
}
is_deeply(\@codes, [(200) x 66], '33 more upstreams created and deleted');
$before = main::state();
main::mismatch(main::post_if('w', main::servers(2), $w), 'w', 'POST w with the ETag of its 404 before all that');
is(main::state(), $before, '  w is not created');
main::applied(main::post_if('w', main::servers(2), main::get_tag('w')), 'w', 'POST w with a fresh 404 ETag');

=== TEST 4: DELETE with If-Match: refused with an older ETag (the upstream stays), applied with its own; an older ETag of an upstream already gone is 412 (without If-Match: 404 as before); a configuration upstream without a zone is deleted with its ETag
--- http_config
$TEST_NGINX_CONFIGURED
--- config
location / { dyups_interface; }
--- perl
is(http('POST', '/upstream/dy', main::servers(1))->{status}, 200, 'dy created');
my $e1 = main::get_tag('dy');
my $e2 = main::applied(main::post_if('dy', main::servers(2), $e1), 'dy', 'dy replaced');
my $before = main::state();
main::mismatch(main::delete_if('dy', $e1), 'dy', 'DELETE dy with the ETag before');
main::mismatch_json(main::delete_if('dy', $e1, ['Accept', 'application/json']), 'dy', '  as JSON');
is(main::refusal_logged('dy', '412 ' . main::mismatch_text('dy')), 2, 'the refusals are in the change log');
main::mismatch(main::delete_if('dy', 'abc'), 'dy', 'DELETE dy with If-Match: abc');
is(main::state(), $before, 'dy is still there');
is(main::get_tag('dy'), $e2, '  with its ETag');

my $r = main::delete_if('dy', $e2);
is("$r->{status} $r->{body}", '200 success', 'DELETE dy with its ETag');
is(http_get('/upstream/dy')->{status}, 404, '  dy is gone');
main::mismatch(main::delete_if('dy', $e2), 'dy', 'DELETE dy again with that ETag');
$r = http('DELETE', '/upstream/dy');
is("$r->{status} $r->{body}", '404 upstream "dy" not found', 'DELETE dy without If-Match: 404 as before');

# A configuration upstream without a zone, never replaced.
my $p = main::get_tag('plain');
is(http('POST', '/upstream/plain2', main::servers(3))->{status}, 200, 'another configuration upstream replaced');
$r = main::delete_if('plain', $p);
is("$r->{status} $r->{body}", '200 success', 'DELETE plain with the ETag of its GET');
is(http_get('/upstream/plain')->{status}, 404, '  plain is gone');
is(http_get('/list')->{body}, "plain2\nzoned\n", '  not listed');
main::mismatch(main::delete_if('plain2', $p), 'plain2', 'DELETE plain2 with plain\'s ETag');
main::mismatch(main::post_if('plain', main::servers(4), $p), 'plain', 'POST plain with the ETag before its deletion');
main::applied(main::post_if('plain', main::servers(4), main::get_tag('plain')), 'plain', 'POST plain with the ETag of its 404');
is(http_get('/upstream/plain')->{body}, main::line(main::addr(4)), '  plain is back');

=== TEST 5: configuration upstreams: without a zone, its ETag replaces it once; with a zone, a POST with the zone's ETag takes it over, one with a stale zone ETag is 412 and gives the zone back (a Plus API PATCH then works: not 409 managed_by_dyups); after the takeover the zone's ETag is stale
--- http_config
$TEST_NGINX_CONFIGURED
--- config
location / { dyups_interface; }
location /api { dynamic_upstream_api write=on; }
--- perl
# Without a zone.
my $p = main::get_tag('plain');
like($p // '', $main::TAG, 'GET plain: an ETag');
my $p1 = main::applied(main::post_if('plain', main::servers(3), $p), 'plain', 'POST plain with it');
is(main::plus_tag('plain'), $p1, '  the NGINX Plus API\'s ETag of plain');
main::mismatch(main::post_if('plain', main::servers(4), $p), 'plain', 'POST plain with it again');
is(http_get('/upstream/plain')->{body}, main::line(main::addr(3)), '  unchanged');

# With a zone: a stale zone ETag, then the zone is given back.
my $z0 = main::get_tag('zoned');
is($z0, main::plus_tag('zoned'), 'GET zoned: the zone\'s ETag');
is(http('PATCH', '/api/9/http/upstreams/zoned/servers/0', '{"weight":2}')->{status}, 200, 'a Plus API PATCH of zoned');
my $z1 = main::get_tag('zoned');
isnt($z1, $z0, '  moves its ETag');
my $before = main::state();
main::mismatch(main::post_if('zoned', main::servers(5), $z0), 'zoned', 'POST zoned with the ETag before the PATCH');
is(main::state(), $before, '  nothing changed');
my $r = http('PATCH', '/api/9/http/upstreams/zoned/servers/1', '{"weight":3}');
is($r->{status}, 200, 'a Plus API PATCH after the refusal: the zone was given back (not 409 managed_by_dyups)') or diag($r->{body});
is(http_get('/upstream/zoned')->{body}, main::line(main::addr(1), weight => 2) . main::line(main::addr(2), weight => 3),
   '  both PATCHes applied');
my $z2 = main::get_tag('zoned');
is($z2, main::plus_tag('zoned'), '  the ETag is the zone\'s');
main::mismatch(main::post_if('zoned', main::servers(5), $z1), 'zoned', 'POST zoned with the ETag before the second PATCH');

# The takeover with the zone's ETag.
my $z3 = main::applied(main::post_if('zoned', main::servers(5), $z2), 'zoned', 'POST zoned with the zone\'s ETag: taken over');
is(http_get('/upstream/zoned')->{body}, main::line(main::addr(5)), '  its new server');
is(main::plus_tag('zoned'), $z3, '  the NGINX Plus API\'s ETag is the new one');
main::mismatch(main::post_if('zoned', main::servers(6), $z2), 'zoned', 'POST zoned with the zone\'s ETag again');
main::mismatch(main::delete_if('zoned', $z2), 'zoned', 'DELETE zoned with the zone\'s ETag');
is(http_get('/upstream/zoned')->{body}, main::line(main::addr(5)), '  unchanged');
main::applied(main::post_if('zoned', main::servers(6), $z3), 'zoned', 'POST zoned with the ETag after the takeover');

=== TEST 6: If-None-Match on POST or DELETE is refused (400 invalid_precondition), nothing changes; If-Unmodified-Since on a POST does not turn the applied change into nginx's 412
--- config
location / { dyups_interface; }
--- perl
is(http('POST', '/upstream/dy', main::servers(1))->{status}, 200, 'dy created');
my $tag = main::get_tag('dy');
my $before = main::state();
for my $value ('*', $tag // '"0"', '"123"') {
    main::no_if_none_match(http('POST', '/upstream/dy', main::servers(2), [['If-None-Match', $value]]), 'dy', "POST dy with If-None-Match: $value");
    main::no_if_none_match(http('POST', '/upstream/new', main::servers(2), [['If-None-Match', $value]]), 'new', "POST new with If-None-Match: $value");
    main::no_if_none_match(http('DELETE', '/upstream/dy', undef, [['If-None-Match', $value]]), 'dy', "DELETE dy with If-None-Match: $value");
}
is(main::state(), $before, 'nothing changed');
is(main::get_tag('dy'), $tag, '  dy has the same ETag');
is(http_get('/upstream/new')->{status}, 404, '  new was not created');

my $r = http('POST', '/upstream/new?format=json', main::servers(2), [['If-None-Match', '*']]);
is($r->{status}, 400, 'as JSON: 400');
like($r->{headers}{'content-type'} // '', qr{\Aapplication/json\b}, '  application/json');
my $j = eval { JSON::PP->new->decode($r->{body}) } // {};
is_deeply([sort keys %{ $j->{error} // {} }], [qw(code status text)], '  error has status, code, text');
is($j->{error}{status}, 400, '  error.status');
is($j->{error}{code}, 'invalid_precondition', '  error.code');
like($j->{error}{text} // '', qr{\AIf-None-Match is not supported on changes: use If-Match with the ETag of GET /upstream/NAME \(a 404 answers one too\)\z},
     '  error.text');
is(substr($r->{body}, -1), "\n", '  ends in a newline, as the other JSON errors');

# If-Unmodified-Since: applied and answered 200 (nginx answered 412 after applying it).
main::unconditional(http('POST', '/upstream/dy', main::servers(3), [['If-Unmodified-Since', 'Thu, 01 Jan 1970 00:00:01 GMT']]),
                    'POST dy with If-Unmodified-Since in 1970');
is(http_get('/upstream/dy')->{body}, main::line(main::addr(3)), '  applied');
main::unconditional(http('POST', '/upstream/dy', main::servers(4), [['If-Unmodified-Since', 'Fri, 01 Jan 2100 00:00:00 GMT']]),
                    'POST dy with If-Unmodified-Since in 2100');
is(http_get('/upstream/dy')->{body}, main::line(main::addr(4)), '  applied');

=== TEST 7: two workers, 20 concurrent POSTs with one ETag: exactly one applies, the others get 412 (a run-time upstream, an absent one, a configuration upstream with a zone)
--- workers: 2
--- http_config
$TEST_NGINX_CONFIGURED
$TEST_NGINX_ADMIN
--- config
location / { dyups_interface; }
location /api { dynamic_upstream_api write=on; }
--- perl
is(http('POST', '/upstream/dy', main::servers(1))->{status}, 200, 'dy created');
main::one_wins('dy', 'run-time upstream', main::concurrent_posts('dy', main::get_tag('dy'), 20));
my $absent = main::get_tag('new');
like($absent // '', $main::TAG, 'the ETag of new\'s 404');
main::one_wins('new', 'absent upstream', main::concurrent_posts('new', $absent, 20));
main::one_wins('zoned', 'zone upstream', main::concurrent_posts('zoned', main::get_tag('zoned'), 20));

=== TEST 8: a reload that loads the registry anew (another dyups_shm_zone_size): an ETag read before it, of an upstream or of a 404, is stale after it
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
--- config
location / { dyups_interface; }
location /api { dynamic_upstream_api write=on; }
--- perl
is(http('POST', '/upstream/dy', main::servers(1))->{status}, 200, 'dy created');
is(http('POST', '/upstream/gone', main::servers(2))->{status}, 200, 'gone created');
is(http('DELETE', '/upstream/gone')->{status}, 200, 'gone deleted');
my $dy = main::get_tag('dy');
my $absent = main::get_tag('absent');
my $gone = main::get_tag('gone');
like($_ // '', $main::TAG, 'an ETag before the reload') for $dy, $absent, $gone;
my $conf = NginxTest::Files::slurp(conf_file());
$conf =~ s{(dyups_upstream_conf [^;]*;)}{$1\n    dyups_shm_zone_size 4m;} or die 'no dyups_upstream_conf';
NginxTest::Files::spew(conf_file(), $conf);
nginx_reload();
my $r = http_get('/upstream/dy');
is($r->{body}, main::line(main::addr(1)), 'dy is kept');
isnt(main::tag($r), $dy, '  with another ETag');
is(main::tag($r), main::plus_tag('dy'), '  the NGINX Plus API\'s');
my $before = main::state();
main::mismatch(main::post_if('dy', main::servers(3), $dy), 'dy', 'POST dy with its ETag of before the reload');
main::mismatch(main::delete_if('dy', $dy), 'dy', 'DELETE dy with its ETag of before the reload');
main::mismatch(main::post_if('absent', main::servers(3), $absent), 'absent', 'POST absent with the ETag of its 404 before the reload');
main::mismatch(main::post_if('gone', main::servers(3), $gone), 'gone', 'POST gone with the ETag of its 404 before the reload');
is(main::state(), $before, 'nothing changed');
main::applied(main::post_if('dy', main::servers(3), main::get_tag('dy')), 'dy', 'POST dy with its ETag read after the reload');
main::applied(main::post_if('absent', main::servers(3), main::get_tag('absent')), 'absent', 'POST absent with its 404\'s ETag read after');

=== TEST 9: (debug builds) a POST that waits before taking any lock (stall point dyups_received) with an ETag that changes made meanwhile on the other worker outdate is refused with 412 when it goes on, and the newer change stays (without If-Match it overwrites it: the control case); the changes meanwhile are answered at once (no lock held, dyups_upstream_conf set)
--- workers: 2
--- main_config
env NDU_TEST_STALL=dyups_received:late;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
env NDU_TEST_STALL_SECONDS=8;
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
$TEST_NGINX_ADMIN
--- config
location / { dyups_interface; }
--- perl
SKIP: {
skip('the stall points exist in debug builds only', 1) if main::release_module();
my $once = data_dir() . '/stalled-once';
NginxTest::Files::spew($once, '');
is(http('POST', '/upstream/late', main::servers(1))->{status}, 200, 'late created (without stalling: the once file is there)');
unlink $once or die "unlink $once: $!";
my ($holder, $other) = main::worker_connections();
my $e0 = main::get_tag('late');
like($e0 // '', $main::TAG, 'late\'s ETag E0');

# Conn 1: POST of A with E0, stalls.
main::send_on($holder, 'POST', 'late', main::servers(2), [['If-Match', $e0 // '']]);
my $pid;
ok(poll_until(sub { $pid = main::stalled_pid('dyups_received', 'late') }, 10, 'stall'), 'conn 1: the POST of A with E0 stalls before any lock');
is($pid, $holder->{pid}, '  in the worker it was sent to');

# Conns 2 and 3 on the other worker, answered at once.
my $e1 = main::applied_at_once($other, 'late', 2, $e0, 'conn 2: POST of A with E0 (the retry)');
my $e2 = main::applied_at_once($other, 'late', 3, $e1, 'conn 3: POST of B with E1 (a newer document)');

# The stall ends: conn 1 is refused, B stays.
main::refused_late($holder, $other, 'POST', 'late', 3, $e2);
is(main::refusal_logged('late', '412 ' . main::mismatch_text('late')), 1, 'the stalled POST\'s refusal is in the change log');

# The control case: without If-Match, the stalled POST overwrites B (new
# connections: whether nginx keeps one open after a 412 is not the point).
unlink $once;
($holder, $other) = main::worker_connections();
main::send_on($holder, 'POST', 'late', main::servers(1));
ok(poll_until(sub { main::stalled_pid('dyups_received', 'late', 2) }, 10, 'stall'), 'control: a POST of C without If-Match stalls');
my ($r) = main::on_conn($other, 'POST', 'late', main::servers(2), [], 5);
is("$r->{status} $r->{body}", '200 success', 'control: a POST of D meanwhile is applied');
$r = $holder->{conn}->read('POST', Time::HiRes::time() + 15);
is($r && "$r->{status} $r->{body}", '200 success', 'control: the stalled POST is applied too');
($r) = main::on_conn($other, 'GET', 'late');
is($r->{body}, main::line(main::addr(1)), 'control: the late POST overwrote the newer one (what If-Match prevents)');
}

=== TEST 10: (debug builds) a DELETE that waits before taking any lock (stall point delete_received, from a NDU_TEST_STALL list) with an ETag that a POST meanwhile outdates is refused with 412, and the upstream stays
--- workers: 2
--- main_config
env NDU_TEST_STALL=dyups_received:nothing,delete_received:gone;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
env NDU_TEST_STALL_SECONDS=8;
--- http_config
dyups_upstream_conf $TEST_NGINX_DATA_DIR/dyups.conf;
$TEST_NGINX_ADMIN
--- config
location / { dyups_interface; }
--- perl
SKIP: {
skip('the stall points exist in debug builds only', 1) if main::release_module();
my $once = data_dir() . '/stalled-once';
is(http('POST', '/upstream/gone', main::servers(1))->{status}, 200, 'gone created');
my ($holder, $other) = main::worker_connections();
my $e0 = main::get_tag('gone');
like($e0 // '', $main::TAG, 'gone\'s ETag E0');
main::send_on($holder, 'DELETE', 'gone', undef, [['If-Match', $e0 // '']]);
my $pid;
ok(poll_until(sub { $pid = main::stalled_pid('delete_received', 'gone') }, 10, 'stall'), 'the DELETE with E0 stalls before any lock');
is($pid, $holder->{pid}, '  in the worker it was sent to');
ok(-e "$once.delete_received.gone" && !-e $once, '  with two stall points, the once file is NDU_TEST_STALL_ONCE.POINT.NAME');
my $e1 = main::applied_at_once($other, 'gone', 2, $e0, 'a POST with E0 on the other worker');
main::refused_late($holder, $other, 'DELETE', 'gone', 2, $e1);
}

=== TEST 11: a DELETE with If-Match that finds nothing to delete (404) still moves the name's revision, so that a change read before it is refused: a run-time name found absent, a configuration upstream deleted already; without If-Match it moves nothing (review 57 F1)
--- http_config
$TEST_NGINX_CONFIGURED
--- config
location / { dyups_interface; }
--- perl
my $e0 = main::get_tag('x');
my $r = main::delete_if('x', $e0);
is("$r->{status} $r->{body}", '404 upstream "x" not found', 'DELETE x (absent) with the ETag of its 404: 404 as before');
isnt(main::get_tag('x'), $e0, '  its 404 has another ETag now');
my $before = main::state();
main::mismatch(main::post_if('x', main::servers(1), $e0), 'x', 'POST x with the ETag read before that DELETE');
is(main::state(), $before, '  x is not created');
main::mismatch(main::delete_if('x', $e0), 'x', 'the same DELETE again');

my $e1 = main::get_tag('y');
is(http('DELETE', '/upstream/y')->{status}, 404, 'DELETE y (absent) without If-Match: 404');
is(main::get_tag('y'), $e1, '  moves nothing');
main::applied(main::post_if('y', main::servers(1), $e1), 'y', 'POST y with the ETag read before it');

is(http('DELETE', '/upstream/plain')->{status}, 200, 'plain (of the configuration) deleted');
my $t0 = main::get_tag('plain');
$r = main::delete_if('plain', $t0);
is("$r->{status} $r->{body}", '404 upstream "plain" not found', 'DELETE plain again with the ETag of its 404: 404');
isnt(main::get_tag('plain'), $t0, '  its 404 has another ETag now');
main::mismatch(main::post_if('plain', main::servers(2), $t0), 'plain', 'POST plain with the ETag read before that DELETE');
is(http_get('/upstream/plain')->{status}, 404, '  plain is not made again');

=== TEST 12: (debug builds) a POST that waits before taking any lock, for a name found absent, is refused once a DELETE with the same ETag found it absent meanwhile: the upstream is not made (review 57 F1: the agent's key deleted while its POST was late)
--- workers: 2
--- main_config
env NDU_TEST_STALL=dyups_received:late;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
env NDU_TEST_STALL_SECONDS=5;
--- http_config
$TEST_NGINX_ADMIN
--- config
location / { dyups_interface; }
--- perl
SKIP: {
skip('the stall points exist in debug builds only', 1) if main::release_module();
my ($holder, $other) = main::worker_connections();
my $e0 = main::get_tag('late');
like($e0 // '', $main::TAG, 'the ETag of late\'s 404: E0');
main::send_on($holder, 'POST', 'late', main::servers(1), [['If-Match', $e0 // '']]);
ok(poll_until(sub { main::stalled_pid('dyups_received', 'late') }, 10, 'stall'), 'the POST of late with E0 stalls before any lock');
my ($r) = main::on_conn($other, 'HEAD', 'late');
is($r->{headers}{etag}, $e0, 'HEAD late on the other worker: still absent, E0');
($r) = main::on_conn($other, 'DELETE', 'late', undef, [['If-Match', $e0 // '']]);
is("$r->{status} $r->{body}", '404 upstream "late" not found', 'DELETE late with E0 there: 404');
ok(!$holder->{conn}->answered, 'the POST is still stalled');
$r = $holder->{conn}->read('POST', Time::HiRes::time() + 15);
is($r && "$r->{status} $r->{body}", '412 ' . main::mismatch_text('late'), 'the POST, once it goes on: 412');
($r) = main::on_conn($other, 'GET', 'late');
is($r->{status}, 404, 'late was not made');
}

=== TEST 13: a reload that keeps the registry: an ETag read before it of a name without a record is stale after it, and so is a zone upstream's that the reload removed (its revision was on the registry's scale: review 57 F2); a record's is not; a zone upstream the reload adds starts its revisions past every ETag given before (review 60: one could equal an absence's)
--- http_config
$TEST_NGINX_CONFIGURED
--- config
location / { dyups_interface; }
location /api { dynamic_upstream_api write=on; }
--- perl
is(http('POST', '/upstream/dy', main::servers(1))->{status}, 200, 'dy created');
my $dy = main::get_tag('dy');
my $absent = main::get_tag('absent');
my $zoned = main::get_tag('zoned');
is($zoned, main::plus_tag('zoned'), 'zoned: its zone\'s ETag');
my $conf = NginxTest::Files::slurp(conf_file());
$conf =~ s/upstream zoned \{.*?\n\}\n//s or die 'no upstream zoned';
my $added = main::get_tag('added');
my $p3 = port(3);
$conf =~ s/^(upstream plain )/upstream added { zone added 64k; server 127.0.0.1:$p3; }\n$1/m or die 'no upstream plain';
NginxTest::Files::spew(conf_file(), $conf);
nginx_reload();
is(http_get('/upstream/zoned')->{status}, 404, 'the reload removed zoned');
my $first = main::bare(main::get_tag('added'));
is($first, main::bare(main::plus_tag('added')), 'added, a zone upstream the reload added: its zone\'s ETag');
ok($first > main::bare($_), "  past $_, given before the reload") for $dy, $absent, $zoned, $added;
my $before = main::state();
main::mismatch(main::post_if('zoned', main::servers(2), $zoned), 'zoned', 'POST zoned with its zone\'s ETag of before the reload');
main::mismatch(main::post_if('absent', main::servers(2), $absent), 'absent', 'POST absent with the ETag of its 404 before the reload');
is(main::state(), $before, 'nothing made');
is(main::get_tag('dy'), $dy, 'dy keeps its ETag');
main::applied(main::post_if('dy', main::servers(2), $dy), 'dy', 'POST dy with its ETag of before the reload');

=== TEST 14: (debug builds) a reload while a worker holds the registry's lock past the reload's patience (stall point replace_version): the ETag of a zone upstream the reload removed, read before it, is still refused after it (review 58 R2: the floor was moved under that lock in init_module, and skipped)
--- main_config
env NDU_TEST_STALL=replace_version:y;
env NDU_TEST_STALL_ONCE=$TEST_NGINX_DATA_DIR/stalled-once;
env NDU_TEST_STALL_SECONDS=4;
--- http_config
$TEST_NGINX_CONFIGURED
$TEST_NGINX_ADMIN
--- config
location / { dyups_interface; }
--- perl
SKIP: {
skip('the stall points exist in debug builds only', 1) if main::release_module();
my $zoned = main::get_tag('zoned');
like($zoned // '', $main::TAG, 'zoned: its zone\'s ETag');
my $c = HttpClient::Connection->open(port(8), 10) or die "connect: $@";
main::send_on({ conn => $c }, 'POST', 'y', main::servers(1));
ok(poll_until(sub { main::stalled_pid('replace_version', 'y') }, 10, 'stall'), 'a POST of y stalls holding the registry\'s lock');
my $conf = NginxTest::Files::slurp(conf_file());
$conf =~ s/upstream zoned \{.*?\n\}\n//s or die 'no upstream zoned';
NginxTest::Files::spew(conf_file(), $conf);
nginx_reload();
ok(poll_until(sub { http_get('/upstream/zoned')->{status} == 404 }, 15, 'reload'), 'the reload removed zoned');
my $r = $c->read('POST', Time::HiRes::time() + 15);
is($r && $r->{status}, 200, 'the stalled POST of y ends');
main::mismatch(main::post_if('zoned', main::servers(2), $zoned), 'zoned', 'POST zoned with its zone\'s ETag of before the reload');
is(http_get('/upstream/zoned')->{status}, 404, '  zoned is not made');
}

=== TEST 15: a worker a reload replaced (the registry kept) answers, for a name without a record, an ETag that no change in the new workers matches: its configuration is the old one (a zoneless upstream whose servers the reload changed), and its reads, or its changes, which it still makes, could have moved the registry's revisions past the new cycle's start (review 59)
--- http_config
upstream plain { server 127.0.0.1:$TEST_NGINX_PORT_1; }
--- config
location / { dyups_interface; }
location = /basic_status { stub_status; }
--- perl
# Two requests whose headers a worker of the first configuration is still
# reading (stub_status counts them) when the reload comes.
my @open = map {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port(), Timeout => 5) or die "connect: $!";
    $s->autoflush(1);
    $s
} 1 .. 2;
my ($post, $get) = @open;
print $post "POST /upstream/dy HTTP/1.0\r\nHost: x\r\n";
print $get "GET /upstream/plain HTTP/1.0\r\nHost: x\r\n";
ok(poll_until(sub { http_get('/basic_status')->{body} =~ /Reading: ([2-9]|\d\d)/ }, 5, 'reading'), 'old workers read both');
my %old = map { $_ => 1 } worker_pids();
my $conf = NginxTest::Files::slurp(conf_file());
my ($p1, $p2) = (port(1), port(2));
$conf =~ s/upstream plain \{ server 127\.0\.0\.1:$p1; \}/upstream plain { server 127.0.0.1:$p2; }/ or die 'no upstream plain';
NginxTest::Files::spew(conf_file(), $conf);
kill 'HUP', master_pid();
ok(poll_until(sub { my @w = worker_pids(); @w >= 2 && !grep { $old{$_} } @w }, 10, 'reload'), 'new workers run: plain has another server');
is(http_get('/upstream/plain')->{body}, main::line(main::addr(2)), '  which a new worker shows');
my $body = main::servers(1);
print $post 'Content-Length: ' . length($body) . "\r\n\r\n$body";
my $reply = do { local $/; <$post> } // '';
like($reply, qr{^HTTP/1\.\d 200 .*\r\n\r\nsuccess\z}s, 'the old worker makes the POST of dy, as before') or diag($reply);
is(http_get('/upstream/dy')->{body}, main::line(main::addr(1)), '  the new workers have dy');
print $get "\r\n";
$reply = do { local $/; <$get> } // '';
like($reply, qr{^HTTP/1\.\d 200 .*\Q${\ main::line(main::addr(1))}\E\z}s, 'the old worker shows plain as it was configured');
my ($old_tag) = $reply =~ /^ETag: ("\d+")\r$/mi;
like($old_tag // '', $main::TAG, '  with an ETag');
main::mismatch(main::post_if('plain', main::servers(3), $old_tag), 'plain', 'POST plain with that ETag to a new worker');
is(http_get('/upstream/plain')->{body}, main::line(main::addr(2)), '  plain keeps the new configuration\'s server');
main::applied(main::post_if('plain', main::servers(3), main::get_tag('plain')), 'plain', 'POST plain with the ETag a new worker answers');
