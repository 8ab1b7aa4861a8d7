package HttpClient;

=head1 NAME

HttpClient - the one HTTP/1.1 client of t/ and scripts/ (to 127.0.0.1)

=head1 SYNOPSIS

    use lib 't/lib';                      # scripts: use lib "$ENV{REPO_ROOT}/t/lib";
    use HttpClient;

    my $http = HttpClient->new(timeout => 5);
    my $r = $http->once('POST', $port, '/upstream/foo', undef, 'server 127.0.0.1:8081;');
    my $k = $http->request('GET', $port, '/list');           # kept alive, per port
    print "$r->{status} $r->{body}\n";

    my $c = HttpClient::Connection->open($port, 10) or die "connect: $@";
    $c->send(HttpClient::request_text('DELETE', '/upstream/foo')) or die $c->{error};
    my $res = $c->read('DELETE') or die $c->{error};

=head1 DESCRIPTION

The harness (t/lib/NginxTest.pm's C<http>), the t/ helpers and the scripts
(chaos, dyups-cycles, reload-loop, the benchmarks) all send their requests
with this client, in two modes:

=over 4

=item C<once>

one request on a connection of its own (C<Connection: close>), so a change
is never sent twice nor left ambiguous by a kept-alive connection the server
closed; with C<reuseport>, each lands on a hashed worker;

=item C<request>

keep-alive, one connection per port or key, fast enough to measure an admin
API.

=back

A response is C<< { status, body, headers, header_list, error } >>:
C<headers> has lower-cased names (a repeated header's values joined with
C<", ">), C<header_list> is C<[[Name, value], ...]> as received.  Status 599
means no answer (connection refused, reset, closed, or no complete response
within the timeout), and C<error> (also in C<body>) says why.  Bodies are
read by C<Content-Length>, chunked, up to the connection's end, or none
(HEAD, 204, 304); interim 1xx answers are skipped.

Sockets that a test must drive byte by byte (hostile input, held requests)
are written by the tests themselves; they are not clients.

=cut

use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);

