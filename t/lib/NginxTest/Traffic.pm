package NginxTest::Traffic;

=head1 NAME

NginxTest::Traffic - proxied traffic through a zone upstream, and where it lands

=head1 SYNOPSIS

    use lib 't/lib';
    use NginxTest;
    use NginxTest::Traffic;

    my @dead = dead_ports(3);
    is_deeply(spread(20), { $p1 => 10, $p2 => 10 }, 'two idle peers share evenly');
    my ($ports, $pids) = spread_via(60);
    my ($bad, $seen, $want) = every_worker('/dynamic?upstream=backends', sub { $_[0]{status} == 200 });

=head1 DESCRIPTION

The blocks that use these helpers proxy C<location /> of the main server to
the upstream under test, with backends that answer their own port (one line),
and most of them also have a second server on C<$TEST_NGINX_PORT_9> listening
with C<reuseport> (successive connections land on different workers) that
names the worker that answered in an C<X-Worker> header.  Traffic is
summed up as C<< { port => count } >>; a request that did not answer 200
counts as C<"status NNN">.

(For the upstreams of dyups_interface, reached by C<Host>, see
L<NginxTest::Dyups>.)

=cut

use strict;
use warnings;

use NginxTest;
use IO::Select;
use IO::Socket::INET;

use Exporter 'import';
our @EXPORT = qw(dead_ports spread via spread_via every_worker silent_backend hold_proxied_request);

# dead_ports(N): N local ports where nothing listens, outside the kernel's
# ephemeral range (a connection to 127.0.0.1:P with P in that range can, rarely,
# connect to itself and hang) and outside the harness's 10000-29999. Peers on
# them refuse connections at once.
sub dead_ports {
    my ($n) = @_;
    my ($low, $high) = (32768, 60999);
    if (open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
        ($low, $high) = split ' ', scalar <$fh>;
    }
    my @gaps = sort { ($b->[1] - $b->[0]) <=> ($a->[1] - $a->[0]) }
               ([30000, $low - 1], [$high + 1, 65535]);
    my @ports;
    for my $p ($gaps[0][0] .. $gaps[0][1]) {
        last if @ports == $n;
        next if IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p, Proto => 'tcp', Timeout => 1);
        push @ports, $p;
    }
    die "dead_ports: only " . scalar(@ports) . " free ports outside the ephemeral range\n" if @ports < $n;
    return @ports;
}

# The key a proxied answer is counted under: the backend's port, or
# "status NNN".
sub _landed {
    my ($r) = @_;
    my $key = $r->{status} == 200 ? $r->{body} : "status $r->{status}";
    $key =~ s/\n\z//;
    return $key;
}

# spread(N[, URI_OF]): N proxied requests to the main server; URI_OF(i) gives
# the i-th URI (default '/'). Returns { port => count }.
sub spread {
    my ($n, $uri_of) = @_;
    $uri_of //= sub { '/' };
    my %seen;
    for my $i (1 .. $n) {
        $seen{ _landed(http_get($uri_of->($i))) }++;
    }
    return \%seen;
}

# via(PATH): the response to GET PATH on the reuseport server (port 9).
sub via {
    my ($path) = @_;
    return http_get("http://127.0.0.1:" . port(9) . $path);
}

# spread_via(N): N proxied requests through the reuseport server. Returns
# ({ port => count }, { worker pid => count }).
sub spread_via {
    my ($n) = @_;
    my (%seen, %pids);
    for (1 .. $n) {
        my $r = via('/');
        $seen{ _landed($r) }++;
        $pids{ $r->{headers}{'x-worker'} // 'none' }++;
    }
    return (\%seen, \%pids);
}

# every_worker(PATH, CHECK): requests PATH through the reuseport server until
# each worker answered at least once (at most 400 requests); every answer
# must pass CHECK(response). Returns (number of bad answers, workers that
# answered, workers).
sub every_worker {
    my ($path, $check) = @_;
    my %want = map { $_ => 1 } worker_pids();
    my (%seen, $bad);
    for (1 .. 400) {
        my $r = via($path);
        my $pid = $r->{headers}{'x-worker'} // 'none';
        $seen{$pid} = 1;
        $bad++, diag("worker $pid answered $r->{status}:\n$r->{body}") unless $check->($r);
        last if !grep { !$seen{$_} } keys %want;
        last if ($bad // 0) > 3;
    }
    return ($bad // 0, scalar(grep { $seen{$_} } keys %want), scalar(keys %want));
}

# silent_backend(PORT, BACKLOG): a backend on 127.0.0.1:PORT that accepts (up
# to BACKLOG connections, default 8) and never answers until the test writes
# to the accepted socket.
sub silent_backend {
    my ($port, $backlog) = @_;
    my $listener =
        IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => $backlog // 8, ReuseAddr => 1);
    return $listener || die "listen on $port: $!";
}

# hold_proxied_request(LISTENER, PORT, HOST): sends GET /slow (to the main
# server, or to PORT with Host HOST) and returns the client socket once the
# silent backend LISTENER has accepted the proxied connection (returned too).
sub hold_proxied_request {
    my ($listener, $port, $host) = @_;
    my $client = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port // server_port()) or die $!;
    print $client "GET /slow HTTP/1.0\r\nHost: " . ($host // 'localhost') . "\r\n\r\n";
    IO::Select->new($listener)->can_read(10) or die 'the proxied request never reached the backend';
    my $upstream = $listener->accept or die "accept: $!";
    return ($client, $upstream);
}

1;
