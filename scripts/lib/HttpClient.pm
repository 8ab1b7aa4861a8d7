package HttpClient;
# The scripts' HTTP/1.1 client (chaos, dyups-cycles, reload-loop, the
# benchmarks), in two modes:
#   request: keep-alive, one connection per port or key, each request written
#            with one syscall (TCP_NODELAY); fast enough to measure an admin
#            API, and it can set any Host header;
#   once:    one request on a connection of its own (Connection: close), so a
#            change is never sent twice nor left ambiguous by a kept-alive
#            connection the server closed (the reload loop's writers).
# Every read waits at most `timeout` seconds. (t/lib/NginxTest.pm has its own
# client: the harness reports every header and error text a test asserts,
# and t/ does not depend on scripts/.)
use strict;
use warnings;
use IO::Select;
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
            my $res = _read_response($s, $method eq 'HEAD', $self->{timeout});
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

# once(METHOD, PORT, PATH, HOST, BODY, HEADERS): one request on a connection
# of its own (Connection: close), HEADERS a hashref of extra headers; with
# reuseport, each lands on a hashed worker. Never retried.
sub once {
    my ($self, $method, $port, $path, $host, $body, $headers) = @_;
    $body //= '';
    my $s = $self->_connect($port) or return _no_answer("connect: $!");
    my $extra = join '', map { "$_: $headers->{$_}\r\n" } sort keys %{ $headers // {} };
    my $req = "$method $path HTTP/1.1\r\nHost: " . ($host // 'localhost') . "\r\nConnection: close\r\n$extra"
            . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($s, $req, length($req) - $off, $off) or return _no_answer("write: $!");
        $off += $n;
    }
    my $res = _read_response($s, $method eq 'HEAD', $self->{timeout});
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

# One response: by Content-Length, chunked, or none (HEAD, 204, 304);
# undef if the connection closes first or a read waits over TIMEOUT seconds.
sub _read_response {
    my ($s, $head_only, $timeout) = @_;
    my $sel = IO::Select->new($s);
    my $more = sub { $sel->can_read($timeout) && sysread($s, $_[0], 65536, length $_[0]) };
    my $buf = '';
    while ($buf !~ /\r\n\r\n/) { $more->($buf) or return undef }
    my ($head, $rest) = split /\r\n\r\n/, $buf, 2;
    my ($status) = $head =~ m{^HTTP/1\.\d (\d+)};
    my $content = '';
    if ($head_only || $status == 204 || $status == 304) {
        # no body
    } elsif ($head =~ /^Transfer-Encoding:\s*chunked/mi) {
        while (1) {
            while ($rest !~ /\r\n/) { $more->($rest) or return undef }
            my ($size) = $rest =~ /^([0-9a-fA-F]+)/;
            $rest =~ s/^[^\r]*\r\n//;
            my $n = hex $size;
            while (length $rest < $n + 2) { $more->($rest) or return undef }
            $content .= substr($rest, 0, $n);
            $rest = substr($rest, $n + 2);
            last if $n == 0;
        }
    } else {
        my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
        $len //= 0;
        while (length $rest < $len) { $more->($rest) or return undef }
        $content = substr($rest, 0, $len);
    }
    return { status => $status, content => $content, head => $head, success => $status < 300 };
}

1;
