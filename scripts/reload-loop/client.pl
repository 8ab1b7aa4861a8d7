#!/usr/bin/perl
# The change client of scripts/reload-loop.sh: sends API changes one after
# the other, as fast as they are answered, until the stop file exists.
#
#   client.pl zone  ADMIN FIRST_BACKEND DATA_DIR OUT STOP_FILE
#   client.pl dyups ADMIN FIRST_BACKEND DATA_DIR OUT STOP_FILE
#
# zone:  the query API on upstream "backends" (dynamic_state_file
#        DATA_DIR/backends.state): weight and max_fails/fail_timeout
#        changes on B0, down/up of B1, add/remove of B2..B4.
# dyups: the REST API: POST dyA (text and JSON bodies), create (least_conn)
#        and DELETE dyB, DELETE and re-create the configuration upstream
#        host1 (dyups_upstream_conf DATA_DIR/dyups.conf).
#
# Every change answered 200 is applied to a model; a 503 (a worker the
# reload replaced refusing a zone-upstream change) is counted and the same
# change is sent again. Right after each 200 the state file is read (it is
# written before the answer) and the change's listing is requested: both
# must equal the model, so a lost or stale change is caught when it
# happens. At the stop the model goes to OUT/model.MODE (Storable) and the
# figures to OUT/stats.MODE; every accepted change is in OUT/changes.MODE.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use RL;
use Storable qw(nstore);
use Time::HiRes qw(sleep time);

my ($mode, $admin, $first_backend, $data, $out, $stop) = @ARGV;
die "usage: $0 zone|dyups ADMIN FIRST_BACKEND DATA_DIR OUT STOP_FILE\n" unless defined $stop;
my @B = map { $first_backend + $_ } 0 .. 5;

my %stats = map { $_ => 0 } qw(accepted refused_503 unexpected file_mismatch listing_mismatch stale_from_replaced_worker);
my $last = 'none';
my $res_worker;    # the worker that accepted the last change
my @problems;
open my $log, '>', "$out/changes.$mode" or die "$out/changes.$mode: $!";
$log->autoflush(1);

sub problem {
    my ($text) = @_;
    push @problems, $text if @problems < 20;
}

# send(DESCRIPTION, REQUEST-ARGS...): sends until the answer is not 503.
# Returns 1 if accepted (200).
sub send_change {
    my ($desc, @req) = @_;
    my $started = time;
    while (1) {
        my $res = http(@req);
        if ($res->{status} == 200) {
            $res_worker = $res->{worker};
            $stats{accepted}++;
            $last = $desc;
            print $log "$stats{accepted} $desc\n";
            return 1;
        }
        if ($res->{status} == 503) {
            $stats{refused_503}++;
            if ($mode eq 'dyups') {
                $stats{dyups_503}++;
            } elsif ($res->{body} !~ /^503 Service Unavailable: nginx is reloading/) {
                $stats{unexpected}++;
                problem("$desc: 503 with an unexpected body: $res->{body}");
                return 0;
            }
            if (time - $started > 10) {
                $stats{unexpected}++;
                problem("$desc: still 503 after 10 s");
                return 0;
            }
            sleep 0.002;
            next;
        }
        $stats{unexpected}++;
        problem("$desc: $res->{status} $res->{body}");
        return 0;
    }
}

# Whether worker PID is one a reload replaced: within 2 s it is gone or
# titled "worker process is shutting down".
sub replaced_worker {
    my ($pid) = @_;
    my $until = time + 2;
    while (time < $until) {
        my $cmd = slurp("/proc/$pid/cmdline");
        return 1 if !defined $cmd || $cmd eq '' || $cmd =~ /shutting down/;
        sleep 0.005;
    }
    return 0;
}

