#!/usr/bin/env bash
# A module built for one nginx must not load into another: for every ordered
# pair of the given versions (default: all, scripts/lib/nginx-versions.sh),
# `nginx -t` of version B with the module built for version A must fail with
# nginx's own message, `module "..." version A instead of B` (nginx checks the
# version first, then the signature: "is not binary compatible").
#
#   scripts/test-abi.sh [VERSION...]
#
# Builds what is missing (scripts/build.sh). Prints one TAP line per pair.
source "$(dirname "$0")/common.sh"
source scripts/lib/nginx-versions.sh

versions=("$@")
[ "${#versions[@]}" -gt 0 ] || versions=("${NGINX_VERSIONS[@]}")
declare -A bin module number
for v in "${versions[@]}"; do
    check_nginx_version "$v"
    built=$(scripts/build.sh --nginx "$v")
    bin[$v]=${built%%$'\n'*}
    module[$v]=${built#*$'\n'}
    # nginx_version as nginx.h defines it: 1.28.3 -> 1028003
    number[$v]=$("${bin[$v]}" -v 2>&1 | awk -F/ '{split($2, p, "."); printf "%d%03d%03d", p[1], p[2], p[3]}')
done

tmp=$(mktemp -d /tmp/test-abi.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/logs"

n=0 failed=0
for a in "${versions[@]}"; do
    for b in "${versions[@]}"; do
        [ "$a" = "$b" ] && continue
        n=$((n + 1))
        printf 'load_module %s;\nevents {}\n' "${module[$a]}" > "$tmp/nginx.conf"
        want="module \"${module[$a]}\" version ${number[$a]} instead of ${number[$b]}"
        if out=$("${bin[$b]}" -p "$tmp/" -c "$tmp/nginx.conf" -e "$tmp/logs/error.log" -t 2>&1); then
            echo "not ok $n - the module built for $a loads into nginx $b"
            failed=$((failed + 1))
        elif [[ "$out" != *"[emerg]"*"$want"* ]]; then
            printf 'not ok %d - nginx %s refuses the module built for %s, but not with: %s\n# got: %s\n' \
                "$n" "$b" "$a" "$want" "$out"
            failed=$((failed + 1))
        else
            echo "ok $n - nginx $b refuses the module built for $a: $want"
        fi
    done
done
echo "1..$n"
[ "$failed" -eq 0 ]
