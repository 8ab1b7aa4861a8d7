#!/usr/bin/env bash
# Builds the Debian package of the module and prints its path as the last
# line:
#
#   scripts/package.sh               for the nginx installed here (Debian 12's
#                                    1.22.1): target/package/NAME_VERSION+deb12_ARCH.deb
#   scripts/package.sh --nginx 1.26  for Debian 13's nginx 1.26.3, on this
#                                    Debian 12 machine, as root:
#                                    target/nginx-1.26/package/NAME_VERSION+deb13_ARCH.deb
#
# NAME is libnginx-mod-http-dynamic-upstream, VERSION Cargo.toml's.
#
# With Debian's own tooling, as Debian's libnginx-mod-* packages are built:
# packaging/debian/rules runs `dh` and calls dh_nginx (from nginx-dev) after
# dh_install; dh_nginx
#  - installs the .so into /usr/lib/nginx/modules/ and
#    mod-http-dynamic-upstream.conf (its load_module line) into
#    /usr/share/nginx/modules-available/;
#  - writes Debian's postinst/prerm/postrm snippets: the link
#    /etc/nginx/modules-enabled/60-mod-http-dynamic-upstream.conf (60: after
#    Lua's 50, so `require "ngx.dyups"` works), set aside on remove and
#    dropped on purge, and the `nginx-reload` trigger, which the nginx
#    package's postinst handles by reloading nginx only if it runs and
#    `nginx -t` passes (never starting it);
#  - puts nginx's ABI (nginx:abi, e.g. nginx-abi-1.22.1-7, which the nginx
#    package Provides) into Depends; dh_shlibdeps adds libc6 and libgcc-s1.
# The package's own postinst gives the state directory
# /var/lib/nginx/dynamic-upstream to www-data; its postrm removes it on purge.
#
# debian/rules does not run cargo: dpkg-buildpackage would then build inside
# the repository and write its output to the repository's parent directory.
# This script builds the module (release), copies it and packaging/debian/
# into a staging tree NAME-VERSION/ and runs `dpkg-buildpackage -b` there.
#
# For Debian 13 the packaging tools are Debian 13's: the staging tree is made
# in the trixie root that scripts/build.sh --nginx 1.26 keeps (build/trixie,
# with nginx-dev and so debhelper) and dpkg-buildpackage runs there through
# chroot, so dh_nginx, the nginx:abi substitution and dpkg-shlibdeps are
# that release's. The module is built on the host against the root's
# nginx-dev tree, as for the t/ suite. `-d`: the root lacks build-essential,
# which dpkg-buildpackage checks for and nothing here uses (no C is
# compiled; binutils, which dh_strip and dpkg-shlibdeps use, is there).
source "$(dirname "$0")/common.sh"
source scripts/lib/nginx-versions.sh

nginx=$(nginx_option "scripts/package.sh [--nginx 1.22|1.26]" "$@")
root=$(debian_package_root "$nginx") || exit 2

name=libnginx-mod-http-dynamic-upstream
out="$(cargo_target_dir "$nginx")/package"

if [ -z "$root" ]; then
    # Only what the build needs: this may be the machine the package is for.
    scripts/setup.sh --build >&2
else
    [ "$(id -u)" -eq 0 ] || { echo "package: the Debian 13 package is built in build/trixie through chroot: run this as root" >&2; exit 1; }
    # A Debian 12 build machine (not the one the package is for): what
    # scripts/build.sh --nginx 1.26 needs, then the root, its packaging tools
    # and the nginx-dev tree the module builds against.
    scripts/setup.sh >&2
    scripts/build.sh --nginx "$nginx" >/dev/null
    NGINX_BUILD_DIR=$(nginx_build_dir "$nginx")
    CARGO_TARGET_DIR=$(cargo_target_dir "$nginx")
    export NGINX_BUILD_DIR CARGO_TARGET_DIR
fi
# Cargo.toml's version, +debNN for the Debian release it is built for: the
# two packages differ (nginx's ABI, the .so) and an archive holds both, and
# a Debian 12 -> 13 upgrade takes +deb13 as newer than +deb12.
release=$(in_target "$root" sh -c '. /etc/os-release && echo "$VERSION_ID $VERSION_CODENAME"')
codename=${release#* }
version=$(awk -F'"' '/^\[/ { in_package = ($0 == "[package]") }
                     in_package && /^version *=/ { print $2; exit }' Cargo.toml)+deb${release%% *}

# dh_nginx takes the ABI from nginx-dev; the module must load into that
# system's nginx, so both must agree.
abi_dev=$(sed -n 's/^nginx:abi=//p' "$root/usr/share/nginx/src/debian/libnginx-mod.abisubstvars")
abi_nginx=$(in_target "$root" dpkg-query -W -f='${Provides}' nginx | grep -o 'nginx-abi-[^ ,]*' || true)
if [ -z "$abi_dev" ] || [ "$abi_dev" != "$abi_nginx" ]; then
    echo "package: nginx-dev's ABI '$abi_dev' is not the installed nginx's '$abi_nginx': install matching nginx and nginx-dev" >&2
    exit 1
fi

module=$(build_module release)

# Where dpkg-buildpackage runs: a directory of this run's, in the root for
# Debian 13 (its tools see nothing else), whence the results move to $out
# once built (a failed build leaves the last package there).
if [ -n "$root" ]; then
    work=$(mktemp -d "$root/tmp/ndu-package.XXXXXX")
else
    work=$(mktemp -d "$REPO_ROOT/target/package-build.XXXXXX")
fi
trap 'rm -rf "$work"' EXIT
stage="$work/$name-$version"
mkdir -p "$stage"
cp -a packaging/debian "$stage/debian"
cp "$module" "$stage/ngx_http_dynamic_upstream_module.so"

# A native package: the changelog is generated for Cargo.toml's version, dated
# by the last commit (reproducible builds) when there is one.
maintainer=$(sed -n 's/^Maintainer: //p' packaging/debian/control)
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
cat > "$stage/debian/changelog" <<EOF
$name ($version) $codename; urgency=medium

  * nginx-dynamic-upstream $version, built for $abi_nginx.

 -- $maintainer  $(date -R -u -d "@$epoch")
EOF

# shellcheck disable=SC2016
in_target "$root" sh -c 'cd "$1" && SOURCE_DATE_EPOCH=$2 dpkg-buildpackage -b -us -uc $3' sh \
    "${stage#"$root"}" "$epoch" "${root:+-d}" >&2
rm -rf "$out"
mkdir -p "$out"
mv "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo "$out"/

deb="$out/${name}_${version}_$(dpkg --print-architecture).deb"
[ -f "$deb" ] || { echo "package: dpkg-buildpackage did not write $deb" >&2; exit 1; }
echo "$deb"
