#!/usr/bin/env bash
# What one-server NGINX Plus API calls cost on a big zone upstream (hunt 35
# F1): at N servers (one PUT), the median of K calls each of
# `GET .../servers/ID`, `POST .../servers` (answers the server it added) and
# `PATCH .../servers/ID` (answers the server it changed). Their answers are
# about one server; the cost that grows with N is the module's. One worker.
# With BASELINE, the same with that build of the module, side by side, and
# the ratios.
#
#   scripts/bench/plus-single-server.sh [N [K]]   (default 20000 50)
#   MODULE=path/to/module.so ...    measure that build instead of building the release one
#   BASELINE=path/to/module.so ...  and this one beside it (e.g. a build of an earlier commit)
source "$(dirname "$0")/../common.sh"

servers=${1:-20000}
calls=${2:-50}
module=${MODULE:-$(build_module release)}
out=$(fresh_out_dir plus-single-server)
port=$(free_port_block 1)
trap 'stop_by_pid_file "$out/logs/nginx.pid"' EXIT

# measure MODULE: prints "get post patch" (median milliseconds).
measure() {
    local module=$1
    {
        nginx_conf_head "$out" 1 1024 warn "$module"
        echo "    upstream big { zone big 64m; server 127.0.0.1:$port; }"
        echo "    server { listen 127.0.0.1:$port; location /api { dynamic_upstream_api write=on; } }"
        echo "}"
    } > "$out/conf/nginx.conf"
    "$NGINX_BIN" -p "$out/" -c conf/nginx.conf -e logs/error.log
    python3 - "$port" "$servers" "$calls" <<'PY'
import http.client, json, random, sys, time
port, n, k = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
def call(method, path, body=None):
    t = time.perf_counter()
    c.request(method, path, body, {"Content-Type": "application/json"} if body else {})
    r = c.getresponse(); data = r.read()
    assert r.status in (200, 201), (method, path, r.status, data[:200])
    return time.perf_counter() - t, data
servers = "/api/9/http/upstreams/big/servers"
body = [{"server": "127.0.0.1:%d" % port}] + [{"server": "127.0.%d.%d:80" % (i // 250, i % 250 + 1), "down": True} for i in range(n - 1)]
call("PUT", servers, json.dumps(body))
ids = [p["id"] for p in json.loads(call("GET", servers)[1])]
med = lambda v: sorted(v)[len(v) // 2] * 1000
get = [call("GET", "%s/%d" % (servers, random.choice(ids)))[0] for _ in range(k)]
post = [call("POST", servers, json.dumps({"server": "127.1.0.%d:80" % (i + 1), "down": True}))[0] for i in range(k)]
patch = [call("PATCH", "%s/%d" % (servers, random.choice(ids)), json.dumps({"weight": random.randint(1, 9)}))[0] for _ in range(k)]
print("%.2f %.2f %.2f" % (med(get), med(post), med(patch)))
PY
    stop_by_pid_file "$out/logs/nginx.pid"
}

echo "== one-server NGINX Plus API calls on a zone upstream of $servers servers, median of $calls (module: $module${BASELINE:+; baseline: $BASELINE})"
builds=(this)
[ -z "${BASELINE:-}" ] || builds+=(baseline)
declare -A result
for build in "${builds[@]}"; do
    m=$module
    [ "$build" = this ] || m=$BASELINE
    result[$build]=$(measure "$m")
done
printf "%-8s | %-16s | %-16s | %s\n" build "GET by ID (ms)" "POST (ms)" "PATCH (ms)"
for build in "${builds[@]}"; do
    read -r g p a <<< "${result[$build]}"
    printf "%-8s | %-16s | %-16s | %s\n" "$build" "$g" "$p" "$a"
done
[ -n "${BASELINE:-}" ] || exit 0
read -r g0 p0 a0 <<< "${result[baseline]}"
read -r g1 p1 a1 <<< "${result[this]}"
awk -v g0="$g0" -v g1="$g1" -v p0="$p0" -v p1="$p1" -v a0="$a0" -v a1="$a1" \
    'BEGIN { printf "baseline/this: GET by ID %.1fx, POST %.1fx, PATCH %.1fx\n", g0 / g1, p0 / p1, a0 / a1 }'
