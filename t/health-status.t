# check_status [html|csv|json]: nginx_upstream_check_module's status page
# over every checked peer, of configured upstreams (in order) then run-time
# ones; ?format= and ?status= as the C module reads them (a bad value is
# 400). The health fields of the JSON answers (query API, dyups, Lua's
# describe_zone) while text listings keep their formats.
# interval=30000: each peer is checked once (the first check is due
# within a second), so rise and fall counts are exact; times are masked.
use lib 't/lib';
use NginxTest;
use NginxTest::Backend;
use NginxTest::Lua;
use JSON::PP ();

# The health fields of the peers of a JSON listing's upstream: "name
# health rises falls last_error checked?" per peer ("name -" without them).
sub health_of {
    my ($peers) = @_;
    return [ map {
        exists $_->{health}
            ? "$_->{name} $_->{health} $_->{rises} $_->{falls} '$_->{last_error}' " . ($_->{last_check} > 0 ? 'T' : 0)
            : "$_->{name} -"
    } @$peers ];
}

# The page at URI, with its last check times replaced by T.
sub page {
    my ($uri) = @_;
    my $r = http_get($uri);
    my $body = $r->{body};
    $body =~ s/"last_check": \d+/"last_check": T/g;
    $body =~ s{<td>\d{10}</td>}{<td>T</td>}g;
    return "$r->{status} $r->{headers}{'content-type'}\n$body";
}

# Whether every checked peer has been checked once.
sub all_checked {
    my $body = http_get('/status?format=json')->{body};
    return $body =~ /"total": (\d+)/ && $1 > 0 && $body !~ /"last_check": 0\b/;
}

$ENV{TEST_NGINX_CHECKED} = <<'NGINX';
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    check interval=30000 rise=1 fall=1 timeout=1000 type=http;
}
upstream plain {
    zone plain 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_9; location / { dyups_interface; } }
NGINX

# 80 checked servers (nothing listens there), more than a 32k health zone holds.
$ENV{TEST_NGINX_MANY} = "upstream many {\n    zone many 256k;\n"
    . join('', map { "    server 127.0.0.1:$_;\n" } 30001 .. 30080)
    . "    check interval=30000 timeout=1000;\n}\n";

$ENV{TEST_NGINX_LUA_EVAL} = lua_eval_location([dynamic => 'ngx.dynamic']);

# Writes CONF (a block's configuration, read before any rewrite) with
# check_shm_size SIZE and the checked servers SERVERS (addresses) in place
# of its `check_shm_size 32k;` and `server 127.0.0.1:30001;` (TESTs 8, 10).
sub with_checked {
    my ($conf, $size, @servers) = @_;
    my $lines = join '', map { "    server $_;\n" } @servers;
    NginxTest::Files::spew(conf_file(), $conf =~ s/check_shm_size 32k;/check_shm_size $size;/r
        =~ s/    server 127\.0\.0\.1:30001;\n/$lines/r);
}

run_tests();
__DATA__

