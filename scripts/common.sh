# Shared by the scripts: run from anywhere, work from the repository root.
# shellcheck shell=bash
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$PWD
NGINX_BIN=${TEST_NGINX_BINARY:-/usr/sbin/nginx}

# Builds the module with the given cargo profile (dev or release) and prints
# the path of the .so.
build_module() {
    local profile=$1 dir=debug
    [ "$profile" = release ] && dir=release
    cargo build --locked --profile "$profile" -p nginx-dynamic-upstream >&2
    echo "$REPO_ROOT/target/$dir/libngx_http_dynamic_upstream_module.so"
}
