#!/usr/bin/env bash
# tests/docs/run.sh — the README's examples compile and run as written.
#
# Every fenced block preceded by a line "<!-- readme-test: c -->" is compiled against the
# engine library and run; every block preceded by "<!-- readme-test: python -->" is run with
# /usr/bin/python3 from the repository root (so "build/feox" resolves to the extension: BUILD
# names the build directory, default build). Each must exit 0.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

awk -v dir="$tmp" '
    /^<!-- readme-test: (c|python) -->$/ { kind = $3; want = 1; next }
    want && /^```/ { if (inblock) { inblock = 0; want = 0; close(file); next }
                     n++; file = sprintf("%s/example%d.%s", dir, n, kind == "c" ? "c" : "py"); inblock = 1; next }
    inblock { print > file }
' "$repo/README.md"

count=0
for f in "$tmp"/example*; do
    [ -e "$f" ] || continue
    count=$((count + 1))
    case "$f" in
    *.c)
        echo "== README C example $(basename "$f")"
        cc -std=c11 -Wall -Wextra -Werror -I"$repo/engine" "$f" "$repo/$build/libfeox.a" \
            -lck -lcjson -lxxhash -lpthread -lm -o "$tmp/a.out"
        "$tmp/a.out"
        ;;
    *.py)
        echo "== README Python example $(basename "$f")"
        sed "s|\"build/feox\"|\"$repo/$build/feox\"|" "$f" > "$tmp/run.py"
        /usr/bin/python3 "$tmp/run.py"
        ;;
    esac
done
if [ "$count" -lt 2 ]; then
    echo "expected the C and Python examples in README.md, found $count" >&2
    exit 1
fi
