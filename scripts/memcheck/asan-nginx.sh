#!/bin/sh
# TEST_NGINX_BINARY for scripts/memcheck.sh asan: the ASan build of nginx
# (scripts/memcheck/build-asan.sh), exec'd as is (same pid) with the caller's
# ASAN_OPTIONS, except that log_path points into a directory named after the
# nginx prefix (-p DIR; the harness names it nginxtest-<file>-b<block>-XXXXXX)
# so that a report can be traced back to the block that produced it:
#   $MEMCHECK_ASAN_LOGDIR/<prefix name>/asan.<pid>
# The directories are mode 1777: the workers (user nobody) open their log
# only when they have something to report.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
: "${MEMCHECK_ASAN_NGINX:?set MEMCHECK_ASAN_NGINX to the ASan nginx binary}"
logdir=${MEMCHECK_ASAN_LOGDIR:-$root/scripts/out/memcheck/asan/logs}
prefix=noprefix
prev=
for arg in "$@"; do
    [ "$prev" = -p ] && prefix=$arg
    prev=$arg
done
dir="$logdir/$(basename "$prefix")"
mkdir -p "$dir"
chmod 1777 "$dir"
opts=$(printf '%s' "${ASAN_OPTIONS:-}" | tr ':' '\n' | grep -v '^log_path=' | grep -v '^$' | tr '\n' ':' || true)
ASAN_OPTIONS="${opts}log_path=$dir/asan"
export ASAN_OPTIONS
exec "$MEMCHECK_ASAN_NGINX" "$@"