=== TEST 1: csv, json and html over configured and run-time upstreams; ?status= filters, the index stays
--- http_config
$TEST_NGINX_CHECKED
--- config
location /status { check_status csv; }
location /html { check_status; }
location /dynamic { dynamic_upstream; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b = main::backend($p1);
is(http('POST', 'http://127.0.0.1:' . port(9) . '/upstream/dyhost',
        "server 127.0.0.1:$p1; check interval=30000 rise=1 fall=1 timeout=1000 type=tcp port=$p1;")->{status}, 200, 'POST');
is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p2&down=")->{status}, 200, 'an administrator\'s down');
ok(defined main::wait_until(5, \&main::all_checked), 'every peer checked once') or return;
is(main::page('/status'), "200 text/plain\n"
   . "0,backends,127.0.0.1:$p1,up,1,0,http,0\n"
   . "1,backends,127.0.0.1:$p2,down,0,1,http,0\n"
   . "2,dyhost,127.0.0.1:$p1,up,1,0,tcp,$p1\n", 'csv (the C module\'s)');
is(main::page('/status?status=down'), "200 text/plain\n1,backends,127.0.0.1:$p2,down,0,1,http,0\n", '?status=down');
is(main::page('/status?format=json&status=UP'), qq(200 application/json\n{"servers": {\n  "total": 2,\n  "generation": 1,\n  "server": [\n)
   . qq(    {"index": 0, "upstream": "backends", "name": "127.0.0.1:$p1", "status": "up", "rise": 1, "fall": 0, "type": "http", "port": 0, "down": false, "last_check": T, "last_error": ""},\n)
   . qq(    {"index": 2, "upstream": "dyhost", "name": "127.0.0.1:$p1", "status": "up", "rise": 1, "fall": 0, "type": "tcp", "port": $p1, "down": false, "last_check": T, "last_error": ""}\n)
   . qq(  ]\n}}\n), 'json, ?status=UP');
my $html = main::page('/html?status=down');
is($html, qq(200 text/html\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN\n"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n)
   . qq(<html xmlns="http://www.w3.org/1999/xhtml">\n<head>\n  <title>Nginx http upstream check status</title>\n</head>\n<body>\n)
   . qq(<h1>Nginx http upstream check status</h1>\n<h2>Check upstream server number: 1, generation: 1</h2>\n)
   . qq(<table style="background-color:white" cellspacing="0"        cellpadding="3" border="1">\n  <tr bgcolor="#C0C0C0">\n)
   . join('', map { "    <th>$_</th>\n" } 'Index', 'Upstream', 'Name', 'Status', 'Rise counts', 'Fall counts', 'Check type',
          'Check port', 'Admin state', 'Last check', 'Last error')
   . qq(  </tr>\n  <tr bgcolor="#FF0000">\n)
   . join('', map { "    <td>$_</td>\n" } 1, 'backends', "127.0.0.1:$p2", 'down', 0, 1, 'http', 0, 'down', 'T', 'connect failed')
   . qq(  </tr>\n</table>\n</body>\n</html>\n), 'html (the default), with the admin state, last check and last error');
is(main::page('/html?format=csv&status=down'), "200 text/plain\n1,backends,127.0.0.1:$p2,down,0,1,http,0\n", '?format= overrides');
is(main::page('/status?format=xml'), qq(400 text/plain\nformat must be html, csv or json (got "xml")\n), 'bad format');
is(main::page('/status?status=sideways'), qq(400 text/plain\nstatus must be up or down (got "sideways")\n), 'bad status');
is(http('POST', '/status', 'x')->{status}, 405, 'POST: 405');



=== TEST 2: check_status with a bad format
--- http_config
--- config
location /status { check_status xml; }
--- must_die
--- error_log
qr/\[emerg\] .*invalid parameter "xml" in "check_status": html, csv or json in \S+nginx\.conf:\d+/



=== TEST 3: no checked peer: an empty page
--- http_config
upstream plain {
    zone plain 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
}
--- config
location /status { check_status json; }
--- request
GET /status
--- response_body
{"servers": {
  "total": 0,
  "generation": 1,
  "server": [
  ]
}}



=== TEST 4: JSON answers show the checks' health, rises, falls, last check and error; text listings do not change
--- http_config
$TEST_NGINX_CHECKED
--- config
location /status { check_status csv; }
location /dynamic { dynamic_upstream; }
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b = main::backend($p1);
is(http('POST', 'http://127.0.0.1:' . port(9) . '/upstream/dyhost',
        "server 127.0.0.1:$p1; server 127.0.0.1:$p2; check interval=30000 rise=1 fall=1 timeout=1000 type=tcp;")->{status}, 200, 'POST');
is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p2&down=")->{status}, 200, 'an administrator\'s down');
ok(defined main::wait_until(5, \&main::all_checked), 'every peer checked once') or return;
my $rest = 'http://127.0.0.1:' . port(9);
my $j = JSON::PP->new->decode(http_get('/dynamic?upstream=backends&format=json')->{body});
is_deeply(main::health_of($j->{peers}), ["127.0.0.1:$p1 up 1 0 '' T", "127.0.0.1:$p2 down 0 1 'connect failed' T"], 'query API JSON');
is($j->{peers}[1]{down}, JSON::PP::true, 'next to the administrator\'s down');
$j = JSON::PP->new->decode(http_get('/dynamic?upstream=plain&format=json')->{body});
is_deeply(main::health_of($j->{peers}), ["127.0.0.1:$p1 -"], 'an upstream without checks has no health fields');
is(http_get('/dynamic?upstream=backends')->{body}, "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2 down;\n", 'the text listing is unchanged');
$j = JSON::PP->new->decode(http_get("$rest/upstream/dyhost?format=json")->{body});
is_deeply(main::health_of($j->{peers}), ["127.0.0.1:$p1 up 1 0 '' T", "127.0.0.1:$p2 down 0 1 'connect failed' T"], 'dyups JSON');
$j = JSON::PP->new->decode(http_get("$rest/detail?format=json")->{body});
is_deeply({ map { $_->{upstream} => main::health_of($_->{peers}) } @{ $j->{upstreams} } },
          { backends => ["127.0.0.1:$p1 up 1 0 '' T", "127.0.0.1:$p2 down 0 1 'connect failed' T"],
            plain => ["127.0.0.1:$p1 -"],
            dyhost => ["127.0.0.1:$p1 up 1 0 '' T", "127.0.0.1:$p2 down 0 1 'connect failed' T"] }, 'dyups /detail JSON');
is(http_get("$rest/upstream/dyhost")->{body},
   "server 127.0.0.1:$p1 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n"
   . "server 127.0.0.1:$p2 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n", 'the dyups text listing is unchanged');



=== TEST 5: Lua's describe_zone gives the checks' health
--- modules: lua
--- http_config
$TEST_NGINX_CHECKED
--- config
location /status { check_status csv; }
$TEST_NGINX_LUA_EVAL
--- perl
my ($p1, $p2) = (port(1), port(2));
my $b = main::backend($p1);
ok(defined main::wait_until(5, \&main::all_checked), 'every peer checked once') or return;
my $code = 'local out = {} for _, p in ipairs(dynamic.describe_zone(%s)) do '
         . 'out[#out + 1] = p.name .. " " .. tostring(p.health) .. " " .. tostring(p.rises) .. " " .. tostring(p.falls) '
         . '.. " \'" .. tostring(p.last_error) .. "\' " .. (p.last_check and (p.last_check > 0 and "T" or "0") or "nil") end '
         . 'return table.concat(out, ", ")';
is(main::lua(sprintf($code, '"backends"')), qq(127.0.0.1:$p1 up 1 0 '' T, 127.0.0.1:$p2 down 0 1 'connect failed' T), 'checked');
is(main::lua(sprintf($code, '"plain"')), qq(127.0.0.1:$p1 nil nil nil 'nil' nil), 'without checks: no fields');



=== TEST 6: peers the health zone had no room for (a state file restored more servers than the configuration has) are not on the page, and "unchecked" in JSON
--- http_config
check_shm_size 32k;
upstream many {
    zone many 256k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/many.state;
    server 127.0.0.1:30001;
    check interval=30000 timeout=1000;
}
--- config
location /status { check_status csv; }
location /dynamic { dynamic_upstream; }
--- perl
NginxTest::Files::spew(data_dir() . '/many.state', join '', map { "server 127.0.0.1:$_;\n" } 30001 .. 30080);
nginx_reload();
my @rows = split /\n/, http_get('/status')->{body};
my $j = JSON::PP->new->decode(http_get('/dynamic?upstream=many&format=json')->{body});
my %health;
$health{ $_->{health} }++ for @{ $j->{peers} };
cmp_ok(scalar @rows, '<', 80, 'not every server has a record');
is_deeply(\%health, { down => scalar @rows, unchecked => 80 - @rows }, 'the others are unchecked');
like($rows[-1], qr/^\d+,many,127\.0\.0\.1:300\d\d,down,0,[01],tcp,0$/, 'rows are the checked peers') or diag($rows[-1]);
--- error_log
peers are not checked; raise "check_shm_size"

=== TEST 7: more checked servers in the configuration than check_shm_size holds records for: nginx -t fails and nginx does not start, naming the sizes and a size that holds them, as the C module refuses (nginx started with the others unchecked, taking requests whatever their state, hunt 37)
--- http_config
check_shm_size 32k;
$TEST_NGINX_MANY
--- config
location /status { check_status csv; }
--- must_die
--- error_log
qr/\[emerg\].*check_shm_size 32k holds the records of \d+ checked peers, and the configuration checks 80: raise it to \d+k or more/

=== TEST 8: a reload to more checked servers than the zone holds is refused and the running checks stay; the size the message names holds them; a reload that swaps servers in a full zone checks every new one (the new ones were claimed before the gone ones were freed, and stayed unchecked: hunt 37)
--- http_config
check_shm_size 32k;
upstream many {
    zone many 256k;
    server 127.0.0.1:30001;
    check interval=30000 timeout=1000;
}
--- config
location /status { check_status csv; }
--- perl
my $conf = NginxTest::Files::slurp(conf_file());
my $with = sub {
    my ($size, @ports) = @_;
    main::with_checked($conf, $size, map { "127.0.0.1:$_" } @ports);
};
my $rows = sub { scalar(() = http_get('/status')->{body} =~ /^\d+,many,/mg) };
$with->('32k', 30001 .. 30080);
my ($rc, $out) = nginx_t();
my ($holds, $enough) = $out =~ /holds the records of (\d+) checked peers, and the configuration checks 80: raise it to (\d+k) or more/
    or return fail('nginx -t names the sizes') || diag($out);
ok(!eval { nginx_reload(); 1 }, 'a reload to 80 checked servers is refused');
is($rows->(), 1, '  the running configuration keeps its checks');
$with->($enough, 30001 .. 30080);
nginx_reload();
is($rows->(), 80, "check_shm_size $enough, as the message said: every server is checked");
$with->('32k', 30001 .. 30000 + $holds);
nginx_reload();
is($rows->(), $holds, "a full zone ($holds servers)");
my $size = -s prefix() . 'logs/error.log';
$with->('32k', 30010 .. 30009 + $holds);
nginx_reload();
is($rows->(), $holds, '  9 servers swapped for 9 others: every one checked');
open my $log, '<', prefix() . 'logs/error.log' or die $!;
seek $log, $size, 0;
is(scalar(grep { /not checked/ } <$log>), 0, '  and no peer said to be unchecked');
--- allow_error_log
check_shm_size 32k holds the records

=== TEST 9: servers a state file adds to an earlier upstream do not take the room of a later upstream's configuration servers, at a reload that keeps the zone (their records were kept) and at a cold start (claimed upstream by upstream, they came first): every configuration server has a record, a dead one gets no request, and the [error] names the state file's servers left unchecked (review 37 R1b)
--- http_config
check_shm_size 32k;
upstream a {
    zone a 256k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/a.state;
    server 127.0.1.1:30001;
    check interval=60000 rise=1 fall=1 timeout=1000;
}
upstream b {
    zone b 256k;
    server 127.0.1.2:30001;
    check interval=60000 rise=1 fall=1 timeout=1000;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_9; location / { proxy_pass http://$host; proxy_next_upstream off; } }
--- config
location /status { check_status csv; }
--- perl
my $conf = NginxTest::Files::slurp(conf_file());
my $with_b = sub {
    my ($n) = @_;
    NginxTest::Files::spew(conf_file(), $conf =~ s/    server 127\.0\.1\.2:30001;\n/join '', map { "    server 127.0.1.2:$_;\n" } 30001 .. 30000 + $n/er);
};
$with_b->(80);
my (undef, $out) = nginx_t();
my ($holds) = $out =~ /holds (?:the records of )?(\d+) checked peers/ or return fail("nginx -t names the size: $out");
$with_b->(1);
# a: its configuration server and as many as the zone has room for beside b's.
NginxTest::Files::spew(data_dir() . '/a.state', join '', map { "server 127.0.1.1:$_;\n" } 30001 .. 30000 + $holds - 1);
nginx_reload();
my $rows = sub { my ($u) = @_; scalar(() = http_get('/status')->{body} =~ /^\d+,$u,/mg) };
is($rows->('a') . ' ' . $rows->('b'), ($holds - 1) . ' 1', "the zone is full: $holds records");
$with_b->(21);
my $check = sub {
    my ($when, $size) = @_;
    is($rows->('b'), 21, "$when: every server of b has a record");
    like(http_get('/status')->{body}, qr/^\d+,a,127\.0\.1\.1:30001,/m, "$when:   and a's configuration server");
    is($rows->('a'), $holds - 21, "$when:   a keeps the records of as many of its state file's servers as the zone has room for");
    my $log = substr(error_log_text(), $size);
    my ($named) = $log =~ /\[error\].*the health zone holds $holds checked peers: 20 peers are not checked; raise "check_shm_size" \((.*)\)$/m;
    like($named // '', qr/^upstream "a": 127\.0\.1\.1:\d+, .*, and 10 more$/, "$when:   the [error] names a's servers left unchecked")
        or diag($log);
    my $statuses = join ' ', map { http('GET', 'http://127.0.0.1:' . port(9) . '/', undef, { Host => 'b' })->{status} } 1 .. 10;
    is($statuses, join(' ', ('502') x 10), "$when:   every server of b is checked down: 502");
    $log = substr(error_log_text(), $size);
    is(scalar(() = $log =~ /connect\(\) failed .*upstream: "http:\/\/127\.0\.1\.2:/g), 0, "$when:   no request was sent to a dead server of b");
};
my $size = -s prefix() . 'logs/error.log';
nginx_reload();
$check->('reload', $size);
$size = -s prefix() . 'logs/error.log';
nginx_restart();
$check->('cold start', $size);
--- allow_error_log
check_shm_size 32k holds the records

=== TEST 10: a larger check_shm_size never holds fewer records (35k held 57 where 34k held 62, 46k 84 where 44k held 90: the table shrank in steps of 10% until it fit), and the size the [emerg] names holds the configuration's checked servers also for thousands of them (2,500 from 1m: "raise it to 1215k", which held 2,499 and named 1215k again: hunt 43)
--- http_config
check_shm_size 32k;
upstream many {
    zone many 4m;
    server 127.0.0.1:30001;
    check interval=30000 timeout=1000;
}
--- config
location /status { check_status csv; }
--- perl
my $conf = NginxTest::Files::slurp(conf_file());
# The [emerg] of check_shm_size SIZE and N checked servers: [rc, holds,
# enough]; the line in $emerg_text.
my $emerg_text;
my $emerg = sub {
    my ($size, $n) = @_;
    main::with_checked($conf, $size, map { sprintf '127.0.%d.%d:30001', 1 + $_ / 250, 1 + $_ % 250 } 0 .. $n - 1);
    my ($rc, $out) = nginx_t();
    ($emerg_text) = $out =~ /(\[emerg\][^\n]*)/;
    return [$rc, $out =~ /holds the records of (\d+) checked peers, and the configuration checks $n: raise it to (\d+k) or more/];
};
my @holds = map { $emerg->("${_}k", 200)->[1] } 32 .. 48;
my @falls = grep { !defined $holds[$_] || !defined $holds[$_ - 1] || $holds[$_] < $holds[$_ - 1] } 1 .. $#holds;
is_deeply([map { 32 + $_ . "k holds $holds[$_]" } @falls], [], 'from 32k to 48k each size holds at least as many records as the one before')
    or diag("@holds");
for my $case ([80, '32k'], [2500, '1m'], [80, '40000']) {
    my ($n, $size) = @$case;
    my (undef, $holds, $enough) = @{ $emerg->($size, $n) };
    ok($enough, "$n checked servers in $size: the [emerg] names a size ($holds held)") or next;
    like($emerg_text, qr/check_shm_size \Q@{[$size eq '1m' ? '1024k' : $size]}\E holds/, '  and the size as configured (40000 was "39k")');
    my ($rc) = @{ $emerg->($enough, $n) };
    is($rc, 0, "  nginx -t passes with check_shm_size $enough");
}
