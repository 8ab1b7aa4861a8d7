# The balancer matrix: round robin, least_conn, ip_hash, hash $arg_k,
# hash $arg_k consistent, random and random two least_conn, each with and
# without keepalive, round robin and least_conn also with backup servers
# (the others forbid them), take every query-API operation in turn while a
# second process sends keep-alive traffic through all of them. Operations a
# combination cannot take answer 409 (add, remove, weight on consistent hash
# and random) or 400 (backup where the balancer forbids it) with the reason;
# everything else answers 200; every proxied request answers 200 from a
# backend that is in the list and up; no worker exits on a signal (the
# harness checks the log). The same balancers, without keepalive (REST bodies
# refuse it), are created, replaced and deleted through the REST API, as
# run-time upstreams and as replacements of configuration upstreams.
#
# From nginx 1.27.3 on, nginx itself answers 502 (logged as "no live
# upstreams") to a request whose list changed its set or a weight between
# the request's peer.init and its first peer: a background 502 passes only
# if such a change of its upstream answered while the request was in flight.
#
# TEST_NGINX_MATRIX_ROUNDS (default 3) sets the number of rounds:
# scripts/memcheck.sh asan runs many under AddressSanitizer.
use lib 't/lib';
use NginxTest;
use HttpClient;
use NginxTest::QueryApi qw(set_change_refused tables_fixed);
use POSIX ();
use Time::HiRes ();

my $ROUNDS = $ENV{TEST_NGINX_MATRIX_ROUNDS} // 3;
my @BALANCERS = (
    [rr    => ''],
    [lc    => 'least_conn;'],
    [iph   => 'ip_hash;'],
    [hash  => 'hash $arg_k;'],
    [chash => 'hash $arg_k consistent;'],
    [rnd   => 'random;'],
    [rnd2  => 'random two least_conn;'],
);
my %FIXED = tables_fixed() ? map { $_ => 1 } qw(chash rnd rnd2) : ();  # add/remove/weight: 409
my %BACKUP = map { $_ => 1 } qw(rr lc);                  # backup servers allowed
my %NAME = (rr => 'round-robin', lc => 'least_conn', iph => 'ip_hash', hash => 'hash',
            chash => 'consistent hash', rnd => 'random', rnd2 => 'random');

# The query-API upstreams: [name, balancer, has a backup server].
sub zone_upstreams {
    my @u;
    for my $b (map { $_->[0] } @BALANCERS) {
        for my $ka ('', '-ka') {
            push @u, ["$b$ka", $b, 0];
            push @u, ["$b$ka-b", $b, 1] if $BACKUP{$b};
        }
    }
    return @u;
}

my $client = HttpClient->new(timeout => 10);
my ($admin_turn, $checked) = (0, 0);
# Per upstream, the [start, end] times of the accepted changes of its set or
# of a weight (the changes that move nginx's generation word).
my %SET_CHANGES;

# admin(METHOD, PATH[, BODY]): "STATUS BODY" from the admin server, over one
# of four kept-alive connections in turn (so both workers answer).
sub admin {
    my ($method, $path, $body) = @_;
    my $r = $client->request($method, port(8), $path, 'localhost', $body, 'admin' . ($admin_turn++ % 4));
    return "$r->{status} $r->{body}";
}

# check_traffic(HOST, ALLOWED, N): N keep-alive requests through the proxy
# with Host HOST (two connections, keys varied); returns the answers that
# are not 200 from a port in ALLOWED (hashref).
sub check_traffic {
    my ($host, $allowed, $n) = @_;
    my @bad;
    for my $i (1 .. $n) {
        my $r = $client->request('GET', port(9), "/?k=$i", $host, undef, 'proxy' . ($i % 2));
        $checked++;
        my $port = $r->{body} =~ s/\n\z//r;
        push @bad, "$host /?k=$i: $r->{status} $port" unless $r->{status} == 200 && $allowed->{$port};
    }
    return @bad;
}

# Background traffic: a child process sends keep-alive requests through
# every zone upstream until the file STOP exists (bounded by MAX requests),
# and writes the number of requests, then each failure as "HOST STATUS
# BODY START END", to its pipe. Every peer of every list is a live
# backend, so any answer but 200 from ports 1-5 is a failure.
sub start_background {
    my ($stop, $max) = @_;
    my @hosts = map { $_->[0] } zone_upstreams();
    my %live = map { port($_) => 1 } 1 .. 5;
    pipe(my $read, my $write) or die "pipe: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        close $read;
        my $bg = HttpClient->new(timeout => 10);
        my ($n, @bad) = (0);
        while ($n < $max && !-e $stop) {
            for my $host (@hosts) {
                my $start = Time::HiRes::time();
                my $r = $bg->request('GET', port(9), "/?k=$n", $host, undef, 'bg' . ($n % 3));
                my $port = $r->{body} =~ s/\n\z//r;
                push @bad, join(' ', $host, $r->{status}, ($port =~ /\A\d+\z/ ? $port : '-'), $start, Time::HiRes::time())
                    unless $r->{status} == 200 && $live{$port};
                $n++;
            }
        }
        print $write "$n\n", map { "$_\n" } @bad;
        close $write;
        POSIX::_exit(0);    # not the harness's END block: it would stop nginx
    }
    close $write;
    return sub {
        open my $fh, '>', $stop or die "$stop: $!";
        close $fh;
        local $/;
        my $out = <$read>;
        waitpid($pid, 0);
        return $out // '';
    };
}

