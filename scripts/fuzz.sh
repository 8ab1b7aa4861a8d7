#!/usr/bin/env bash
# Fuzzes the parsers of dynamic-upstream-core (core/fuzz, a cargo-fuzz
# project) with libFuzzer.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 600; TARGET defaults to every target
# (query body json_body state_files address health). Targets run one after another.
#
# First replays every input saved under core/fuzz/regressions/<target>/ (a
# crash found earlier, kept until its fix lands), then fuzzes each target
# for the given time and prints, per target, the executions, exec/s,
# coverage (libFuzzer's cov: and ft:) and whether it crashed. Exits non-zero
# if a regression input or a target crashed (or timed out, or ran out of
# memory).
#
# Environment:
#   FUZZ_KEEP_GOING=1   go on fuzzing after a crash (libFuzzer's -fork=1
#                       -ignore_crashes=1), to measure a whole run or collect
#                       more than one crash while a known one is unfixed
#   FUZZ_SANITIZER=...  cargo fuzz --sanitizer (default none: the crate is
#                       safe Rust, so the checks are panics, overflow checks
#                       and the targets' assertions; address is ~2x slower)
#
# Needs nightly features of rustc: RUSTC_BOOTSTRAP=1 enables them on the
# stable toolchain. Installs cargo-fuzz if missing. The corpora the fuzzer
# grows are kept in core/fuzz/work/corpus/<target>/ (git-ignored; the seeds
# in core/fuzz/corpus/<target>/ are read, never written), logs in
# core/fuzz/work/logs/, crashing inputs in core/fuzz/artifacts/<target>/.
source "$(dirname "$0")/common.sh"

