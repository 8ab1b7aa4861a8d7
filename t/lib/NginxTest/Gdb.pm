package NginxTest::Gdb;

=head1 NAME

NginxTest::Gdb - stop an nginx worker at a chosen point with gdb, and
write a word of nginx's shared memory

=head1 SYNOPSIS

    use lib 't/lib';
    use NginxTest;
    use NginxTest::Gdb;

    # The lock word of the peer list a request through the upstream takes.
    my $word = list_lock_word($worker, sub { http_get('/') });
    set_shared_word($word, 1);      # one reader holds it
    ...
    set_shared_word($word, 0);

    # gdb runs its commands on the worker; returns when gdb has ended.
    my $out = gdb_batch($worker, sub { ... }, 'break ngx_shmtx_unlock', 'continue', 'kill');

=head1 DESCRIPTION

C<gdb_batch(PID, ACTION, COMMANDS...)> attaches gdb to process PID and runs
COMMANDS (after C<set pagination off>) in batch mode; once gdb has set its
first breakpoint it calls ACTION (which makes the process reach it: a
request, say; may be undef), then waits for gdb to end and returns its
output. A test fails if gdb never set its breakpoint.

C<list_lock_word(PID, REQUEST)> is the address of the rwlock word of the
peer list that nginx's round robin write-locks for a request: gdb stops the
worker at that lock's unlock, prints the word's address and lets go.
REQUEST sends the request.

C<set_shared_word(ADDRESS, VALUE)> writes the 8-byte VALUE at ADDRESS of
the master's memory (a shared zone is mapped at the same address in every
nginx process, so every worker sees it): a lock left held as a process
killed holding it would leave it, or released again.

Exported to the test script.

=cut

use strict;
use warnings;

use Exporter 'import';
use Test::More;
our @EXPORT = qw(gdb_batch list_lock_word set_shared_word);

sub _slurp {
    my ($file) = @_;
    open(my $fh, '<', $file) or return '';
    local $/;
    return <$fh> // '';
}

sub gdb_batch {
    my ($pid, $action, @commands) = @_;
    my $out = NginxTest::data_dir() . "/gdb-$pid-" . time() . "-$$.out";
    unlink $out;
    my $gdb = fork() // die "fork: $!";
    if ($gdb == 0) {
        open(STDOUT, '>', $out) or die; open(STDERR, '>&', \*STDOUT) or die;
        exec('gdb', '-p', $pid, '-batch', '-ex', 'set pagination off', map { ('-ex', $_) } @commands)
            or die "exec gdb: $!";
    }
    ok(NginxTest::poll_until(sub { _slurp($out) =~ /^Breakpoint 1 at/m }, 20, 'gdb attached'), "gdb holds process $pid")
        or diag(_slurp($out));
    $action->() if $action;
    waitpid($gdb, 0);
    return _slurp($out);
}

sub list_lock_word {
    my ($pid, $request) = @_;
    my $out = gdb_batch($pid, $request, 'break ngx_http_upstream_get_round_robin_peer', 'continue',
                        'break ngx_rwlock_unlock', 'continue', 'printf "WORD %lu\n", $rdi', 'detach', 'quit');
    my ($word) = $out =~ /^WORD (\d+)$/m;
    ok($word, 'the list\'s lock word') or diag($out);
    return $word;
}

sub set_shared_word {
    my ($address, $value) = @_;
    open(my $mem, '+<', '/proc/' . NginxTest::master_pid() . '/mem') or die "open mem: $!";
    sysseek($mem, $address, 0) or die "seek: $!";
    syswrite($mem, pack('Q', $value)) == 8 or die "write: $!";
}

1;
