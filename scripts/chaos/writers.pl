#!/usr/bin/perl
# Chaos writers: N processes, each changing only its own peers of the zone
# upstream "backends" and its own run-time upstreams, with random valid
# operations on both APIs, until the time is up. Each keeps a model of what
# it was answered 200 for and writes it to OUT/model.N. A request with no
# answer (its worker was killed) is ambiguous: the writer then reads the
# real state of that object and adopts it. 503 (reload in progress) is
# retried.
use strict;
use warnings;
use lib "$ENV{REPO_ROOT}/t/lib";
use HttpClient;
use Time::HiRes qw(time sleep);

my ($admin, $front, $first_backend, $writers, $per_writer, $duration, $out) = @ARGV;
my $deadline = time + $duration - 3;

my @pids;
for my $w (0 .. $writers - 1) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) { writer($w); exit 0 }
    push @pids, $pid;
}
my $failed = 0;
for (@pids) { waitpid($_, 0); $failed++ if $? }

my %total;
for my $w (0 .. $writers - 1) {
    open(my $fh, '<', "$out/stats.$w") or next;
    while (<$fh>) { my ($k, $v) = split; $total{$k} += $v }
}
printf "API operations:     %d accepted, %d refused during reloads (503, retried), %d without answer (worker killed; state re-read), %d unexpected\n",
    map { $total{$_} // 0 } qw(accepted reloading ambiguous unexpected);
exit(($failed || $total{unexpected}) ? 1 : 0);

sub writer {
    my ($w) = @_;
    srand($w * 7919 + $$);
    my $http = HttpClient->new(timeout => 3, retry => 0);
    my @ports = map { $first_backend + 2 + $w * $per_writer + $_ } 0 .. $per_writer - 1;
    my @names = ("w${w}a", "w${w}b");
    my (%zone, %dyups, %stats);

    my $call = sub {
        my ($method, $path, $body) = @_;
        for (1 .. 50) {
            my $res = $http->request($method, $admin, $path, 'localhost', $body);
            if ($res->{status} == 503) { $stats{reloading}++; sleep 0.05; next }
            return $res;
        }
        return { status => 503 };
    };

    while (time < $deadline) {
        my $port = $ports[rand @ports];
        my $name = $names[rand @names];
        my $pick = int rand 7;
        my ($res, $object);
        if ($pick == 0) {
            $res = $call->('GET', "/dynamic?upstream=backends&add=&server=127.0.0.1:$port");
            $zone{$port} = { weight => 1, down => 0 } if $res->{status} == 200;
            $res->{status} = 200 if $res->{status} == 400 && exists $zone{$port};    # already there: fine
        } elsif ($pick == 1) {
            $res = $call->('GET', "/dynamic?upstream=backends&remove=&server=127.0.0.1:$port");
            delete $zone{$port} if $res->{status} == 200;
            $res->{status} = 200 if $res->{status} == 400 && !exists $zone{$port};    # not there: fine (400, as ngx_dynamic_upstream)
        } elsif ($pick == 2 && exists $zone{$port}) {
            my $weight = 1 + int rand 5;
            $res = $call->('GET', "/dynamic?upstream=backends&server=127.0.0.1:$port&weight=$weight");
            $zone{$port}{weight} = $weight if $res->{status} == 200;
        } elsif ($pick == 3 && exists $zone{$port}) {
            my $down = int rand 2;
            $res = $call->('GET', "/dynamic?upstream=backends&server=127.0.0.1:$port&" . ($down ? 'down=' : 'up='));
            $zone{$port}{down} = $down if $res->{status} == 200;
        } elsif ($pick == 4 || $pick == 5) {
            my @servers = grep { rand() < 0.6 } @ports;
            @servers = ($ports[0]) unless @servers;
            my %weights = map { $_ => 1 + int rand 3 } @servers;
            my $body = join '', map { "server 127.0.0.1:$_ weight=$weights{$_};" } @servers;
            $res = $call->('POST', "/upstream/$name", $body);
            $dyups{$name} = \%weights if $res->{status} == 200;
        } elsif ($pick == 6) {
            $res = $call->('DELETE', "/upstream/$name");
            delete $dyups{$name} if $res->{status} == 200;
            $res->{status} = 200 if $res->{status} == 404 && !exists $dyups{$name};
        } else {
            next;
        }
        if ($res->{status} == 200) {
            $stats{accepted}++;
        } elsif ($res->{status} == 599) {
            # No answer: the change may or may not have been made.
            $stats{ambiguous}++;
            resync($http, \%zone, \%dyups, \@ports, \@names);
        } else {
            $stats{unexpected}++;
            print STDERR "writer $w: unexpected $res->{status} $res->{body}\n";
        }
    }

    open(my $model, '>', "$out/model.$w") or die $!;
    for my $port (sort keys %zone) {
        print $model "zone $port $zone{$port}{weight} $zone{$port}{down}\n";
    }
    for my $name (sort keys %dyups) {
        print $model "dyups $name ", join(',', map { "$_:$dyups{$name}{$_}" } sort keys %{ $dyups{$name} }), "\n";
    }
    open(my $st, '>', "$out/stats.$w") or die $!;
    print $st "$_ $stats{$_}\n" for keys %stats;
}

# Adopts the real state of this writer's objects.
sub resync {
    my ($http, $zone, $dyups, $ports, $names) = @_;
    my %mine = map { $_ => 1 } @$ports;
    my $list;
    for (1 .. 50) {
        $list = $http->request('GET', $admin, '/dynamic?upstream=backends&verbose=');
        last if $list->{status} == 200;
        sleep 0.05;
    }
    %$zone = ();
    for (split /\n/, $list->{body}) {
        next unless /^server 127\.0\.0\.1:(\d+) weight=(\d+) .*?(down)?;$/ && $mine{$1};
        $zone->{$1} = { weight => $2, down => $3 ? 1 : 0 };
    }
    for my $name (@$names) {
        my $res;
        for (1 .. 50) {
            $res = $http->request('GET', $admin, "/upstream/$name");
            last if $res->{status} == 200 || $res->{status} == 404;
            sleep 0.05;
        }
        if ($res->{status} == 404) { delete $dyups->{$name}; next }
        my %weights = $res->{body} =~ /^server 127\.0\.0\.1:(\d+) weight=(\d+)/mg;
        $dyups->{$name} = \%weights;
    }
}
