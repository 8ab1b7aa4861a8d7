#!/usr/bin/env bash
# Installs what building and testing the module need, and prepares an nginx
# build tree whose configure output matches Debian's /usr/sbin/nginx, so the
# module's signature matches the binary it is loaded into.
#
# Idempotent: packages already installed and a tree already configured are
# left alone. Run it as root (or through sudo) on Debian 12.
#
#   scripts/setup.sh           everything the tests, benchmarks and demo use
#   scripts/setup.sh --build   only what building the module needs (what
#                              scripts/package.sh runs, maybe on the machine
#                              that serves with its nginx: no other nginx
#                              modules, which Debian would enable there, no
#                              etcd or exporter service, no apt deb-src entry)
set -euo pipefail

only_build=
case "${1:-}" in
    '') ;;
    --build) only_build=1 ;;
    *) echo "usage: scripts/setup.sh [--build]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
root=$PWD
build_root="$root/build/nginx"
# Where rustup puts cargo, for a shell started before it was installed.
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"

fail() {
    echo "setup: $*" >&2
    exit 1
}

# Prerequisites first, before minutes of apt: each missing one is one line.
# shellcheck disable=SC1091
os=$(. /etc/os-release 2>/dev/null && echo "${ID:-}-${VERSION_ID:-}")
[ "$os" = debian-12 ] || fail "this needs Debian 12 (bookworm), not ${os:-an unknown system}: the module is built for its nginx 1.22.1"

rust_min=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
# Debian 12's own rustc (1.63) is too old and no registry reachable here ships
# a newer toolchain: the one thing left to the user, said in one line.
if ! command -v cargo >/dev/null 2>&1; then
    fail "cargo not found: install Rust $rust_min or newer with rustup (https://rustup.rs; Debian 12's rustc 1.63 is too old), then run this again"
fi
rust_version=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$rust_min" "$rust_version" | sort -V | head -1)" != "$rust_min" ]; then
    fail "rustc $rust_version is too old: this crate needs $rust_min or newer (rustup update)"
fi

build_packages=(
    nginx nginx-dev                      # the target binary and its headers (and debhelper)
    libclang-dev                         # bindgen
    libpcre2-dev libssl-dev zlib1g-dev   # nginx's configure checks for these
    build-essential pkg-config
)
packages=(
    "${build_packages[@]}"
    libtest-base-perl                    # the t/ harness
    libnginx-mod-http-echo libnginx-mod-http-lua libnginx-mod-stream
    libnginx-mod-http-upstream-fair      # t/: a balancer of another module (fair)
    wrk curl gnuplot-nox                 # benchmarks and the demo
    iproute2                             # ss: the scripts' free-port checks
    valgrind                             # scripts' --valgrind modes
    gdb                                  # t/dyups-list-lock.t kills a worker inside nginx's round robin
    prometheus-nginx-exporter            # t/metrics.t scrapes the NGINX Plus API with it
    protobuf-compiler                    # protoc: the etcd client's build (agent/)
    etcd-server etcd-client              # scripts/test-etcd.sh (the ndu-sync agent)
    debootstrap patchelf                 # scripts/build.sh --nginx 1.26: Debian 13's nginx
)
[ -n "$only_build" ] && packages=("${build_packages[@]}")

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

sudo_cmd=()
if [ "$(id -u)" -ne 0 ] && [ "${#missing[@]}" -gt 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "not root and no sudo: run this as root to install ${missing[*]}"
    sudo_cmd=(sudo)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    # Debian's nginx and etcd-server packages start (or restart) their
    # services from their maintainer scripts where an init system runs: a
    # policy-rc.d that refuses every start keeps them as they were. One
    # already there is left alone (it decides instead).
    policy=/usr/sbin/policy-rc.d
    own_policy=
    if [ ! -e "$policy" ]; then
        "${sudo_cmd[@]}" sh -c "printf '#!/bin/sh\\nexit 101\\n' > $policy && chmod 755 $policy"
        own_policy=1
        trap '"${sudo_cmd[@]}" rm -f "$policy"' EXIT
    else
        echo "setup: $policy exists: it decides whether installing nginx starts the system's nginx"
    fi
    "${sudo_cmd[@]}" apt-get update
    # Progress: apt's own lines (Get:, Unpacking, Setting up), not silence.
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    if [ -n "$own_policy" ]; then
        "${sudo_cmd[@]}" rm -f "$policy"
        trap - EXIT
        for service in nginx etcd-server; do
            if [[ " ${missing[*]} " == *" $service "* ]]; then
                echo "setup: the system's ${service%-server} was not started; Debian enables its service, so it starts at the next boot"
            fi
        done
    fi
fi

# The 1.28 build takes Debian 12's echo module from its source package
# (`apt-get source`): apt needs deb-src entries.
# shellcheck source=scripts/lib/deb-src.sh
source scripts/lib/deb-src.sh
if [ -z "$only_build" ] && ! has_deb_src; then
    [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1 ||
        fail "apt has no deb-src entries and this is not root (no sudo): run this as root"
    ensure_deb_src
fi

# The configured tree is keyed by the installed nginx version, so a Debian
# update of nginx-dev triggers a fresh configure.
installed_version=$(dpkg-query -W -f='${Version}' nginx-dev)
stamp="$build_root/.configured-for"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$installed_version" ] && [ -f "$build_root/objs/ngx_auto_config.h" ]; then
    exit 0
fi

echo "setup: configuring nginx build tree for nginx-dev $installed_version in build/nginx"
rm -rf "$build_root"
mkdir -p "$build_root"
cp -a /usr/share/nginx/src/. "$build_root/"
(
    cd "$build_root"
    # conf_flags defines the bash array NGX_CONF_FLAGS with Debian's own
    # configure arguments (--with-compat, --with-debug, --with-threads, ...).
    # shellcheck disable=SC1091
    source ./conf_flags
    ./configure "${NGX_CONF_FLAGS[@]}" > configure.log 2>&1 || {
        echo "setup: nginx configure failed, see build/nginx/configure.log" >&2
        exit 1
    }
)
echo "$installed_version" > "$stamp"
echo "setup: done"
