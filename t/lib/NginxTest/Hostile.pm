package NginxTest::Hostile;

=head1 NAME

NginxTest::Hostile - send hostile requests and look at the answers safely

=head1 SYNOPSIS

    use lib 't/lib';
    use NginxTest;
    use NginxTest::Hostile;

    my $got = raw("GET /dynamic?upstream=\x00 HTTP/1.1\r\nHost: x\r\n\r\n");
    clean($body, 'GET ' . show($uri));

=head1 DESCRIPTION

For the tests that throw scanner-style input at the admin APIs: requests
with bytes that no HTTP client would send, and answers that must not
reflect them.  C<show> makes such bytes printable and bounded, for test
names and diagnostics.

=cut

use strict;
use warnings;

use NginxTest;
use HttpClient;
use Time::HiRes qw(time);

use Exporter 'import';
our @EXPORT = qw(show clean raw);

# show(TEXT): a printable rendering of a request or body, for test names:
# bytes outside 0x20..0x7e as \xNN, and anything longer than 90 bytes cut
# to its first 70 plus "...(LENGTH bytes)".
sub show {
    my ($s) = @_;
    my $len = length $s;
    $s = substr($s, 0, 70) . "...($len bytes)" if $len > 90;
    $s =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
    return $s;
}

# clean(BODY, WHAT): one test that an error text from the module has no
# control characters and no line break but a final one.
sub clean {
    my ($body, $what) = @_;
    ok($body !~ /[\x00-\x08\x0b-\x1f\x7f]/ && $body !~ /\n(?!\z)/,
       "$what: answer has no control characters and at most a final newline")
        or diag('body: ' . show($body));
}

# raw(BYTES): sends BYTES as they are on a new connection to the main
# server; returns everything nginx sent until it closed the connection
# (or 5 s passed).
sub raw {
    my ($bytes) = @_;
    my $c = HttpClient::Connection->open(server_port(), 5) or die "connect: $@";
    my $deadline = time + 5;
    $c->send($bytes, $deadline);
    return $c->rest($deadline);
}

1;
