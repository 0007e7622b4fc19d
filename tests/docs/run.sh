#!/usr/bin/env bash
# tests/docs/run.sh — the README's examples compile and run as written.
#
# Every fenced block preceded by a line "<!-- readme-test: KIND -->" is run; each must exit 0:
#   c               compiled against the engine library and run;
#   python          run with /usr/bin/python3 from the repository root (so "build/feox" resolves to
#                   the extension: BUILD names the build directory, default build);
#   python-package  run with the python of a fresh venv (/usr/bin/python3 -m venv
#                   --system-site-packages) holding the wheel from `make python-package`;
#   node            run with node in a scratch npm project holding the tarball from
#                   `make node-package` and better-sqlite3@^12 (see tests/packages/lib.sh).
# `make docs-tests` builds both packages first. Every kind must occur at least once.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD:-build}
build_abs=$build
case "$build_abs" in /*) ;; *) build_abs="$repo/$build" ;; esac
source "$repo/tests/packages/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

awk -v dir="$tmp" '
    /^<!-- readme-test: (c|python|python-package|node) -->$/ { kind = $3; want = 1; next }
    want && /^```/ { if (inblock) { inblock = 0; want = 0; close(file); next }
                     n++; ext = kind == "c" ? "c" : kind == "python" ? "py" : kind == "node" ? "js" : "pkg.py"
                     file = sprintf("%s/example%d.%s", dir, n, ext); inblock = 1; next }
    inblock { print > file }
' "$repo/README.md"

seen=" "
for f in "$tmp"/example*; do
    [ -e "$f" ] || continue
    case "$f" in
    *.c)
        seen="$seen c "
        echo "== README C example $(basename "$f")"
        cc -std=c11 -Wall -Wextra -Werror -I"$repo/engine" "$f" "$repo/$build/libfeox.a" \
            -lck -lcjson -lxxhash -lpthread -lm -o "$tmp/a.out"
        "$tmp/a.out"
        ;;
    *.pkg.py)
        seen="$seen python-package "
        echo "== README Python package example $(basename "$f")"
        [ -x "$tmp/venv/bin/python" ] ||
            make_feox_venv "$tmp/venv" "$(find_one "$build_abs/python/dist" 'feox-*.whl')"
        (cd "$tmp" && "$tmp/venv/bin/python" "$f")
        ;;
    *.py)
        seen="$seen python "
        echo "== README Python example $(basename "$f")"
        sed "s|\"build/feox\"|\"$repo/$build/feox\"|" "$f" > "$tmp/run.py"
        /usr/bin/python3 "$tmp/run.py"
        ;;
    *.js)
        seen="$seen node "
        echo "== README Node example $(basename "$f")"
        [ -d "$tmp/node/node_modules/feox" ] ||
            make_feox_node_project "$tmp/node" "$(find_one "$build_abs/node" 'feox-*.tgz')" "$build_abs" >/dev/null
        cp "$f" "$tmp/node/example.js"
        (cd "$tmp/node" && node example.js)
        ;;
    esac
done
for kind in c python python-package node; do
    case "$seen" in
    *" $kind "*) ;;
    *) echo "expected a README example marked readme-test: $kind, found none" >&2; exit 1 ;;
    esac
done
