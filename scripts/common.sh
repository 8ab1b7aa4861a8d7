# Shared by the scripts: run from anywhere, work from the repository root.
# shellcheck shell=bash
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$PWD
NGINX_BIN=${TEST_NGINX_BINARY:-/usr/sbin/nginx}

# Builds the module with the given cargo profile (dev or release) and prints
# the path of the .so (under CARGO_TARGET_DIR when that is set, as
# scripts/build.sh does for nginx versions other than 1.22).
build_module() {
    local profile=$1 dir=debug
    [ "$profile" = release ] && dir=release
    cargo build --locked --profile "$profile" -p nginx-dynamic-upstream >&2
    echo "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/$dir/libngx_http_dynamic_upstream_module.so"
}

# Prints a port P such that P .. P+COUNT-1 are all free on 127.0.0.1,
# chosen in 20000-29999 (below Linux's ephemeral range).
free_port_block() {
    local count=$1 base
    while :; do
        base=$((20000 + RANDOM % (9000 / 10) * 10))
        ss -Hltn | awk '{print $4}' | grep -qE ":($(seq -s '|' "$base" "$((base + count - 1))"))$" || break
    done
    echo "$base"
}

# The nginx.conf lines that keep every temporary path under DIR (Debian's
# compiled-in ones are in /var/lib/nginx).
temp_paths() {
    local dir=$1 kind
    for kind in client_body proxy fastcgi uwsgi scgi; do
        echo "    ${kind}_temp_path $dir/${kind}_temp;"
    done
}

# count_and_valgrind DEFAULT NAME ARGS...: reads a reliability script's
# arguments "[N] [--valgrind]" into $count (default DEFAULT; NAME is what N
# counts, for the usage line) and $valgrind (0 or 1).
count_and_valgrind() {
    local name=$2 arg
    count=$1 valgrind=0
    shift 2
    for arg in "$@"; do
        case "$arg" in
            --valgrind) valgrind=1 ;;
            *[!0-9]* | "") echo "usage: $0 [$name] [--valgrind]" >&2; exit 2 ;;
            *) count=$arg ;;
        esac
    done
}

# fresh_out_dir NAME: prints scripts/out/NAME, emptied, with logs/ and conf/.
fresh_out_dir() {
    local out="$REPO_ROOT/scripts/out/$1"
    rm -rf "$out"
    mkdir -p "$out/logs" "$out/conf"
    echo "$out"
}

# nginx_conf_head OUT WORKERS CONNECTIONS LOG_LEVEL [MODULE]: the first lines
# of a script's nginx.conf, up to "http {" and the settings every script
# shares there (no access log, temporary files under OUT); with MODULE, its
# load_module line first.
nginx_conf_head() {
    local out=$1 workers=$2 connections=$3 level=$4 module=${5:-}
    [ -z "$module" ] || echo "load_module $module;"
    cat <<EOF
worker_processes $workers;
pid logs/nginx.pid;
error_log logs/error.log $level;
events { worker_connections $connections; }
http {
    access_log off;
$(temp_paths "$out")
EOF
}

# now_seconds: the time in seconds, to the nanosecond; seconds_since T: the
# seconds since T (a now_seconds), to the hundredth.
now_seconds() { date +%s.%N; }
seconds_since() { awk -v a="$1" -v b="$(now_seconds)" 'BEGIN { printf "%.2f", b - a }'; }

# Stops the nginx whose pid file is FILE (only that one): QUIT, then wait.
stop_by_pid_file() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 0
    [ -n "$pid" ] || return 0
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}
