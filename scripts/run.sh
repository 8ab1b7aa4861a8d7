#!/usr/bin/env bash
# Starts the demo in the foreground: nginx with the module and
# nginx-conf/quickstart.conf, prefix build/demo/. Ctrl-C stops it.
source "$(dirname "$0")/common.sh"

scripts/setup.sh
module=$(build_module release)

prefix="$REPO_ROOT/build/demo"
mkdir -p "$prefix/logs" "$prefix/conf" "$prefix/modules"
chmod 755 "$prefix"
ln -sf "$module" "$prefix/modules/ngx_http_dynamic_upstream_module.so"
cp nginx-conf/quickstart.conf "$prefix/conf/nginx.conf"

nginx_args=(-p "$prefix/" -c conf/nginx.conf -e logs/error.log)
"$NGINX_BIN" "${nginx_args[@]}" -t -q

"$NGINX_BIN" "${nginx_args[@]}" -g "daemon off;" &
nginx_pid=$!
stop() {
    # Only the nginx this script started, by its pid.
    kill -QUIT "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
}
trap stop INT TERM EXIT

cat <<MSG
nginx runs with the dynamic upstream module (prefix $prefix, logs in $prefix/logs).
Try:
  curl http://127.0.0.1:8080/                                   # proxied to the upstream "backends"
  curl 'http://127.0.0.1:8088/dynamic?upstream=backends&verbose='
  curl 'http://127.0.0.1:8088/dynamic?upstream=backends&server=127.0.0.1:8083&down='
  curl http://127.0.0.1:8088/list
  curl -d 'server 127.0.0.1:8081;server 127.0.0.1:8082;' http://127.0.0.1:8088/upstream/demo
  curl -H 'Host: demo' http://127.0.0.1:8089/
Press Ctrl-C to stop.
MSG
wait "$nginx_pid"
