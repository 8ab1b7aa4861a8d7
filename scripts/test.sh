#!/usr/bin/env bash
# Runs every test: set-up (if needed), the unit tests, then the t/ suite
# against each nginx the module supports (scripts/lib/nginx-versions.sh),
# each with the module built for it (scripts/build.sh), then the checks that
# a module refuses to load into another nginx (scripts/test-abi.sh), the demo
# (scripts/test-run.sh, Debian 12's nginx 1.22 only) and the Debian package
# (scripts/test-package.sh: Debian 12's on this machine, Debian 13's in the
# trixie root that the 1.26 suite runs from).
#
#   scripts/test.sh              every version (CI)
#   scripts/test.sh --nginx V    the t/ suite against V only (and, for 1.22 or
#                                1.26, the steps above that are for that version)
#
# Ends with one line per version: files, assertions, time and skipped blocks
# (with their reasons); exits non-zero if any step failed.
source "$(dirname "$0")/common.sh"
source scripts/lib/nginx-versions.sh

versions=("${NGINX_VERSIONS[@]}")
while [ $# -gt 0 ]; do
    case $1 in
    --nginx) check_nginx_version "${2:-}"; versions=("$2"); shift 2 ;;
    *) echo "usage: scripts/test.sh [--nginx $(IFS="|"; echo "${NGINX_VERSIONS[*]}")]" >&2; exit 2 ;;
    esac
done

log_dir=$REPO_ROOT/scripts/out/test
mkdir -p "$log_dir"
summary=()
failed=()

# prove_version V: the t/ suite against nginx V; its output is also kept in
# scripts/out/test/prove-V.log, from which the summary line is made.
prove_version() {
    local v=$1 built bin module log=$log_dir/prove-$1.log start rc=0
    echo "== nginx $v: scripts/build.sh --nginx $v"
    built=$(scripts/build.sh --nginx "$v") || { failed+=("build $v"); return; }
    bin=${built%%$'\n'*}
    module=${built#*$'\n'}
    echo "== nginx $v: prove -r t/ ($("$bin" -v 2>&1))"
    start=$SECONDS
    TEST_NGINX_BINARY=$bin TEST_NGINX_MODULE=$module \
        TEST_NGINX_MODULES_DIR=$(nginx_modules_dir "$v") \
        TEST_NGINX_SKIP_MODULES=$(nginx_skipped_modules "$v") \
        prove -r t/ 2>&1 | tee "$log" || rc=$?
    [ "$rc" -eq 0 ] || failed+=("prove $v")
    summary+=("$(summarize "$v" "$log" $((SECONDS - start)) "$rc")")
}

# summarize V LOG SECONDS RC: one line from prove's output (Files=, Tests=)
# and the harness's "# skipped: BLOCK: REASON" lines.
summarize() {
    local v=$1 log=$2 secs=$3 rc=$4 files tests skips reasons
    files=$(sed -n 's/^Files=\([0-9]*\),.*/\1/p' "$log")
    tests=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$log")
    skips=$(grep -c '^# skipped: ' "$log" || true)
    reasons=$(sed -n 's/^# skipped: .*: \(needs .*\)$/\1/p' "$log" | sort | uniq -c | sed 's/^ *\([0-9]*\) /\1 blocks: /' | paste -sd ';' -)
    printf 'nginx %s: %s (%s files, %s assertions, %d s, %s blocks skipped%s)' \
        "$v" "$([ "$rc" -eq 0 ] && echo PASS || echo FAIL)" "${files:-?}" "${tests:-?}" "$secs" "$skips" \
        "${reasons:+: $reasons}"
}

# run NAME COMMAND...: a step whose failure is recorded, not fatal.
run() {
    local name=$1
    shift
    echo "== $name"
    "$@" || failed+=("$name")
}

scripts/setup.sh
run "cargo test" cargo test --locked --workspace
# The fuzz targets' checks on their seed corpora (core/fuzz is its own
# workspace: without this, a change to core's API broke it unseen).
run "core/fuzz seeds" cargo test --locked --manifest-path core/fuzz/Cargo.toml
run "cargo clippy" cargo clippy --locked --workspace --all-targets -- -D warnings
run "scripts/check-layers.sh" scripts/check-layers.sh
run "scripts/check-misuse.sh" scripts/check-misuse.sh  # ~10 s: each misuse is refused as expected
for v in "${versions[@]}"; do
    prove_version "$v"
done
if [ "${#versions[@]}" -gt 1 ]; then
    run "scripts/test-abi.sh" scripts/test-abi.sh "${versions[@]}"
fi
if [[ " ${versions[*]} " == *" 1.22 "* ]]; then
    run "scripts/test-run.sh" scripts/test-run.sh         # the demo, headless
    run "scripts/test-etcd.sh" scripts/test-etcd.sh       # ndu-sync, real etcd, three nginx
    run "scripts/test-package.sh" scripts/test-package.sh
fi
if [[ " ${versions[*]} " == *" 1.26 "* ]]; then
    run "scripts/test-package.sh --nginx 1.26" scripts/test-package.sh --nginx 1.26
fi

echo "== summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all passed"
