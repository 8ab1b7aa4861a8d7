#!/usr/bin/env bash
# Memory checks of the module (not part of the quick suite): the whole t/
# suite with nginx under valgrind's memcheck, and/or under an AddressSanitizer
# build of the same nginx.
#
#   scripts/memcheck.sh valgrind|asan|all [--nginx 1.22|1.28]
#
# --nginx 1.28 (asan only; default 1.22): nginx 1.28.3 built with ASan from
#           the nginx-src tree and flags of scripts/build.sh --nginx 1.28
#           (scripts/memcheck/build-asan.sh --nginx 1.28: build/
#           nginx-1.28-asan/), the module scripts/build.sh --nginx 1.28 built
#           for it, and the suite's settings for 1.28 (scripts/lib/
#           nginx-versions.sh: the echo module of that tree, Lua blocks
#           skipped with their reason).
# valgrind  Debian's /usr/sbin/nginx, our module (target/debug, a snapshot
#           copied to scripts/out/memcheck/module/ so that a rebuild during
#           the run changes nothing) and Debian's Lua/echo/stream modules, run
#           under `valgrind --tool=memcheck --trace-children=yes
#           --leak-check=full --num-callers=30` plus --keep-debuginfo=yes
#           and a few reporting options (scripts/memcheck/valgrind-nginx.sh,
#           which is TEST_NGINX_BINARY; master and every worker get a log). Checks every instruction of every process,
#           the module's Rust code included: invalid reads/writes/frees,
#           use of uninitialised memory, leaks. Then also
#           `scripts/stress-dynamic.sh 20 --valgrind` and
#           `scripts/dyups-cycles.sh 1000 --valgrind` (traffic + API churn).
#           The whole t/ suite runs, t/harness/ included. The harness finds
#           workers by their process title, which valgrind hides (it shows
#           its own command line): scripts/memcheck/lib/NginxTestUnderTool.pm,
#           loaded through PERL5OPT, reads the title where nginx wrote it.
#           About 10-15x the plain suite: 13-19 min here (plain: ~1.5 min).
# asan      nginx 1.22.1 rebuilt from Debian's source package with
#           -fsanitize=address (scripts/memcheck/build-asan.sh: build/
#           nginx-asan/), which loads the very same module .so and Debian's
#           modules (same version and configure flags, so the same module
#           signature; checked with `nginx -t`). Checks every access *nginx's
#           own code* makes (heap/stack/global overflows, use after free,
#           double free) and, through its malloc, leaks (LeakSanitizer) of
#           everything, the module's allocations included. The module's Rust
#           code and the Debian modules are NOT instrumented: a bad access
#           made by the module itself is only seen if it crashes, or when
#           nginx later trips on the memory the module damaged or freed.
#           So valgrind is the stronger check for the module; ASan is fast
#           (~1.5x, 1-2 min) and sees nginx's side of the interface with byte
#           precision (NGX_DEBUG_PALLOC: every pool allocation is its own
#           malloc). The first run builds nginx (~2 min).
#           t/balancer-matrix.t runs its long form here
#           (TEST_NGINX_MATRIX_ROUNDS=$MEMCHECK_MATRIX_ROUNDS rounds, default
#           200, against 3 in the plain suite).
# all       both, valgrind first.
#
# Not run here: scripts/chaos.sh (4 workers, kill -9, reloads) under
# valgrind is scripts/memcheck/chaos-valgrind.sh [SECONDS], a separate run
# (~70 s for 60). It works (chaos.sh passed under it here), but its chaos
# verdict is informational: chaos.sh's timeouts were not made for valgrind.
#
# For each mode the script prints: the runtime, test files / blocks /
# assertions run, pass or fail with the failed blocks (each marked "also
# fails without the tool" or "only under the tool", from a plain run of the
# same suite first), and the summary of the tool's reports (scripts/memcheck/
# summarize.pl): records by kind x origin (module / nginx / other, by the
# frames of their stacks) and every module-attributed error with its first
# full report. Everything is kept under scripts/out/memcheck/<mode>/:
#   prove.log          prove -v output          summary.txt   the summary
#   details.txt        every distinct stack     vg/ or logs/  the raw logs,
#   tmp/               prefixes of failed blocks               one dir per block
#
# Environment:
#   MEMCHECK_TESTS="t/a.t t/b.t"  run these instead of t/ (recursively)
#   MEMCHECK_JOBS=N               prove -j N (default 1: the tools are CPU-bound
#                                 and the suite has timing-sensitive blocks)
#   MEMCHECK_TIMEOUT=S            TEST_NGINX_TIMEOUT (default 60 valgrind, 30 asan)
#   MEMCHECK_WAIT_FACTOR=N        stretch the harness's own fixed 10 s waits
#                                 (start, reload, stop) N times (default 6
#                                 valgrind, 3 asan); waits written in the tests
#                                 are never changed (scripts/memcheck/lib/
#                                 NginxTestUnderTool.pm)
#   MEMCHECK_BASELINE=0           skip the plain run used to tell failures that
#                                 the tool causes from those it does not
#   MEMCHECK_SCRIPTS=0            skip the stress-dynamic/dyups-cycles runs
#   MEMCHECK_VG_EXTRA="..."       more valgrind options (e.g. --track-origins=yes)
#   MEMCHECK_MATRIX_ROUNDS=N      rounds of t/balancer-matrix.t under asan (default 200)
#
# Exit status: 0 when every part passed and no module-attributed error was
# found, 1 otherwise (the summary says which).
source "$(dirname "$0")/common.sh"
source scripts/lib/nginx-versions.sh
# The whole script is one { ... } group: bash parses it completely before
# running it, so editing this file during a (long) run cannot derail it.
{

mode=${1:-}
version=1.22
[ "${2:-}" = --nginx ] && version=${3:-}
case "$mode $version" in
    "valgrind 1.22"|"asan 1.22"|"asan 1.28"|"all 1.22") ;;
    *) echo "usage: $0 valgrind|asan|all [--nginx 1.22|1.28] (1.28: asan only)" >&2; exit 2 ;;