sub conflict { '409 ' . set_change_refused($_[0], $NAME{ $_[1] }) }

# One round of every query-API operation on upstream NAME; returns the
# failures (unexpected answers, traffic that did not reach an allowed peer).
sub query_round {
    my ($name, $b, $backup) = @_;
    my ($p1, $p2, $p3, $p4, $p5) = map { port($_) } 1 .. 5;
    my $q = sub { admin('GET', "/dynamic?upstream=$name&$_[0]") };
    my %allowed = ($p1 => 1, $p2 => 1);
    my $initial = "server 127.0.0.1:$p1;\nserver 127.0.0.1:$p2;\n" . ($backup ? "server 127.0.0.1:$p3 backup;\n" : '');
    my @bad;
    my $expect = sub {
        my ($what, $got, $want) = @_;
        push @bad, "$name $what: got '$got', expected '$want'" if ref $want ? $got !~ $want : $got ne $want;
    };
    my $ok = qr/\A200 server /;
    # A change of the set or of a weight: its time is kept if accepted.
    my $set_change = sub {
        my ($query) = @_;
        my $start = Time::HiRes::time();
        my $got = $q->($query);
        push @{ $SET_CHANGES{$name} }, [$start, Time::HiRes::time()] if $got =~ /\A200 /;
        return $got;
    };
    my $refused = conflict($name, $b);
    $expect->('add', $set_change->("add=&server=127.0.0.1:$p4"), $FIXED{$b} ? $refused : $ok);
    $allowed{$p4} = 1 unless $FIXED{$b};
    push @bad, check_traffic($name, \%allowed, 6);
    $expect->('weight', $set_change->('server=127.0.0.1:' . ($FIXED{$b} ? $p2 : $p4) . '&weight=3'),
              $FIXED{$b} ? $refused : $ok);
    $expect->('down', $q->("server=127.0.0.1:$p1&down="), $ok);
    delete $allowed{$p1};
    push @bad, check_traffic($name, \%allowed, 6);
    $expect->('up', $q->("server=127.0.0.1:$p1&up="), $ok);
    $allowed{$p1} = 1;
    $expect->('parameters', $q->("server=127.0.0.1:$p2&max_fails=3&fail_timeout=5s&max_conns=100"), $ok);
    push @bad, check_traffic($name, \%allowed, 6);
    my $backup_add = $set_change->("add=&backup=&server=127.0.0.1:$p5");
    if ($BACKUP{$b}) {
        $expect->('backup add', $backup_add, $ok);
        push @bad, check_traffic($name, \%allowed, 4);
        $expect->('backup remove', $set_change->("remove=&server=127.0.0.1:$p5"), $ok);
    } else {
        $expect->('backup add', $backup_add, "400 400 Bad Request: upstream \"$name\" uses the $NAME{$b} balancer, "
                                           . "which does not allow backup servers\n");
    }
    $expect->('remove', $set_change->('remove=&server=127.0.0.1:' . ($FIXED{$b} ? $p2 : $p4)), $FIXED{$b} ? $refused : $ok);
    delete $allowed{$p4};
    push @bad, check_traffic($name, \%allowed, 6);
    $expect->('parameters back', $q->("server=127.0.0.1:$p2&max_fails=1&fail_timeout=10&max_conns=0"), $ok);
    $expect->('listing', $q->(''), "200 $initial");
    return @bad;
}

# One round of the REST API with balancer B: a run-time upstream dy-B is
# created, replaced and deleted, and the configuration upstream cf-B is
# replaced and deleted (re-created by the next round's POST).
sub dyups_round {
    my ($b, $balancer) = @_;
    my ($p1, $p2, $p3, $p4) = map { port($_) } 1 .. 4;
    my @bad;
    my $expect = sub {
        my ($what, $got, $want) = @_;
        push @bad, "$what: got '$got', expected '$want'" if $got ne $want;
    };
    my $backup = $BACKUP{$b} ? " server 127.0.0.1:$p3 backup;" : '';
    for my $name ("dy-$b", "cf-$b") {
        $expect->("POST $name", admin('POST', "/upstream/$name", "$balancer server 127.0.0.1:$p1; "
                                                             . "server 127.0.0.1:$p2;$backup"), '200 success');
        push @bad, check_traffic($name, { $p1 => 1, $p2 => 1 }, 6);
        $expect->("replace $name", admin('POST', "/upstream/$name", "$balancer server 127.0.0.1:$p2 weight=2; "
                                                                . "server 127.0.0.1:$p4;"), '200 success');
        push @bad, check_traffic($name, { $p2 => 1, $p4 => 1 }, 6);
        $expect->("DELETE $name", admin('DELETE', "/upstream/$name"), '200 success');
        my $gone = $client->request('GET', port(9), '/', $name, undef, 'proxy0');
        $expect->("$name after DELETE", $gone->{status}, 502);
    }
    return @bad;
}

