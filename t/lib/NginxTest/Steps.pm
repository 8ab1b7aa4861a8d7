package NginxTest::Steps;

# Parser for the "--- steps" section of NginxTest blocks.
#
# The format (documented for test authors in NginxTest.pm's POD):
#
#   >>> METHOD URI
#   Optional-Header: value          (zero or more header lines)
#                                   (an empty line, only if a body follows)
#   request body ...                (up to the "<<<" line; final newline dropped)
#   <<< CODE [MODE]
#   expected response body ...      (up to the next ">>>" or the section end)
#
# MODE is empty (exact body, including the final newline of the last line),
# "chomp" (exact body without that final newline), "like" (the text is a
# regex, matched with /s and /m) or "any" (body not checked).  Blank lines
# at the end of an expected body are separators between steps and are
# dropped; the same goes for the end of the whole section.
#
# parse() returns a list of hashrefs:
#   { number   => 1-based step number,
#     line     => the ">>> ..." line without ">>> " (for test names),
#     lineno   => line number of the ">>>" line inside the section,
#     method   => 'GET', uri => '/x',
#     headers  => [ [Name, value], ... ],
#     body     => undef or the request body,
#     code     => 200,
#     mode     => '' | 'chomp' | 'like' | 'any',
#     expect   => expected body text (exact modes) or regex source (like) }
#
# Syntax errors die with a message naming the line inside the section.

use strict;
use warnings;

our %MODES = map { $_ => 1 } ('', qw(chomp like any));

sub parse {
    my ($text) = @_;
    my @lines = split /\n/, $text, -1;
    # A trailing "\n" yields one final empty element; it is not a line.
    pop @lines if @lines && $lines[-1] eq '' && $text =~ /\n\z/;

    my @steps;
    my $i = 0;
    my $err = sub { die sprintf "steps, line %d: %s\n", $_[0] + 1, $_[1] };

    # Nothing but blank lines may precede the first request.
    while ($i < @lines && $lines[$i] !~ /^>>>/) {
        $err->($i, "expected '>>> METHOD URI', got '$lines[$i]'")
            if $lines[$i] =~ /\S/;
        $i++;
    }

    while ($i < @lines) {
        my $req_lineno = $i;
        my ($method, $uri) = $lines[$i] =~ /^>>>[ \t]+(\S+)[ \t]+(\S+)(?:[ \t]+HTTP\/\d\.\d)?[ \t]*$/
            or $err->($i, "malformed request line '$lines[$i]' (want '>>> METHOD URI')");
        $i++;

        # Header lines, up to an empty line (body follows) or the "<<<" line.
        my @headers;
        while ($i < @lines && $lines[$i] ne '' && $lines[$i] !~ /^<<</) {
            $err->($i, "unexpected '>>>' before the '<<<' of the step starting at line "
                       . ($req_lineno + 1))
                if $lines[$i] =~ /^>>>/;
            my ($name, $value) = $lines[$i] =~ /^([A-Za-z0-9][A-Za-z0-9_-]*):[ \t]*(.*?)[ \t]*$/
                or $err->($i, "malformed header line '$lines[$i]' "
                              . "(a request body must follow an empty line)");
            push @headers, [$name, $value];
            $i++;
        }

        # Optional body: empty line, then everything up to the "<<<" line.
        my $body;
        if ($i < @lines && $lines[$i] eq '') {
            $i++;
            my @body;
            while ($i < @lines && $lines[$i] !~ /^<<</) {
                $err->($i, "unexpected '>>>' before the '<<<' of the step starting at line "
                           . ($req_lineno + 1))
                    if $lines[$i] =~ /^>>>/;
                push @body, $lines[$i++];
            }
            # join() without a trailing "\n" == "final newline removed".
            $body = join "\n", @body;
            # An empty line followed directly by "<<<" means: no body.
            $body = undef if !@body;
        }

        $err->($req_lineno, "step has no '<<< CODE' line") if $i >= @lines;
        my ($code, $mode) = $lines[$i] =~ /^<<<[ \t]+(\d{3})(?:[ \t]+(\w+))?[ \t]*$/
            or $err->($i, "malformed response line '$lines[$i]' (want '<<< CODE [chomp|like|any]')");
        $mode = '' unless defined $mode;
        $err->($i, "unknown mode '$mode' (want chomp, like or any)") unless $MODES{$mode};
        my $resp_lineno = $i;
        $i++;

        # Expected body: up to the next ">>>" or the end of the section.
        my @expect;
        while ($i < @lines && $lines[$i] !~ /^>>>/) {
            push @expect, $lines[$i++];
        }
        # Trailing blank lines separate steps; they are not part of the body.
        pop @expect while @expect && $expect[-1] !~ /\S/;

        my $expect;
        if ($mode eq 'any') {
            $err->($resp_lineno, "mode 'any' takes no expected body") if @expect;
        } elsif ($mode eq 'like') {
            $err->($resp_lineno, "mode 'like' needs a regex on the following line(s)") unless @expect;
            $expect = join "\n", @expect;
        } elsif ($mode eq 'chomp') {
            $expect = join "\n", @expect;
        } else {
            $expect = @expect ? join("\n", @expect) . "\n" : '';
        }

        push @steps, {
            number  => scalar(@steps) + 1,
            line    => "$method $uri",
            lineno  => $req_lineno + 1,
            method  => $method,
            uri     => $uri,
            headers => \@headers,
            body    => $body,
            code    => $code,
            mode    => $mode,
            expect  => $expect,
        };
    }

    die "steps: section contains no '>>> METHOD URI' step\n" unless @steps;
    return @steps;
}

1;
