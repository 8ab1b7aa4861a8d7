package NginxTest::QueryApi;

=head1 NAME

NginxTest::QueryApi - dynamic_upstream's query API (location /dynamic): listings and changes

=head1 SYNOPSIS

    use lib 't/lib';
    use NginxTest;
    use NginxTest::QueryApi;

    change('server=127.0.0.1:' . port(2) . '&weight=2');
    is(verbose(), srv(1) . srv(2, weight => 2), 'the verbose listing');

=head1 DESCRIPTION

For blocks with C<location /dynamic { dynamic_upstream; }> on the main
server.  The upstream is C<backends> unless given.

=cut

use strict;
use warnings;

use NginxTest;

use Exporter 'import';
our @EXPORT = qw(verbose change srv);
our @EXPORT_OK = qw(set_change_refused tables_fixed);

# verbose([UPSTREAM]): the verbose listing of UPSTREAM (default backends), or
# "status N: body" when it does not answer 200.
sub verbose {
    my ($u) = @_;
    my $r = http_get('/dynamic?upstream=' . ($u // 'backends') . '&verbose=');
    return $r->{status} == 200 ? $r->{body} : "status $r->{status}: $r->{body}";
}

# change(QUERY[, UPSTREAM]): one query-API request on UPSTREAM (default
# backends) that must answer 200 (one test); returns the response.
sub change {
    my ($q, $u) = @_;
    my $r = http_get('/dynamic?upstream=' . ($u // 'backends') . "&$q");
    is($r->{status}, 200, "change $q") or diag($r->{body});
    return $r;
}

# srv(N | ADDR, OPTIONS): a server line, newline included, as the verbose
# listing and the state file write it; N is a port number 1..9
# (127.0.0.1:port(N)); OPTIONS: weight, max_fails, fail_timeout, max_conns,
# backup, down.
sub srv {
    my ($n, %o) = @_;
    my $addr = $n =~ /^\d$/ ? '127.0.0.1:' . port($n) : $n;
    my $s = "server $addr weight=" . ($o{weight} // 1) . ' max_fails=' . ($o{max_fails} // 1)
          . ' fail_timeout=' . ($o{fail_timeout} // 10);
    $s .= " max_conns=$o{max_conns}" if $o{max_conns};
    $s .= ' backup' if $o{backup};
    $s .= ' down' if $o{down};
    return "$s;\n";
}

# set_change_refused(UPSTREAM, BALANCER): the 409 answer's body to adding,
# removing or re-weighting peers on a balancer that computes its table at
# start (BALANCER as the answer names it: "random", "consistent hash").
sub set_change_refused {
    my ($upstream, $balancer) = @_;
    return "409 Conflict: upstream \"$upstream\" uses the $balancer balancer, which computes its table once at "
         . "start on this nginx (before 1.27.3): adding, removing or re-weighting peers is refused (down, up, "
         . "max_fails, fail_timeout and max_conns work)\n";
}

# tables_fixed(): whether `hash ... consistent` and `random` compute their
# tables once (nginx before 1.27.3), so that the API refuses to add, remove
# or re-weight their peers; from 1.27.3 on nginx rebuilds them.
sub tables_fixed { !nginx_at_least('1.27.3') }

1;
