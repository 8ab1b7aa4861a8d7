# dynamic_upstream_metrics: the Prometheus page with nginx-prometheus-exporter's
# NGINX Plus names; and Debian's prometheus-nginx-exporter itself, in NGINX
# Plus mode (-nginx.plus), scraping dynamic_upstream_api.
use lib 't/lib';
use NginxTest;
use JSON::PP ();
use POSIX ();

# The samples of a Prometheus text page: { 'name{labels}' => value }.
sub samples {
    my ($text) = @_;
    my %s;
    for (split /\n/, $text) {
        next if /^#/ || !/\S/;
        my ($key, $value) = /^(\S+) (\S+)$/ or next;
        $s{$key} = $value;
    }
    return \%s;
}

# The exporter's label order (sorted) or ours: the same sample either way.
sub sample {
    my ($s, $name, $upstream, $server, $code) = @_;
    for my $key ("$name\{upstream=\"$upstream\",server=\"$server\"" . (defined $code ? ",code=\"$code\"" : '') . '}',
                 (defined $code ? "$name\{code=\"$code\"," : "$name\{") . "server=\"$server\",upstream=\"$upstream\"}") {
        return $s->{$key} if exists $s->{$key};
    }
    return undef;
}

# The exporters tried: Debian 12's and Debian 13's (which asks for /9/workers,
# and names keepalive connections nginxplus_upstream_keepalive).
our @EXPORTERS = (['Debian 12\'s exporter', '/usr/bin/prometheus-nginx-exporter'],
                  ['Debian 13\'s exporter', 'build/trixie/usr/bin/prometheus-nginx-exporter']);

# The page of exporter BINARY run on 127.0.0.1:PORT against the API (undef
# if it never answered); its output in logs/exporter.log.
sub exporter_page {
    my ($binary, $port) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open(STDOUT, '>', prefix() . 'logs/exporter.log');
        open(STDERR, '>&', \*STDOUT);
        # Both read --flag (0.11.0's Go flags take one dash or two).
        exec($binary, '--nginx.plus', '--nginx.scrape-uri', 'http://127.0.0.1:' . server_port() . '/api',
             '--web.listen-address', "127.0.0.1:$port") or POSIX::_exit(127);
    }
    my $page;
    poll_until(sub { my $r = http_get("http://127.0.0.1:$port/metrics"); $page = $r->{body}; $r->{status} == 200 }, 10);
    kill 'TERM', $pid;
    waitpid($pid, 0);
    return $page;
}

