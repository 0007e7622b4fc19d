#!/bin/bash
# selftest.sh — check_layers.py on tiny fake trees (run by make layers before the real check):
# a tree with an upward include, an upward call, an ext/ file that includes an engine internal and
# a cycle between two ext/ files must fail, naming each; the same tree without them must pass.
# usage: tests/layers/selftest.sh   (CC, PYTHON and NM from the environment, as make passes them)
set -u
here=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-cc}
PYTHON=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "layers selftest: $*" >&2; exit 1; }

# make_tree DIR BAD: a small engine (base < store, public feox.h) and ext/ of two files; with
# BAD=1, engine/base/low.c includes store/ and calls store/top.c (upward), ext/a.c includes base/
# (an engine internal) and ext/a.c and ext/b.c call each other.
make_tree() {
    local t=$1 bad=$2
    mkdir -p "$t/engine/base" "$t/engine/store" "$t/ext"
    echo 'int feox_api(void);' > "$t/engine/feox.h"
    echo 'int feox_low(void);' > "$t/engine/base/low.h"
    echo 'int feox_high(void);' > "$t/engine/store/high.h"
    if [ "$bad" = 1 ]; then
        printf '#include "base/low.h"\n#include "store/high.h"\nint feox_top(void);\nint feox_low(void) { return feox_top(); }\n' \
            > "$t/engine/base/low.c"
        printf '#include "feox.h"\n#include "base/low.h"\nint feox_b(void);\nint feox_a(void) { return feox_b() + feox_api(); }\n' \
            > "$t/ext/a.c"
        printf 'int feox_a(void);\nint feox_b(void);\nint feox_b(void) { return feox_a(); }\n' > "$t/ext/b.c"
    else
        printf '#include "base/low.h"\nint feox_low(void) { return 1; }\n' > "$t/engine/base/low.c"
        printf '#include "feox.h"\nint feox_b(void);\nint feox_a(void) { return feox_b() + feox_api(); }\n' \
            > "$t/ext/a.c"
        printf 'int feox_b(void);\nint feox_b(void) { return 2; }\n' > "$t/ext/b.c"
    fi
    printf '#include "store/high.h"\n#include "base/low.h"\n#include "feox.h"\nint feox_high(void) { return feox_low(); }\nint feox_api(void) { return feox_high(); }\n' \
        > "$t/engine/store/high.c"
    echo 'int feox_top(void);int feox_top(void) { return 3; }' > "$t/engine/store/top.c"
    for src in engine/base/low.c engine/store/high.c engine/store/top.c ext/a.c ext/b.c; do
        mkdir -p "$t/obj/$(dirname "$src")"
        (cd "$t" && "$CC" -std=c11 -Iengine -c "$src" -o "obj/${src%.c}.o") || fail "cannot compile $src"
    done
}

make_tree "$work/bad" 1
if "$PYTHON" "$here/check_layers.py" --root "$work/bad" --build "$work/bad/obj" >"$work/bad.out" 2>&1; then
    cat "$work/bad.out" >&2
    fail "a tree with an upward include and a cycle passed"
fi
for want in \
    'engine/base/low.c:2: upward include: engine/base/low.c (layer base) includes engine/store/high.h (layer store)' \
    'ext/a.c:2: upward include: ext/a.c (ext) includes engine/base/low.h (layer base)' \
    'upward call: engine/base/low.c (layer base) uses engine/store/top.c (layer store): feox_top' \
    'cycle of 2 files: ext/a.c ext/b.c' \
    'ext/a.c -> ext/b.c: feox_b' \
    'ext/b.c -> ext/a.c: feox_a'; do
    grep -qF -- "$want" "$work/bad.out" || { cat "$work/bad.out" >&2; fail "missing: $want"; }
done

make_tree "$work/good" 0
"$PYTHON" "$here/check_layers.py" --root "$work/good" --build "$work/good/obj" >"$work/good.out" 2>&1 \
    || { cat "$work/good.out" >&2; fail "a tree that follows the layers failed"; }
echo "layers selftest: ok (an upward include and call, an ext/ include of an engine internal and a cycle are reported)"
