#!/usr/bin/env bash
# Checks the module's layering (docs/architecture.md): every `crate::` path
# in src/ names a file of the same layer or a lower one, and no files import
# each other in a loop. Layers, lowest first: src/nginx/, src/zone/,
# src/dyups/, src/health/, src/ops/, src/api/, then the crate root's own files (lib.rs,
# config.rs, cycle.rs). Exits 1 naming each upward import and each loop.
# Comments (doc links included) are not imports.
set -euo pipefail
cd "$(dirname "$0")/.."
exec perl -e '
use strict;
use warnings;

my @layers = qw(nginx zone dyups health ops api);
my %rank = map { $layers[$_] => $_ } 0 .. $#layers;
my $root_rank = @layers;
# The module object and the Module type every layer names to reach its own
# configuration (nginx hands each module its conf by the module index).
my %identity = map { $_ => 1 } qw(Module ngx_http_dynamic_upstream_module);

my @files = split /\n/, `find src -name "*.rs" | sort`;
my %is_file = map { $_ => 1 } @files;

sub layer_of {
    my ($file) = @_;
    return $file =~ m{^src/([a-z_]+)/} && exists $rank{$1} ? $rank{$1} : $root_rank;
}

# The module path of a file: src/zone/upstream.rs -> (zone, upstream).
sub module_of {
    my ($file) = @_;
    (my $path = $file) =~ s{^src/|\.rs$}{}g;
    my @parts = split m{/}, $path;
    pop @parts if $parts[-1] eq "mod" || $parts[-1] eq "lib";
    return @parts;
}

# The file that defines the module path @parts (its longest prefix that is one).
sub file_of {
    my @parts = @_;
    while (@parts) {
        my $base = "src/" . join("/", @parts);
        return "$base.rs" if $is_file{"$base.rs"};
        return "$base/mod.rs" if $is_file{"$base/mod.rs"};
        pop @parts;
    }
    return "src/lib.rs";
}

my (%edges, @errors);
for my $file (@files) {
    open my $fh, "<", $file or die "$file: $!";
    my @lines = map { s{//.*}{}r } <$fh>;
    my $text = join "", @lines;
    # `crate::a::{b, c}` names crate::a::b and crate::a::c (one level, over
    # lines too); newlines are kept so that positions give line numbers.
    1 while $text =~ s/\b((?:crate|super)(?:::\w+)*)::\{([^{}]*)\}/
        my ($base, $items) = ($1, $2);
        my $newlines = $items =~ tr{\n}{};
        join(" ", map { "${base}::$_" } grep { length } split m{[\s,]+}, $items) . ("\n" x $newlines)
    /e;
    while ($text =~ /\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)/g) {
        my ($head, $rest) = ($1, $2);
        my $n = 1 + (substr($text, 0, pos $text) =~ tr{\n}{});
        my @path = grep { length } split /::/, $rest;
        if ($head eq "super") {
            my @here = module_of($file);
            pop @here unless $file =~ m{/mod\.rs$};
            pop @here;
            @path = (@here, @path);
        }
        my $target = file_of(@path);
        next if $target eq $file;
        next if $target eq "src/lib.rs" && @path && $identity{$path[0]};
        $edges{$file}{$target} = $n unless exists $edges{$file}{$target};
        if (layer_of($target) > layer_of($file)) {
            push @errors, "$file:$n: imports $target, a higher layer";
        }
    }
}

# Loops: strongly connected components of more than one file (Tarjan).
my ($index, %idx, %low, %on, @stack, @loops) = (0);
sub visit {
    my ($v) = @_;
    $idx{$v} = $low{$v} = $index++;
    push @stack, $v;
    $on{$v} = 1;
    for my $w (sort keys %{ $edges{$v} || {} }) {
        if (!exists $idx{$w}) {
            visit($w);
            $low{$v} = $low{$w} if $low{$w} < $low{$v};
        } elsif ($on{$w}) {
            $low{$v} = $idx{$w} if $idx{$w} < $low{$v};
        }
    }
    if ($low{$v} == $idx{$v}) {
        my @scc;
        while (1) {
            my $w = pop @stack;
            $on{$w} = 0;
            push @scc, $w;
            last if $w eq $v;
        }
        push @loops, [sort @scc] if @scc > 1;
    }
}
visit($_) for grep { !exists $idx{$_} } @files;
for my $loop (@loops) {
    push @errors, sprintf "import loop between %d files: %s", scalar @$loop, join(" ", @$loop);
}

if (@errors) {
    print STDERR "check-layers: $_\n" for @errors;
    exit 1;
}
printf "check-layers: %d files, %d imports between them, no upward import, no loop\n",
    scalar @files, scalar map { keys %$_ } values %edges;
'
