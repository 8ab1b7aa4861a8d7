#!/usr/bin/perl
# The final check of scripts/reload-loop.sh: the models the clients left
# (every change answered 200, applied in order) against what nginx has:
#
#   check.pl LABEL ADMIN FRONT FIRST_BACKEND DATA_DIR OUT
#
#  - zone upstream "backends": the state file is the header plus the model's
#    lines, the verbose listing is the model's lines, and proxied traffic
#    (FRONT /zone) reaches exactly the model's up servers, in proportion to
#    their weights;
#  - dyups: the file holds exactly the model's upstream blocks, GET /detail
#    and GET /upstream/NAME show each upstream's servers (and no deleted
#    one), and proxied traffic with Host NAME reaches exactly its servers
#    (502 for a deleted one).
# Prints one line per check; exits 1 if any failed.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use RL;
use Storable qw(retrieve);

my ($label, $admin, $front, $first_backend, $data, $out) = @ARGV;
die "usage: $0 LABEL ADMIN FRONT FIRST_BACKEND DATA_DIR OUT\n" unless defined $out;
my @B = map { $first_backend + $_ } 0 .. 5;
my $failed = 0;

sub check {
    my ($ok, $what, $detail) = @_;
    printf "  %-4s %s\n", $ok ? 'ok' : 'FAIL', $what;
    if (!$ok) {
        $failed++;
        print map { "       | $_\n" } split /\n/, $detail // '';
    }
}

print "check ($label):\n";

# --- zone upstream
my $members = retrieve("$out/model.zone")->{members};
my $want = zone_text($members);
my $file = slurp("$data/backends.state") // '(no file)';
check($file eq HEADER . $want, 'zone: the state file holds the last accepted state',
      "file:\n$file\nexpected:\n" . HEADER . $want);
my $list = http('GET', $admin, '/dynamic?upstream=backends&verbose=');
check($list->{status} == 200 && $list->{body} eq $want, 'zone: the verbose listing is the last accepted state',
      "listing ($list->{status}):\n$list->{body}\nexpected:\n$want");
my %weight = map { $_->[0] => $_->[1]{weight} } grep { !$_->[1]{down} } @$members;
my $total = 0;
$total += $_ for values %weight;
my $n = 10 * $total;
my %got;
for (1 .. $n) {
    my $r = http('GET', $front, '/zone');
    $got{ $r->{status} == 200 ? $r->{body} =~ s/\n\z//r : "status $r->{status}" }++;
}
my @bad = grep { !exists $weight{$_} } keys %got;
push @bad, grep { abs(($got{$_} // 0) - 10 * $weight{$_}) > 2 } keys %weight;
check(!@bad, "zone: $n proxied requests go to the up servers in proportion to their weights ("
             . join(', ', map { "$_: w$weight{$_}" } sort keys %weight) . ')',
      'got: ' . join(', ', map { "$_ => $got{$_}" } sort keys %got));

# --- dyups
my $model = retrieve("$out/model.dyups")->{model};
my $dfile = slurp("$data/dyups.conf");
my $blocks = file_blocks($dfile);
my $wblocks = dyups_blocks($model);
check($blocks && "@$blocks" eq "@$wblocks", 'dyups: the file holds exactly the last accepted state',
      "file:\n" . ($dfile // '(no file)') . "\nexpected (any order):\n" . HEADER . join('', @$wblocks));
my $detail = http('GET', $admin, '/detail');
my $d = parse_detail($detail->{body});
for my $name (sort keys %$model) {
    my ($status, $body) = @{ dyups_get_text($model->{$name}, $name eq 'host1' ? [$B[0]] : undef) };
    my $shown = defined $body ? $body : '(absent)';
    check(($d->{$name} // '(absent)') eq $shown, "dyups: GET /detail shows $name as the last accepted state",
          'got: ' . ($d->{$name} // '(absent)') . "\nexpected: $shown");
    my $get = http('GET', $admin, "/upstream/$name");
    check($get->{status} == $status && (!defined $body || $get->{body} eq $body),
          "dyups: GET /upstream/$name answers $status" . (defined $body ? ' with its servers' : ''),
          "got $get->{status}: $get->{body}");
    my %ports = defined $body ? map { $_ => 1 } $body =~ /127\.0\.0\.1:(\d+)/g : ();
    my (%seen, @wrong);
    for (1 .. 10) {
        my $r = http('GET', $front, '/', undef, $name);
        my $key = $r->{status} == 200 ? $r->{body} =~ s/\n\z//r : "status $r->{status}";
        $seen{$key}++;
        push @wrong, $key if %ports ? !$ports{$key} : $key ne 'status 502';
    }
    check(!@wrong, "dyups: traffic with Host $name goes to " . (%ports ? join(',', sort keys %ports) : '502 (deleted)'),
          'got: ' . join(', ', map { "$_ => $seen{$_}" } sort keys %seen));
}

exit($failed ? 1 : 0);