esac

read -r -a tests <<< "${MEMCHECK_TESTS:-t/}"
jobs=${MEMCHECK_JOBS:-1}
top="$REPO_ROOT/scripts/out/memcheck"
mkdir -p "$top"
chmod 755 "$top"
final_status=0
report="$top/report-$mode.txt"
: > "$report"
say() { echo "$@" | tee -a "$report"; }
say_file() { tee -a "$report" < "$1"; }

fmt_time() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# --------------------------------------------------------------- preparation
scripts/setup.sh
if [ "$mode" != asan ] && ! command -v valgrind >/dev/null; then
    echo "memcheck: installing valgrind"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi
if [ "$version" = 1.22 ]; then
    built=$(build_module dev)
else
    built=$(scripts/build.sh --nginx "$version" | tail -1)
fi
module_dir="$top/module"
mkdir -p "$module_dir"
chmod 755 "$module_dir"
module="$module_dir/libngx_http_dynamic_upstream_module.so"
cp "$built" "$module.tmp" && mv "$module.tmp" "$module"
{
    echo "module: $module"
    echo "  copied from $built, sha256 $(sha256sum "$module" | cut -c1-16)"
    echo "  source: $(git rev-parse --short HEAD)$(git status --porcelain -- src core Cargo.toml Cargo.lock build.rs | grep -q . && echo ' + uncommitted changes in src/core/build files')"
} > "$top/module.txt"

# The harness shim: process titles under valgrind, stretched harness waits.
export PERL5LIB="$REPO_ROOT/scripts/memcheck/lib${PERL5LIB:+:$PERL5LIB}"
shim_opt="-MNginxTestUnderTool"

# Runs prove with the given environment (NAME=VALUE ...) into $1/prove.log.
run_prove() {
    local dir=$1
    shift
    mkdir -p "$dir/tmp"
    chmod 755 "$dir" "$dir/tmp"
    local rc=0
    env "$@" TEST_NGINX_MODULE="$module" TEST_NGINX_TMPDIR="$dir/tmp" \
        TEST_NGINX_MODULES_DIR="$(nginx_modules_dir "$version")" \
        TEST_NGINX_SKIP_MODULES="$(nginx_skipped_modules "$version")" \
        prove -r -v --merge --timer -j "$jobs" "${tests[@]}" > "$dir/prove.log" 2>&1 || rc=$?
    return $rc
}

baseline_log="$top/baseline/prove.log"
baseline() {
    [ "${MEMCHECK_BASELINE:-1}" = 1 ] || return 0
    [ -f "$top/baseline/.done-$$" ] && return 0
    rm -rf "$top/baseline"
    mkdir -p "$top/baseline"
    echo "memcheck: plain run of the suite (to compare failures): ${tests[*]}"
    local start=$SECONDS
    run_prove "$top/baseline" TEST_NGINX_BINARY="$(nginx_binary "$version")" || true
    touch "$top/baseline/.done-$$"
    echo "memcheck: plain run done in $(fmt_time $((SECONDS - start)))"
}
baseline_args() {
    if [ "${MEMCHECK_BASELINE:-1}" = 1 ] && [ -f "$baseline_log" ]; then
        echo "--baseline=$baseline_log"
    fi
}

