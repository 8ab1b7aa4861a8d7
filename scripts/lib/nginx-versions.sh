# The nginx versions the module is built and tested for, and where each one's
# pieces are (sourced by scripts/build.sh and scripts/test.sh, after
# common.sh). Everything a version needs is built under build/ by
# scripts/build.sh --nginx V:
#
#   1.22  Debian 12's stock /usr/sbin/nginx; the module built against
#         build/nginx (scripts/setup.sh: nginx-dev's tree and conf_flags).
#   1.26  Debian 13's stock nginx, run from a trixie root (build/trixie) by
#         build/nginx-1.26/nginx; the module built against the root's
#         nginx-dev tree and conf_flags (build/nginx-1.26/src).
#   1.28  nginx 1.28.3 from the nginx-src crate, configured with nginx.org's
#         Debian package flags and built in build/nginx-1.28/src.
# shellcheck shell=bash

NGINX_VERSIONS=(1.22 1.26 1.28)
# build/ by its physical path: worktrees share it through a symlink, and
# what the 1.26 binary and its wrapper name (the root's loader, the binary)
# must not be a worktree that may be removed (review 42).
mkdir -p "$REPO_ROOT/build"
BUILD_DIR=$(cd -P "$REPO_ROOT/build" && pwd)
TRIXIE_ROOT=$BUILD_DIR/trixie

# Exits with a one-line error unless $1 is one of NGINX_VERSIONS.
check_nginx_version() {
    case " ${NGINX_VERSIONS[*]} " in
    *" $1 "*) ;;
    *) echo "unknown nginx version '$1': one of ${NGINX_VERSIONS[*]}" >&2; exit 2 ;;
    esac
}

# nginx_option USAGE ARGS...: the version a script's only option names,
# `--nginx V` (1.22 without it); anything else prints "usage: USAGE" and
# exits 2, as an unknown version does.
nginx_option() {
    local usage=$1 version=1.22
    shift
    while [ $# -gt 0 ]; do
        case $1 in
        --nginx) version=${2:-}; shift 2 || shift ;;
        *) echo "usage: $usage" >&2; exit 2 ;;
        esac
    done
    check_nginx_version "$version"
    echo "$version"
}

# The nginx binary (or the wrapper that runs it) of version $1.
nginx_binary() {
    case $1 in
    1.22) echo /usr/sbin/nginx ;;
    1.26) echo "$REPO_ROOT/build/nginx-1.26/nginx" ;;
    1.28) echo "$REPO_ROOT/build/nginx-1.28/src/objs/nginx" ;;
    esac
}

# The configured nginx tree (objs/) the module of version $1 is built against.
nginx_build_dir() {
    case $1 in
    1.22) echo "$REPO_ROOT/build/nginx/objs" ;;
    *) echo "$REPO_ROOT/build/nginx-$1/src/objs" ;;
    esac
}

# cargo's target dir for version $1: target/ for 1.22 (what a plain
# `cargo build` uses), target/nginx-V for the others, so no version's build
# overwrites another's.
cargo_target_dir() {
    case $1 in
    1.22) echo "$REPO_ROOT/target" ;;
    *) echo "$REPO_ROOT/target/nginx-$1" ;;
    esac
}

# Where the t/ suite finds the echo, lua, stream and fair modules of version $1
# (TEST_NGINX_MODULES_DIR).
nginx_modules_dir() {
    case $1 in
    1.22) echo /usr/lib/nginx/modules ;;
    1.26) echo "$TRIXIE_ROOT/usr/lib/nginx/modules" ;;
    1.28) echo "$REPO_ROOT/build/nginx-1.28/src/objs" ;;
    esac
}

# The modules the t/ suite cannot load into version $1, as
# TEST_NGINX_SKIP_MODULES wants them ("NAME=reason", one per line): their
# blocks are skipped with that reason.
nginx_skipped_modules() {
    case $1 in
    1.26) [ "$(id -u)" -eq 0 ] ||
              echo "lua=Debian 13's Lua module needs Debian 13's lua-resty-core, which build/nginx-1.26/nginx mounts over the host's only as root" ;;
    1.28) echo "lua=no Lua module for nginx 1.28.3: Debian's libnginx-mod-http-lua is built for Debian's nginx ABI (1.22.1 in Debian 12, 1.26.3 in Debian 13) and nginx.org ships none"
          echo "fair=no upstream fair module for nginx 1.28.3: Debian's libnginx-mod-http-upstream-fair is built for Debian's nginx ABI and nginx.org ships none" ;;
    esac
}

# The Debian system whose package scripts/package.sh builds and
# scripts/test-package.sh tests for version $1: "" for this machine (1.22),
# the trixie root (1.26); for 1.28 a one-line reason on stderr, and status 2
# (nginx.org's packages have no nginx-dev: no dh_nginx, no nginx:abi).
debian_package_root() {
    case $1 in
    1.22) echo "" ;;
    1.26) echo "$TRIXIE_ROOT" ;;
    *) echo "no Debian package for nginx $1: nginx.org's packages have no nginx-dev (dh_nginx, nginx:abi); load scripts/build.sh --nginx $1's module with load_module" >&2
       return 2 ;;
    esac
}

# in_target ROOT COMMAND...: COMMAND in the system ROOT names ("": this one),
# through chroot.
in_target() {
    local root=$1
    shift
    if [ -n "$root" ]; then chroot "$root" "$@"; else "$@"; fi
}