# new(timeout => SECONDS, retry => 0|1): SECONDS bounds each whole exchange
# (default 5). With retry (the default), a request whose kept-alive
# connection turns out closed is sent once more on a new one; callers that
# must know whether a change was made exactly once (the chaos writers, whose
# workers get killed) turn it off and treat 599 as "unknown".
sub new {
    my ($class, %opts) = @_;
    return bless { conn => {}, timeout => $opts{timeout} // 5, retry => $opts{retry} // 1 }, $class;
}

# request(METHOD, PORT, PATH, HOST, BODY, KEY): a response. Requests with the
# same KEY (default: the port) share a kept-alive connection; distinct keys
# to one port are distinct connections.
sub request {
    my ($self, $method, $port, $path, $host, $body, $key) = @_;
    $key //= $port;
    my $req = request_text($method, $path, $body, defined $host ? [[Host => $host]] : []);
    my $error;
    for my $attempt (1, 2) {
        my $c = $self->{conn}{$key} //= HttpClient::Connection->open($port, $self->{timeout})
            or return no_answer("connect to 127.0.0.1:$port failed: $@");
        my $res = $c->send($req) && $c->read($method);
        delete $self->{conn}{$key} if !$res || $c->{eof} || ($res->{headers}{connection} // '') =~ /close/i;
        return $res if $res;
        # The server closed a kept-alive connection: one retry on a new one.
        $error = $c->{error};
        last if !$self->{retry};
    }
    return no_answer($error);
}

# forget(KEY): closes the kept-alive connection of KEY (if any).
sub forget { delete $_[0]{conn}{$_[1]} }

# once(METHOD, PORT, PATH, HOST, BODY, HEADERS): a response to one request
# on a connection of its own (Connection: close unless HEADERS name one);
# HOST undef: localhost, unless HEADERS (see request_text) have a Host.
# Never retried. A server that closes while the request is still being sent
# (413) has answered all the same: its response is read.
sub once {
    my ($self, $method, $port, $path, $host, $body, $headers) = @_;
    my @h = ((defined $host ? [Host => $host] : ()), _pairs($headers));
    push @h, [Connection => 'close'] unless grep { lc $_->[0] eq 'connection' } @h;
    my $deadline = time + $self->{timeout};
    my $c = HttpClient::Connection->open($port, $self->{timeout})
        or return no_answer("connect to 127.0.0.1:$port failed: $@");
    $c->send(request_text($method, $path, $body, \@h), $deadline);
    return $c->read($method, $deadline) // no_answer($c->{error});
}

# request_text(METHOD, PATH[, BODY[, HEADERS]]): the bytes of an HTTP/1.1
# request. HEADERS, a hashref or an arrayref of [name, value] pairs (sent in
# that order), may replace the Host (default localhost); Content-Length is
# added for a defined BODY unless HEADERS have it or Transfer-Encoding.
sub request_text {
    my ($method, $path, $body, $headers) = @_;
    my @h = _pairs($headers);
    my %given = map { lc($_->[0]) => 1 } @h;
    my $req = "$method $path HTTP/1.1\r\n";
    $req .= "Host: localhost\r\n" unless $given{host};
    $req .= "$_->[0]: $_->[1]\r\n" for @h;
    $req .= 'Content-Length: ' . length($body) . "\r\n"
        if defined $body && !$given{'content-length'} && !$given{'transfer-encoding'};
    return "$req\r\n" . ($body // '');
}

sub _pairs {
    my ($h) = @_;
    return ref $h eq 'HASH' ? map { [$_, $h->{$_}] } sort keys %$h : @{ $h // [] };
}

# no_answer(WHY): the 599 response.
sub no_answer {
    return { status => 599, body => $_[0], error => $_[0], headers => {}, header_list => [] };
}

# parse_response(BUFFER, EOF, METHOD): (response, bytes it took) when BUFFER
# starts with a complete response (EOF: nothing more will come); () when more
# bytes are needed.
sub parse_response {
    my ($buf, $eof, $method) = @_;
    my $skipped = 0;
    while (1) {
        my $end = index($buf, "\r\n\r\n");
        return () if $end < 0;
        my $head = substr($buf, 0, $end);
        my $rest = substr($buf, $end + 4);
        my ($status_line, @lines) = split /\r\n/, $head;
        my ($status) = $status_line =~ m{^HTTP/\d\.\d\s+(\d{3})}
            or return ({ %{ no_answer("bad status line '$status_line'") }, body => $buf }, $skipped + length $buf);
        # Skip interim 1xx responses.
        if ($status =~ /^1/ && $status != 101) {
            $skipped += $end + 4;
            $buf = $rest;
            next;
        }

        my (@list, %h);
        for my $l (@lines) {
            my ($n, $v) = $l =~ /^([^:]+):\s*(.*?)\s*$/ or next;
            push @list, [$n, $v];
            $h{ lc $n } = exists $h{ lc $n } ? "$h{lc $n}, $v" : $v;
        }
        my %res = (status => 0 + $status, headers => \%h, header_list => \@list, error => undef);
        my $at = $skipped + $end + 4;    # where the body starts in the caller's buffer

        if ($method eq 'HEAD' || $status == 204 || $status == 304) {
            return ({ %res, body => '' }, $at);
        }
        if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
            my ($body, $pos) = ('', 0);
            while (1) {
                my $e = index($rest, "\r\n", $pos);
                return () if $e < 0;
                my ($size) = substr($rest, $pos, $e - $pos) =~ /^([0-9a-fA-F]+)/;
                return ({ %res, %{ no_answer('bad chunk size') }, body => $rest }, $at + length $rest)
                    unless defined $size;
                $size = hex $size;
                $pos = $e + 2;
                if ($size == 0) {
                    # The trailers (if any) end with an empty line: the first
                    # CRLF CRLF from the last chunk's CRLF on; with
                    # Connection: close, EOF is just as good.
                    my $t = index($rest, "\r\n\r\n", $pos - 2);
                    return ({ %res, body => $body }, $at + $t + 4) if $t >= 0;
                    return ({ %res, body => $body }, $at + length $rest) if $eof;
                    return ();
                }
                return () if length($rest) < $pos + $size + 2;
                $body .= substr($rest, $pos, $size);
                $pos += $size + 2;
            }
        }
        if (defined $h{'content-length'}) {
            my $len = $h{'content-length'};
            return () if length($rest) < $len && !$eof;
            return ({ %res, body => substr($rest, 0, $len) }, $at + (length($rest) < $len ? length $rest : $len));
        }
        return $eof ? ({ %res, body => $rest }, $at + length $rest) : ();
    }
}

# One connection to 127.0.0.1, for requests in turn (keep-alive) or split
# in halves: send now, read later, while other connections go on.
package HttpClient::Connection;

use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time);

# open(PORT, TIMEOUT): the connection (TCP_NODELAY), or undef with $@ saying
# why. TIMEOUT bounds the connect and is the default of send and read.
sub open {
    my ($class, $port, $timeout) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp',
                                  Timeout => $timeout) or return undef;
    binmode $s;
    $s->setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
    $s->blocking(0);
    return bless { sock => $s, sel => IO::Select->new($s), buf => '', eof => 0, error => undef,
                   timeout => $timeout }, $class;
}

# send(BYTES[, DEADLINE]): writes BYTES whole before DEADLINE (an epoch time;
# default now + the timeout); false, with {error} set, when the server closed
# first or the deadline passed.
sub send {
    my ($c, $bytes, $deadline) = @_;
    $deadline //= time + $c->{timeout};
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($c->{sock}, $bytes, length($bytes) - $off, $off);
        if (defined $n) {
            $off += $n;
            next;
        }
        return $c->_fail("write: $!") unless $!{EAGAIN} || $!{EINTR};
        my $left = $deadline - time;
        return $c->_fail('timeout sending the request') if $left <= 0;
        $c->{sel}->can_write($left);
    }
    return 1;
}

