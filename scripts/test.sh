#!/usr/bin/env bash
# Runs every test: set-up (if needed), build, unit tests, then the t/ suite
# against Debian's /usr/sbin/nginx with the module loaded.
source "$(dirname "$0")/common.sh"

scripts/setup.sh
TEST_NGINX_MODULE=$(build_module dev)
export TEST_NGINX_MODULE

echo "== cargo test"
cargo test --locked --workspace
echo "== cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== scripts/check-layers.sh"
scripts/check-layers.sh

echo "== prove -r t/"
prove -r t/
echo "== scripts/test-run.sh"; scripts/test-run.sh     # the demo, headless
echo "== scripts/test-etcd.sh"; scripts/test-etcd.sh   # ndu-sync, real etcd, three nginx
echo "== scripts/test-package.sh"; scripts/test-package.sh
