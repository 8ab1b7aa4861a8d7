package HttpClient;
# A minimal keep-alive HTTP/1.1 client for the scripts: one connection per
# port, each request written with one syscall (TCP_NODELAY), responses read
# by Content-Length. Fast enough to measure an admin API, and it can set
# any Host header.
use strict;
use warnings;
use IO::Socket::INET;
use Socket qw(IPPROTO_TCP TCP_NODELAY);

# new(timeout => SECONDS, retry => 0|1). With retry (the default), a
# request whose kept-alive connection turns out closed is sent once more on
# a new one; callers that must know whether a change was made exactly once
# (the chaos writers, whose workers get killed) turn it off and treat 599
# as "unknown".
sub new {
    my ($class, %opts) = @_;
    return bless { conn => {}, timeout => $opts{timeout} // 5, retry => $opts{retry} // 1 }, $class;
}

# request(METHOD, PORT, PATH, HOST, BODY) -> { status, content, success }.
# status 599 means no answer (connection refused, reset or closed).
sub request {
    my ($self, $method, $port, $path, $host, $body) = @_;
    $body //= '';
    $host //= 'localhost';
    my $req = "$method $path HTTP/1.1\r\nHost: $host\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
    for my $attempt (1, 2) {
        my $s = $self->{conn}{$port} //= IO::Socket::INET->new(
            PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => $self->{timeout});
        return { status => 599, content => "connect: $!", success => 0 } unless $s;
        $s->setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
        my $written = syswrite($s, $req);
        if (defined $written && $written == length $req) {
            my $res = _read_response($s);
            return $res if $res;
        }
        # The server closed a kept-alive connection: one retry on a new one.
        delete $self->{conn}{$port};
        last if $attempt == 2 || !$self->{retry};
    }
    return { status => 599, content => 'no response', success => 0 };
}

sub _read_response {
    my ($s) = @_;
    my $buf = '';
    while ($buf !~ /\r\n\r\n/) { sysread($s, $buf, 65536, length $buf) or return undef }
    my ($head, $rest) = split /\r\n\r\n/, $buf, 2;
    my ($status) = $head =~ m{^HTTP/1\.\d (\d+)};
    my ($len) = $head =~ /^Content-Length: (\d+)/mi;
    $len //= 0;
    while (length $rest < $len) { sysread($s, $rest, 65536, length $rest) or return undef }
    return { status => $status, content => substr($rest, 0, $len), success => $status < 300 };
}

1;
