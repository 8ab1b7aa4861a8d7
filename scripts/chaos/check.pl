#!/usr/bin/perl
# Compares the final state with the writers' models: both APIs' listings,
# the state files, and where traffic actually goes.
use strict;
use warnings;
use lib "$ENV{REPO_ROOT}/t/lib";
use HttpClient;

my ($admin, $front, $first_backend, $out) = @ARGV;
my $http = HttpClient->new;
my ($problems, %zone, %dyups) = (0);

for my $file (glob "$out/model.*") {
    open(my $fh, '<', $file) or die $!;
    while (<$fh>) {
        my @f = split;
        if ($f[0] eq 'zone') { $zone{$f[1]} = { weight => $f[2], down => $f[3] } }
        else { $dyups{$f[1]} = { map { split /:/ } split /,/, $f[2] } }
    }
}
$zone{$first_backend} = $zone{$first_backend + 1} = { weight => 1, down => 0 };

sub problem { $problems++; print "MISMATCH: @_\n" }

# Zone upstream: the verbose listing, then the state file.
my $expected = join '', map {
    "server 127.0.0.1:$_ weight=$zone{$_}{weight}" . ($zone{$_}{down} ? ' down' : '')
} sort { $a <=> $b } keys %zone;
my $listing = $http->request('GET', $admin, '/dynamic?upstream=backends&verbose=')->{body};
my $actual = join '', map {
    /^server (\S+) weight=(\d+) .*?( down)?;$/ ? "server $1 weight=$2" . ($3 // '') : "?$_"
} sort { ($a =~ /:(\d+)/)[0] <=> ($b =~ /:(\d+)/)[0] } split /\n/, $listing;
problem("zone listing\n  expected: $expected\n  got:      $actual") if $actual ne $expected;

open(my $sf, '<', "$out/data/backends.state") or die "state file: $!";
my $state = join '', map {
    /^server (\S+) weight=(\d+) .*?( down)?;$/ ? "server $1 weight=$2" . ($3 // '') : ()
} sort { ($a =~ /:(\d+)/)[0] <=> ($b =~ /:(\d+)/)[0] } grep { /^server/ } <$sf>;
problem("state file\n  expected: $expected\n  got:      $state") if $state ne $expected;

# "127.0.0.1:P weight=W;" for each server found in TEXT, sorted by port.
sub servers_of {
    my ($text) = @_;
    my %weight = ($text // '') =~ /server (\S+) weight=(\d+)/g;
    return join '', map { "$_ weight=$weight{$_};" } sort { ($a =~ /:(\d+)/)[0] <=> ($b =~ /:(\d+)/)[0] } keys %weight;
}

# Run-time upstreams: each one's detail, and the dyups file.
my $conf = do { local $/; open(my $fh, '<', "$out/data/dyups.conf") or die "dyups file: $!"; <$fh> };
for my $name (sort keys %dyups) {
    my $want = join '', map { "127.0.0.1:$_ weight=$dyups{$name}{$_};" } sort { $a <=> $b } keys %{ $dyups{$name} };
    my $got = servers_of($http->request('GET', $admin, "/upstream/$name")->{body});
    problem("upstream $name\n  expected: $want\n  got:      $got") if $got ne $want;
    my ($block) = $conf =~ /^upstream \Q$name\E \{\n(.*?)^\}/ms;
    my $in_file = servers_of($block);
    problem("dyups file, upstream $name\n  expected: $want\n  got:      $in_file") if $in_file ne $want;
}
my $list = $http->request('GET', $admin, '/list')->{body};
for my $name ($list =~ /^(w\d+[ab])$/mg) {
    problem("upstream $name exists but the model deleted it") unless $dyups{$name};
}

# Traffic goes exactly to the up peers.
my %up = map { $_ => 1 } grep { !$zone{$_}{down} } keys %zone;
my (%seen, $bad);
for (1 .. 400) {
    my $res = $http->request('GET', $front, '/zone');
    my ($port) = $res->{body} =~ /^(\d+)/;
    $port //= "status $res->{status}";
    $seen{$port}++;
    $bad++ unless $up{$port};
}
problem("traffic reached peers that are not up: " . join(', ', grep { !$up{$_} } keys %seen)) if $bad;
for my $name (sort keys %dyups) {
    for (1 .. 20) {
        my ($port) = $http->request('GET', $front, '/', $name)->{body} =~ /^(\d+)/;
        problem("traffic for $name reached " . ($port // 'nothing')) unless $port && $dyups{$name}{$port};
    }
}

printf "final state:        %d zone peers (%d up), %d run-time upstreams: %s\n",
    scalar(keys %zone), scalar(keys %up), scalar(keys %dyups), $problems ? "$problems mismatches" : 'all match the model';
exit($problems ? 1 : 0);
