#!/usr/bin/env bash
# Installs the Debian package (scripts/package.sh) for real and exercises it
# through the system's nginx, then removes and purges it, leaving the system
# as it was:
#
#   scripts/test-package.sh              Debian 12's package on this machine
#   scripts/test-package.sh --nginx 1.26 Debian 13's package in the trixie
#                                        root (build/trixie): dpkg, nginx -t
#                                        and nginx run there through chroot
#                                        (nginx in a mount namespace of its
#                                        own with the root's /proc)
#
#  1. dpkg -i; the files, the modules-enabled link, the state directory.
#  2. nginx-conf/debian-site.conf as a site in /etc/nginx/sites-enabled/, on
#     127.0.0.1 ports from free_port_block; `nginx -t` with Debian's stock
#     /etc/nginx/nginx.conf.
#  3. /usr/sbin/nginx started with a copy of the stock nginx.conf whose only
#     site is ours (so the stock default site's 0.0.0.0:80 never listens),
#     logs and temporary files in a temporary directory, pid /run/nginx.pid.
#  4. Both APIs through it: a zone upstream change (query string) and a
#     run-time upstream (REST), traffic through both, the state files;
#     `require "ngx.dyups"` where Debian's Lua module is enabled; dpkg -i
#     again while nginx runs: the package's nginx-reload trigger reloads it
#     (unless policy-rc.d forbids it: then nginx must be left alone).
#  5. nginx stopped by its pid file; the site removed; dpkg -r: the link is
#     set aside and `nginx -t` passes; dpkg --purge: link and state gone.
# Needs root; refuses to run where it would disturb the system (the package
# already installed, a system nginx running).
source "$(dirname "$0")/common.sh"
source scripts/lib/nginx-versions.sh

nginx=$(nginx_option "scripts/test-package.sh [--nginx 1.22|1.26]" "$@")
# The system under test is / or the root: every path below is as that
# system sees it; this script reaches it as "$root$path".
root=$(debian_package_root "$nginx") || exit 2

name=libnginx-mod-http-dynamic-upstream
so=/usr/lib/nginx/modules/ngx_http_dynamic_upstream_module.so
load_file=/usr/share/nginx/modules-available/mod-http-dynamic-upstream.conf
link=/etc/nginx/modules-enabled/60-mod-http-dynamic-upstream.conf
state=/var/lib/nginx/dynamic-upstream
site=/etc/nginx/sites-enabled/dynamic-upstream-test
pid_file=/run/nginx.pid

skip() { echo "test-package: skipped: $*"; exit 0; }
[ "$(id -u)" -eq 0 ] || skip "installing a package needs root"
# One run at a time per system: two would share its /etc/nginx, the package
# and the pid file.
exec 9>"/run/lock/nginx-dynamic-upstream-test-package-$nginx.lock"
flock -n 9 || skip "another test-package.sh --nginx $nginx runs"
if [ -n "$root" ]; then
    [ -x "$root/usr/sbin/nginx" ] || skip "no Debian 13 root in build/trixie (scripts/build.sh --nginx 1.26 makes it)"
fi
status=$(in_target "$root" dpkg-query -W -f='${db:Status-Status}' "$name" 2>/dev/null || true)
[ -z "$status" ] || [ "$status" = not-installed ] || skip "$name is $status already"
[ ! -e "$root$state" ] || skip "$root$state exists already"
[ ! -e "$root$site" ] || skip "$root$site exists already"
running() { [ -s "$root$pid_file" ] && kill -0 "$(cat "$root$pid_file")" 2>/dev/null; }
! running || skip "a system nginx runs (pid file $pid_file)"
# `nginx -t` creates an empty pid file where there is none.
[ -e "$root$pid_file" ] && pid_file_existed=true || pid_file_existed=false
# A stale one's pid (an nginx killed with -9): not the nginx this run starts.
old_pid=$(cat "$root$pid_file" 2>/dev/null || true)

