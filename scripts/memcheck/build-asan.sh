#!/usr/bin/env bash
# Builds Debian's nginx (the source of the installed /usr/sbin/nginx) with
# AddressSanitizer, for scripts/memcheck.sh asan. Prints the binary's path.
#
#   scripts/memcheck/build-asan.sh [--nginx 1.22|1.28]     (default 1.22)
#
# 1.28: nginx 1.28.3 from the same nginx-src tree and with the same configure
# arguments as scripts/build.sh --nginx 1.28 (which it runs first; they are
# in the stamp build.sh writes, build/nginx-1.28/src/.built-with), plus the
# ASan options below, built in build/nginx-1.28-asan/src. The rest of this
# comment is about 1.22:
# - adds a deb-src entry for bookworm, bookworm-updates and bookworm-security
#   if apt has none (deb822 file /etc/apt/sources.list.d/deb-src.sources);
# - `apt-get source nginx=<installed version>` into build/nginx-asan/
#   (dpkg-dev unpacks it and applies Debian's patches);
# - configures with Debian's own flags (NGX_CONF_FLAGS from
#   /usr/share/nginx/src/conf_flags, the same ones the module is built
#   against, so the module signature matches) plus the ASan options, and
#   `make -j2`.
#
# Idempotent: a binary already built for the installed version with the same
# options is reused.
#
# ASan options, beyond -fsanitize=address -fno-omit-frame-pointer -g -O1:
#   -fsanitize-recover=address  so that ASAN_OPTIONS=halt_on_error=0 really
#                               goes on after a report (without it ASan stops
#                               the process at the first error whatever the
#                               option says);
#   -DNGX_DEBUG_PALLOC=1        every ngx_palloc() is a malloc() of its own
#                               (nginx's documented debugging switch), so an
#                               overflow of a pool allocation, the module's
#                               included, hits a redzone instead of the next
#                               object of the same pool block. It changes no
#                               structure and not the module signature.
#   ld: -Wl,--no-as-needed -lcrypt
#                               libasan exports crypt_r() (an interceptor), so
#                               configure finds crypt in libc and does not
#                               link libcrypt, and the interceptor then calls
#                               a NULL crypt_r: every auth_basic password
#                               check crashes the worker (Debian's build
#                               links libcrypt).
#   make: CFLAGS += -include scripts/memcheck/asan-keep-modules.h
#                               dlclose() is a no-op, so that LeakSanitizer's
#                               report at exit (after the master unloaded the
#                               modules) can still name the modules' frames;
#                               see that file. Not used by configure's tests.
# Set MEMCHECK_ASAN_PALLOC=0 to build without NGX_DEBUG_PALLOC,
# MEMCHECK_ASAN_KEEP_MODULES=0 to keep nginx's dlclose().
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
top="$root/build/nginx-asan"
log_dir="$root/scripts/out/memcheck/asan"
mkdir -p "$top" "$log_dir"

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

nginx=1.22
if [ "${1:-}" = --nginx ]; then nginx=${2:-}; fi
case $nginx in
1.22|1.28) ;;
*) echo "usage: $0 [--nginx 1.22|1.28]" >&2; exit 2 ;;
esac

palloc=${MEMCHECK_ASAN_PALLOC:-1}
cc_opt='-fsanitize=address -fsanitize-recover=address -fno-omit-frame-pointer -g -O1'
[ "$palloc" = 1 ] && cc_opt+=' -DNGX_DEBUG_PALLOC=1'
ld_opt='-fsanitize=address -Wl,--no-as-needed -lcrypt'
keep_modules=${MEMCHECK_ASAN_KEEP_MODULES:-1}
keep_header="$root/scripts/memcheck/asan-keep-modules.h"

