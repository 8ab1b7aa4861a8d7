#!/usr/bin/env bash
# Builds the Debian package of the module for the nginx installed here:
# target/package/libnginx-mod-http-dynamic-upstream_<version>_<arch>.deb
# (version from Cargo.toml), whose path is the last line printed.
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
# into a staging tree target/package/<name>-<version>/ and runs
# `dpkg-buildpackage -b` there, so everything lands in target/package/.
source "$(dirname "$0")/common.sh"

name=libnginx-mod-http-dynamic-upstream
out="$REPO_ROOT/target/package"

# Only what the build needs: this may be the machine the package is for.
scripts/setup.sh --build >&2
version=$(awk -F'"' '/^\[/ { in_package = ($0 == "[package]") }
                     in_package && /^version *=/ { print $2; exit }' Cargo.toml)

# dh_nginx takes the ABI from nginx-dev; the module must load into the nginx
# installed here, so both must agree.
abi_dev=$(sed -n 's/^nginx:abi=//p' /usr/share/nginx/src/debian/libnginx-mod.abisubstvars)
abi_nginx=$(dpkg-query -W -f='${Provides}' nginx | grep -o 'nginx-abi-[^ ,]*' || true)
if [ -z "$abi_dev" ] || [ "$abi_dev" != "$abi_nginx" ]; then
    echo "package: nginx-dev's ABI '$abi_dev' is not the installed nginx's '$abi_nginx': install matching nginx and nginx-dev" >&2
    exit 1
fi

module=$(build_module release)

stage="$out/$name-$version"
rm -rf "$out"
mkdir -p "$stage"
cp -a packaging/debian "$stage/debian"
cp "$module" "$stage/ngx_http_dynamic_upstream_module.so"

# A native package: the changelog is generated for Cargo.toml's version, dated
# by the last commit (reproducible builds) when there is one.
maintainer=$(sed -n 's/^Maintainer: //p' packaging/debian/control)
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
cat > "$stage/debian/changelog" <<EOF
$name ($version) unstable; urgency=medium

  * nginx-dynamic-upstream $version, built for $abi_nginx.

 -- $maintainer  $(date -R -u -d "@$epoch")
EOF

(cd "$stage" && SOURCE_DATE_EPOCH=$epoch dpkg-buildpackage -b -us -uc) >&2

deb="$out/${name}_${version}_$(dpkg --print-architecture).deb"
[ -f "$deb" ] || { echo "package: dpkg-buildpackage did not write $deb" >&2; exit 1; }
echo "$deb"
