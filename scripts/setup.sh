#!/usr/bin/env bash
# Installs what building and testing the module need, and prepares an nginx
# build tree whose configure output matches Debian's /usr/sbin/nginx, so the
# module's signature matches the binary it is loaded into.
#
# Idempotent: packages already installed and a tree already configured are
# left alone. Run it as root (or through sudo) on Debian 12.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
build_root="$root/build/nginx"

packages=(
    nginx nginx-dev                      # the target binary and its headers
    libclang-dev                         # bindgen
    libpcre2-dev libssl-dev zlib1g-dev   # nginx's configure checks for these
    libtest-base-perl                    # the t/ harness
    libnginx-mod-http-echo libnginx-mod-http-lua libnginx-mod-stream
    wrk hyperfine curl gnuplot-nox       # benchmarks and the demo
    valgrind                             # scripts' --valgrind modes
    build-essential pkg-config
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian starts nginx from the package's postinst where an init system runs;
# nothing here relies on that instance, and we never stop it.

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is not installed; install Rust (rustup) first" >&2
    exit 1
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