# Runs configure ARGS... with the ASan options, then make, in the current directory.
configure_and_make() {
    "$@" --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" \
        > "$top/configure.log" 2>&1 || { echo "build-asan: configure failed, see $top/configure.log" >&2; exit 1; }
    if [ "$keep_modules" = 1 ]; then
        sed -i "s|^CFLAGS = .*|& -include $keep_header|" objs/Makefile
    fi
    # (The module signature is configure's: same version and flags as the
    # tree the module is built against, so load_module accepts the module;
    # scripts/memcheck.sh checks it with nginx -t.)
    nice -n 10 make -j2 > "$top/make.log" 2>&1 || { echo "build-asan: make failed, see $top/make.log" >&2; exit 1; }
}

if [ "$nginx" = 1.28 ]; then
    scripts/build.sh --nginx 1.28 >/dev/null
    # The physical path, as build.sh's: worktrees sharing build/ share it.
    top=$(cd -P "$root/build" && pwd)/nginx-1.28-asan
    built_with=$(cat "$root/build/nginx-1.28/src/.built-with")
    read -r -a args <<< "$built_with"
    src_tree=${args[0]}
    stamp_text="$built_with|$cc_opt|$ld_opt|keep-modules=$keep_modules"
    if [ -x "$top/src/objs/nginx" ] && [ "$(cat "$top/.built-for" 2>/dev/null)" = "$stamp_text" ]; then
        echo "$top/src/objs/nginx"
        exit 0
    fi
    echo "build-asan: building nginx 1.28.3 with ASan in $top/src (a few minutes)" >&2
    rm -rf "$top/src"
    mkdir -p "$top"
    cp -a "$src_tree/." "$top/src/"
    (cd "$top/src" && configure_and_make auto/configure "${args[@]:1}")
    echo "$stamp_text" > "$top/.built-for"
    echo "$top/src/objs/nginx"
    exit 0
fi

version=$(dpkg-query -W -f='${Version}' nginx)
upstream=${version%%-*}
stamp_text="$version|$cc_opt|$ld_opt|keep-modules=$keep_modules"
src="$top/nginx-$upstream"
stamp="$top/.built-for"
if [ -x "$src/objs/nginx" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_text" ]; then
    echo "$src/objs/nginx"
    exit 0
fi

# 1. deb-src entries.
# shellcheck source=scripts/lib/deb-src.sh
source "$root/scripts/lib/deb-src.sh"
ensure_deb_src

# 2. The source package (dpkg-source, from dpkg-dev, unpacks it).
need=()
for p in dpkg-dev nginx-dev libpcre2-dev libssl-dev zlib1g-dev build-essential; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "build-asan: installing ${need[*]}" >&2
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -f "$src/configure" ]; then
    echo "build-asan: apt-get source nginx=$version into build/nginx-asan/" >&2
    rm -rf "$src"
    # The installed version first; the archive may have moved on from it, or
    # list a version whose files are not (yet) in its pool: then every other
    # source version of the same upstream release, newest first (same ABI).
    candidates=("$version")
    while read -r v; do
        [ "$v" != "$version" ] && [ "${v%%-*}" = "$upstream" ] && candidates+=("$v")
    done < <(apt-cache showsrc nginx 2>/dev/null | sed -n 's/^Version: //p' | sort -rV)
    for v in "${candidates[@]}"; do
        [ "$v" = "$version" ] || echo "build-asan: nginx=$version's source is not to be had, trying $v" >&2
        (cd "$top" && apt-get source -qq "nginx=$v" >"$top/apt-get-source.log" 2>&1) && break
    done
    [ -f "$src/configure" ] || { echo "build-asan: no $src/configure (see $top/apt-get-source.log)" >&2; exit 1; }
fi

# 3. Configure with Debian's flags plus ASan, then build.
echo "build-asan: configuring and building (make -j2) in $src" >&2
(
    cd "$src"
    # shellcheck disable=SC1091
    source /usr/share/nginx/src/conf_flags
    configure_and_make ./configure "${NGX_CONF_FLAGS[@]}"
)
echo "$stamp_text" > "$stamp"
echo "$src/objs/nginx"