# read([METHOD[, DEADLINE]]): the next response (METHOD, default GET: HEAD
# answers have no body), or undef with {error} set when the connection
# closed before a complete one or the deadline passed. Bytes after it stay
# for the next read.
sub read {
    my ($c, $method, $deadline) = @_;
    $deadline //= time + $c->{timeout};
    while (1) {
        my ($res, $used) = HttpClient::parse_response($c->{buf}, $c->{eof}, $method // 'GET');
        if ($res) {
            substr($c->{buf}, 0, $used, '');
            return $res;
        }
        return $c->_fail('connection closed before a complete response') if $c->{eof};
        my $left = $deadline - time;
        return $c->_fail('timeout waiting for the response') if $left <= 0;
        next unless $c->{sel}->can_read($left);
        my $n = sysread($c->{sock}, $c->{buf}, 65536, length $c->{buf});
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EINTR};
            $c->{eof} = 1;    # ECONNRESET etc.
        } elsif ($n == 0) {
            $c->{eof} = 1;
        }
    }
}

# rest([DEADLINE]): every byte that is still to come until the server closes
# the connection or DEADLINE passes, unparsed (for raw exchanges).
sub rest {
    my ($c, $deadline) = @_;
    $deadline //= time + $c->{timeout};
    while (!$c->{eof} && (my $left = $deadline - time) > 0) {
        next unless $c->{sel}->can_read($left);
        my $n = sysread($c->{sock}, $c->{buf}, 65536, length $c->{buf});
        $c->{eof} = 1 unless $n || (!defined $n && ($!{EAGAIN} || $!{EINTR}));
    }
    return substr($c->{buf}, 0, length $c->{buf}, '');
}

# answered(): whether a response has started to arrive.
sub answered {
    my ($c) = @_;
    return length($c->{buf}) || $c->{sel}->can_read(0);
}

sub _fail {
    my ($c, $why) = @_;
    $c->{error} = "$why; got: " . ($c->{buf} eq '' ? '(nothing)' : $c->{buf});
    return undef;
}

1;
