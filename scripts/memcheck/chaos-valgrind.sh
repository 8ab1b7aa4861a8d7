#!/usr/bin/env bash
# scripts/chaos.sh with its nginx under valgrind's memcheck (not part of
# scripts/memcheck.sh: run it on its own).
#
#   scripts/memcheck/chaos-valgrind.sh [SECONDS]      (default 60)
#
# chaos.sh takes its nginx from TEST_NGINX_BINARY (scripts/common.sh); this
# points it at scripts/memcheck/valgrind-nginx.sh, except for the backends'
# nginx (prefix .../chaos/backends/), which the chaos never touches and which
# runs plain so that it does not slow the traffic down further. Then it waits
# for the valgrind'ed processes to finish their exit (leak checks) and
# summarises their logs like memcheck.sh does.
#
# A 60 s run passed here (7 kills, 7 reloads, 41 valgrind'ed processes, the
# final state equal to the model). What to expect in general: 4 workers
# under valgrind (~20-50x slower) share 2 cores
# with wrk (48 connections), 8 API writers and the reloads every few seconds
# (each reload starts 4 new valgrind'ed workers while the old ones finish
# and run their leak checks). chaos.sh's own verdict may then fail on
# timing (e.g. the model check or non-2xx answers while everything is slow)
# without any memory error: judge the memory side by the summary below, and
# the functional side by a plain scripts/chaos.sh run. Workers killed with
# SIGKILL leave a log without leak summary (counted as "not reaching the
# final summary").
source "$(dirname "$0")/../common.sh"

duration=${1:-60}
case "$duration" in *[!0-9]*|'') echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
out="$REPO_ROOT/scripts/out/memcheck/chaos-valgrind"
rm -rf "$out"
mkdir -p "$out/vg"
chmod 755 "$REPO_ROOT/scripts/out/memcheck" "$out"

export TEST_NGINX_BINARY="$REPO_ROOT/scripts/memcheck/valgrind-nginx.sh"
export MEMCHECK_VG_LOGDIR="$out/vg"
export MEMCHECK_VG_PLAIN_RE='/chaos/backends/?$'

start=$SECONDS
rc=0
scripts/chaos.sh "$duration" > "$out/chaos.txt" 2>&1 || rc=$?

# chaos.sh waits 10 s for each master after SIGQUIT; under valgrind the
# workers' exit (leak check) can take longer. Wait (up to 5 min) until no
# valgrind'ed nginx of the chaos prefix is left, so that every log is
# complete. Only waits: chaos.sh already asked them to stop.
chaos_prefix="$REPO_ROOT/scripts/out/chaos/"
left() {
    local pid cmd
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        cmd=$({ tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null) || continue
        case "$cmd" in *valgrind*nginx*"-p $chaos_prefix "*) echo "$pid" ;; esac
    done
}
for _ in $(seq 1 300); do [ -z "$(left)" ] && break; sleep 1; done
still=$(left | tr '\n' ' ')

{
    echo "== chaos under valgrind: ${duration}s ($(($SECONDS - start))s in all), chaos.sh exit $rc"
    sed -n '/^== chaos/,$p' "$out/chaos.txt"
    [ -z "$still" ] || echo "still running after 5 min (logs incomplete): $still"
    echo
} | tee "$out/report.txt"
s=0
perl scripts/memcheck/summarize.pl valgrind "$out/vg" --details "$out/details.txt" \
    --title "valgrind reports of the chaos run" | tee -a "$out/report.txt" || s=$?
echo "(report: $out/report.txt)"
# Fail only on memory errors of the module: chaos.sh's verdict under
# valgrind is informational (see above).
exit $s
