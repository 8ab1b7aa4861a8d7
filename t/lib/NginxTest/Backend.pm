package NginxTest::Backend;

=head1 NAME

NginxTest::Backend - HTTP backends a block starts and kills, for health checks

=head1 SYNOPSIS

    use lib 't/lib';
    use NginxTest;
    use NginxTest::Backend;

    my $b = backend(port(1));               # answers "PORT\n" with 200
    my $s = backend(port(2), status => 503); # answers 503
    $b->stop;                                # the port refuses connections
    $b = backend(port(1));                   # and comes back
    my $n = $b->accepted;                    # connections it accepted

=head1 DESCRIPTION

A backend is a child process listening on 127.0.0.1:PORT that answers
every connection with one response (C<HTTP/1.0 STATUS>, body C<PORT\n>)
once it has read the request's headers, or at once when the client closes
without sending any (a C<type=tcp> check). Each accepted connection adds a
line to a counter file, read by C<accepted>. The child leaves with
C<POSIX::_exit>, so the harness's END block and signal handlers (which
stop the block's nginx) never run in it; C<stop> (also run when the object
goes away) kills it with SIGKILL and reaps it, and the port is free again
at once (the listener sets C<SO_REUSEADDR>).

=cut

use strict;
use warnings;

use NginxTest;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();

use Exporter 'import';
our @EXPORT = qw(backend wait_until);
our @EXPORT_OK = qw(spread);

# spread(N): the answers of N requests to / through the block's server:
# { backend port, or "status NNN" => count }.
sub spread {
    my ($n) = @_;
    my %seen;
    for (1 .. $n) {
        my $r = http_get('/');
        $seen{ $r->{status} == 200 ? $r->{body} =~ s/\n//r : "status $r->{status}" }++;
    }
    return \%seen;
}

sub backend {
    my ($port, %opt) = @_;
    my $status = $opt{status} // 200;
    my $counter = data_dir() . "/accepted-$port";
    my $listen = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => $port, Proto => 'tcp', Listen => 128, ReuseAddr => 1)
        or die "backend: cannot listen on 127.0.0.1:$port: $!\n";
    my $pid = fork() // die "backend: fork: $!\n";
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP PIPE);
        open my $count, '>>', $counter or POSIX::_exit(1);
        $count->autoflush(1);
        while (my $c = $listen->accept) {
            print $count "1\n";
            my $request = '';
            while ($request !~ /\r?\n\r?\n/) {
                my $n = sysread($c, my $buf, 4096);
                last unless $n;
                $request .= $buf;
            }
            syswrite($c, "HTTP/1.0 $status X\r\nContent-Length: " . (length($port) + 1) . "\r\n\r\n$port\n")
                if length $request;
            close $c;
        }
        POSIX::_exit(0);
    }
    close $listen;
    return bless { pid => $pid, port => $port, counter => $counter }, __PACKAGE__;
}

sub accepted {
    my ($self) = @_;
    open my $fh, '<', $self->{counter} or return 0;
    my @lines = <$fh>;
    return scalar @lines;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'KILL', $self->{pid};
    waitpid $self->{pid}, 0;
    $self->{pid} = undef;
}

sub DESTROY { $_[0]->stop }

# wait_until(SECONDS, CODE): polls CODE every 20 ms until it returns true;
# returns the seconds it took, or undef at the deadline.
sub wait_until {
    my ($seconds, $code) = @_;
    my $start = Time::HiRes::time();
    while (1) {
        return Time::HiRes::time() - $start if $code->();
        return undef if Time::HiRes::time() - $start > $seconds;
        Time::HiRes::sleep(0.02);
    }
}

1;
