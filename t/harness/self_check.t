# Proves that t/lib/NginxTest.pm can fail: runs each fixture in
# t/fixtures/*.tfix as a child perl process and checks its exit status and
# output, and that no nginx it started is left running.
use strict;
use warnings;
use FindBin;
use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use POSIX ();
use Test::More;

my $root = abs_path("$FindBin::Bin/../..");
chdir $root or die "chdir $root: $!";

# Prefix directories of the children go here (kept ones included) and are
# removed at the end.  Must be traversable by the workers' user.
my $tmp = tempdir('nginxtest-selfcheck-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $tmp or die "chmod $tmp: $!";

# Run one fixture; returns (exit status as in $?, combined output).
sub run_fixture {
    my ($name) = @_;
    my $file = "t/fixtures/$name.tfix";
    die "missing $file" unless -f $file;
    local $ENV{TEST_NGINX_TMPDIR} = $tmp;
    local $ENV{TEST_NGINX_KEEP}   = 0;
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        { exec $^X, $file }
        print "exec $^X: $!\n";
        POSIX::_exit(127);
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    my $status = $?;
    note("--- output of $name ---\n$out");
    return ($status, $out);
}

# Processes (other than us) whose command line or open files point into
# $tmp: any nginx master or worker a fixture left behind.
sub leftovers {
    my @pids;
    opendir(my $dh, '/proc') or return ();
    for my $pid (grep { /^\d+$/ && $_ != $$ } readdir $dh) {
        my $cmd = '';
        if (open(my $c, '<', "/proc/$pid/cmdline")) { local $/; $cmd = <$c> // '' }
        my $hit = index($cmd, $tmp) >= 0;
        if (!$hit && opendir(my $fd, "/proc/$pid/fd")) {
            for my $f (grep { /^\d+$/ } readdir $fd) {
                my $t = readlink("/proc/$pid/fd/$f") // next;
                if (index($t, $tmp) == 0) { $hit = 1; last }
            }
        }
        push @pids, $pid if $hit;
    }
    return @pids;
}

sub no_leftovers {
    my ($name) = @_;
    my @left = leftovers();
    ok(!@left, "$name: no nginx process left running") or do {
        diag("left running: @left");
        # Clean up after a broken harness: these are our own nginx
        # processes (their command line / open files are in our tmp dir).
        kill 'KILL', @left;
    };
}

sub exit_code { my $st = shift; $st & 127 ? "signal " . ($st & 127) : $st >> 8 }

# The alert fixtures log their [alert] from Lua: with an nginx that has no
# Lua module (TEST_NGINX_SKIP_MODULES) their checks are skipped, saying so
# as the harness does for a block.
my ($no_lua) = ($ENV{TEST_NGINX_SKIP_MODULES} // '') =~ /^\s*lua=(.+)$/m;
sub skip_without_lua {
    my ($fixture, $count) = @_;
    return unless defined $no_lua;
    diag("skipped: $fixture fixture: needs the lua module: $no_lua");
    skip("$fixture fixture: needs the lua module: $no_lua", $count);
}

# (a) [alert] in error.log fails the block although its checks pass.
SKIP: {
    skip_without_lua('forced-alert', 7);
    my ($st, $out) = run_fixture('forced-alert');
    isnt($st, 0, 'forced-alert: script fails (exit ' . exit_code($st) . ')');
    like($out, qr/^ok \d+ - TEST 1: .* - status$/m, 'forced-alert: status check passed');
    like($out, qr/^ok \d+ - TEST 1: .* - response body$/m, 'forced-alert: body check passed');
    like($out, qr/^not ok \d+ - TEST 1: .* - error\.log has no \[alert\]/m,
         'forced-alert: the error.log check failed');
    like($out, qr/^#\s+.*\[alert\].*forced alert/m, 'forced-alert: diagnostics show the alert line');
    like($out, qr/prefix kept: \Q$tmp\E/, 'forced-alert: failed block keeps its prefix');
    no_leftovers('forced-alert');
}

# (b) a worker that exited on a signal fails the block.
{
    my ($st, $out) = run_fixture('worker-signal');
    isnt($st, 0, 'worker-signal: script fails');
    like($out, qr/^ok \d+ - master respawned the worker$/m, 'worker-signal: own checks passed');
    like($out, qr/^not ok \d+ - TEST 1: .* - error\.log has no /m,
         'worker-signal: the error.log check failed');
    like($out, qr/^#\s+.*exited on signal 9/m, 'worker-signal: diagnostics show "exited on signal 9"');
    no_leftovers('worker-signal');
}

# (c) wrong expected body.
{
    my ($st, $out) = run_fixture('wrong-body');
    isnt($st, 0, 'wrong-body: script fails');
    like($out, qr/^not ok \d+ - TEST 1: wrong body text - response body$/m,
         'wrong-body: body assertion failed');
    like($out, qr/expected body:\n#\s+\|expected body\\n\n#\s*got body:\n#\s+\|actual body\\n/,
         'wrong-body: expected vs got shown');
    like($out, qr/^not ok \d+ - TEST 2: .* - response body$/m,
         'wrong-body: a missing final newline fails too');
    like($out, qr/no final newline/, 'wrong-body: the missing newline is made visible');
    like($out, qr/^ok \d+ - TEST 1: wrong body text - error\.log has no/m,
         'wrong-body: log check itself passed');
    no_leftovers('wrong-body');
}

# (d) the alert of (a), allowed by allow_error_log: passes.
SKIP: {
    skip_without_lua('allowed-alert', 5);
    my ($st, $out) = run_fixture('allowed-alert');
    is($st, 0, 'allowed-alert: script passes');
    unlike($out, qr/^not ok/m, 'allowed-alert: no failed assertion');
    like($out, qr/^ok \d+ - TEST 1: .* - error\.log has no /m, 'allowed-alert: log check passed');
    unlike($out, qr/prefix kept/, 'allowed-alert: prefix removed');
    no_leftovers('allowed-alert');
}

# Failing steps are named by number and request line.
{
    my ($st, $out) = run_fixture('wrong-steps');
    isnt($st, 0, 'wrong-steps: script fails');
    like($out, qr/^ok \d+ - TEST 1: failing steps - step 1 \(GET \/a\): status$/m, 'wrong-steps: step 1 passes');
    like($out, qr/^ok \d+ - TEST 1: failing steps - step 1 \(GET \/a\): body$/m, 'wrong-steps: step 1 body passes');
    like($out, qr/^not ok \d+ - TEST 1: failing steps - step 2 \(GET \/b\): status$/m,
         'wrong-steps: step 2 status fails');
    like($out, qr/got: '404'\n#\s+expected: '200'/, 'wrong-steps: got/expected status shown');
    like($out, qr/^not ok \d+ - TEST 1: failing steps - step 3 \(GET \/a\): body like$/m,
         'wrong-steps: step 3 regex fails');
    like($out, qr/^not ok \d+ - TEST 1: failing steps - step 4 \(GET \/a\): body$/m,
         'wrong-steps: step 4 chomp body fails');
    no_leftovers('wrong-steps');
}

# nginx that cannot start fails the block with its own message.
{
    my ($st, $out) = run_fixture('startup-failure');
    isnt($st, 0, 'startup-failure: script fails');
    like($out, qr/^not ok \d+ - TEST 1: .* - nginx starts$/m, 'startup-failure: start assertion failed');
    like($out, qr/unknown directive "definitely_not_a_directive"/, 'startup-failure: nginx output shown');
    no_leftovers('startup-failure');
}

# must_die with a good config, and error_log / no_error_log failures.
{
    my ($st, $out) = run_fixture('must-die-survives');
    isnt($st, 0, 'must-die-survives: script fails');
    like($out, qr/^not ok \d+ - TEST 1: .* - nginx -t rejects the configuration$/m,
         'must-die-survives: must_die fails on a valid config');
    like($out, qr/^not ok \d+ - TEST 2: .* - error\.log contains: this text is never logged$/m,
         'must-die-survives: missing error_log line fails');
    like($out, qr/^not ok \d+ - TEST 3: .* - error\.log does not contain: qr/m,
         'must-die-survives: present no_error_log line fails');
    like($out, qr/matching lines:\n#.*start worker process \d+/, 'must-die-survives: matching line shown');
    no_leftovers('must-die-survives');
}

# A misspelt section name dies before anything runs.
{
    my ($st, $out) = run_fixture('unknown-section');
    isnt($st, 0, 'unknown-section: script fails');
    like($out, qr/unknown section '--- respone_body'/, 'unknown-section: typo named');
    unlike($out, qr/^ok /m, 'unknown-section: no test ran');
    no_leftovers('unknown-section');
}

# A literal port in the harness's range dies before anything runs.
{
    my ($st, $out) = run_fixture('literal-port');
    isnt($st, 0, 'literal-port: script fails');
    like($out, qr/line 14: literal port 10000 is in the harness's range 10000\.\.29999/, 'literal-port: line and port named');
    my @found = $out =~ /line (\d+): literal port (\d+) is in the harness's range/g;
    is("@found", '14 10000 21 15000 23 10001 24 12345 24 12346 25 12347',
       'literal-port: every port-like context (address, +, listen, range, *port* =>/=), and nothing else');
    unlike($out, qr/^ok /m, 'literal-port: no test ran');
    no_leftovers('literal-port');
}

# The script exits / is killed while nginx runs: nginx is stopped anyway.
{
    my ($st, $out) = run_fixture('exit-midway');
    isnt($st, 0, 'exit-midway: script fails');
    like($out, qr/# master is \d+/, 'exit-midway: nginx was running');
    like($out, qr/stopped nginx of block 'TEST 1/, 'exit-midway: END block stopped nginx');
    no_leftovers('exit-midway');
}
{
    my ($st, $out) = run_fixture('signal-midway');
    is($st & 127, 15, 'signal-midway: script died of SIGTERM');
    like($out, qr/# master is \d+/, 'signal-midway: nginx was running');
    like($out, qr/stopped nginx of block 'TEST 1/, 'signal-midway: signal handler stopped nginx');
    unlike($out, qr/still alive/, 'signal-midway: script did not go on');
    no_leftovers('signal-midway');
}

# The test kills the master: the block passes, and the harness kills the
# orphaned workers, which it finds by their open files in the prefix.
{
    my ($st, $out) = run_fixture('master-killed');
    is($st, 0, 'master-killed: script passes');
    like($out, qr/# workers are \d+ \d+/, 'master-killed: had two workers');
    like($out, qr/killing leftover nginx processes of this block: \d+ \d+/,
         'master-killed: orphaned workers killed by the harness');
    no_leftovers('master-killed');
}

# A script that ends without any chance to clean up (POSIX::_exit, or
# SIGKILL) does leave its nginx running: this proves that leftovers() sees
# such processes, then stops that nginx by its pid file.
{
    my ($st, $out) = run_fixture('hard-exit');
    my ($master) = $out =~ /# master is (\d+)/;
    ok($master, 'hard-exit: nginx was running');
    my @left = leftovers();
    ok((grep { $_ == ($master // 0) } @left) && @left >= 2,
       'hard-exit: the leftover check sees the abandoned master and its workers')
        or diag("leftovers: @left");
    for my $pidfile (glob "$tmp/nginxtest-hard-exit-*/logs/nginx.pid") {
        open(my $fh, '<', $pidfile) or next;
        my ($pid) = <$fh> =~ /(\d+)/;
        kill 'QUIT', $pid if $pid;
    }
    my $deadline = time + 10;
    select(undef, undef, undef, 0.05) while leftovers() && time < $deadline;
    no_leftovers('hard-exit (after stopping it by pid file)');
}

# Every fixture is used above.
{
    my %used = map { $_ => 1 } qw(forced-alert worker-signal wrong-body allowed-alert
        wrong-steps startup-failure must-die-survives unknown-section exit-midway signal-midway
        hard-exit master-killed literal-port);
    my @unused = grep { !$used{$_} } map { m{([^/]+)\.tfix$} } glob('t/fixtures/*.tfix');
    is("@unused", '', 'all fixtures are checked');
}

done_testing();
