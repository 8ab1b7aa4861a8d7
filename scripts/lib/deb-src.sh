# shellcheck shell=bash
# Debian 12's source packages for `apt-get source` (the echo module for the
# 1.28 build, nginx for the ASan build): adds deb-src entries for bookworm,
# bookworm-updates and bookworm-security (deb822, in
# /etc/apt/sources.list.d/deb-src.sources) if apt has none, then updates
# apt's lists. Root, or sudo.
has_deb_src() {
    grep -rhsE '^\s*Types:.*\bdeb-src\b' /etc/apt/sources.list.d/*.sources >/dev/null 2>&1 && return 0
    grep -hsE '^\s*deb-src\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list >/dev/null 2>&1
}

ensure_deb_src() {
    has_deb_src && return 0
    local as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    echo "adding /etc/apt/sources.list.d/deb-src.sources (Debian 12's source packages)" >&2
    "${as_root[@]}" tee /etc/apt/sources.list.d/deb-src.sources >/dev/null <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    "${as_root[@]}" apt-get update -qq
}
