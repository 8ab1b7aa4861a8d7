# Active health checks against faults: peers that answer badly (silent,
# closing mid-line, garbage, a status line past the parser's 4 KiB, a
# 1 MiB body, chunked) each get their verdict and crash nothing; a worker
# killed while its probes are in flight is replaced by one that probes
# again, and a graceful quit with probes in flight exits at once.
use lib 't/lib';
use NginxTest;
use NginxTest::Backend qw(backend wait_until spread);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();

# raw_peer(PORT, MODE): a forked peer that answers every connection as
# MODE says; killed at the end of the file.
my @kids;
sub raw_peer {
    my ($port, $mode) = @_;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 64, ReuseAddr => 1)
        or die "listen $port: $!";
    my $pid = fork // die "fork: $!";
    if ($pid) { close $l; push @kids, $pid; return $pid }
    my @hold;
    while (my $c = $l->accept) {
        if ($mode eq 'silent') { push @hold, $c; next }
        if ($mode eq 'half') { print $c "HTTP/1.1 20" }
        elsif ($mode eq 'garbage') { print $c "\x00\xffSSH-2.0-OpenSSH\r\n" }
        elsif ($mode eq 'huge_line') { print $c 'HTTP/1.1 200 ' . ('A' x 65536) }
        elsif ($mode eq 'huge_body') { print $c "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" . ('B' x 1048576) }
        elsif ($mode eq 'chunked') { print $c "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" }
        close $c;
    }
    POSIX::_exit(0);
}
END { kill 'KILL', @kids if @kids }

# Each peer's "HEALTH LAST_ERROR" in the query API's JSON.
sub health {
    my $j = JSON::PP->new->decode(http_get('/dynamic?upstream=backends&format=json')->{body});
    return { map { $_->{name} => "$_->{health} $_->{last_error}" } @{ $j->{peers} } };
}

sub logged {
    my ($re) = @_;
    open my $fh, '<', prefix() . 'logs/error.log' or return 0;
    return scalar grep { $_ =~ $re } <$fh>;
}

run_tests();
__DATA__

=== TEST 1: hostile peers: silent, closing mid-line, garbage, a 64 KiB status line, a 1 MiB body, chunked
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_3 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_4 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_5 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_6 max_fails=0;
    check interval=200 rise=1 fall=1 timeout=300 default_down=false type=http;
}
--- config
location /dynamic { dynamic_upstream; }
--- perl
my @modes = qw(silent half garbage huge_line huge_body chunked);
main::raw_peer(port($_ + 1), $modes[$_]) for 0 .. $#modes;
my $want = {
    "127.0.0.1:" . port(1) => 'down timed out',
    "127.0.0.1:" . port(2) => 'down closed before a status line',
    "127.0.0.1:" . port(3) => 'down invalid status line',
    "127.0.0.1:" . port(4) => 'down status line longer than 4096 bytes',
    "127.0.0.1:" . port(5) => 'up ',
    "127.0.0.1:" . port(6) => 'up ',
};
my $json = JSON::PP->new->canonical;
ok(defined main::wait_until(4, sub { $json->encode(main::health()) eq $json->encode($want) }), 'each peer has its verdict')
    or diag(explain(main::health()));

=== TEST 2: a worker killed with -9 while probing: the new worker probes again; a graceful quit with probes in flight exits at once
--- http_config
upstream backends {
    zone backends 128k;
    server 127.0.0.1:$TEST_NGINX_PORT_1 max_fails=0;
    server 127.0.0.1:$TEST_NGINX_PORT_2 max_fails=0;
    check interval=200 rise=1 fall=1 timeout=60000 default_down=false type=http;
}
--- config
location / { proxy_pass http://backends; proxy_next_upstream off; }
--- perl
my $b1 = main::backend(port(1));
# Port 2 accepts and never answers: its probe stays in flight (timeout 60 s).
my $silent = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => port(2), Listen => 64, ReuseAddr => 1)
    or die "listen: $!";
ok(IO::Select->new($silent)->can_read(5), 'a probe is in flight on the silent peer');
my @old = worker_pids();
kill 'KILL', @old;
ok(poll_until(sub { my @new = worker_pids(); @new == @old && !grep { my $o = $_; grep { $_ == $o } @new } @old }, 5),
    'the workers are replaced');
my $before = $b1->accepted;
ok(defined main::wait_until(3, sub { $b1->accepted >= $before + 3 }), 'the live peer is probed again');
my $master = master_pid();
kill 'QUIT', $master;
ok(poll_until(sub { !kill(0, $master) }, 5), 'a graceful quit with probes in flight exits within 5 s');
# (A worker killed while it held a zone's mutex makes the master unlock it,
# with an alert of nginx's own.)
is(main::logged(qr/open socket|\[alert\](?!.*(exited on signal 9|was locked by))/), 0, 'no socket left open, no alert')
    or diag(`grep -E 'alert|open socket' ${\ prefix()}logs/error.log`);
--- allow_error_log
exited on signal 9
shared memory zone ".*" was locked by \d+