fail() { echo "test-package: FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# $tmp as the system sees it (nginx's logs and temporary files).
tmp=$(mktemp -d "$root/tmp/test-package.XXXXXX")
tmp=${tmp#"$root"}
chmod 755 "$root$tmp"   # the workers (www-data) use its temporary directories
# nginx -t with the stock configuration chowns its temporary directories to
# www-data, and makes those missing: their owners are restored afterwards,
# the new ones removed.
owners=$(stat -c '%u %n' "$root"/var/lib/nginx/*/ 2>/dev/null || true)
# The master this test started (set once it runs): the only nginx it stops.
master=
stop_master() {
    # Started, but failed before its pid was read (a slow start): the pid
    # file names it once it holds another pid than before the run.
    if [ -z "$master" ]; then
        master=$(cat "$root$pid_file" 2>/dev/null || true)
        [ "$master" != "$old_pid" ] || master=
    fi
    [ -n "$master" ] || return 0
    kill -QUIT "$master" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$master" 2>/dev/null || break; sleep 0.1; done
    master=
}
cleanup() {
    local status=$?
    # Every step, whatever one of them answers.
    set +e
    stop_master
    $pid_file_existed || rm -f "$root$pid_file"
    rm -f "$root$site"
    in_target "$root" dpkg-query -W "$name" >/dev/null 2>&1 && in_target "$root" dpkg --purge "$name" >/dev/null
    rm -rf "$root$state" "$root$tmp"
    # The copy of the package in the root.
    [ -n "$root" ] && [ -n "$deb" ] && rm -f "$root$deb"
    local dir
    for dir in "$root"/var/lib/nginx/*/; do
        [ -d "$dir" ] && [[ "$owners" != *" $dir"* ]] && rm -rf "$dir"
    done
    while read -r uid dir; do
        [ -d "$dir" ] && chown "$uid" "$dir"
    done <<< "$owners"
    [ "$status" -eq 0 ] && echo "test-package --nginx $nginx: PASS" || echo "test-package --nginx $nginx: FAIL (see above)" >&2
}
deb=
trap cleanup EXIT
# A signal is a failure (the EXIT trap would see the last command's status).
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# What the checks below use (curl; ss for free ports) besides what the
# package's build needs (package.sh installs only that).
scripts/setup.sh >"$root$tmp/setup.log" 2>&1 || { cat "$root$tmp/setup.log" >&2; fail "scripts/setup.sh"; }
deb=$(scripts/package.sh --nginx "$nginx" 2>"$root$tmp/package.log" | tail -1) ||
    { cat "$root$tmp/package.log" >&2; fail "scripts/package.sh --nginx $nginx"; }
# The package as the system sees it.
if [ -n "$root" ]; then
    cp "$deb" "$root/tmp/"
    deb=/tmp/$(basename "$deb")
fi
in_target "$root" dpkg -i "$deb" >/dev/null
! running || fail "dpkg -i started nginx"

# 1. What the package installed.
[ -f "$root$so" ] || fail "$so missing"
[ "$(cat "$root$load_file")" = "load_module modules/ngx_http_dynamic_upstream_module.so;" ] \
    || fail "$load_file: $(cat "$root$load_file")"
[ "$(readlink "$root$link")" = "$load_file" ] || fail "$link -> $(readlink "$root$link")"
owner=$(in_target "$root" stat -c '%U:%G %a' "$state")
[ "$owner" = "www-data:www-data 750" ] || fail "$state: $owner"
abi=$(in_target "$root" dpkg-query -W -f='${Provides}' nginx | grep -o 'nginx-abi-[^ ,]*')
depends=$(in_target "$root" dpkg-query -W -f='${Depends}' "$name")
[[ "$depends" == "$abi, libc6 (>= "*", libgcc-s1 (>= "*")" ]] || fail "Depends: $depends (nginx provides $abi)"
ok "dpkg -i: the module, $load_file, $link, $state (www-data, 750), Depends: $depends"

# 2. The example site, on free ports: 127.0.0.1:808N becomes base+N.
base=$(free_port_block 10)
port() { echo $((base + $1 - 8080)); }
BASE=$base perl -pe 's/127\.0\.0\.1:(808\d)\b/"127.0.0.1:" . ($ENV{BASE} + $1 - 8080)/ge' \
    nginx-conf/debian-site.conf > "$root$site"
# With Debian's Lua module enabled, `require "ngx.dyups"` must work.
lua=false
if [ -e "$root/etc/nginx/modules-enabled/50-mod-http-lua.conf" ]; then
    lua=true
    cat >> "$root$site" <<EOF
server {
    listen 127.0.0.1:$(port 8087);
    location / {
        content_by_lua_block {
            local status, message = require("ngx.dyups").update("luademo", "server 127.0.0.1:$(port 8081);")
            ngx.say(status, " ", message)
        }
    }
}
EOF
fi
out=$(in_target "$root" /usr/sbin/nginx -t 2>&1) || fail "nginx -t with the stock nginx.conf: $out"
ok "nginx -t with the stock /etc/nginx/nginx.conf and the site"

# 3. The system nginx, with the stock nginx.conf but only our site.
conf="$tmp/nginx.conf"
temp_paths "$tmp" > "$root$tmp/temp_paths.conf"
sed -e "s|^\(\s*\)include /etc/nginx/sites-enabled/\*;|\1include $site;|" \
    -e "/^\s*include \/etc\/nginx\/conf.d\/\*.conf;/d" \
    -e "s|^\(\s*\)error_log .*;|\1error_log $tmp/error.log;|" \
    -e "s|^\(\s*\)access_log .*;|\1access_log $tmp/access.log; include $tmp/temp_paths.conf;|" \
    "$root/etc/nginx/nginx.conf" > "$root$conf"
for line in "include $site;" "error_log $tmp/error.log;" "access_log $tmp/access.log;" "pid $pid_file;" \
    "include /etc/nginx/modules-enabled/\*.conf;" "user www-data;"; do
    grep -q "^\s*$line" "$root$conf" || fail "the copy of /etc/nginx/nginx.conf lacks '$line'"
done
! grep -q 'sites-enabled/\*\|conf\.d' "$root$conf" || fail "the copy of /etc/nginx/nginx.conf still includes other sites"
if [ -z "$root" ]; then
    /usr/sbin/nginx -c "$conf" -e "$tmp/error.log"
else
    # shellcheck disable=SC2016
    unshare --mount --propagation private sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' \
        "$root" /usr/sbin/nginx -c "$conf" -e "$tmp/error.log"
fi
# The daemon writes its pid file after the launcher returned.
for _ in $(seq 1 50); do running && break; sleep 0.1; done
running || fail "nginx did not start (see $root$tmp/error.log)"
master=$(cat "$root$pid_file")

# Polls URL until it answers (5 s).
wait_for() {
    for _ in $(seq 1 50); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
    fail "$1 does not answer"
}
# expect STATUS BODY CURL_ARGS...: the exact status and body.
nl=$'\n'
expect() {
    local status=$1 body=$2 got
    shift 2
    got=$(curl -s -w '%{http_code}' "$@")
    [ "$got" = "$body$status" ] || fail "curl $*: expected $status '$body', got '$got'"
}
admin="http://127.0.0.1:$(port 8088)"
wait_for "$admin/list"
b1="127.0.0.1:$(port 8081)" b2="127.0.0.1:$(port 8082)" b3="127.0.0.1:$(port 8083)"

# 4. The query-string API on a zone upstream.
expect 200 "server $b1;
server $b2;
server $b3;
" "$admin/dynamic?upstream=backends"
expect 200 "server $b1 weight=1 max_fails=1 fail_timeout=10 down;
server $b2 weight=1 max_fails=1 fail_timeout=10;
server $b3 weight=1 max_fails=1 fail_timeout=10;
" "$admin/dynamic?upstream=backends&server=$b1&down="
listing="server $b1 weight=1 max_fails=1 fail_timeout=10 down;
server $b2 weight=1 max_fails=1 fail_timeout=10 down;
server $b3 weight=1 max_fails=1 fail_timeout=10;
"
expect 200 "$listing" "$admin/dynamic?upstream=backends&server=$b2&down="
for _ in 1 2 3 4; do expect 200 "backend $(port 8083)$nl" "http://127.0.0.1:$(port 8080)/"; done
[ "$(cat "$root$state/backends.state")$nl" = "# Written by nginx-dynamic-upstream after every change through its APIs.$nl$listing" ] || fail "$state/backends.state: $(cat "$root$state/backends.state")"
ok "query-string API: two peers down, traffic to the third only, $state/backends.state"

# The REST API: an upstream created at run time, reached by Host.
expect 200 "success" -d "server $b2;" "$admin/upstream/demo"
for _ in 1 2 3; do expect 200 "backend $(port 8082)$nl" -H 'Host: demo' "http://127.0.0.1:$(port 8089)/"; done
expect 200 "backends${nl}demo$nl" "$admin/list"
grep -q "^upstream demo {" "$root$state/dyups.conf" || fail "$state/dyups.conf: $(cat "$root$state/dyups.conf")"
ok "REST API: upstream demo created, traffic by Host to it, $state/dyups.conf"
if $lua; then
    expect 200 "200 success$nl" "http://127.0.0.1:$(port 8087)/"
    expect 200 "backend $(port 8081)$nl" -H 'Host: luademo' "http://127.0.0.1:$(port 8089)/"
    ok "Lua (Debian's libnginx-mod-http-lua): require \"ngx.dyups\" works, upstream luademo created"
fi

# Reinstalling while nginx runs activates Debian's nginx-reload trigger: the
# nginx package's postinst reloads nginx through invoke-rc.d (nginx -t
# first), unless policy-rc.d denies service actions, as in Docker images, or
# there is no init system (the Debian 13 root: invoke-rc.d then blocks every
# action). Either way the changes are still there.
workers() { pgrep -P "$master" | sort; }
workers_before=$(workers)
out=$(in_target "$root" dpkg -i "$deb" 2>&1)
[[ "$out" == *"Processing triggers for nginx "* ]] || fail "dpkg -i did not trigger nginx-reload: $out"
denied=
if [ -n "$root" ]; then
    denied="the Debian 13 root has no init system"
elif [ -x /usr/sbin/policy-rc.d ] && { /usr/sbin/policy-rc.d nginx reload >/dev/null 2>&1; [ $? -eq 101 ]; }; then
    denied="/usr/sbin/policy-rc.d denies service actions here"
fi
if [ -n "$denied" ]; then
    [ "$(cat "$root$pid_file")" = "$master" ] && [ "$(workers)" = "$workers_before" ] \
        || fail "nginx was reloaded or restarted although $denied"
    reloaded="not reloaded: $denied"
else
    for _ in $(seq 1 50); do [ "$(workers)" != "$workers_before" ] && break; sleep 0.1; done
    [ "$(cat "$root$pid_file")" = "$master" ] && [ "$(workers)" != "$workers_before" ] \
        || fail "dpkg -i while nginx runs did not reload it"
    reloaded="reloaded"
fi
expect 200 "$listing" "$admin/dynamic?upstream=backends&verbose="
expect 200 "backend $(port 8082)$nl" -H 'Host: demo' "http://127.0.0.1:$(port 8089)/"
ok "dpkg -i while nginx runs: the nginx-reload trigger ran, nginx $reloaded, changes kept"

# 5. Stop, remove, purge.
stop_master
! grep -E '\[(alert|crit|emerg)\]|exited on signal' "$root$tmp/error.log" || fail "$root$tmp/error.log"
rm "$root$site"
in_target "$root" dpkg -r "$name" >/dev/null
[ ! -e "$root$link" ] && [ ! -e "$root$so" ] && [ ! -e "$root$load_file" ] || fail "dpkg -r left the module or its link"
[ "$(readlink "$root$link.removed")" = "$load_file" ] || fail "dpkg -r did not set the link aside as $link.removed"
out=$(in_target "$root" /usr/sbin/nginx -t 2>&1) || fail "nginx -t after dpkg -r: $out"
ok "dpkg -r: the module gone, its link set aside (.removed), nginx -t passes"
in_target "$root" dpkg --purge "$name" >/dev/null
[ ! -e "$root$link.removed" ] && [ ! -e "$root$state" ] || fail "dpkg --purge left $link.removed or $state"
ok "dpkg --purge: the set-aside link and $state gone"
