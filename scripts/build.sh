#!/usr/bin/env bash
# Builds the module for one nginx, and that nginx where it is not Debian 12's
# own, then prints exactly two lines on stdout: the nginx binary to run and
# the module (.so) built for it. Everything else goes to stderr.
#
#   scripts/build.sh [--nginx 1.22|1.26|1.28]     (default 1.22)
#
# Idempotent: what build/ already holds for that version is reused (each
# step has its own stamp), so a second run only runs cargo. The versions and
# where their pieces live: scripts/lib/nginx-versions.sh.
source "$(dirname "$0")/common.sh"
source scripts/lib/nginx-versions.sh

version=$(nginx_option "scripts/build.sh [--nginx $(IFS="|"; echo "${NGINX_VERSIONS[*]}")]" "$@")

say() { echo "build.sh: $*" >&2; }

# --- 1.26: Debian 13's stock nginx in a trixie root -------------------------

# The packages the 1.26 run needs in the root: the binary, its nginx-dev
# tree, and the modules the t/ suite loads (as on the host: scripts/setup.sh);
# and Debian 13's prometheus-nginx-exporter, which t/metrics.t runs (on the
# host: a Go program, it needs nothing of the root) beside Debian 12's.
trixie_packages=(nginx nginx-dev libnginx-mod-http-lua libnginx-mod-http-echo libnginx-mod-stream libnginx-mod-http-upstream-fair
                 prometheus-nginx-exporter)

# The Debian mirror apt uses here.
debian_mirror() {
    local uri
    uri=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null |
          awk '{print $2}' | head -1)
    echo "${uri:-http://deb.debian.org/debian}"
}

# build/trixie: a minimal Debian 13 root (debootstrap) with trixie_packages.
# Their maintainer scripts run in the root under a policy-rc.d that refuses
# every service start, so installing nginx starts nothing.
trixie_root() {
    local stamp=$TRIXIE_ROOT/.ndu-packages mirror
    [ "$(cat "$stamp" 2>/dev/null)" = "${trixie_packages[*]}" ] && return
    mirror=$(debian_mirror)
    if [ ! -x "$TRIXIE_ROOT/usr/bin/apt-get" ]; then
        command -v debootstrap >/dev/null || { say "debootstrap missing: run scripts/setup.sh"; exit 1; }
        say "making a Debian 13 (trixie) root in build/trixie from $mirror (about a minute)"
        rm -rf "$TRIXIE_ROOT.tmp"
        nice -n 10 debootstrap --variant=minbase trixie "$TRIXIE_ROOT.tmp" "$mirror" >&2
        mv "$TRIXIE_ROOT.tmp" "$TRIXIE_ROOT"
    fi
    printf 'deb %s trixie main\ndeb %s trixie-updates main\ndeb %s-security trixie-security main\n' \
        "$mirror" "$mirror" "${mirror%/debian*}/debian" > "$TRIXIE_ROOT/etc/apt/sources.list"
    printf '#!/bin/sh\nexit 101\n' > "$TRIXIE_ROOT/usr/sbin/policy-rc.d"
    chmod 755 "$TRIXIE_ROOT/usr/sbin/policy-rc.d"
    say "installing ${trixie_packages[*]} in build/trixie"
    chroot "$TRIXIE_ROOT" apt-get update >&2
    chroot "$TRIXIE_ROOT" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${trixie_packages[@]}" >&2
    echo "${trixie_packages[*]}" > "$stamp"
}

# build/nginx-1.26/sbin/nginx: the root's /usr/sbin/nginx, byte for byte but
# for two ELF entries (patchelf): its program interpreter is the root's
# dynamic loader and its DT_RPATH the root's library directory, so it runs
# with Debian 13's glibc, OpenSSL, PCRE2 (and LuaJIT for the Lua module) as a
# normal process: master and workers with nginx's own process titles (which
# the t/ harness and the scripts look for; running it through `ld.so
# --library-path` would prefix them with the loader's command line), reloads,
# and load_module of any host path.
nginx_126_binary() {
    local bin=$BUILD_DIR/nginx-1.26/sbin/nginx stock=$TRIXIE_ROOT/usr/sbin/nginx
    # Made from the root at build/'s physical path, which every checkout
    # sharing build/ names alike (redone only if build/ moved).
    [ "$bin" -nt "$stock" ] &&
        [ "$(patchelf --print-interpreter "$bin")" = "$TRIXIE_ROOT/lib64/ld-linux-x86-64.so.2" ] && return
    mkdir -p "$(dirname "$bin")"
    cp "$stock" "$bin.tmp"
    patchelf --set-interpreter "$TRIXIE_ROOT/lib64/ld-linux-x86-64.so.2" \
        --force-rpath --set-rpath "$TRIXIE_ROOT/usr/lib/x86_64-linux-gnu" "$bin.tmp"
    mv "$bin.tmp" "$bin"
}

