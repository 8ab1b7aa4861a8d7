package NginxTest::Files;

=head1 NAME

NginxTest::Files - read and write whole files from test scripts

=head1 SYNOPSIS

    use lib 't/lib';
    use NginxTest;
    use NginxTest::Files;

    my $saved = slurp(data_dir() . '/backends.state') // '(no file)';
    spew(conf_file(), $conf);

=head1 DESCRIPTION

Both work on bytes (C<binmode>), so a file's contents compare byte for byte
with what the module wrote.  Exported to the test script; its C<--- perl>
sections reach them as C<main::slurp> and C<main::spew>.

=cut

use strict;
use warnings;

use Exporter 'import';
our @EXPORT = qw(slurp spew);

# slurp(FILE): the whole contents ('' for an empty file), or undef when the
# file cannot be opened (tests use that to tell "no file" from "empty").
sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    binmode $fh;
    local $/;
    my $t = <$fh>;
    return $t // '';
}

# spew(FILE, TEXT): replaces FILE's contents with TEXT; returns nothing and
# dies if the file cannot be written.
sub spew {
    my ($f, $t) = @_;
    open my $fh, '>', $f or die "write $f: $!";
    binmode $fh;
    print $fh $t;
    close $fh or die "close $f: $!";
}

1;
