package NginxTest::Dns;

=head1 NAME

NginxTest::Dns - a tiny DNS server a block starts, for C<server NAME resolve>

=head1 SYNOPSIS

    use lib 't/lib';
    use NginxTest;
    use NginxTest::Dns;

    # answers A queries for backend.test with 127.0.0.1, anything else
    # with NXDOMAIN; TTL 1 s
    my $dns = dns_server(port(5), { 'backend.test' => ['127.0.0.1'] });
    $dns->stop;

with, in the block's configuration,

    resolver 127.0.0.1:$TEST_NGINX_PORT_5 ipv6=off valid=1s;
    resolver_timeout 1s;

=head1 DESCRIPTION

A child process bound to UDP 127.0.0.1:PORT (the port number of one of the
block's harness ports, free for UDP too) that answers each query of type A
for a name of its table with that name's addresses, and every other query
with NXDOMAIN (no answer). It leaves with C<POSIX::_exit>; C<stop> (also
run when the object goes away) kills it with SIGKILL and reaps it.

=cut

use strict;
use warnings;

use IO::Socket::INET;
use POSIX ();

use Exporter 'import';
our @EXPORT = qw(dns_server);

sub dns_server {
    my ($port, $table) = @_;
    my $socket = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Proto => 'udp')
        or die "dns_server: cannot bind udp 127.0.0.1:$port: $!\n";
    my $pid = fork() // die "dns_server: fork: $!\n";
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP PIPE);
        while (defined $socket->recv(my $query, 512)) {
            my $reply = answer($query, $table);
            $socket->send($reply) if defined $reply;
        }
        POSIX::_exit(0);
    }
    close $socket;
    return bless { pid => $pid }, __PACKAGE__;
}

# The reply to one query packet (undef for a malformed one).
sub answer {
    my ($query, $table) = @_;
    return undef if length $query < 12;
    my ($id) = unpack 'n', $query;
    my ($pos, @labels) = (12);
    while (1) {
        return undef if $pos >= length $query;
        my $len = ord substr($query, $pos, 1);
        $pos++;
        last if $len == 0;
        push @labels, substr($query, $pos, $len);
        $pos += $len;
    }
    return undef if $pos + 4 > length $query;
    my ($qtype, $qclass) = unpack 'nn', substr($query, $pos, 4);
    my $question = substr($query, 12, $pos + 4 - 12);
    my $addresses = $table->{ lc join '.', @labels };
    my @answers = $addresses && $qtype == 1 ? @$addresses : ();
    my $rcode = $addresses ? 0 : 3;
    my $reply = pack('nnnnnn', $id, 0x8180 | $rcode, 1, scalar @answers, 0, 0) . $question;
    for my $ip (@answers) {
        $reply .= pack('nnnNn', 0xc00c, 1, 1, 1, 4) . pack('C4', split /\./, $ip);
    }
    return $reply;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'KILL', $self->{pid};
    waitpid $self->{pid}, 0;
    delete $self->{pid};
}

sub DESTROY { $_[0]->stop }

1;