# build/nginx-1.26/nginx, what scripts and tests run. Debian's Lua module
# has /usr/share/lua/5.1 compiled in ahead of any LUA_PATH, and there the
# host has Debian 12's lua-resty-core (for Lua module 0.10.23, not Debian
# 13's 0.10.28). As root, the wrapper runs nginx in a mount namespace of its
# own (unshare) where the root's /usr/share/lua is bind-mounted over the
# host's: nothing outside that nginx sees it. Otherwise it runs nginx as is
# (the Lua module then cannot start: scripts/test.sh skips its tests).
nginx_126_wrapper() {
    local wrapper
    wrapper=$(nginx_binary 1.26)
    cat > "$wrapper.tmp" <<EOF
#!/bin/sh
# Debian 13's stock nginx, made by scripts/build.sh --nginx 1.26 from $TRIXIE_ROOT
bin=$BUILD_DIR/nginx-1.26/sbin/nginx
[ "\$(id -u)" = 0 ] || exec "\$bin" "\$@"
exec unshare --mount --propagation private sh -c 'mount --bind "\$0" /usr/share/lua && exec "\$@"' \\
    "$TRIXIE_ROOT/usr/share/lua" "\$bin" "\$@"
EOF
    chmod 755 "$wrapper.tmp"
    mv "$wrapper.tmp" "$wrapper"
}

# Configures a copy of nginx tree $1 (with conf_flags) in build/nginx-1.26/src,
# as scripts/setup.sh does for 1.22 with the host's nginx-dev.
configure_126() {
    local src=$REPO_ROOT/build/nginx-1.26/src stamp version
    version=$(chroot "$TRIXIE_ROOT" dpkg-query -W -f='${Version}' nginx-dev)
    stamp=$src/.configured-for
    [ "$(cat "$stamp" 2>/dev/null)" = "$version" ] && [ -f "$src/objs/ngx_auto_config.h" ] && return
    say "configuring Debian 13's nginx-dev $version tree in build/nginx-1.26/src"
    rm -rf "$src"
    mkdir -p "$src"
    cp -a "$TRIXIE_ROOT/usr/share/nginx/src/." "$src/"
    (
        cd "$src"
        # shellcheck disable=SC1091
        source ./conf_flags
        ./configure "${NGX_CONF_FLAGS[@]}" > configure.log 2>&1 || {
            say "nginx configure failed, see $src/configure.log"
            exit 1
        }
    )
    echo "$version" > "$stamp"
}

prepare_126() {
    trixie_root
    nginx_126_binary
    nginx_126_wrapper
    configure_126
}

# --- 1.28: nginx.org's 1.28.3 built from the nginx-src crate ----------------

# nginx.org's configure arguments for its Debian packages of 1.28.3:
# BASE_CONFIGURE_ARGS in debian/Makefile of https://github.com/nginx/pkg-oss,
# tag 1.28.3-1 (commit 114bdca3d7c2e02f4e86c11e6c6fbcda7577d8d5), in its
# order; debian/debian/nginx.rules.in adds --with-cc-opt/--with-ld-opt
# (dpkg-buildflags: no ABI change). Two deliberate changes: the paths
# (/etc/nginx, /var/log/nginx, /run, /var/cache/nginx, /usr/lib/nginx/modules,
# /usr/sbin) are under build/nginx-1.28/ (nginx_128_paths), and --user=nginx
# --group=nginx are left out (no such user here: workers run as nginx's
# default, nobody, as with Debian's builds).
nginx_org_128_args=(
    --prefix=/etc/nginx
    --sbin-path=/usr/sbin/nginx
    --modules-path=/usr/lib/nginx/modules
    --conf-path=/etc/nginx/nginx.conf
    --error-log-path=/var/log/nginx/error.log
    --http-log-path=/var/log/nginx/access.log
    --pid-path=/run/nginx.pid
    --lock-path=/run/nginx.lock
    --http-client-body-temp-path=/var/cache/nginx/client_temp
    --http-proxy-temp-path=/var/cache/nginx/proxy_temp
    --http-fastcgi-temp-path=/var/cache/nginx/fastcgi_temp
    --http-uwsgi-temp-path=/var/cache/nginx/uwsgi_temp
    --http-scgi-temp-path=/var/cache/nginx/scgi_temp
    --with-compat
    --with-file-aio
    --with-threads
    --with-http_addition_module
    --with-http_auth_request_module
    --with-http_dav_module
    --with-http_flv_module
    --with-http_gunzip_module
    --with-http_gzip_static_module
    --with-http_mp4_module
    --with-http_random_index_module
    --with-http_realip_module
    --with-http_secure_link_module
    --with-http_slice_module
    --with-http_ssl_module
    --with-http_stub_status_module
    --with-http_sub_module
    --with-http_v2_module
    --with-http_v3_module
    --with-mail
    --with-mail_ssl_module
    --with-stream
    --with-stream_realip_module
    --with-stream_ssl_module
    --with-stream_ssl_preread_module
)

