package RL;
# Shared by scripts/reload-loop/client.pl and check.pl: a one-request-per-
# connection HTTP client (t/lib/HttpClient.pm's `once`: a change is
# never sent twice and never left ambiguous by a closed keep-alive
# connection), the models of the two state files, and how the module
# renders and lists them.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../../t/lib";
use HttpClient;
use Exporter 'import';

our @EXPORT = qw(http slurp HEADER zone_text zone_line dyups_blocks dyups_get_text file_blocks parse_detail);

use constant HEADER => "# Written by nginx-dynamic-upstream after every change through its APIs.\n";

my $client = HttpClient->new(timeout => 10);

# http(METHOD, PORT, PATH, BODY, HOST, HEADERS) -> { status, body, worker };
# status 599 when there was no complete answer; worker is the X-Worker
# header (the answering worker's pid), if any.
sub http {
    my ($method, $port, $path, $body, $host, $headers) = @_;
    my $res = $client->once($method, $port, $path, $host, $body, $headers);
    return { status => $res->{status}, body => $res->{body}, worker => $res->{headers}{'x-worker'} };
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    binmode $fh;
    local $/;
    my $t = <$fh>;
    return $t // '';
}

# The zone model: [ [port, { weight, max_fails, fail_timeout, down }], ... ]
# in list order. zone_line is one server line as the verbose listing and
# the state file write it; zone_text the whole listing.
sub zone_line {
    my ($port, $p) = @_;
    return "server 127.0.0.1:$port weight=$p->{weight} max_fails=$p->{max_fails} fail_timeout=$p->{fail_timeout}"
         . ($p->{down} ? ' down' : '') . ";\n";
}

sub zone_text {
    my ($members) = @_;
    return join '', map { zone_line(@$_) } @$members;
}

# The dyups model: { name => undef (never touched: not in the file) |
# 'deleted' | { balancer => '' | 'least_conn', servers => [[port, weight], ...] } }.
# dyups_blocks: the blocks the file must hold, sorted.
sub dyups_blocks {
    my ($model) = @_;
    my @blocks;
    for my $name (sort keys %$model) {
        my $u = $model->{$name};
        next unless defined $u;
        if (!ref $u) {
            push @blocks, "upstream $name {\n    deleted;\n}\n";
            next;
        }
        my $b = "upstream $name {\n";
        $b .= "    $u->{balancer};\n" if $u->{balancer};
        $b .= "    server 127.0.0.1:$_->[0] weight=$_->[1] max_fails=1 fail_timeout=10;\n" for @{ $u->{servers} };
        push @blocks, "$b}\n";
    }
    return [sort @blocks];
}

# What GET /upstream/NAME answers for model entry U: [status, body].
sub dyups_get_text {
    my ($u, $config_servers) = @_;
    if (!defined $u) {
        return [200, join '', map { "server 127.0.0.1:$_ weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n" }
                               @{ $config_servers // [] }] if $config_servers;
        return [404, undef];
    }
    return [404, undef] unless ref $u;
    return [200, join '', map { "server 127.0.0.1:$_->[0] weight=$_->[1] max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n" }
                           @{ $u->{servers} }];
}

# The upstream blocks of a dyups file, sorted, or undef if the file is not
# exactly the header followed by blocks.
sub file_blocks {
    my ($text) = @_;
    return undef unless defined $text && index($text, HEADER) == 0;
    my @blocks = $text =~ /^(upstream [^\n]*\{\n.*?^\}\n)/msg;
    return undef unless $text eq HEADER . join('', @blocks);
    return [sort @blocks];
}

# GET /detail -> { name => "server ... lines\n" }.
sub parse_detail {
    my ($text) = @_;
    my %d;
    for my $chunk (split /\n\n/, $text // '') {
        my ($name, $rest) = split /\n/, $chunk, 2;
        next unless defined $name && length $name;
        $d{$name} = defined $rest && length $rest ? "$rest\n" : '';
    }
    return \%d;
}

1;
