package NginxTest::Dyups;

=head1 NAME

NginxTest::Dyups - the dyups_interface REST API and the upstreams it makes

=head1 SYNOPSIS

    use lib 't/lib';
    use NginxTest;
    use NginxTest::Dyups;

    setup();
    post('dyhost', servers(1, 2));
    is(http_get('/upstream/dyhost')->{body}, line(addr(1)) . line(addr(2)), 'listed');
    is(proxied('dyhost')->{body}, port(1) . "\n", 'routed');

=head1 DESCRIPTION

The blocks that use these helpers serve the REST API (C<dyups_interface>)
on the main server, often also on C<$TEST_NGINX_PORT_8> (the admin port:
C<reuseport>, so that successive connections land on different workers),
and proxy C<proxy_pass http://$host> on C<$TEST_NGINX_PORT_9>, with backends
that answer their own port (one line).

A test script that keeps a helper of its own under one of these names
imports the others by name, e.g. C<use NginxTest::Dyups qw(setup line);>.

=cut

use strict;
use warnings;

use NginxTest;
use HttpClient;

use Exporter 'import';
our @EXPORT = qw(addr line servers state post setup admin proxied proxied_port keepalive);

# addr(N): "127.0.0.1:PORT" for $TEST_NGINX_PORT_N, as the APIs name a server.
sub addr { '127.0.0.1:' . port($_[0]) }

# line(SERVER, OPTIONS): one GET /upstream/NAME (and /detail) line for
# SERVER with dyups' defaults, unless OPTIONS (weight => 2, down => 1, ...)
# override them.
sub line {
    my ($server, %o) = @_;
    my %v = (weight => 1, max_conns => 0, max_fails => 1, fail_timeout => 10,
             backup => 0, down => 0, %o);
    return "server $server weight=$v{weight} max_conns=$v{max_conns} max_fails=$v{max_fails}"
         . " fail_timeout=$v{fail_timeout} backup=$v{backup} down=$v{down}\n";
}

# servers(N...): a POST body with one `server 127.0.0.1:PORT;` per N.
sub servers { join '', map { "server 127.0.0.1:" . port($_) . ";" } @_ }

# state(): everything the API lists (/list and /detail with their statuses),
# to compare before and after a request that must change nothing.
sub state { join '', map { my $r = http_get($_); "$_ $r->{status}\n$r->{body}" } '/list', '/detail' }

# post(NAME, BODY): a POST /upstream/NAME that must answer 200 "success"
# (two tests); returns nothing.
sub post {
    my ($name, $body) = @_;
    my $r = http('POST', "/upstream/$name", $body);
    is($r->{status}, 200, "POST /upstream/$name: 200") or diag($r->{body});
    is($r->{body}, 'success', "POST /upstream/$name: success");
}

# setup(): creates the run-time upstream "dyhost" with the one server on
# port 2 (one test).
sub setup {
    my $r = http('POST', '/upstream/dyhost', 'server 127.0.0.1:' . port(2) . ';');
    is($r->{status}, 200, 'setup: dyhost created') or diag($r->{body});
}

# admin(METHOD, URI[, BODY[, HEADERS]]): the response of the admin API on
# port 8.
sub admin { my ($m, $uri, $body, $h) = @_; http($m, 'http://127.0.0.1:' . port(8) . $uri, $body, $h) }

# proxied(HOST[, URI]): the response to GET URI (default /) through the
# proxy on port 9 with Host HOST.
sub proxied {
    my ($host, $uri) = @_;
    return http('GET', 'http://127.0.0.1:' . port(9) . ($uri // '/'), undef, { Host => $host });
}

# proxied_port(HOST): the backend port that GET / with Host HOST reached
# through the proxy on port 9, or "status N".
sub proxied_port {
    my ($host) = @_;
    my $r = proxied($host);
    return $r->{status} == 200 ? $r->{body} =~ s/\n\z//r : "status $r->{status}";
}


# keepalive(PORT): one keep-alive HTTP/1.1 connection to PORT.
# $c->request(METHOD, URI, HOST[, BODY]) sends a request and reads its
# answer (HttpClient's response, plus pid: the X-Pid header, if the server
# adds it); $c->send(...) and $c->read() do the two halves, so that a request
# can wait (say, delayed by limit_req) while others run, and $c->answered()
# says whether an answer has started to arrive. They die when no answer
# comes.
sub keepalive {
    my ($port) = @_;
    my $conn = HttpClient::Connection->open($port, 10) or die "connect: $@";
    return bless { conn => $conn }, 'NginxTest::Dyups::Connection';
}

package NginxTest::Dyups::Connection;

sub send {
    my ($c, $m, $uri, $host, $body) = @_;
    $c->{conn}->send(HttpClient::request_text($m, $uri, $body, [[Host => $host]])) or die "$c->{conn}{error}\n";
}

sub read {
    my ($c) = @_;
    my $r = $c->{conn}->read or die "$c->{conn}{error}\n";
    return { %$r, pid => $r->{headers}{'x-pid'} };
}

sub answered { $_[0]{conn}->answered }

sub request {
    my $c = shift;
    $c->send(@_);
    return $c->read;
}

package NginxTest::Dyups;

1;
