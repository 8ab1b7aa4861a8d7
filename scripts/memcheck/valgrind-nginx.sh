#!/bin/sh
# TEST_NGINX_BINARY for scripts/memcheck.sh valgrind: Debian's nginx under
# valgrind's memcheck. exec keeps the pid the caller waits on; nginx then
# daemonizes and valgrind follows the master and every worker it forks
# (forks are always followed; --trace-children=yes also follows an exec).
#
# Each nginx prefix (-p DIR) gets its own log directory, named after DIR's
# last component (the harness names it nginxtest-<file>-b<block>-XXXXXX), so
# a report can be traced back to the test block that produced it:
#   $MEMCHECK_VG_LOGDIR/<prefix name>/vg.<pid>.<launch>.log
# (<launch>: a per-invocation stamp, because pids wrap around quickly here
# (pid_max 32768) and valgrind would overwrite an older log of the same pid.)
#
# MEMCHECK_VG_LOGDIR  where the logs go (default scripts/out/memcheck/valgrind/vg)
# MEMCHECK_VG_EXTRA   more valgrind options (e.g. --track-origins=yes)
# MEMCHECK_NGINX      the nginx binary (default /usr/sbin/nginx)
# MEMCHECK_VG_PLAIN_RE  an extended regex: an nginx whose prefix matches it
#                     runs without valgrind (e.g. a script's own backends)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
logdir=${MEMCHECK_VG_LOGDIR:-$root/scripts/out/memcheck/valgrind/vg}
prefix=noprefix
prev=
for arg in "$@"; do
    [ "$prev" = -p ] && prefix=$arg
    prev=$arg
done
if [ -n "${MEMCHECK_VG_PLAIN_RE:-}" ] && printf '%s\n' "$prefix" | grep -Eq -- "$MEMCHECK_VG_PLAIN_RE"; then
    exec "${MEMCHECK_NGINX:-/usr/sbin/nginx}" "$@"
fi
dir="$logdir/$(basename "$prefix")"
mkdir -p "$dir"
MEMCHECK_VG_LAUNCH=$(date +%s%N)
export MEMCHECK_VG_LAUNCH
# --vgdb=no: no gdbserver fifos in /tmp (the workers, as nobody, could not
# remove them). --keep-debuginfo=yes: the master unloads the modules
# (dlclose) before its leak check at exit; their frames keep their names. --fullpath-after: the module's frames show src/... and
# core/src/... paths, which the summary uses to attribute them.
# shellcheck disable=SC2086
exec valgrind --tool=memcheck --trace-children=yes --leak-check=full --num-callers=30 \
    --show-leak-kinds=definite,indirect,possible --keep-debuginfo=yes --vgdb=no \
    --fullpath-after="$root/" ${MEMCHECK_VG_EXTRA:-} \
    --log-file="$dir/vg.%p.%q{MEMCHECK_VG_LAUNCH}.log" \
    "${MEMCHECK_NGINX:-/usr/sbin/nginx}" "$@"
