package NginxTest::PlusApi;

=head1 NAME

NginxTest::PlusApi - the NGINX Plus API (location /api { dynamic_upstream_api; }): answers and errors

=head1 SYNOPSIS

    use lib 't/lib';
    use NginxTest;
    use NginxTest::PlusApi;

    my $servers = plus_json(http_get('/api/9/http/upstreams/backends/servers'), 200, 'servers');
    plus_error(http_get('/api/9/http/upstreams/x'), 404, 'UpstreamNotFound', 'upstream "x" not found', 'unknown');
    is_deeply(server_list('backends'), ['0 127.0.0.1:8081 w1'], 'IDs, addresses, weights');

=head1 DESCRIPTION

For blocks whose main server has the API at C</api>.

=over 4

=item C<plus_json(RESPONSE, STATUS, NAME)>

Checks the status and the JSON Content-Type, and returns the decoded body.

=item C<plus_error(RESPONSE, STATUS, CODE, TEXT, NAME)>

Checks NGINX Plus's error shape (C<error> with C<status>, C<text>,
C<code>; C<request_id>; C<href>); TEXT may be a regex.

=item C<server_list(UPSTREAM)>

C<GET .../servers> as C<"ID ADDRESS wWEIGHT[ down][ backup]"> strings.

=item C<upstream_peers(UPSTREAM)>

The C<peers> of C<GET /api/9/http/upstreams/UPSTREAM>.

=back

=cut

use strict;
use warnings;

use JSON::PP ();
use NginxTest;

use Exporter 'import';
our @EXPORT = qw(plus_json plus_error server_list upstream_peers);

sub plus_json {
    my ($r, $status, $name) = @_;
    is($r->{status}, $status, "$name: status $status") or diag($r->{body});
    like($r->{headers}{'content-type'} // '', qr{^application/json\b}, "$name: application/json");
    my $j = eval { JSON::PP->new->decode($r->{body}) };
    ok(defined $j, "$name: body is JSON") or diag("$@\n$r->{body}");
    return $j;
}

sub plus_error {
    my ($r, $status, $code, $text, $name) = @_;
    my $j = plus_json($r, $status, $name) or return;
    is_deeply([sort keys %$j], [qw(error href request_id)], "$name: error, request_id, href");
    is_deeply([sort keys %{ $j->{error} }], [qw(code status text)], "$name: error has status, text, code");
    is($j->{error}{status}, $status, "$name: error.status");
    is($j->{error}{code}, $code, "$name: error.code");
    if (ref $text) { like($j->{error}{text}, $text, "$name: error.text") }
    else           { is($j->{error}{text}, $text, "$name: error.text") }
    like($j->{request_id}, qr/^[0-9a-f]{32}$/, "$name: request_id is \$request_id");
    is($j->{href}, 'https://nginx.org/en/docs/http/ngx_http_api_module.html', "$name: href");
}

sub server_list {
    my ($upstream) = @_;
    my $s = plus_json(http_get("/api/9/http/upstreams/$upstream/servers"), 200, "servers of $upstream");
    return [ map { join ' ', $_->{id}, $_->{server}, "w$_->{weight}", ($_->{down} ? 'down' : ()),
                   ($_->{backup} ? 'backup' : ()) } @{ $s || [] } ];
}

sub upstream_peers {
    my ($upstream) = @_;
    my $u = plus_json(http_get("/api/9/http/upstreams/$upstream"), 200, "upstream $upstream");
    return $u ? $u->{peers} : [];
}

1;
