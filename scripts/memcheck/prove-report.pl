#!/usr/bin/perl
# Reads the output of `prove -v --merge` (one or more files) and prints, for
# scripts/memcheck.sh: the files run, the blocks and assertions run, the
# result, and the failed blocks (file: block name: failed assertions).
#
#   prove-report.pl PROVE_LOG [--baseline BASELINE_PROVE_LOG] [--repo DIR]
#
# With --baseline, each failed block is marked "also fails without the tool"
# when the same block failed in the baseline run (plain /usr/sbin/nginx), or
# "only under the tool" otherwise.
use strict;
use warnings;
use Getopt::Long;
use File::Basename qw(dirname);

my $log = shift or die "usage: $0 PROVE_LOG [--baseline LOG] [--repo DIR]\n";
my ($baseline, $repo) = (undef, dirname(dirname(dirname(__FILE__))));
GetOptions('baseline=s' => \$baseline, 'repo=s' => \$repo) or die;

my %names;    # file -> [block names]
sub block_names {
    my ($file) = @_;
    return $names{$file} //= do {
        my @n;
        if (open(my $fh, '<', "$repo/$file")) {
            while (<$fh>) { push @n, $1 if /^===\s*(.*?)\s*$/ }
        }
        \@n;
    };
}

sub parse {
    my ($path) = @_;
    open(my $fh, '<', $path) or return {};
    my (%r, $file);
    while (my $l = <$fh>) {
        chomp $l;
        if ($l =~ /^(?:\[[\d:]+\]\s+)?(t\/\S+\.t) \.+\s*$/) {
            $file = $1;
            $r{files}{$file} ||= { ok => 0, fail => 0, failed => {} };
            next;
        }
        if ($l =~ /^(?:\[[\d:]+\]\s+)?(t\/\S+\.t) \.+\s+(?:ok|skipped)/) {    # a file without -v output
            $r{files}{$1} ||= { ok => 0, fail => 0, failed => {} };
            next;
        }
        next unless defined $file;
        if ($l =~ /^(not )?ok \d+(?: - (.*))?$/) {
            my ($not, $name) = ($1, $2 // '');
            $not ? $r{files}{$file}{fail}++ : $r{files}{$file}{ok}++;
            # Which block: the longest block name the assertion starts with.
            # Assertions of --- perl code carry their own names; they belong
            # to the next named one (the harness's log checks end every block).
            my ($block) = sort { length $b <=> length $a } grep { index($name, $_) == 0 } @{ block_names($file) };
            if (!defined $block) {
                push @{ $r{pending}{$file} }, $name if $not && $name !~ /# TODO/;
                next;
            }
            my @what = @{ delete $r{pending}{$file} // [] };
            if ($not && $name !~ /# TODO/) {
                (my $w = substr($name, length $block)) =~ s/^\s*-\s*//;
                push @what, $w;
            }
            push @{ $r{files}{$file}{failed}{$block} }, @what if @what;
        }
        $r{totals} = $l if $l =~ /^Files=\d+, Tests=\d+/;
        $r{result} = $1 if $l =~ /^Result: (\w+)/;
    }
    for my $f (keys %{ $r{pending} // {} }) {
        push @{ $r{files}{$f}{failed}{'(outside any block)'} }, @{ $r{pending}{$f} };
    }
    return \%r;
}

my $r = parse($log);
my $b = $baseline ? parse($baseline) : undef;

my ($blocks, $asserts, $fails) = (0, 0, 0);
for my $f (sort keys %{ $r->{files} }) {
    my @n = @{ block_names($f) };
    $blocks += @n;
    $asserts += $r->{files}{$f}{ok} + $r->{files}{$f}{fail};
    $fails += $r->{files}{$f}{fail};
}
printf "test files: %d, blocks: %d, assertions: %d (failed: %d)\n",
    scalar(keys %{ $r->{files} }), $blocks, $asserts, $fails;
print "prove: ", ($r->{totals} // '(no totals line: prove did not finish?)'), "\n";
print "result: ", ($r->{result} // 'UNKNOWN'), "\n";
my @failed;
for my $f (sort keys %{ $r->{files} }) {
    for my $blk (sort keys %{ $r->{files}{$f}{failed} }) {
        push @failed, [$f, $blk, $r->{files}{$f}{failed}{$blk}];
    }
}
if (@failed) {
    print "failed blocks: ", scalar(@failed), "\n";
    for my $x (@failed) {
        my ($f, $blk, $what) = @$x;
        my $tag = '';
        if ($b) {
            $tag = $b->{files}{$f} && $b->{files}{$f}{failed}{$blk}
                 ? '  [also fails without the tool]' : '  [only under the tool]';
        }
        my %u;
        my @w = grep { !$u{$_}++ } @$what;
        my $shown = join('; ', @w > 4 ? (@w[0 .. 3], '...') : @w);
        print "  $f: $blk$tag\n      failed: $shown\n";
    }
}
exit(($r->{result} // '') eq 'PASS' ? 0 : 1);