my $n = 0;
if ($mode eq 'zone') {
    my @members = map { [$_, { weight => 1, max_fails => 1, fail_timeout => 10, down => 0 }] } @B[0, 1];
    my $member = sub { my ($p) = @_; (grep { $_->[0] == $p } @members)[0] };
    my $state_file = "$data/backends.state";
    until (-e $stop) {
        $n++;
        my ($query, $apply, $desc);
        my $op = $n % 4;
        if ($op == 0) {
            my $w = 1 + ($n * 7) % 20;
            $query = "server=127.0.0.1:$B[0]&weight=$w";
            $apply = sub { $member->($B[0])[1]{weight} = $w };
        } elsif ($op == 1) {
            my $p = $B[2 + int($n / 4) % 3];
            if ($member->($p)) {
                $query = "remove=&server=127.0.0.1:$p";
                $apply = sub { @members = grep { $_->[0] != $p } @members };
            } else {
                my $w = 1 + $n % 3;
                $query = "add=&server=127.0.0.1:$p&weight=$w";
                $apply = sub { push @members, [$p, { weight => $w, max_fails => 1, fail_timeout => 10, down => 0 }] };
            }
        } elsif ($op == 2) {
            my $down = !$member->($B[1])[1]{down};
            $query = "server=127.0.0.1:$B[1]&" . ($down ? 'down=' : 'up=');
            $apply = sub { $member->($B[1])[1]{down} = $down ? 1 : 0 };
        } else {
            my ($mf, $ft) = ($n % 5, 1 + $n % 30);
            $query = "server=127.0.0.1:$B[0]&max_fails=$mf&fail_timeout=$ft";
            $apply = sub { @{ $member->($B[0])[1] }{qw(max_fails fail_timeout)} = ($mf, $ft) };
        }
        next unless send_change($query, 'GET', $admin, "/dynamic?upstream=backends&$query");
        $apply->();
        my $want = zone_text(\@members);
        my $file = slurp($state_file) // '(no file)';
        if ($file ne HEADER . $want) {
            $stats{file_mismatch}++;
            problem("after accepted change #$stats{accepted} ($query) the state file is:\n$file\nexpected:\n" . HEADER . $want);
        }
        my $list = http('GET', $admin, '/dynamic?upstream=backends&verbose=');
        if ($list->{status} != 200 || $list->{body} ne $want) {
            # A worker of the configuration the reload is replacing still
            # accepts connections for a moment after the new workers (and
            # their new zone: nginx never reuses an upstream zone) took
            # over: its listing is stale. Such a worker is gone or shutting
            # down soon; a current worker answering stale is a failure.
            my $pid = $list->{worker} // 0;
            if ($pid && replaced_worker($pid)) {
                $stats{stale_from_replaced_worker}++;
            } else {
                $stats{listing_mismatch}++;
                problem("after accepted change #$stats{accepted} ($query, answered by worker "
                      . ($res_worker // '?') . ") the listing of current worker $pid is $list->{status}:\n$list->{body}\nexpected:\n$want");
            }
        }
    }
    nstore({ members => \@members }, "$out/model.zone");
} elsif ($mode eq 'dyups') {
    $stats{dyups_503} = 0;
    my %model = (dyA => undef, dyB => undef, host1 => undef);
    my $state_file = "$data/dyups.conf";
    until (-e $stop) {
        $n++;
        my ($name, @req, $apply, $desc);
        my $op = $n % 4;
        if ($op == 0 || $op == 3) {
            my ($p, $w) = ($B[2 + $n % 4], 1 + $n % 9);
            $name = 'dyA';
            if ($op == 0) {
                @req = ('POST', $admin, '/upstream/dyA', "server 127.0.0.1:$p weight=$w;");
                $desc = "POST dyA server 127.0.0.1:$p weight=$w";
            } else {
                @req = ('POST', $admin, '/upstream/dyA', qq({"servers":[{"server":"127.0.0.1:$p","weight":$w}]}),
                        'localhost', { 'Content-Type' => 'application/json' });
                $desc = "POST dyA (JSON) 127.0.0.1:$p weight $w";
            }
            $apply = sub { $model{dyA} = { balancer => '', servers => [[$p, $w]] } };
        } elsif ($op == 1) {
            $name = 'dyB';
            if (ref $model{dyB}) {
                @req = ('DELETE', $admin, '/upstream/dyB');
                $desc = 'DELETE dyB';
                $apply = sub { $model{dyB} = undef };
            } else {
                my ($p, $q) = ($B[1 + $n % 5], $B[(2 + $n) % 6]);
                $q = $B[0] if $q == $p;
                @req = ('POST', $admin, '/upstream/dyB', "least_conn; server 127.0.0.1:$p; server 127.0.0.1:$q weight=2;");
                $desc = "POST dyB least_conn 127.0.0.1:$p 127.0.0.1:$q";
                $apply = sub { $model{dyB} = { balancer => 'least_conn', servers => [[$p, 1], [$q, 2]] } };
            }
        } else {
            $name = 'host1';
            if (defined $model{host1} && !ref $model{host1}) {
                my $p = $B[$n % 6];
                @req = ('POST', $admin, '/upstream/host1', "server 127.0.0.1:$p;");
                $desc = "POST host1 server 127.0.0.1:$p";
                $apply = sub { $model{host1} = { balancer => '', servers => [[$p, 1]] } };
            } else {
                @req = ('DELETE', $admin, '/upstream/host1');
                $desc = 'DELETE host1';
                $apply = sub { $model{host1} = 'deleted' };
            }
        }
        next unless send_change($desc, @req);
        $apply->();
        my $want = dyups_blocks(\%model);
        my $file = slurp($state_file);
        my $got = file_blocks($file);
        if (!$got || "@$got" ne "@$want") {
            $stats{file_mismatch}++;
            problem("after accepted change #$stats{accepted} ($desc) the dyups file is:\n" . ($file // '(no file)')
                  . "\nexpected (any order):\n" . HEADER . join('', @$want));
        }
        my ($status, $body) = @{ dyups_get_text($model{$name}, $name eq 'host1' ? [$B[0]] : undef) };
        my $get = http('GET', $admin, "/upstream/$name");
        if ($get->{status} != $status || (defined $body && $get->{body} ne $body)) {
            $stats{listing_mismatch}++;
            problem("after accepted change #$stats{accepted} ($desc) GET /upstream/$name is $get->{status}:\n$get->{body}\nexpected $status:\n"
                  . ($body // ''));
        }
    }
    nstore({ model => \%model }, "$out/model.dyups");
} else {
    die "unknown mode $mode\n";
}

open my $fh, '>', "$out/stats.$mode" or die "$out/stats.$mode: $!";
print $fh "$_ $stats{$_}\n" for sort keys %stats;
print $fh "last $last\n";
close $fh;
if (@problems) {
    open my $p, '>', "$out/problems.$mode" or die;
    print $p map { "$_\n---\n" } @problems;
    close $p;
}
exit 0;