# Prints the result lines of a scripts/*.sh run and its valgrind summary.
run_script_under_valgrind() {
    local name=$1 logs=$2
    shift 2
    local out="$top/valgrind/$name.txt" rc=0 start=$SECONDS
    echo "memcheck: $*"
    "$@" > "$out" 2>&1 || rc=$?
    say ""
    say "-- $* ($(fmt_time $((SECONDS - start))), exit $rc)"
    sed -n '/^== /,$p' "$out" | tee -a "$report"
    [ "$rc" = 0 ] || final_status=1
    local s=0
    perl scripts/memcheck/summarize.pl valgrind "$logs" --details "$top/valgrind/$name-details.txt" \
        --title "valgrind reports of $name" > "$top/valgrind/$name-summary.txt" || s=$?
    say_file "$top/valgrind/$name-summary.txt"
    [ "$s" = 0 ] || final_status=1
}

# ------------------------------------------------------------------ valgrind
run_valgrind() {
    local dir="$top/valgrind"
    rm -rf "$dir"
    mkdir -p "$dir/vg"
    chmod 755 "$dir"
    baseline
    echo "memcheck: t/ suite under valgrind: ${tests[*]} (prove -j $jobs; progress: tail -f $dir/prove.log)"
    local start=$SECONDS rc=0
    run_prove "$dir" \
        TEST_NGINX_BINARY="$REPO_ROOT/scripts/memcheck/valgrind-nginx.sh" \
        MEMCHECK_VG_LOGDIR="$dir/vg" \
        TEST_NGINX_TIMEOUT="${MEMCHECK_TIMEOUT:-60}" \
        MEMCHECK_HARNESS_WAIT_FACTOR="${MEMCHECK_WAIT_FACTOR:-6}" \
        PERL5OPT="$shim_opt${PERL5OPT:+ $PERL5OPT}" || rc=$?
    local took=$((SECONDS - start))
    say ""
    say "==================== valgrind: t/ suite, nginx under memcheck ===================="
    say "runtime: $(fmt_time "$took") ($(date -u +%FT%TZ))"
    say_file "$top/module.txt"
    local p=0
    # shellcheck disable=SC2046
    perl scripts/memcheck/prove-report.pl "$dir/prove.log" $(baseline_args) > "$dir/tests.txt" || p=$?
    say_file "$dir/tests.txt"
    [ "$p" = 0 ] || final_status=1
    say ""
    local s=0
    perl scripts/memcheck/summarize.pl valgrind "$dir/vg" --details "$dir/details.txt" \
        --title "valgrind reports of the t/ suite" > "$dir/summary.txt" || s=$?
    say_file "$dir/summary.txt"
    [ "$s" = 0 ] || final_status=1

    if [ "${MEMCHECK_SCRIPTS:-1}" = 1 ]; then
        run_script_under_valgrind stress-dynamic "$REPO_ROOT/scripts/out/stress-dynamic/logs" \
            scripts/stress-dynamic.sh 20 --valgrind
        run_script_under_valgrind dyups-cycles "$REPO_ROOT/scripts/out/dyups-cycles/logs" \
            scripts/dyups-cycles.sh 1000 --valgrind
    fi
}