ALL_TARGETS=(query body json_body state_files address health)
SECONDS_PER_TARGET=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
if ! [[ $SECONDS_PER_TARGET =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
for t in "${TARGETS[@]}"; do
    [ -f "core/fuzz/fuzz_targets/$t.rs" ] || { echo "fuzz.sh: no fuzz target \"$t\"" >&2; exit 2; }
done

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

FUZZ=$REPO_ROOT/core/fuzz
WORK=$FUZZ/work
mkdir -p "$WORK/logs"
# Every cargo fuzz command gets the same flags, so the build is reused.
# Debug assertions turn on Rust's integer overflow checks.
BUILD_FLAGS=(--release --debug-assertions --sanitizer "${FUZZ_SANITIZER:-none}")
BIN_DIR=$FUZZ/target/$(rustc -vV | sed -n 's/^host: //p')/release

echo "== cargo fuzz build (${BUILD_FLAGS[*]})"
(cd core && cargo fuzz build "${BUILD_FLAGS[@]}")

# The panic of one input: "src/lib.rs:195:19: body ... is refused: ...",
# or libFuzzer's error line (timeout, out of memory) if there was no panic.
reason_of() {
    local target=$1 input=$2 log
    log=$("$BIN_DIR/$target" -timeout=10 "$input" 2>&1 || true)
    local panic
    panic=$(printf '%s\n' "$log" | sed -n '/panicked at /{s/.*panicked at //;N;s/\n/ /;p;q}')
    if [ -n "$panic" ]; then
        printf '%s\n' "$panic" | cut -c1-700
    else
        printf '%s\n' "$log" | grep -m1 -E 'ERROR: libFuzzer|SUMMARY' | sed 's/^==[0-9]*== //' || echo "(no crash when replayed)"
    fi
}

failed=0

echo "== regressions (core/fuzz/regressions/<target>/)"
regressions=0
for t in "${TARGETS[@]}"; do
    dir=$FUZZ/regressions/$t
    [ -d "$dir" ] || continue
    while IFS= read -r -d '' input; do
        regressions=$((regressions + 1))
        if "$BIN_DIR/$t" -timeout=10 "$input" >"$WORK/logs/regression.log" 2>&1; then
            echo "ok      $t ${input#"$REPO_ROOT"/}"
        else
            failed=1
            echo "FAILED  $t ${input#"$REPO_ROOT"/}"
            echo "        $(reason_of "$t" "$input")"
        fi
    done < <(find "$dir" -type f ! -name '.*' ! -name '*.md' -print0 | sort -z)
done
echo "$regressions regression input(s) replayed"

RUN_FLAGS=(-max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -timeout=10)
[ "${FUZZ_KEEP_GOING:-0}" = 1 ] && RUN_FLAGS+=(-fork=1 -ignore_crashes=1)

summary=()
for t in "${TARGETS[@]}"; do
    corpus=$WORK/corpus/$t
    artifacts=$FUZZ/artifacts/$t
    log=$WORK/logs/$t.log
    mkdir -p "$corpus" "$artifacts"
    flags=("${RUN_FLAGS[@]}")
    [ -f "$FUZZ/dict/$t.dict" ] && flags+=(-dict="$FUZZ/dict/$t.dict")
    marker=$WORK/logs/.$t.start
    touch "$marker"
    echo "== $t: ${SECONDS_PER_TARGET}s (log: ${log#"$REPO_ROOT"/})"
    # New inputs go to the first corpus directory (work/), the seeds are read.
    set +e
    (cd core && cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "$corpus" "$FUZZ/corpus/$t" -- "${flags[@]}") >"$log" 2>&1
    rc=$?
    set -e

    # libFuzzer's status lines: "#N DONE cov: C ft: F corp: ... exec/s: E",
    # in fork mode "#N: cov: C ft: F corp: K exec/s: E oom/timeout/crash: a/b/c time: Ts".
    last=$(grep -E '^#[0-9]+:?[[:space:]].*cov: ' "$log" | tail -n1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    if [ -z "$execs" ]; then # fork mode: no final stats; take the last status line
        execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
        secs=$(sed -n 's/^INFO: exiting: [0-9]* time: \([0-9]*\)s.*/\1/p' "$log" | tail -n1)
        secs=${secs:-$(sed -n 's/.* time: \([0-9]*\)s.*/\1/p' <<<"$last")}
        [ -n "$execs" ] && [ "${secs:-0}" -gt 0 ] && rate=$((execs / secs))
    fi
    crashes=$(sed -n 's/.* oom\/timeout\/crash: \([0-9]*\)\/\([0-9]*\)\/\([0-9]*\).*/\1 \2 \3/p' <<<"$last")
    new=()
    while IFS= read -r -d '' a; do new+=("$a"); done \
        < <(find "$artifacts" -type f -newer "$marker" -print0 | sort -z)

    status=ok
    if [ "$rc" -ne 0 ] || [ ${#new[@]} -gt 0 ] || grep -q 'ERROR: libFuzzer' "$log"; then
        status=CRASHED
        failed=1
    fi
    if [ -z "$last" ]; then
        status="FAILED (no libFuzzer output, exit $rc; see the log)"
        failed=1
    fi
    line=$(printf '%-12s %-8s execs %-10s exec/s %-7s cov %-5s ft %-6s' \
        "$t" "$status" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}")
    [ -n "$crashes" ] && line+=" oom/timeout/crash $(tr ' ' / <<<"$crashes")"
    [ ${#new[@]} -gt 0 ] && line+=" (${#new[@]} crash input(s) in ${artifacts#"$REPO_ROOT"/}/)"
    summary+=("$line")
    echo "$line"

    # One line per distinct panic location, with one input that hits it.
    if [ ${#new[@]} -gt 0 ]; then
        declare -A seen=()
        for a in "${new[@]}"; do
            reason=$(reason_of "$t" "$a")
            where=${reason%%: *}
            [ -n "${seen[$where]:-}" ] && { seen[$where]=$((seen[$where] + 1)); continue; }
            seen[$where]=1
            echo "    ${a#"$REPO_ROOT"/}"
            echo "        $reason"
        done
        unset seen
    fi
done

echo
echo "== summary (${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    echo "fuzz.sh: crashes found (reproduce: cd core && RUSTC_BOOTSTRAP=1 cargo fuzz run ${BUILD_FLAGS[*]} TARGET INPUT;"
    echo "         keep a minimized input in core/fuzz/regressions/TARGET/ until it is fixed)"
    exit 1
fi
echo "fuzz.sh: no crash"
