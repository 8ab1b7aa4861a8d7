package NginxTestUnderTool;

# Loaded into every t/ script (and the harness self-test's fixtures) by
# scripts/memcheck.sh through PERL5OPT=-MNginxTestUnderTool, so that
# t/lib/NginxTest.pm works with nginx running under valgrind or ASan without
# any change to t/:
#
# 1. Process titles under valgrind. The harness finds the workers by their
#    title ("nginx: worker process", not "... is shutting down") in
#    /proc/PID/cmdline. Under valgrind, nginx's setproctitle() writes the
#    title into the *client's* argv (on the stack valgrind builds for it),
#    and /proc/PID/cmdline keeps showing valgrind's own command line. So,
#    for a process whose cmdline is valgrind's running nginx, we read the
#    title where nginx wrote it: /proc/PID/mem at the client's argv[0],
#    found once per process near the top of its anonymous writable
#    mappings (a forked child has it at its parent's address). Workers that
#    are shutting down are then told apart exactly as without valgrind.
#
# 2. The harness's own waits (nginx ready after start, old workers gone
#    after a reload, master gone after SIGQUIT) are fixed at 10 s. With
#    MEMCHECK_HARNESS_WAIT_FACTOR=N they are N times longer. Only calls of
#    poll_until() made from inside package NginxTest are stretched; the
#    waits written in the test files themselves (--- perl code calling
#    poll_until) are left exactly as they are, so no test is weakened.
#
# Nothing happens unless the script being run uses NginxTest (prove itself
# and self_check.t are not touched beyond the load of this file).

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);

our $FACTOR = $ENV{MEMCHECK_HARNESS_WAIT_FACTOR} || 1;
our $ROOT   = dirname(dirname(dirname(dirname(abs_path(__FILE__)))));
our %TITLE_AT;    # pid -> address of the client's argv[0]

sub _uses_nginxtest {
    return 0 unless $0 =~ /\.t(?:fix)?\z/ && open(my $fh, '<', $0);
    local $/;
    my $src = <$fh> // '';
    return $src =~ /^\s*use\s+NginxTest\b/m;
}

sub _slurp {
    open(my $fh, '<', $_[0]) or return undef;
    local $/;
    return scalar <$fh>;
}

sub _ppid {
    my $s = _slurp("/proc/$_[0]/stat") or return 0;
    return $s =~ /\)\s+\S\s+(\d+)/ ? $1 : 0;
}

my $TITLE_RE = qr/nginx: (?:master process|worker process|cache manager process|cache loader process|single process)/;

# The title nginx set, read at $addr in $pid's memory, or undef.
sub _title_at {
    my ($pid, $addr) = @_;
    open(my $mem, '<:raw', "/proc/$pid/mem") or return undef;
    sysseek($mem, $addr, 0) or return undef;
    my $buf = '';
    sysread($mem, $buf, 512) or return undef;
    return undef unless $buf =~ /\A($TITLE_RE[^\0]*)/;
    (my $t = $1) =~ s/\s+\z//;
    return $t;
}

# Find the client's argv[0] in $pid: valgrind puts the client's initial
# stack (argv and environment strings at its top) in an anonymous writable
# mapping; look at the last 64 KiB of each such mapping, highest first.
sub _find_title {
    my ($pid) = @_;
    my $maps = _slurp("/proc/$pid/maps") or return undef;
    open(my $mem, '<:raw', "/proc/$pid/mem") or return undef;
    no warnings qw(portable);
    my @regions;
    for (split /\n/, $maps) {
        my ($s, $e, $perm, $path) = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$/ or next;
        next unless $perm =~ /^rw/ && ($path eq '' || $path eq '[stack]');
        push @regions, [hex $s, hex $e];
    }
    for my $r (sort { $b->[1] <=> $a->[1] } @regions) {
        my ($s, $e) = @$r;
        my $from = $e - $s > 65536 ? $e - 65536 : $s;
        sysseek($mem, $from, 0) or next;
        my $buf = '';
        my $n = sysread($mem, $buf, $e - $from) or next;
        # argv[0] starts right after a NUL (end of the previous string or
        # padding): the title never appears in the middle of a string.
        while ($buf =~ /(?<=\0)$TITLE_RE/g) {
            return $from + $-[0];
        }
    }
    return undef;
}

sub _valgrind_title {
    my ($pid) = @_;
    for my $addr (grep { defined } $TITLE_AT{$pid}, $TITLE_AT{ _ppid($pid) }) {
        my $t = _title_at($pid, $addr);
        if (defined $t) { $TITLE_AT{$pid} = $addr; return $t }
    }
    my $addr = _find_title($pid) // return undef;
    $TITLE_AT{$pid} = $addr;
    return _title_at($pid, $addr);
}

sub _install {
    local @INC = ("$ROOT/t/lib", @INC);
    require NginxTest;
    no warnings 'redefine';

    my $cmdline = \&NginxTest::_cmdline;
    *NginxTest::_cmdline = sub {
        my $c = $cmdline->(@_);
        return $c unless $c =~ m{\bvalgrind} && $c =~ /nginx/;
        my $t = _valgrind_title($_[0]);
        # Before nginx set its title (or once it is gone) keep valgrind's
        # command line: it still names nginx and the prefix.
        return defined $t ? $t : $c;
    };

    if ($FACTOR != 1) {
        my $poll = \&NginxTest::poll_until;
        *NginxTest::poll_until = sub {
            my ($code, $timeout, $desc) = @_;
            if ((caller(0))[0] eq 'NginxTest') {
                $timeout = ($timeout // 10) * $FACTOR;
            }
            @_ = ($code, $timeout, $desc);
            goto &$poll;
        };
    }
}

_install() if _uses_nginxtest();

1;
