#!/usr/bin/env bash
# The ndu-sync agent against a real etcd and three nginx (issue 18, item 5).
#
# Starts etcd (Debian's etcd-server) on 127.0.0.1 with a temporary data
# directory, a stock nginx serving ten backends, three nginx with the module
# (master and 2 workers each) and one agent per nginx (the third through a
# TCP relay the test can cut), then scripts/etcd/fleet.pl measures and
# checks: 100 changes under load (time until all three route by each,
# p50/p99/max, no failed proxied request, one log line per revision), a
# burst, bad documents, a key deleted, etcd stopped and started, an agent
# started while etcd is down or on a mistyped prefix, an agent cut off from
# etcd, an agent killed and restarted, an nginx restarted, a manual change
# undone by the resync, a prefix over 4 MiB, a mass delete held, one
# upstream whose nginx answers fail, 1,000 upstreams of 10 servers (first
# full sync, one later change). Where the module has the NGINX
# Plus-compatible API (`dynamic_upstream_api`), configuration upstreams too.
# Also: names that differ only in case (a key "Backends" for the
# configuration upstream "backends", two keys "App" and "app"), a document
# nginx refuses without the Plus API (not sent again at every check), an
# agent whose stderr breaks, and etcd restored from a snapshot.
# NDU_AGENT=PATH runs another build of the agent.
# Everything it started is stopped by pid; ports come from free_port_block.
#
#   scripts/test-etcd.sh [UPSTREAMS]     (default 1000)
source "$(dirname "$0")/common.sh"

scale=${1:-1000}
for tool in etcd etcdctl; do
    command -v "$tool" >/dev/null || { echo "test-etcd: $tool not found: run scripts/setup.sh" >&2; exit 1; }
done
module=${TEST_NGINX_MODULE:-$(build_module dev)}
cargo build --locked -p ndu-sync >&2
agent=${NDU_AGENT:-$REPO_ROOT/target/debug/ndu-sync}
plus=0
# The Plus API location, where this build of the module has it.
grep -q dynamic_upstream_api "$module" && plus=1

work=$(mktemp -d /tmp/ndu-etcd.XXXXXX)
# NDU_PORT_BASE=P: the ports P .. P+23 instead of a block free_port_block
# picks; checked free in every TCP state (a port of Linux's ephemeral
# range, 32768-60999, may be the local end of a client connection, even in
# TIME-WAIT, which keeps a listener off it: a block there can also be taken
# by the test's own clients before a restarted etcd or nginx binds again).
if [ -n "${NDU_PORT_BASE:-}" ]; then
    base=$NDU_PORT_BASE
    if ss -Htan | awk '{print $4}' | grep -qE ":($(seq -s '|' "$base" "$((base + 23))"))$"; then
        echo "test-etcd: a port of $base-$((base + 23)) is in use" >&2
        exit 1
    fi
else
    base=$(free_port_block 24)
fi
echo "test-etcd: work directory $work, ports $base-$((base + 23)), Plus API: $([ $plus = 1 ] && echo yes || echo no)"

export REPO_ROOT NGINX_BIN
status=0
NDU_MODULE=$module NDU_AGENT=$agent NDU_WORK=$work NDU_BASE=$base NDU_PLUS=$plus NDU_SCALE=$scale \
    NDU_TEMP_PATHS="$(temp_paths "$work")" perl "$REPO_ROOT/scripts/etcd/fleet.pl" || status=$?
if [ "$status" = 0 ]; then
    rm -rf "$work"
else
    echo "test-etcd: FAILED; logs kept in $work" >&2
fi
exit "$status"