# nginx_org_128_args with their paths moved under $1.
nginx_128_paths() {
    local dir=$1 arg
    for arg in "${nginx_org_128_args[@]}"; do
        arg=${arg/=\/etc\/nginx/=$dir/etc}
        arg=${arg/=\/usr\/sbin/=$dir/sbin}
        arg=${arg/=\/usr\/lib\/nginx\/modules/=$dir/modules}
        arg=${arg/=\/var\/log\/nginx/=$dir/log}
        arg=${arg/=\/var\/cache\/nginx/=$dir/cache}
        arg=${arg/=\/run/=$dir/run}
        echo "$arg"
    done
}

# The nginx-src crate's nginx/ directory: fetched by cargo into its registry
# at the version and checksum scripts/nginx-src/Cargo.lock pins.
nginx_src_dir() {
    local manifest=scripts/nginx-src/Cargo.toml
    cargo fetch --locked --manifest-path "$manifest" >&2
    cargo metadata --locked --offline --format-version 1 --manifest-path "$manifest" |
        perl -MJSON::PP -0777 -ne 'for (@{decode_json($_)->{packages}}) {
            if ($_->{name} eq "nginx-src") { (my $d = $_->{manifest_path}) =~ s{/Cargo\.toml$}{/nginx}; print $d; exit } }'
}

# Debian 12's source of the echo module (libnginx-mod-http-echo, the one the
# host's t/ runs load), for a dynamic build against 1.28.
# Its physical path, as build_128's: it is part of build_128's stamp.
echo_src_dir() {
    local dir
    dir=$BUILD_DIR/nginx-1.28/echo
    if [ ! -f "$dir/.fetched" ]; then
        say "fetching Debian 12's libnginx-mod-http-echo source (apt-get source) into build/nginx-1.28/echo"
        rm -rf "$dir"
        mkdir -p "$dir"
        (cd "$dir" && apt-get source -q libnginx-mod-http-echo >&2) || {
            say "apt-get source libnginx-mod-http-echo failed: enable deb-src lines in /etc/apt/sources.list*"
            exit 1
        }
        touch "$dir/.fetched"
    fi
    find "$dir" -mindepth 1 -maxdepth 1 -type d -name 'libnginx-mod-http-echo-*' | head -1
}

build_128() {
    local dir src stamp echo_dir args
    # The physical path: worktrees that share build/ (a symlink) then agree
    # on the stamp, and none rebuilds what another built.
    dir=$BUILD_DIR/nginx-1.28
    src=$(nginx_src_dir)
    [ -f "$src/src/core/nginx.h" ] || { say "nginx-src crate not found (cargo fetch)"; exit 1; }
    echo_dir=$(echo_src_dir)
    mapfile -t args < <(nginx_128_paths "$dir")
    args+=(--add-dynamic-module="$echo_dir")
    stamp="$src ${args[*]}"
    if [ "$(cat "$dir/src/.built-with" 2>/dev/null)" = "$stamp" ] && [ -x "$dir/src/objs/nginx" ]; then
        return
    fi
    say "building nginx 1.28.3 (nginx-src crate) with nginx.org's flags in build/nginx-1.28/src (a few minutes)"
    rm -rf "$dir/src"
    mkdir -p "$dir/src" "$dir/etc" "$dir/log" "$dir/cache" "$dir/run" "$dir/modules"
    cp -a "$src/." "$dir/src/"
    (
        cd "$dir/src"
        auto/configure "${args[@]}" > configure.log 2>&1 || { say "configure failed: $dir/src/configure.log"; exit 1; }
        nice -n 10 make -j"$(nproc)" > make.log 2>&1 || { say "make failed: $dir/src/make.log"; exit 1; }
    )
    echo "$stamp" > "$dir/src/.built-with"
}

# --- every version -----------------------------------------------------------

scripts/setup.sh >&2
case $version in
1.26) prepare_126 ;;
1.28) build_128 ;;
esac

NGINX_BUILD_DIR=$(nginx_build_dir "$version")
CARGO_TARGET_DIR=$(cargo_target_dir "$version")
export NGINX_BUILD_DIR CARGO_TARGET_DIR
module=$(build_module dev)
nginx_binary "$version"
echo "$module"
