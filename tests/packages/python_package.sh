#!/usr/bin/env bash
# tests/packages/python_package.sh — the feox wheel installs into a fresh venv and works there.
#
# Usage:  B=<build dir> bash tests/packages/python_package.sh   (make python-package-test runs it
# after make python-package). Checks the wheel's name (py3-none-<platform>, not a pure wheel) and
# that it holds feox/feox.so, creates a venv with `/usr/bin/python3 -m venv --system-site-packages`
# (Debian's sqlite3 module can load extensions), installs the wheel with `pip install --no-index`
# and runs tests/packages/python_app.py from a directory outside the repository.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${B:-build}
case "$build" in /*) ;; *) build="$repo/$build" ;; esac
source "$repo/tests/packages/lib.sh"

wheel=$(find_one "$build/python/dist" 'feox-*.whl')
case "$(basename "$wheel")" in
*-py3-none-linux_x86_64.whl | *-py3-none-linux_*.whl) ;;
*) fail "wheel $(basename "$wheel") is not tagged py3-none-linux_<arch>" ;;
esac
# The listing first, then grep: `zipfile -l | grep -q` fails under pipefail whenever grep stops
# reading before zipfile has printed everything (BrokenPipeError).
listing=$(/usr/bin/python3 -m zipfile -l "$wheel")
grep -q '^feox/feox.so ' <<<"$listing" || fail "no feox/feox.so in $wheel"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make_feox_venv "$tmp/venv" "$wheel"
echo "== python package: app in a fresh venv"
(cd "$tmp" && "$tmp/venv/bin/python" "$repo/tests/packages/python_app.py")

# Where the machine has a Python whose sqlite3 cannot load extensions (a pyenv build, say), the
# real thing: the wheel installs there too and feox.load() raises the error naming the fix.
other=$(command -v python3 || true)
if [ -n "$other" ] && [ "$other" != /usr/bin/python3 ] &&
    "$other" -c 'import sqlite3, sys; sys.exit(hasattr(sqlite3.Connection, "enable_load_extension"))' \
        2>/dev/null; then
    echo "== python package: $("$other" --version) without extension loading gets the error"
    "$other" -m venv "$tmp/venv-noext"
    "$tmp/venv-noext/bin/pip" install --quiet --no-index --disable-pip-version-check "$wheel"
    (cd "$tmp" && "$tmp/venv-noext/bin/python" -c '
import sqlite3, feox
try:
    feox.load(sqlite3.connect(":memory:"))
except feox.ExtensionLoadingUnavailable as e:
    assert "--enable-loadable-sqlite-extensions" in str(e), e
else:
    raise SystemExit("feox.load succeeded without enable_load_extension")
') || fail "the error for a Python without extension loading"
fi
echo "python package: ok"
