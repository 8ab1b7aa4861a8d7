#!/usr/bin/perl
# Summarises valgrind memcheck logs or AddressSanitizer/LeakSanitizer logs
# for scripts/memcheck.sh.
#
#   summarize.pl valgrind|asan LOGDIR [--title TEXT] [--details FILE] [--repo DIR]
#
# LOGDIR is searched recursively for vg.*.log / valgrind.*.log (valgrind) or
# asan.* (asan) files. A log directory named like a harness prefix
# (nginxtest-<file>-b<N>-XXXXXX) names the test block that produced it.
#
# Every error or leak record is attributed by its stack frames (all of the
# record's stacks: where it happened, and for use-after-free and the like
# where the block was allocated and freed):
#   module  a frame of our module: a Rust symbol (module crate,
#           dynamic_upstream_core, ngx, nginx_sys or the Rust std compiled
#           into the .so - nothing else in the process is Rust), its C API
#           (ndu_*, ngx_dyups_*), a src/ or core/src/ .rs source, or
#           libngx_http_dynamic_upstream_module.so itself;
#   other   no module frame, but a frame of another loaded library that is
#           not nginx or the C runtime (LuaJIT, the Lua/NDK/echo/stream
#           modules, OpenSSL, PCRE, ...);
#   nginx   only nginx's own frames (and libc / ld.so / allocator frames).
# Known nginx leaks are labelled (see @KNOWN) but still counted as nginx.
# Crashes (fatal signals) are listed whatever their origin.
#
# Prints the table (kind x module/nginx/other: records, and in brackets the
# distinct stacks), the module-attributed records with their first full
# report, and the distinct non-module records. Exit status: 1 if any
# module-attributed record was found, else 0.
use strict;
use warnings;
use File::Find;
use File::Basename qw(basename dirname);
use Getopt::Long;

my ($mode, $dir) = splice(@ARGV, 0, 2);
die "usage: $0 valgrind|asan LOGDIR [--title T] [--details FILE] [--repo DIR]\n"
    unless defined $dir && $mode =~ /^(valgrind|asan)$/;
my ($title, $details, $repo) = ('', undef, dirname(dirname(dirname(__FILE__))));
GetOptions('title=s' => \$title, 'details=s' => \$details, 'repo=s' => \$repo) or die;
$repo = Cwd::abs_path($repo) if eval { require Cwd; 1 };

