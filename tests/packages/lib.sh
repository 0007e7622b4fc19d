# tests/packages/lib.sh — shared by the package tests and tests/docs/run.sh (source it):
#   fail MESSAGE                       prints "package test FAILED: MESSAGE" and exits 1
#   find_one DIR GLOB                  the single file in DIR matching GLOB (fails on 0 or 2+)
#   make_feox_venv DIR WHEEL           a fresh /usr/bin/python3 venv (--system-site-packages) with
#                                      WHEEL installed offline
#   make_feox_node_project DIR TGZ BUILD
#                                      a scratch npm project in DIR with TGZ and better-sqlite3@^12
#                                      installed; better-sqlite3 (compiled by node-gyp when no
#                                      prebuilt binary is found, ~2 min) is kept in
#                                      BUILD/node-deps/node-<ABI>/ and copied from there next time.

fail() {
    echo "package test FAILED: $*" >&2
    exit 1
}

find_one() {
    local found
    found=$(find "$1" -maxdepth 1 -name "$2" 2>/dev/null)
    [ -n "$found" ] || fail "no $2 in $1 (build it first: make python-package / node-package)"
    [ "$(printf '%s\n' "$found" | wc -l)" = 1 ] || fail "more than one $2 in $1"
    printf '%s\n' "$found"
}

make_feox_venv() {
    /usr/bin/python3 -m venv --system-site-packages "$1"
    "$1/bin/pip" install --quiet --no-index --disable-pip-version-check "$2" ||
        fail "pip install --no-index $2"
}

make_feox_node_project() {
    local dir=$1 tgz=$2 build=$3 major abi cache
    major=$(node -p 'process.versions.node.split(".")[0]')
    [ "$major" -ge 20 ] || fail "better-sqlite3 12 needs Node.js 20 or newer; this is $(node --version)"
    abi=$(node -p 'process.versions.modules')
    cache="$build/node-deps/node-$abi"
    mkdir -p "$cache"
    # One filler at a time (two test runs may share the build directory).
    (
        flock 9
        [ -f "$cache/node_modules/better-sqlite3/build/Release/better_sqlite3.node" ] && exit 0
        echo "== npm install better-sqlite3@^12 (once per build dir; may compile for ~2 minutes)"
        rm -rf "$cache/node_modules" "$cache/package-lock.json"
        printf '{ "name": "feox-package-test", "version": "1.0.0", "private": true }\n' \
            >"$cache/package.json"
        cd "$cache" && npm install --no-audit --no-fund --loglevel=error 'better-sqlite3@^12'
    ) 9>"$build/node-deps/.lock-$abi" || fail "npm install better-sqlite3@^12"
    mkdir -p "$dir"
    cp -a "$cache/package.json" "$cache/package-lock.json" "$cache/node_modules" "$dir/"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$tgz") ||
        fail "npm install $tgz"
}
