#!/usr/bin/env bash
# How long the state files take to read (nginx -t, every reload and start
# read them), this tree against a baseline commit, side by side in one run:
# core/examples/state_file_timing.rs (best of 5, release) in both; prints
# each file's milliseconds and the ratio. The baseline is checked out in a
# temporary worktree; the example is copied there if it lacks it.
#
#   scripts/bench/state-files.sh [BASELINE_COMMIT]   (default: HEAD~1)
source "$(dirname "$0")/../common.sh"

baseline=${1:-HEAD~1}
out=$(fresh_out_dir state-files)
tree="$out/baseline"
git worktree add --detach "$tree" "$baseline" >/dev/null
trap 'git worktree remove --force "$tree"' EXIT
mkdir -p "$tree/core/examples"
cp -n core/examples/state_file_timing.rs "$tree/core/examples/" 2>/dev/null || true

timings() { (cd "$1" && CARGO_TARGET_DIR="$out/target-$2" cargo run -q --release -p dynamic-upstream-core --example state_file_timing); }

timings "$tree" baseline > "$out/baseline.tsv"
timings "$REPO_ROOT" measured > "$out/measured.tsv"
echo "== state files read, ms (best of 5, release): baseline $(git rev-parse --short "$baseline"), this tree"
paste "$out/baseline.tsv" "$out/measured.tsv" |
    awk -F'\t' '{ printf "%-48s baseline %8.1f  measured %8.1f  ratio %.3f\n", $1, $2, $4, $4 / $2 }'