sub slurp_log { local $/; open(my $fh, '<', prefix() . "logs/$_[0]") or return ''; return <$fh> // '' }

# { family => "HELP text\nTYPE" } of a Prometheus text page.
sub descriptions {
    my ($text) = @_;
    my %d;
    $d{$2} .= "$1 $3\n" while $text =~ /^# (HELP|TYPE) (\S+) (.*)$/mg;
    return %d;
}

run_tests();
__DATA__

=== TEST 1: the upstream server families with the exporter's names, labels and values
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 down max_conns=7;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; location / { return 200 "ok\n"; } location /x { return 404; } }
--- config
location = /metrics { dynamic_upstream_metrics; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
http_get('/') for 1 .. 3;
http_get('/x');
my $r = http_get('/metrics');
is($r->{status}, 200, 'status');
is($r->{headers}{'content-type'}, 'text/plain; version=0.0.4', 'Prometheus text format');
my $s = main::samples($r->{body});
my ($up, $down) = ("127.0.0.1:$p1", "127.0.0.1:$p2");
is(main::sample($s, 'nginxplus_upstream_server_requests', 'backends', $up), 4, 'requests');
is(main::sample($s, 'nginxplus_upstream_server_responses', 'backends', $up, '2xx'), 3, '2xx');
is(main::sample($s, 'nginxplus_upstream_server_responses', 'backends', $up, '4xx'), 1, '4xx');
is(main::sample($s, 'nginxplus_upstream_server_state', 'backends', $up), 1, 'up is 1');
is(main::sample($s, 'nginxplus_upstream_server_state', 'backends', $down), 3, 'down is 3');
is(main::sample($s, 'nginxplus_upstream_server_limit', 'backends', $down), 7, 'limit is max_conns');
is(main::sample($s, 'nginxplus_upstream_server_active', 'backends', $up), 0, 'active');
ok(main::sample($s, 'nginxplus_upstream_server_received', 'backends', $up) > 0, 'received');
is($s->{'nginxplus_upstream_zombies{upstream="backends"}'}, 0, 'zombies');
is(main::sample($s, "nginxplus_upstream_server_health_checks_$_", 'backends', $up), 0, "health_checks_$_ (nothing checks it)")
    for qw(checks fails unhealthy);
ok($s->{nginxplus_http_requests_total} >= 5, 'http requests');
like($r->{body}, qr/^# TYPE nginxplus_upstream_server_requests counter$/m, 'TYPE lines');
is(http('POST', '/metrics', 'x')->{status}, 405, 'GET only');

=== TEST 2: Debian 12's prometheus-nginx-exporter (0.11.0) and Debian 13's (1.4.1) scrape the API in NGINX Plus mode and export the same values, HELP and TYPE lines (1.4.1 could not scrape it: it needs /9/workers)
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2 weight=2;
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    location / { return 200 "ok\n"; }
    location /x { return 503; }
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_4; location / { dyups_interface; } }
--- config
location /api { dynamic_upstream_api; }
location = /metrics { dynamic_upstream_metrics; }
location /dy { proxy_pass http://$host; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
is(http('POST', "http://127.0.0.1:$p4/upstream/dyhost", "server 127.0.0.1:$p1;")->{status}, 200, 'run-time upstream');
http_get('/') for 1 .. 9;
http_get('/x') for 1 .. 3;
http('GET', '/dy', undef, { Host => 'dyhost' }) for 1 .. 2;
my $ours_page = http_get('/metrics')->{body};
my $ours = main::samples($ours_page);
for my $exporter (@main::EXPORTERS) {
    my ($which, $binary) = @$exporter;
  SKIP: {
    skip "$which: $binary is not there (scripts/setup.sh, scripts/build.sh --nginx 1.26 install them)", 1 unless -x $binary;
    my $page = main::exporter_page($binary, $p3);
    my $s = main::samples($page // '');
    is($s->{nginxplus_up}, 1, "$which: nginxplus_up: the exporter scraped the API without error")
        or diag(main::slurp_log('exporter.log'));
    # Smooth weighted round robin (weights 1 and 2) sends 9 x "/" then 3 x
    # "/x" (503) to p2, p1, p2, p2, p1, p2, ...: p1 gets 4 (one 503), p2 8.
    my %want = ("127.0.0.1:$p1" => { requests => 4, '2xx' => 3, '5xx' => 1 },
                "127.0.0.1:$p2" => { requests => 8, '2xx' => 6, '5xx' => 2 });
    for my $server (sort keys %want) {
        for my $family (qw(requests fails unavail state limit active sent received)) {
            my $name = "nginxplus_upstream_server_$family";
            my ($theirs, $mine) = map { main::sample($_, $name, 'backends', $server) } $s, $ours;
            ok(defined $theirs && defined $mine, "$which: $family of $server: on both pages") or next;
            is($theirs, $mine, "$which: $family of $server: the exporter's value is ours");
            if ($family =~ /^(sent|received)$/) { ok($mine > 0, "$family of $server counted") }
            else {
                my $v = { requests => $want{$server}{requests}, state => 1 }->{$family} // 0;
                is($mine, $v, "$family of $server is $v");
            }
        }
        for my $code (qw(1xx 2xx 3xx 4xx 5xx)) {
            my $name = 'nginxplus_upstream_server_responses';
            my ($theirs, $mine) = map { main::sample($_, $name, 'backends', $server, $code) } $s, $ours;
            is_deeply([$theirs, $mine], [($want{$server}{$code} // 0) x 2], "$which: responses $code of $server: on both pages, exact");
        }
    }
    is(main::sample($s, 'nginxplus_upstream_server_requests', 'dyhost', "127.0.0.1:$p1"), 2, "$which: the run-time upstream");
    # Every family the exporter exports that the page has: the same HELP and TYPE.
    my %mine = main::descriptions($ours_page);
    my %theirs = main::descriptions($page // '');
    # The SSL and per-code families are not served (README).
    my @missing = sort grep { /^nginxplus_/ && !exists $mine{$_} && !/^nginxplus_(upstream_server_)?ssl_|_responses_codes$/ } keys %theirs;
    is_deeply(\@missing, [], "$which: every nginxplus_ family it exports (SSL and per-code responses aside) is on the page");
    my @shared = sort grep { exists $mine{$_} } keys %theirs;
    is_deeply({ map { $_ => $mine{$_} } @shared }, { map { $_ => $theirs{$_} } @shared }, "$which: their HELP and TYPE lines are the exporter's");
  }
}

=== TEST 3: a server line given twice: each of its peers has a series of its own (its address#ID), others keep their server label, also after a restart from the state file (two series with one label set used to make the page unusable for Prometheus; both lines used to get the first one's ID back)
--- http_config
upstream backends {
    zone backends 128k;
    dynamic_state_file $TEST_NGINX_DATA_DIR/backends.state;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
server { listen 127.0.0.1:$TEST_NGINX_PORT_1; location / { return 200 "ok\n"; } }
--- config
location = /metrics { dynamic_upstream_metrics; }
location /dynamic { dynamic_upstream; }
location / { proxy_pass http://backends; }
--- perl
my ($p1, $p2) = map { port($_) } 1 .. 2;
for my $when ('at start', 'after a restart from the state file') {
    my $body = http_get('/metrics')->{body};
    my @series = map { /^(\S+) \S+$/ ? $1 : () } grep { !/^#/ && /\S/ } split /\n/, $body;
    my %seen;
    is_deeply([grep { $seen{$_}++ } @series], [], "$when: no series twice");
    my $s = main::samples($body);
    for my $server ("127.0.0.1:$p1#0", "127.0.0.1:$p1#1", "127.0.0.1:$p2") {
        is(main::sample($s, 'nginxplus_upstream_server_state', 'backends', $server), 1, "$when: state of \"$server\"");
    }
    last if $when ne 'at start';
    is(http_get("/dynamic?upstream=backends&server=127.0.0.1:$p2&max_fails=2")->{status}, 200, 'a change writes the state file');
    nginx_restart();
}