my $MODULE_FRAME = qr{
      libngx_http_dynamic_upstream_module
    | ngx_http_dynamic_upstream_module::
    | dynamic_upstream_core::
    | \b(?:ndu|ngx_dyups)_\w+
    | ngx_http_dyups_api_enable
    | \w::\w                                     # any Rust path
    | \((?:src|core/src)/[\w/]+\.rs:\d+\)         # valgrind, --fullpath-after
    | \Q$repo\E/(?:src|core/src)/[\w/]+\.rs       # asan (symbolizer paths)
    | \.rs:\d+
}x;
# Objects that are nginx itself or the C runtime / the tool.
my $NGINX_OR_RUNTIME = qr{
      /usr/sbin/nginx | objs/nginx | /src/(?:core|event|http|os|stream|mail)/ngx_\w+\.c
    | \blibc\.so | \bld-linux | /ld-linux | \blibc-2 | libpthread | vgpreload_ | /valgrind/
    | libasan | asan_\w+\.c(?:pp)? | sanitizer_common | \b(?:malloc|calloc|realloc|free|posix_memalign|memalign)\b
}x;
my $FRAME = qr{^\s*(?:at|by) 0x[0-9A-Fa-f]+: |^\s*#\d+ 0x[0-9a-f]+ };

# Known leaks of nginx itself (not the module), matched on the record text
# in this order; Debian's nginx is stripped of its static functions (???),
# the ASan build names them.
my $F = qr/[^\n]*\n[^\n]*/;    # to the same place in the next frame
my @KNOWN = (
    [ 'ngx_set_environment: the environment copy of each worker (8 bytes), never freed'
        => qr/ngx_set_environment/ ],
    [ 'ngx_event_process_init: a worker\'s connections and read/write event arrays, not freed at exit'
        => qr/\bngx_alloc\b$F(?:\?\?\?|ngx_event_process_init\b)$F(?:\?\?\?|ngx_worker_process_init\b)$F(?:\?\?\?|ngx_worker_process_cycle\b)$F\bngx_spawn_process\b/ ],
    [ 'main(): the init cycle pool of a short-lived process (nginx -t, the daemonizing launcher)'
        => qr/\bngx_create_pool\b$F\bmain\b/ ],
    # Stock nginx 1.22 (checked without the module): with a zone, the random
    # balancer ngx_alloc()s its ranges in the first request of each worker
    # (ngx_http_upstream_random_module.c:190 -> :134) and keeps the only
    # pointer in its conf, which the worker's exit frees with the cycle pool.
    # The module frame is its peer.init wrapper, which calls nginx's (through
    # keepalive's peer.init when the upstream has keepalive).
    [ 'nginx random balancer (zone): ranges ngx_alloc()ed once per worker, lost at exit (stock nginx does the same)'
        => qr/\bngx_alloc\b$F(?:\?\?\?|ngx_http_upstream_update_random\b)$F(?:\?\?\?|ngx_http_upstream_init_random_peer\b)$F(?:(?:\?\?\?|ngx_http_upstream_init_keepalive_peer\b)$F)?(?:init_zone_peer|ngx_http_upstream_init_request)/ ],
    # The same in nginx >= 1.27.3's consistent hash: with a zone, a request
    # that finds the list's generation (*peers->config) moved rebuilds the
    # points with ngx_alloc() (ngx_http_upstream_hash_module.c:527 -> :349);
    # the next rebuild frees them, the worker's exit does not.
    [ 'nginx consistent hash (zone, nginx >= 1.27.3): points ngx_alloc()ed at each change of the list, the last ones lost at exit'
        => qr/\bngx_alloc\b$F(?:\?\?\?|ngx_http_upstream_update_chash\b)$F(?:\?\?\?|ngx_http_upstream_init_chash_peer\b)$F(?:(?:\?\?\?|ngx_http_upstream_init_keepalive_peer\b)$F)?(?:init_zone_peer|ngx_http_upstream_init_request)/ ],
);
# Frames in code that was unloaded before the report: valgrind's "???"
# without an object (without --keep-debuginfo), ASan's "<unknown module>"
# (nginx dlclose()s the modules at exit; also LuaJIT's JIT code).
my $UNKNOWN_FRAME = qr/: \?\?\?\s*$|<unknown module>/;

my @files;
find({ no_chdir => 1, wanted => sub {
    return unless -f $_;
    my $b = basename($_);
    push @files, $_ if $mode eq 'valgrind' ? $b =~ /^(?:vg|valgrind)\..*\.log$/ : $b =~ /^asan\.\d+$/;
} }, $dir) if -d $dir;
@files = sort @files;

# Block names of the test files, for "nginxtest-<file>-b<N>" directories.
my %block_name;
sub block_of {
    my ($path) = @_;
    for my $part (reverse split m{/}, $path) {
        next unless $part =~ /^nginxtest-(.+)-b(\d+)-\w+$/;
        my ($file, $n) = ($1, $2);
        my $t = -f "$repo/t/$file.t" ? "t/$file.t" : -f "$repo/t/harness/$file.t" ? "t/harness/$file.t"
              : -f "$repo/t/fixtures/$file.tfix" ? "t/fixtures/$file.tfix" : "t/$file.t";
        if (!$block_name{$t} && open(my $fh, '<', "$repo/$t")) {
            my @names;
            while (<$fh>) { push @names, $1 if /^===\s*(.*?)\s*$/ }
            $block_name{$t} = \@names;
        }
        my $name = $block_name{$t} ? $block_name{$t}[$n - 1] : undef;
        return "$t block $n" . (defined $name ? " ($name)" : '');
    }
    my $b = basename(dirname($path));
    return $b eq 'logs' || $b eq 'vg' || $b eq 'asan' ? basename(dirname(dirname($path))) : $b;
}

# ---------------------------------------------------------------- parsing

my @records;    # { kind, text, frames => [..], blocks, bytes, file, where }
my %processes = (logs => 0, complete => 0, signals => 0);

sub kind_of_valgrind {
    local $_ = shift;
    return 'Invalid read'  if /^Invalid read of size/;
    return 'Invalid write' if /^Invalid write of size/;
    return 'Invalid free'  if /^Invalid free\(\)|^Mismatched free|^Invalid (?:delete|realloc)/;
    return 'Uninitialised' if /uninitialised/i;
    return 'Syscall param (unaddressable)' if /^Syscall param .* unaddressable/;
    return 'Overlap'       if /^Source and destination overlap/;
    return 'Fishy argument' if /has a fishy/;
    return "Fatal signal $1" if /^Process terminating with default action of signal (\d+ \(\w+\))/;
    return 'Definitely lost' if /are definitely lost in loss record/;
    return 'Indirectly lost' if /are indirectly lost in loss record/;
    return 'Possibly lost'   if /are possibly lost in loss record/;
    return undef;
}

sub parse_valgrind {
    my ($file) = @_;
    open(my $fh, '<', $file) or return;
    my (@lines, $complete);
    while (<$fh>) {
        chomp;
        next unless s/^==\d+== ?//;
        $complete = 1 if /^ERROR SUMMARY:/;
        push @lines, $_;
    }
    $processes{logs}++;
    $processes{complete}++ if $complete;
    my @rec;
    my $flush = sub {
        return unless @rec;
        my $kind = kind_of_valgrind($rec[0]);
        if ($kind) {
            $processes{signals}++ if $kind =~ /^Fatal/;
            my ($blocks, $bytes) = (0, 0);
            if ($rec[0] =~ /^([\d,]+) (?:\([\d,]+ direct, [\d,]+ indirect\) )?bytes in ([\d,]+) blocks/) {
                ($bytes, $blocks) = map { (my $x = $_) =~ s/,//g; $x } ($1, $2);
            }
            push @records, { kind => $kind, text => join("\n", @rec), file => $file,
                             frames => [grep { /$FRAME/ } @rec], blocks => $blocks, bytes => $bytes };
        }
        @rec = ();
    };
    for (@lines) {
        if ($_ eq '') { $flush->(); next }
        push @rec, $_;
    }
    $flush->();
}

sub parse_asan {
    my ($file) = @_;
    open(my $fh, '<', $file) or return;
    my @lines = map { chomp; $_ } <$fh>;
    $processes{logs}++;
    my ($i, $n) = (0, scalar @lines);
    while ($i < $n) {
        my $l = $lines[$i];
        if ($l =~ /ERROR: AddressSanitizer: (\S+)/) {
            my $kind = "ASan $1";
            $kind = 'ASan SEGV' if $1 eq 'SEGV';
            my @rec = ($l);
            $i++;
            while ($i < $n && $lines[$i] !~ /^SUMMARY: AddressSanitizer|ERROR: (?:Address|Leak)Sanitizer|^={20,}/) {
                push @rec, $lines[$i++];
            }
            push @rec, $lines[$i++] if $i < $n && $lines[$i] =~ /^SUMMARY/;
            push @records, { kind => $kind, text => join("\n", @rec), file => $file,
                             frames => [grep { /$FRAME/ } @rec], blocks => 0, bytes => 0 };
            next;
        }
        if ($l =~ /^(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) object\(s\)/) {
            my ($k, $bytes, $blocks) = ($1, $2, $3);
            my @rec = ($l);
            $i++;
            while ($i < $n && $lines[$i] =~ /\S/) { push @rec, $lines[$i++] }
            push @records, { kind => ($k eq 'Direct' ? 'Direct leak' : 'Indirect leak'),
                             text => join("\n", @rec), file => $file,
                             frames => [grep { /$FRAME/ } @rec], blocks => $blocks, bytes => $bytes };
            next;
        }
        $i++;
    }
}

$mode eq 'valgrind' ? parse_valgrind($_) : parse_asan($_) for @files;

# ---------------------------------------------------------------- attribution

sub frame_fn {
    my ($f) = @_;
    return $1 if $f =~ /^\s*(?:at|by) 0x[0-9A-Fa-f]+: (.*?)(?: \((?:in )?[^()]*\))?$/;
    return $1 if $f =~ /^\s*#\d+ 0x[0-9a-f]+ in (.*?)(?: \/\S+| \(\S+\))*$/;
    return $1 if $f =~ /^\s*#\d+ 0x[0-9a-f]+ (\(.*\))$/;
    return $f;
}

for my $r (@records) {
    my @fr = @{ $r->{frames} };
    if (grep { /$MODULE_FRAME/ } @fr) {
        $r->{who} = 'module';
    } elsif (grep { /$UNKNOWN_FRAME/ } @fr) {
        $r->{who} = 'other';
        $r->{unknown} = 1;
    } elsif (grep { !/$NGINX_OR_RUNTIME/ && !/\?\?\?\s*$/ && /\((?:in )?\/|\s\/\S+\.so|\(\/\S+\+0x/ } @fr) {
        $r->{who} = 'other';
    } else {
        $r->{who} = 'nginx';
    }
    for my $k (@KNOWN) {
        if ($r->{text} =~ $k->[1]) { $r->{known} = $k->[0]; last }
    }
    # For module records: is the first frame past the allocator / tool in
    # the module's code, or in nginx's code that the module called?
    if ($r->{who} eq 'module') {
        my ($top) = grep { !/vgpreload_|libasan|asan_\w+\.c|sanitizer_common|: (?:malloc|calloc|realloc|free|memalign|posix_memalign) |__interceptor_/ } @fr;
        $r->{top} = defined $top && $top =~ $MODULE_FRAME ? 'in the module\'s code'
                  : 'in nginx\'s (or a library\'s) code, called from the module';
    }
    # Signature: kind + the first 12 functions of the first stack.
    my @first;
    for (@fr) { last if @first && /^\s*(?:at 0x|#0 )/; push @first, $_ }
    $r->{first} = \@first;
    my $sig_frames = join ' < ', map { my $fn = frame_fn($_); $fn =~ s/::h[0-9a-f]{16}//; $fn }
                                 @first[0 .. ($#first < 11 ? $#first : 11)];
    $r->{sig} = "$r->{kind} | $sig_frames";
    $r->{where} = block_of($r->{file});
}

# ---------------------------------------------------------------- report

my @whos = qw(module nginx other);
my (%count, %sigs, %blocks);
for my $r (@records) {
    $count{ $r->{kind} }{ $r->{who} }++;
    $sigs{ $r->{kind} }{ $r->{who} }{ $r->{sig} }++;
    $blocks{ $r->{kind} }{ $r->{who} } += $r->{blocks};
}
my @order = $mode eq 'valgrind'
    ? ('Invalid read', 'Invalid write', 'Invalid free', 'Uninitialised', 'Syscall param (unaddressable)',
       'Overlap', 'Fishy argument', 'Definitely lost', 'Indirectly lost', 'Possibly lost')
    : ('ASan heap-use-after-free', 'ASan heap-buffer-overflow', 'ASan stack-buffer-overflow',
       'ASan global-buffer-overflow', 'ASan double-free', 'ASan attempting', 'ASan SEGV',
       'Direct leak', 'Indirect leak');
my %seen = map { $_ => 1 } @order;
push @order, sort grep { !$seen{$_} } keys %count;

my $out = '';
$out .= "== $title\n" if $title;
$out .= sprintf "logs scanned: %d %s (%s)\n", scalar(@files),
    $mode eq 'valgrind' ? "valgrind logs, one per process" : "ASan/LSan logs (only processes with something to report write one)",
    $dir;
$out .= sprintf "processes that reached valgrind's final summary: %d of %d (the others were killed, e.g. by SIGKILL)\n",
    $processes{complete}, $processes{logs} if $mode eq 'valgrind';
$out .= "\nrecords by kind x origin: records [distinct stacks]" . ($mode eq 'valgrind' ? ' {leaked blocks}' : ' {leaked objects}') . "\n";
$out .= sprintf "  %-32s %18s %18s %18s\n", 'kind', @whos;
for my $k (@order) {
    my @cells = map {
        my $c = $count{$k}{$_} // 0;
        my $s = scalar keys %{ $sigs{$k}{$_} // {} };
        my $b = $blocks{$k}{$_} // 0;
        $c ? ($k =~ /lost|leak/i ? "$c [$s] {$b}" : "$c [$s]") : '0';
    } @whos;
    $out .= sprintf "  %-32s %18s %18s %18s\n", $k, @cells;
}

my @known = grep { $_->{known} } @records;
my $unknown = grep { $_->{unknown} } @records;
$out .= "  (other: $unknown record(s) have frames in code unloaded before the report, which cannot be attributed)\n" if $unknown;
if (@known) {
    my %k;
    $k{ $_->{known} }++ for @known;
    $out .= "\nknown nginx leaks (counted above in the column of their stack):\n";
    $out .= sprintf "  %5d x %s\n", $k{$_}, $_ for sort keys %k;
}

# Possibly lost (valgrind) is informational: an interior pointer still
# points into the block, which is how nginx pools and Rust slices look.
sub is_error { $_[0]{kind} ne 'Possibly lost' }
my @mod  = grep { $_->{who} eq 'module' && is_error($_) && !$_->{known} } @records;
my @modk = grep { $_->{who} eq 'module' && is_error($_) && $_->{known} } @records;
my @modp = grep { $_->{who} eq 'module' && !is_error($_) } @records;

# "block (Nx); ..." for up to 8 places, then how many more.
sub places {
    my ($where) = @_;
    my @w = sort keys %$where;
    my $more = @w > 8 ? @w - 8 : 0;
    my $text = join('; ', map { "$_ ($where->{$_}x)" } @w[0 .. ($more ? 7 : $#w)]);
    return $more ? "$text; and $more more block(s) (see the details file)" : $text;
}

sub module_list {
    my ($label, @rs) = @_;
    my $o = "\n$label: " . scalar(@rs) . "\n";
    my %by_sig;
    for my $r (@rs) { push @{ $by_sig{ $r->{sig} } }, $r }
    for my $sig (sort { @{ $by_sig{$b} } <=> @{ $by_sig{$a} } } keys %by_sig) {
        my $rs = $by_sig{$sig};
        my %where;
        $where{ $_->{where} }++ for @$rs;
        $o .= "\n--- $rs->[0]{kind}: " . scalar(@$rs) . " time(s)\n";
        $o .= "    in: " . places(\%where) . "\n";
        $o .= "    first log: $rs->[0]{file}\n";
        $o .= "    first frame past the allocator: $rs->[0]{top}\n" if $rs->[0]{top};
        $o .= "    known: $rs->[0]{known}\n" if $rs->[0]{known};
        $o .= join('', map { "    | $_\n" } split /\n/, $rs->[0]{text});
    }
    return $o;
}
$out .= module_list('module-attributed errors', @mod);
$out .= module_list('module-attributed by their stack, but known to be nginx\'s own (not counted as module errors)', @modk) if @modk;
$out .= module_list('module-attributed "possibly lost" records (informational, not errors)', @modp) if @modp;

# Crashes, whatever the origin: a crash in nginx's code can be the module's
# doing (e.g. an event or a structure the module handed to nginx), which the
# stack alone does not show. Each is listed with the block that hit it.
my @crash = grep { $_->{kind} =~ /^Fatal signal|SEGV/ } @records;
if (@crash) {
    my %c;
    for my $r (@crash) { push @{ $c{"$r->{who}\0$r->{sig}"} }, $r }
    $out .= "\ncrashes (fatal signals, any origin; check whether module data is involved): " . scalar(@crash) . "\n";
    for my $key (sort keys %c) {
        my $rs = $c{$key};
        my %where;
        $where{ $_->{where} }++ for @$rs;
        $out .= "\n--- $rs->[0]{kind} [$rs->[0]{who}]: " . scalar(@$rs) . " process(es)\n";
        $out .= "    in: " . places(\%where) . "\n";
        $out .= "    first log: $rs->[0]{file}\n";
        my @t = split /\n/, $rs->[0]{text};
        $out .= join('', map { "    | $_\n" } @t[0 .. ($#t < 11 ? $#t : 11)]);
    }
}

# Distinct non-module stacks, compactly.
my $other = "\ndistinct non-module records (kind, origin, count, where, top frames):\n";
my %nm;
for my $r (grep { $_->{who} ne 'module' } @records) { push @{ $nm{ "$r->{who}\0$r->{sig}" } }, $r }
for my $key (sort { @{ $nm{$b} } <=> @{ $nm{$a} } } keys %nm) {
    my $rs = $nm{$key};
    my %where;
    $where{ $_->{where} }++ for @$rs;
    my @w = sort keys %where;
    $other .= sprintf "\n  %s [%s%s] x%d, in %d place(s) (e.g. %s)\n", $rs->[0]{kind}, $rs->[0]{who},
        $rs->[0]{known} ? ", known: $rs->[0]{known}" : '', scalar(@$rs), scalar(@w), $w[0] // '?';
    my @f = @{ $rs->[0]{first} };
    $other .= join('', map { "      $_\n" } @f[0 .. ($#f < 7 ? $#f : 7)]);
}

print $out;
if ($details) {
    open(my $fh, '>', $details) or die "$details: $!";
    print $fh $out, $other;
    # Full text of the first record of every distinct stack.
    print $fh "\n\nwhere each module-attributed record was seen:\n";
    for my $r (grep { $_->{who} eq 'module' } @records) {
        print $fh "  $r->{kind}: $r->{where}\n    $r->{file}\n";
    }
    print $fh "\n\nfull reports, one per distinct stack:\n";
    my %done;
    for my $r (@records) {
        next if $done{ "$r->{who}\0$r->{sig}" }++;
        print $fh "\n=== [$r->{who}] $r->{kind} in $r->{where}\n    log: $r->{file}\n";
        print $fh join('', map { "    $_\n" } split /\n/, $r->{text});
    }
    close $fh;
    print "\n(distinct non-module stacks and full reports: $details)\n";
}
exit(@mod ? 1 : 0);