# ---------------------------------------------------------------------- asan
run_asan() {
    local dir="$top/asan"
    rm -rf "$dir"
    mkdir -p "$dir/logs"
    chmod 755 "$dir"
    chmod 1777 "$dir/logs"
    local nginx_asan
    nginx_asan=$(scripts/memcheck/build-asan.sh --nginx "$version")
    # No allocator_may_return_null: no test asks for an allocation ASan
    # would refuse (a consistent-hash table is at most 64 MiB), and
    # t/dyups-proxy.t TEST 12, which makes mallocs fail under ulimit -v,
    # skips itself under ASan.
    # intercept_tls_get_addr=0: GCC 12's runtime (Debian 12's libasan8) takes the 16
    # bytes before a thread-local block at page offset 16 for an old glibc's header;
    # with glibc 2.36 they are ASan's own allocation header, and LeakSanitizer's
    # tracer then scans a bogus range and dies at exit ("Tracer caught signal 11")
    # when LuaJIT's 48-byte TLS block lands there (google/sanitizers#1322). Leak
    # checking stays on; only that broken TLS tracking is off.
    export ASAN_OPTIONS="log_path=$dir/asan:detect_leaks=1:intercept_tls_get_addr=0:abort_on_error=0:halt_on_error=0"

    # The module and the suite's other modules must load into the ASan
    # binary: Debian's for 1.22; 1.28's echo (its stream is static, no Lua).
    local t="$dir/load-check"
    mkdir -p "$t/conf" "$t/logs"
    chmod 755 "$t"
    local mods="" m load_list lua_location=""
    load_list=(ngx_http_echo_module ndk_http_module ngx_http_lua_module ngx_stream_module)
    [ "$version" = 1.22 ] || load_list=(ngx_http_echo_module)
    for m in "${load_list[@]}"; do
        mods+="load_module $(nginx_modules_dir "$version")/$m.so;"$'\n'
    done
    if [[ " ${load_list[*]} " == *" ngx_http_lua_module "* ]]; then
        lua_location='location /lua { content_by_lua_block { require("ngx.dynamic") } }'
    fi
    cat > "$t/conf/nginx.conf" <<EOF
$mods
load_module $module;
pid logs/nginx.pid;
events {}
http {
    upstream backends { zone backends 64k; server 127.0.0.1:1; }
    server {
        listen 127.0.0.1:1;
        location /dynamic { dynamic_upstream; }
        location /dyups { dyups_interface; }
        location /echo { echo "ok"; }
        $lua_location
    }
}
EOF
    local load_rc=0 load_out
    load_out=$(MEMCHECK_ASAN_NGINX="$nginx_asan" MEMCHECK_ASAN_LOGDIR="$dir/logs" \
        scripts/memcheck/asan-nginx.sh -p "$t/" -c conf/nginx.conf -e logs/error.log -t 2>&1) || load_rc=$?

    baseline
    echo "memcheck: t/ suite under ASan: ${tests[*]} (prove -j $jobs; progress: tail -f $dir/prove.log)"
    local start=$SECONDS rc=0
    if [ "$load_rc" = 0 ]; then
        run_prove "$dir" \
            TEST_NGINX_BINARY="$REPO_ROOT/scripts/memcheck/asan-nginx.sh" \
            MEMCHECK_ASAN_NGINX="$nginx_asan" MEMCHECK_ASAN_LOGDIR="$dir/logs" \
            TEST_NGINX_TIMEOUT="${MEMCHECK_TIMEOUT:-30}" \
            MEMCHECK_HARNESS_WAIT_FACTOR="${MEMCHECK_WAIT_FACTOR:-3}" \
            TEST_NGINX_MATRIX_ROUNDS="${MEMCHECK_MATRIX_ROUNDS:-200}" \
            PERL5OPT="$shim_opt${PERL5OPT:+ $PERL5OPT}" || rc=$?
    fi
    local took=$((SECONDS - start))
    say ""
    say "==================== asan: t/ suite, nginx $version built with AddressSanitizer ===================="
    say "runtime: $(fmt_time "$took") ($(date -u +%FT%TZ))"
    say "binary: $nginx_asan"
    say "  $("$nginx_asan" -V 2>&1 | grep -o "with-cc-opt='[^']*'")"
    say_file "$top/module.txt"
    say "ASAN_OPTIONS: $ASAN_OPTIONS (log_path set per block by scripts/memcheck/asan-nginx.sh: $dir/logs/<block>/asan.<pid>)"
    if [ "$load_rc" = 0 ]; then
        say "load check (nginx -t, load_module ${load_list[*]} and ours): OK"
    else
        say "load check FAILED (exit $load_rc), the suite was not run:"
        say "$load_out"
        final_status=1
        return
    fi
    local p=0
    # shellcheck disable=SC2046
    perl scripts/memcheck/prove-report.pl "$dir/prove.log" $(baseline_args) > "$dir/tests.txt" || p=$?
    say_file "$dir/tests.txt"
    [ "$p" = 0 ] || final_status=1
    say ""
    local s=0
    perl scripts/memcheck/summarize.pl asan "$dir/logs" --details "$dir/details.txt" \
        --title "ASan/LSan reports of the t/ suite" > "$dir/summary.txt" || s=$?
    say_file "$dir/summary.txt"
    [ "$s" = 0 ] || final_status=1
    say ""
    say "note: ASan instruments nginx's code only; the module's Rust code and Debian's modules are not"
    say "instrumented (their heap allocations are tracked for leaks and bad frees). valgrind is the"
    say "stronger check for the module's own accesses."
}

case "$mode" in
    valgrind) run_valgrind ;;
    asan) run_asan ;;
    all) run_valgrind; run_asan ;;
esac
rm -f "$top/baseline/.done-$$"
say ""
say "memcheck $mode: $([ "$final_status" = 0 ] && echo PASS || echo FAIL) (report: $report)"
exit $final_status
}
