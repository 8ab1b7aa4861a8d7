package HttpClient;
# A minimal keep-alive HTTP/1.1 client for the scripts (chaos, dyups-cycles,
# the benchmarks): one connection per port or key, each request written with
# one syscall (TCP_NODELAY). Fast enough to measure an admin API, and it can
# set any Host header.
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

# request(METHOD, PORT, PATH, HOST, BODY, KEY) -> { status, content, head,
# success }. status 599 means no answer (connection refused, reset or
# closed). Requests with the same KEY (default: the port) share a kept-alive
# connection; distinct keys to one port are distinct connections.
sub request {
    my ($self, $method, $port, $path, $host, $body, $key) = @_;
    $body //= '';
    $host //= 'localhost';
    $key //= $port;
    my $req = "$method $path HTTP/1.1\r\nHost: $host\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
    for my $attempt (1, 2) {
        my $s = $self->{conn}{$key} //= $self->_connect($port);
        return _no_answer("connect: $!") unless $s;
        my $written = syswrite($s, $req);
        if (defined $written && $written == length $req) {
            my $res = _read_response($s, $method eq 'HEAD');
            return $res if $res;
        }
        # The server closed a kept-alive connection: one retry on a new one.
        delete $self->{conn}{$key};
        last if $attempt == 2 || !$self->{retry};
    }
    return _no_answer('no response');
}

# forget(KEY): closes the kept-alive connection of KEY (if any).
sub forget { delete $_[0]{conn}{$_[1]} }

# once(METHOD, PORT, PATH, HOST): one request on a connection of its own
# (Connection: close); with reuseport, each lands on a hashed worker.
sub once {
    my ($self, $method, $port, $path, $host) = @_;
    my $s = $self->_connect($port) or return _no_answer("connect: $!");
    syswrite($s, "$method $path HTTP/1.1\r\nHost: " . ($host // 'localhost') . "\r\nConnection: close\r\n\r\n");
    my $res = _read_response($s, $method eq 'HEAD');
    close $s;
    return $res // _no_answer('no response');
}

sub _connect {
    my ($self, $port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => $self->{timeout})
        or return undef;
    $s->setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
    return $s;
}

sub _no_answer { return { status => 599, content => $_[0], head => '', success => 0 } }

# One response: by Content-Length, chunked, or none (HEAD, 204, 304).
sub _read_response {
    my ($s, $head_only) = @_;
    my $buf = '';
    while ($buf !~ /\r\n\r\n/) { sysread($s, $buf, 65536, length $buf) or return undef }
    my ($head, $rest) = split /\r\n\r\n/, $buf, 2;
    my ($status) = $head =~ m{^HTTP/1\.\d (\d+)};
    my $content = '';
    if ($head_only || $status == 204 || $status == 304) {
        # no body
    } elsif ($head =~ /^Transfer-Encoding:\s*chunked/mi) {
        while (1) {
            while ($rest !~ /\r\n/) { sysread($s, $rest, 65536, length $rest) or return undef }
            my ($size) = $rest =~ /^([0-9a-fA-F]+)/;
            $rest =~ s/^[^\r]*\r\n//;
            my $n = hex $size;
            while (length $rest < $n + 2) { sysread($s, $rest, 65536, length $rest) or return undef }
            $content .= substr($rest, 0, $n);
            $rest = substr($rest, $n + 2);
            last if $n == 0;
        }
    } else {
        my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
        $len //= 0;
        while (length $rest < $len) { sysread($s, $rest, 65536, length $rest) or return undef }
        $content = substr($rest, 0, $len);
    }
    return { status => $status, content => $content, head => $head, success => $status < 300 };
}

1;
