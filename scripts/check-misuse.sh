#!/usr/bin/env bash
# Compiles each misuse of src/misuse.rs (--cfg ndu_misuse="NAME", the crate
# alone: its dependencies are not rebuilt) and checks it is refused the way
# it must be: each is a safe edit that once compiled and crashed nginx. The
# line `// expect: WHAT` before a misuse's first cfg says how:
#   E0277, E0599, ... : rustc refuses it with that error code (the first
#                       error; any other first error is a failure: the
#                       misuse "failed" for an unrelated reason);
#   clippy::NAME       : rustc compiles it and clippy refuses it with that
#                       lint (clippy.toml's disallowed methods);
#   runtime            : it compiles; the crash it once caused is now
#                       prevented by a check at run time (said at the
#                       misuse). It must still compile, so that the misuse
#                       stays what the comment says.
# Exits 1 naming every misuse not refused as expected. With no argument,
# every one in src/misuse.rs.
set -uo pipefail
cd "$(dirname "$0")/.."
declare -A expect=()
names=()
while IFS=$'\t' read -r name what; do
    names+=("$name")
    expect[$name]=$what
done < <(awk '
    /^\/\/ expect: / { what = $3; next }
    match($0, /^#\[cfg\(ndu_misuse = "[a-z0-9_]+"\)\]/) {
        name = $0; sub(/^#\[cfg\(ndu_misuse = "/, "", name); sub(/".*/, "", name)
        if (!(name in seen)) { seen[name] = 1; print name "\t" (what == "" ? "?" : what) }
        what = ""
    }' src/misuse.rs)
[ $# -eq 0 ] || names=("$@")
# The safe files: those that forbid unsafe code, and the files of a folder
# whose mod.rs does. Each forbid also forbids clippy.toml's disallowed
# methods and types (so that no `allow` inside can undo them: rustc's
# E0453), and no safe file names nginx's structs or macros but its numbers
# (below: a struct literal written out in full escapes clippy's type lint;
# misuse.rs, whose items are never built, does, to be refused).
forbids=$(grep -lE '^#!\[forbid\(' $(find src -name '*.rs'))
safe=$(for f in $forbids; do
    case $f in */mod.rs) find "$(dirname "$f")" -name '*.rs' ;; *) echo "$f" ;; esac
done | sort -u)
weak=$(grep -LE '^#!\[forbid\(unsafe_code, clippy::disallowed_methods, clippy::disallowed_types\)\]' $forbids || true)
if [ -n "$weak" ]; then
    echo "check-misuse: these forbid unsafe code but not clippy's disallowed methods and types: $weak"
    exit 1
fi
# nginx's names a safe file may use: numbers, codes and log levels. Any
# other (a struct of raw pointers such as ngx_str_t, or ngx_keyval_t whose
# fields are ngx_str_t; ngx's ngx_string! macro) lets safe code make a
# string that nginx-sys's Display, == or AsRef read anywhere.
allowed='^(ngx_int_t|ngx_uint_t|ngx_msec_t|ngx_flag_t|NGX_LOG_[A-Z]+|NGX_OK|NGX_ERROR|NGX_DECLINED|NGX_CONF_OK|NGX_CONF_ERROR|NGINX_VERSION)$'
naming=$(for f in $(echo "$safe" | grep -v '^src/misuse.rs$'); do
    grep -nvE '^\s*//' "$f" | grep -oE '\b(ngx_[a-z0-9_]+|NGX_[A-Z0-9_]+|NGINX_[A-Z0-9_]+)\b' |
        grep -vE "$allowed" | sed "s|^|$f: |"
done | sort -u)
if [ -n "$naming" ]; then
    echo "check-misuse: safe files name nginx's structs or macros (use NgxText, NgxBuf, nginx/'s wrappers):"
    echo "$naming"
    exit 1
fi
# The crate itself must compile first (else every misuse "fails").
cargo rustc -q --lib --profile check >/dev/null 2>&1 || { echo "check-misuse: the crate does not compile"; exit 2; }
bad=()
for name in "${names[@]}"; do
    what=${expect[$name]:-?}
    cfg="ndu_misuse=\"$name\""
    out=$(cargo rustc -q --lib --profile check -- --cfg "$cfg" 2>&1)
    compiled=$?
    first=$(echo "$out" | grep -m1 -E '^error')
    case $what in
        E[0-9]*)
            if [ $compiled -eq 0 ]; then
                echo "COMPILES (misuse possible): $name (expected $what)"; bad+=("$name")
            elif [[ $first == "error[$what]"* ]]; then
                echo "refused: $name: $first"
            else
                echo "REFUSED FOR ANOTHER REASON: $name (expected $what): $first"; bad+=("$name")
            fi ;;
        clippy::*)
            lint=${what#clippy::}
            cout=$(cargo clippy -q --lib -- --cfg "$cfg" -D "$what" 2>&1)
            if [ $compiled -ne 0 ]; then
                echo "DOES NOT COMPILE (expected $what): $name: $first"; bad+=("$name")
            elif echo "$cout" | grep -q '^error' && echo "$cout" | grep -q -E "clippy::${lint//_/[-_]}"; then
                echo "refused: $name: $(echo "$cout" | grep -m1 -E '^error: ') ($what)"
            else
                echo "NOT REFUSED BY CLIPPY (misuse possible): $name (expected $what)"; bad+=("$name")
            fi ;;
        runtime)
            if [ $compiled -eq 0 ]; then
                echo "compiles, closed at run time: $name"
            else
                echo "DOES NOT COMPILE (expected: compiles, closed at run time): $name: $first"; bad+=("$name")
            fi ;;
        *)
            echo "NO EXPECTATION (// expect: ...) for $name"; bad+=("$name") ;;
    esac
done
[ ${#bad[@]} -eq 0 ] || { echo "check-misuse: not as expected: ${bad[*]}"; exit 1; }
echo "check-misuse: ${#names[@]} misuses, each refused as expected"