sub matrix {
    my $stop = data_dir() . '/stop-traffic';
    my $finish = start_background($stop, 2_000 * $ROUNDS * scalar(zone_upstreams()));
    my (@query_bad, @dyups_bad);
    for my $round (1 .. $ROUNDS) {
        push @query_bad, query_round(@$_) for zone_upstreams();
        push @dyups_bad, dyups_round(@$_) for @BALANCERS;
        last if @query_bad + @dyups_bad > 20;
    }
    for ([query => \@query_bad], [REST => \@dyups_bad]) {
        my ($api, $bad) = @$_;
        is(scalar @$bad, 0, "$api API: every operation answered as expected, every request reached an allowed peer")
            or diag(join "\n", grep { defined } @$bad[0 .. 19]);
    }
    my ($requests, @failures) = split /\n/, $finish->();
    my @moved = grep { list_moved($_) } @failures;
    my %moved = map { $_ => 1 } @moved;
    my @bad = grep { !$moved{$_} } @failures;
    note("$ROUNDS rounds: $admin_turn admin requests, $checked proxied requests checked against the list, "
       . ($requests // 0) . ' in the background (' . scalar(@moved) . ' of them 502 as their list moved)');
    ok(($requests // 0) > 0, 'background traffic ran');
    is(scalar @bad, 0, 'background traffic: every request 200 from a live backend, or (nginx >= 1.27.3) 502 while '
                     . 'a change of its list\'s set or weights answered')
        or diag(join "\n", grep { defined } @bad[0 .. 9]);
}

# Whether the background failure "HOST STATUS BODY START END" is nginx's
# 502 for a request whose list moved: from 1.27.3 on, with a change of the
# set or a weight of HOST answered while the request was in flight.
sub list_moved {
    my ($host, $status, undef, $start, $end) = split / /, $_[0];
    return 0 if tables_fixed() || $status != 502;
    return scalar grep { $_->[0] <= $end && $_->[1] >= $start } @{ $SET_CHANGES{$host} // [] };
}

run_tests();
__DATA__

=== TEST 1: every balancer, with and without keepalive and backups, under traffic (TEST_NGINX_MATRIX_ROUNDS rounds)
--- workers: 2
--- timeout: 30
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_1;
    listen 127.0.0.1:$TEST_NGINX_PORT_2;
    listen 127.0.0.1:$TEST_NGINX_PORT_3;
    listen 127.0.0.1:$TEST_NGINX_PORT_4;
    listen 127.0.0.1:$TEST_NGINX_PORT_5;
    return 200 "$server_port\n";
}
upstream rr {
    zone rr 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream rr-b {
    zone rr-b 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3 backup;
}
upstream rr-ka {
    zone rr-ka 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    keepalive 4;
}
upstream rr-ka-b {
    zone rr-ka-b 64k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3 backup;
    keepalive 4;
}
upstream lc {
    zone lc 64k;
    least_conn;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream lc-b {
    zone lc-b 64k;
    least_conn;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3 backup;
}
upstream lc-ka {
    zone lc-ka 64k;
    least_conn;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    keepalive 4;
}
upstream lc-ka-b {
    zone lc-ka-b 64k;
    least_conn;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    server 127.0.0.1:$TEST_NGINX_PORT_3 backup;
    keepalive 4;
}
upstream iph {
    zone iph 64k;
    ip_hash;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream iph-ka {
    zone iph-ka 64k;
    ip_hash;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    keepalive 4;
}
upstream hash {
    zone hash 64k;
    hash $arg_k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream hash-ka {
    zone hash-ka 64k;
    hash $arg_k;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    keepalive 4;
}
upstream chash {
    zone chash 64k;
    hash $arg_k consistent;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream chash-ka {
    zone chash-ka 64k;
    hash $arg_k consistent;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    keepalive 4;
}
upstream rnd {
    zone rnd 64k;
    random;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream rnd-ka {
    zone rnd-ka 64k;
    random;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    keepalive 4;
}
upstream rnd2 {
    zone rnd2 64k;
    random two least_conn;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
}
upstream rnd2-ka {
    zone rnd2-ka 64k;
    random two least_conn;
    server 127.0.0.1:$TEST_NGINX_PORT_1;
    server 127.0.0.1:$TEST_NGINX_PORT_2;
    keepalive 4;
}
upstream cf-rr { server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream cf-lc { least_conn; server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream cf-iph { ip_hash; server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream cf-hash { hash $arg_k; server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream cf-chash { hash $arg_k consistent; server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream cf-rnd { random; server 127.0.0.1:$TEST_NGINX_PORT_1; }
upstream cf-rnd2 { random two least_conn; server 127.0.0.1:$TEST_NGINX_PORT_1; }
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_9 reuseport;
    location / {
        proxy_pass http://$host;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
}
server {
    listen 127.0.0.1:$TEST_NGINX_PORT_8 reuseport;
    location /dynamic { dynamic_upstream; }
    location / { dyups_interface; }
}
--- perl
main::matrix();
